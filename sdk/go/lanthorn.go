// Package lanthorn is a client for Lanthorn, the self-hosted LLM server: generate, stream, chat,
// list models and embed over its OpenAI-compatible API. Standard library only.
//
//	client := lanthorn.NewClient("http://localhost:8000", os.Getenv("LANTHORN_API_KEY"))
//	gen, err := client.Generate(ctx, lanthorn.Request{Prompt: "Once upon a time", MaxTokens: 200})
//	_, err = client.Stream(ctx, lanthorn.Request{Prompt: "Tell me a story"}, func(text string) error {
//		fmt.Print(text)
//		return nil
//	})
package lanthorn

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Client talks to one Lanthorn server. Its zero value is not usable: call NewClient.
type Client struct {
	Endpoint   string
	APIKey     string
	Model      string // used when a Request names none; default: the first model the server lists
	MaxRetries int    // retries of 429, 503 and connection failures (default 2)
	HTTP       *http.Client
}

// NewClient returns a client for endpoint (e.g. "http://localhost:8000") with an API key.
func NewClient(endpoint, apiKey string) *Client {
	return &Client{Endpoint: strings.TrimRight(endpoint, "/"), APIKey: apiKey, MaxRetries: 2,
		HTTP: &http.Client{Timeout: 0}}
}

// Message is one chat message.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// Request is a completion (Prompt) or a chat completion (Messages). Zero values are left out.
type Request struct {
	Model       string    `json:"model"`
	Prompt      string    `json:"prompt,omitempty"`
	Messages    []Message `json:"messages,omitempty"`
	MaxTokens   int       `json:"max_tokens,omitempty"`
	Temperature *float64  `json:"temperature,omitempty"`
	TopP        *float64  `json:"top_p,omitempty"`
	Stop        []string  `json:"stop,omitempty"`
	Seed        *int      `json:"seed,omitempty"`
	Stream      bool      `json:"stream,omitempty"`
}

// Float and Int make the optional pointer fields easy to set: Temperature: lanthorn.Float(0).
func Float(v float64) *float64 { return &v }
func Int(v int) *int           { return &v }

// Usage counts a request's tokens.
type Usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

// Generation is a finished answer.
type Generation struct {
	ID           string
	Model        string
	Text         string
	FinishReason string
	Usage        Usage
}

