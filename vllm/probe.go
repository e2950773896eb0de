package vllm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"syscall"
	"time"
)

// ProbeResult is one round of readiness probes against a vLLM server.
type ProbeResult struct {
	Ready   bool
	Refused bool   // connection refused or reset: nothing listens
	Stage   string // health, models, decode: where it stopped
	Err     error  // what is not ready yet
	// Final is a definitive answer: the server will not become ready for
	// this client (wrong model, rejected key); Drift says it serves
	// something else than asked.
	Final string
	Drift bool
}

// Probe runs vgrid's readiness checks once: /health answers 200 (an empty
// body is vLLM's normal answer, and proves nothing on its own), /v1/models
// lists model, and a one-token chat completion decodes.
func Probe(ctx context.Context, endpoint, model, apiKey string, decodeTimeout time.Duration) ProbeResult {
	hc := &http.Client{}
	do := func(ctx context.Context, method, path string, body []byte) (int, []byte, error) {
		req, err := http.NewRequestWithContext(ctx, method, endpoint+path, bytes.NewReader(body))
		if err != nil {
			return 0, nil, err
		}
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		if apiKey != "" {
			req.Header.Set("Authorization", "Bearer "+apiKey)
		}
		resp, err := hc.Do(req)
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return resp.StatusCode, b, err
	}
	short, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	code, _, err := do(short, "GET", "/health", nil)
	if err != nil {
		return ProbeResult{Stage: "health", Err: err, Refused: errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET)}
	}
	if code != http.StatusOK {
		return ProbeResult{Stage: "health", Err: fmt.Errorf("/health answered %d", code)}
	}
	code, body, err := do(short, "GET", "/v1/models", nil)
	switch {
	case err != nil:
		return ProbeResult{Stage: "models", Err: err}
	case code == http.StatusUnauthorized:
		return ProbeResult{Stage: "models", Final: fmt.Sprintf("%s/v1/models answered 401: the server rejected the API key vgrid read from the profile's --api-key", endpoint)}
	case code != http.StatusOK:
		return ProbeResult{Stage: "models", Err: fmt.Errorf("/v1/models answered %d", code)}
	}
	var models struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	json.Unmarshal(body, &models)
	var ids []string
	for _, m := range models.Data {
		ids = append(ids, m.ID)
		if m.ID == model {
			ids = nil
			break
		}
	}
	if ids != nil || len(models.Data) == 0 {
		return ProbeResult{Stage: "models", Drift: true, Final: fmt.Sprintf("the server serves %v, not %q", ids, model)}
	}
	dctx, dcancel := context.WithTimeout(ctx, decodeTimeout)
	defer dcancel()
	req, _ := json.Marshal(map[string]any{"model": model, "max_tokens": 1, "stream": false,
		"messages": []map[string]string{{"role": "user", "content": "Reply with OK."}}})
	code, body, err = do(dctx, "POST", "/v1/chat/completions", req)
	if err != nil {
		return ProbeResult{Stage: "decode", Err: fmt.Errorf("decode probe: %w", err)}
	}
	var out struct {
		Usage struct {
			CompletionTokens int `json:"completion_tokens"`
		} `json:"usage"`
	}
	if code != http.StatusOK || json.Unmarshal(body, &out) != nil || out.Usage.CompletionTokens < 1 {
		return ProbeResult{Stage: "decode", Err: fmt.Errorf("decode probe answered %d: %.200s", code, body)}
	}
	return ProbeResult{Ready: true}
}
