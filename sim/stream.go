package sim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// stream writes a chat completion as vLLM does: SSE chunks when streaming
// (role chunk, one chunk per token, a finish chunk, an optional usage chunk,
// then "data: [DONE]"), or one JSON document at the end otherwise.
type stream struct {
	w            http.ResponseWriter
	sse          bool
	includeUsage bool
	model, id    string
	created      int64
	content      []byte
	reasoning    []byte
	tokens       int
	finishReason string
	call         *toolCall // set when the output is a tool call
	completion   bool      // /v1/completions: "text" choices instead of chat deltas
	// reasoningKeys name the field(s) the reasoning text goes in:
	// reasoning_content, reasoning, or both, by the release played.
	reasoningKeys []string
}

func newStream(w http.ResponseWriter, sse, includeUsage bool, model string, p Personality) *stream {
	s := &stream{w: w, sse: sse, includeUsage: includeUsage, model: model,
		id: fmt.Sprintf("chatcmpl-%x", time.Now().UnixNano()), created: time.Now().Unix()}
	if p.ReasoningContent {
		s.reasoningKeys = append(s.reasoningKeys, "reasoning_content")
	}
	if p.Reasoning {
		s.reasoningKeys = append(s.reasoningKeys, "reasoning")
	}
	return s.start()
}

func (s *stream) start() *stream {
	if s.sse {
		h := s.w.Header()
		h.Set("Content-Type", "text/event-stream; charset=utf-8")
		h.Set("Cache-Control", "no-cache")
		s.w.WriteHeader(http.StatusOK)
		if !s.completion {
			s.chunk(map[string]any{"role": "assistant", "content": ""}, nil, nil)
		}
	}
	return s
}

func (s *stream) chunk(delta map[string]any, finish *string, usage map[string]any) error {
	choices := []any{}
	object := "chat.completion.chunk"
	if s.completion {
		object = "text_completion"
		if delta != nil {
			text, _ := delta["content"].(string)
			choices = append(choices, map[string]any{"index": 0, "text": text, "logprobs": nil, "finish_reason": finish})
		}
	} else if delta != nil {
		choices = append(choices, map[string]any{"index": 0, "delta": delta, "logprobs": nil, "finish_reason": finish})
	}
	doc := map[string]any{"id": s.id, "object": object, "created": s.created, "model": s.model, "choices": choices}
	if usage != nil {
		doc["usage"] = usage
	}
	b, _ := json.Marshal(doc)
	if _, err := fmt.Fprintf(s.w, "data: %s\n\n", b); err != nil {
		return err
	}
	if f, ok := s.w.(http.Flusher); ok {
		f.Flush()
	}
	return nil
}

// token sends one generated token (kind is "content" or "reasoning_content").
func (s *stream) token(kind, text string) error {
	s.tokens++
	switch kind {
	case "content":
		s.content = append(s.content, text...)
	case "reasoning_content":
		s.reasoning = append(s.reasoning, text...)
	}
	if !s.sse {
		return nil
	}
	switch kind {
	case "tool_name":
		return s.chunk(map[string]any{"tool_calls": []any{map[string]any{"index": 0, "id": s.call.ID, "type": "function",
			"function": map[string]any{"name": text, "arguments": ""}}}}, nil, nil)
	case "tool_args":
		return s.chunk(map[string]any{"tool_calls": []any{map[string]any{"index": 0, "function": map[string]any{"arguments": text}}}}, nil, nil)
	case "reasoning_content":
		delta := map[string]any{}
		for _, k := range s.reasoningKeys {
			delta[k] = text
		}
		return s.chunk(delta, nil, nil)
	}
	return s.chunk(map[string]any{kind: text}, nil, nil)
}

func (s *stream) usage(prompt, cached int, details bool) map[string]any {
	u := map[string]any{"prompt_tokens": prompt, "completion_tokens": s.tokens, "total_tokens": prompt + s.tokens}
	if details {
		u["prompt_tokens_details"] = map[string]any{"cached_tokens": cached}
	}
	return u
}

// finish ends the response.
func (s *stream) finish(prompt, cached int, details bool) {
	if !s.sse && s.completion {
		writeJSON(s.w, http.StatusOK, map[string]any{"id": s.id, "object": "text_completion", "created": s.created, "model": s.model,
			"choices": []any{map[string]any{"index": 0, "text": string(s.reasoning) + string(s.content), "logprobs": nil, "finish_reason": s.finishReason}},
			"usage":   s.usage(prompt, cached, details)})
		return
	}
	if !s.sse {
		msg := map[string]any{"role": "assistant", "content": string(s.content)}
		if len(s.reasoning) > 0 {
			for _, k := range s.reasoningKeys {
				msg[k] = string(s.reasoning)
			}
		}
		if s.call != nil && s.finishReason == "tool_calls" {
			msg["content"] = nil
			msg["tool_calls"] = []any{map[string]any{"id": s.call.ID, "type": "function",
				"function": map[string]any{"name": s.call.Name, "arguments": s.call.Arguments}}}
		}
		writeJSON(s.w, http.StatusOK, map[string]any{"id": s.id, "object": "chat.completion", "created": s.created, "model": s.model,
			"choices": []any{map[string]any{"index": 0, "message": msg, "finish_reason": s.finishReason}},
			"usage":   s.usage(prompt, cached, details)})
		return
	}
	fr := s.finishReason
	s.chunk(map[string]any{}, &fr, nil)
	if s.includeUsage {
		s.chunk(nil, nil, s.usage(prompt, cached, details))
	}
	fmt.Fprint(s.w, "data: [DONE]\n\n")
	if f, ok := s.w.(http.Flusher); ok {
		f.Flush()
	}
}