// Model is one model the server serves.
type Model struct {
	ID      string `json:"id"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}

// Error is an error answer from Lanthorn (its OpenAI error object). Compare with errors.Is against
// ErrUnauthorized, ErrForbidden, ErrNotFound, ErrRateLimited, ErrUnavailable, ErrBadRequest.
type Error struct {
	Status     int
	Code       string
	Message    string
	Param      string
	Type       string
	RetryAfter time.Duration
}

var (
	ErrBadRequest   = errors.New("bad request")
	ErrUnauthorized = errors.New("unauthorized")
	ErrForbidden    = errors.New("forbidden")
	ErrNotFound     = errors.New("not found")
	ErrRateLimited  = errors.New("rate limited")
	ErrUnavailable  = errors.New("service unavailable")
)

var byStatus = map[int]error{400: ErrBadRequest, 401: ErrUnauthorized, 403: ErrForbidden, 404: ErrNotFound,
	429: ErrRateLimited, 503: ErrUnavailable}

func (e *Error) Error() string {
	return fmt.Sprintf("lanthorn: %d %s: %s", e.Status, e.Code, e.Message)
}

func (e *Error) Is(target error) bool { return byStatus[e.Status] == target }

type errorBody struct {
	Error *struct {
		Message string `json:"message"`
		Type    string `json:"type"`
		Param   string `json:"param"`
		Code    string `json:"code"`
	} `json:"error"`
}

func parseError(status int, header http.Header, body []byte) *Error {
	e := &Error{Status: status, Message: fmt.Sprintf("HTTP %d", status)}
	var parsed errorBody
	if json.Unmarshal(body, &parsed) == nil && parsed.Error != nil {
		e.Code, e.Message, e.Param, e.Type = parsed.Error.Code, parsed.Error.Message, parsed.Error.Param, parsed.Error.Type
	}
	if seconds, err := strconv.ParseFloat(header.Get("Retry-After"), 64); err == nil {
		e.RetryAfter = time.Duration(seconds * float64(time.Second))
	}
	return e
}

func streamedError(parsed errorBody) *Error {
	status := 500
	switch parsed.Error.Code {
	case "no_worker", "worker_lost", "model_unavailable", "timeout":
		status = 503
	}
	return &Error{Status: status, Code: parsed.Error.Code, Message: parsed.Error.Message,
		Param: parsed.Error.Param, Type: parsed.Error.Type}
}

// retryable says how long to wait before trying again, or false.
func (c *Client) retryable(attempt int, err error) (time.Duration, bool) {
	if attempt >= c.MaxRetries {
		return 0, false
	}
	var apiErr *Error
	if errors.As(err, &apiErr) {
		if apiErr.Status != 429 && apiErr.Status != 503 {
			return 0, false
		}
		if apiErr.RetryAfter > 0 {
			return minDuration(apiErr.RetryAfter, 30*time.Second), true
		}
	}
	return minDuration(time.Duration(500<<attempt)*time.Millisecond, 30*time.Second), true
}

func minDuration(a, b time.Duration) time.Duration {
	if a < b {
		return a
	}
	return b
}

// do sends a request, retrying as retryable says, and returns a response with a 2xx status.
func (c *Client) do(ctx context.Context, method, path string, body interface{}) (*http.Response, error) {
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return nil, err
		}
	}
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, method, c.Endpoint+path, bytes.NewReader(payload))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("User-Agent", "lanthorn-sdk-go/0.1")
		if c.APIKey != "" {
			req.Header.Set("Authorization", "Bearer "+c.APIKey)
		}
		resp, err := c.HTTP.Do(req)
		if err == nil && resp.StatusCode < 400 {
			return resp, nil
		}
		if err == nil {
			data, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			err = parseError(resp.StatusCode, resp.Header, data)
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		wait, again := c.retryable(attempt, err)
		if !again {
			return nil, err
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (c *Client) getJSON(ctx context.Context, method, path string, body, out interface{}) error {
	resp, err := c.do(ctx, method, path, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(out)
}

func (c *Client) model(ctx context.Context, name string) (string, error) {
	if name != "" {
		return name, nil
	}
	if c.Model != "" {
		return c.Model, nil
	}
	models, err := c.Models(ctx)
	if err != nil {
		return "", err
	}
	if len(models) == 0 {
		return "", errors.New("lanthorn: the server lists no models; set Request.Model")
	}
	c.Model = models[0].ID
	return c.Model, nil
}

func (c *Client) prepare(ctx context.Context, r Request, stream bool) (Request, string, error) {
	var err error
	if r.Model, err = c.model(ctx, r.Model); err != nil {
		return r, "", err
	}
	r.Stream = stream
	if (r.Prompt == "") == (len(r.Messages) == 0) {
		return r, "", errors.New("lanthorn: give either Prompt or Messages")
	}
	if len(r.Messages) > 0 {
		return r, "/v1/chat/completions", nil
	}
	return r, "/v1/completions", nil
}

type choice struct {
	Text         string   `json:"text"`
	Message      *Message `json:"message"`
	Delta        *Message `json:"delta"`
	FinishReason *string  `json:"finish_reason"`
}

type completion struct {
	ID      string   `json:"id"`
	Model   string   `json:"model"`
	Choices []choice `json:"choices"`
	Usage   *Usage   `json:"usage"`
	errorBody
}

// Generate returns the whole answer to a prompt (or to chat Messages).
func (c *Client) Generate(ctx context.Context, r Request) (*Generation, error) {
	r, path, err := c.prepare(ctx, r, false)
	if err != nil {
		return nil, err
	}
	var body completion
	if err := c.getJSON(ctx, "POST", path, r, &body); err != nil {
		return nil, err
	}
	gen := &Generation{ID: body.ID, Model: body.Model}
	if body.Usage != nil {
		gen.Usage = *body.Usage
	}
	if len(body.Choices) > 0 {
		ch := body.Choices[0]
		gen.Text = ch.Text
		if ch.Message != nil {
			gen.Text = ch.Message.Content
		}
		if ch.FinishReason != nil {
			gen.FinishReason = *ch.FinishReason
		}
	}
	return gen, nil
}

// Chat is Generate for chat messages.
func (c *Client) Chat(ctx context.Context, messages []Message, r Request) (*Generation, error) {
	r.Messages = messages
	return c.Generate(ctx, r)
}

// Stream calls onText with each piece of the answer as it is generated and returns the whole
// answer. Cancelling ctx stops the generation on the server; an error from onText stops it too.
func (c *Client) Stream(ctx context.Context, r Request, onText func(text string) error) (*Generation, error) {
	r, path, err := c.prepare(ctx, r, true)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // closing the connection is how the server learns to stop
	resp, err := c.do(ctx, "POST", path, r)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	gen := &Generation{}
	var text strings.Builder
	scanner := bufio.NewScanner(resp.Body)
	scanner.Buffer(make([]byte, 64*1024), 4*1024*1024)
	for scanner.Scan() {
		line := scanner.Text()
		if !strings.HasPrefix(line, "data: ") || line == "data: [DONE]" {
			continue
		}
		var chunk completion
		if err := json.Unmarshal([]byte(line[len("data: "):]), &chunk); err != nil {
			return nil, fmt.Errorf("lanthorn: bad stream chunk: %w", err)
		}
		if chunk.Error != nil {
			return nil, streamedError(chunk.errorBody)
		}
		gen.ID, gen.Model = chunk.ID, chunk.Model
		if chunk.Usage != nil {
			gen.Usage = *chunk.Usage
		}
		for _, ch := range chunk.Choices {
			piece := ch.Text
			if ch.Delta != nil {
				piece = ch.Delta.Content
			}
			if ch.FinishReason != nil {
				gen.FinishReason = *ch.FinishReason
			}
			if piece == "" {
				continue
			}
			text.WriteString(piece)
			if err := onText(piece); err != nil {
				return nil, err
			}
		}
	}
	if err := scanner.Err(); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	gen.Text = text.String()
	return gen, nil
}

// StreamChannel is Stream delivering the pieces on a channel, closed at the end; the error (nil
// when the answer completed) arrives on the second channel.
func (c *Client) StreamChannel(ctx context.Context, r Request) (<-chan string, <-chan error) {
	pieces, result := make(chan string), make(chan error, 1)
	go func() {
		defer close(pieces)
		_, err := c.Stream(ctx, r, func(text string) error {
			select {
			case pieces <- text:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
		result <- err
	}()
	return pieces, result
}

// Models lists the models the server serves.
func (c *Client) Models(ctx context.Context) ([]Model, error) {
	var body struct {
		Data []Model `json:"data"`
	}
	if err := c.getJSON(ctx, "GET", "/v1/models", nil, &body); err != nil {
		return nil, err
	}
	return body.Data, nil
}

// Embed returns one embedding per input.
func (c *Client) Embed(ctx context.Context, model string, inputs []string) ([][]float64, error) {
	model, err := c.model(ctx, model)
	if err != nil {
		return nil, err
	}
	var body struct {
		Data []struct {
			Index     int       `json:"index"`
			Embedding []float64 `json:"embedding"`
		} `json:"data"`
	}
	if err := c.getJSON(ctx, "POST", "/v1/embeddings", map[string]interface{}{"model": model, "input": inputs}, &body); err != nil {
		return nil, err
	}
	out := make([][]float64, len(body.Data))
	for _, item := range body.Data {
		if item.Index < 0 || item.Index >= len(out) {
			return nil, fmt.Errorf("lanthorn: embedding index %d out of range", item.Index)
		}
		out[item.Index] = item.Embedding
	}
	return out, nil
}
