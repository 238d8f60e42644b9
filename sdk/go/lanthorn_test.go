package lanthorn

// Tests against a live Lanthorn: LANTHORN_ENDPOINT and LANTHORN_API_KEY (Lanthorn's `make test`
// sets them); skipped when unset. LANTHORN_MODEL names the model (default: the first listed).

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func live(t *testing.T) *Client {
	t.Helper()
	endpoint, key := os.Getenv("LANTHORN_ENDPOINT"), os.Getenv("LANTHORN_API_KEY")
	if endpoint == "" || key == "" {
		t.Skip("LANTHORN_ENDPOINT and LANTHORN_API_KEY are not set: no live server to test against")
	}
	c := NewClient(endpoint, key)
	c.Model = os.Getenv("LANTHORN_MODEL")
	return c
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestItListsModels(t *testing.T) {
	models, err := live(t).Models(ctx(t))
	if err != nil || len(models) == 0 {
		t.Fatalf("models: %v %v", models, err)
	}
}

func TestItGeneratesWithUsage(t *testing.T) {
	gen, err := live(t).Generate(ctx(t), Request{Prompt: "Water is", MaxTokens: 8, Temperature: Float(0)})
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(gen.Text) == "" || gen.Usage.CompletionTokens == 0 || gen.Usage.CompletionTokens > 8 {
		t.Fatalf("unexpected generation %+v", gen)
	}
}

func TestItChats(t *testing.T) {
	gen, err := live(t).Chat(ctx(t), []Message{{Role: "user", Content: "Say hello."}},
		Request{MaxTokens: 8, Temperature: Float(0)})
	if err != nil || strings.TrimSpace(gen.Text) == "" {
		t.Fatalf("chat: %+v %v", gen, err)
	}
}

func TestItStreamsPiecesThatMakeTheAnswer(t *testing.T) {
	var pieces []string
	gen, err := live(t).Stream(ctx(t), Request{Prompt: "Once upon a time", MaxTokens: 16, Temperature: Float(0)},
		func(text string) error { pieces = append(pieces, text); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if len(pieces) < 2 || strings.Join(pieces, "") != gen.Text || gen.FinishReason == "" {
		t.Fatalf("pieces %q, generation %+v", pieces, gen)
	}
}

func TestItStreamsOnAChannel(t *testing.T) {
	pieces, result := live(t).StreamChannel(ctx(t), Request{Prompt: "Rivers", MaxTokens: 8, Temperature: Float(0)})
	var n int
	for range pieces {
		n++
	}
	if err := <-result; err != nil || n == 0 {
		t.Fatalf("%d pieces, error %v", n, err)
	}
}

func TestItStopsAStreamWhenTheContextIsCancelled(t *testing.T) {
	c, cancel := context.WithCancel(ctx(t))
	var n int
	_, err := live(t).Stream(c, Request{Prompt: "Count to one thousand:", MaxTokens: 400}, func(string) error {
		n++
		if n == 3 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("want context.Canceled, got %v after %d pieces", err, n)
	}
}

func TestItReportsABadKeyAsUnauthorized(t *testing.T) {
	c := live(t)
	c.APIKey = "lt-wrong"
	_, err := c.Generate(ctx(t), Request{Prompt: "x", Model: "any", MaxTokens: 1})
	var apiErr *Error
	if !errors.Is(err, ErrUnauthorized) || !errors.As(err, &apiErr) || apiErr.Code != "invalid_api_key" {
		t.Fatalf("want 401 invalid_api_key, got %v", err)
	}
}

func TestItReportsAnUnknownModelAsNotFound(t *testing.T) {
	_, err := live(t).Generate(ctx(t), Request{Prompt: "x", Model: "no-such-model", MaxTokens: 1})
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("want 404, got %v", err)
	}
}

func TestItReportsABadParameterWithItsName(t *testing.T) {
	_, err := live(t).Generate(ctx(t), Request{Prompt: "x", MaxTokens: 1, Temperature: Float(9)})
	var apiErr *Error
	if !errors.As(err, &apiErr) || apiErr.Status != 400 || apiErr.Param != "temperature" {
		t.Fatalf("want 400 on temperature, got %v", err)
	}
}

// Retries honour Retry-After (a local server stands in for a busy Lanthorn).
func TestItRetriesAfterTheTimeRetryAfterSays(t *testing.T) {
	var calls int32
	var first time.Time
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if atomic.AddInt32(&calls, 1) == 1 {
			first = time.Now()
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(429)
			w.Write([]byte(`{"error":{"message":"slow down","type":"invalid_request_error","code":"rate_limit_exceeded"}}`))
			return
		}
		if time.Since(first) < time.Second {
			t.Errorf("retried after %v, before Retry-After", time.Since(first))
		}
		w.Write([]byte(`{"data":[{"id":"m","created":1,"owned_by":"lanthorn"}]}`))
	}))
	defer server.Close()
	models, err := NewClient(server.URL, "k").Models(ctx(t))
	if err != nil || len(models) != 1 || atomic.LoadInt32(&calls) != 2 {
		t.Fatalf("models %v, error %v, calls %d", models, err, calls)
	}
}
