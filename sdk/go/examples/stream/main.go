// Streams a short answer to stdout. Reads LANTHORN_ENDPOINT and LANTHORN_API_KEY.
//
//	LANTHORN_ENDPOINT=http://localhost:8000 LANTHORN_API_KEY=lt-… go run ./examples/stream
package main

import (
	"context"
	"fmt"
	"os"

	lanthorn "github.com/lanthorn/lanthorn-go"
)

func main() {
	endpoint := os.Getenv("LANTHORN_ENDPOINT")
	if endpoint == "" {
		endpoint = "http://localhost:8000"
	}
	client := lanthorn.NewClient(endpoint, os.Getenv("LANTHORN_API_KEY"))
	req := lanthorn.Request{Prompt: "The three primary colours are", MaxTokens: 32, Temperature: lanthorn.Float(0)}
	_, err := client.Stream(context.Background(), req, func(text string) error {
		fmt.Print(text)
		return nil
	})
	fmt.Println()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
