package benchmark

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/packages/ssestream"
)

// streamBytes is a chat completion stream of n content chunks as vLLM writes it.
func streamBytes(n int) []byte {
	var b bytes.Buffer
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"tok%d \"},\"logprobs\":null,\"finish_reason\":null}]}\n\n", i)
	}
	b.WriteString("data: [DONE]\n\n")
	return b.Bytes()
}

const chunksPerStream = 1000

// BenchmarkDecodeSSE is vgrid's decode path (one op = one chunk):
//
//	go test ./benchmark -run '^$' -bench Decode -benchmem
func BenchmarkDecodeSSE(b *testing.B) {
	data := streamBytes(chunksPerStream)
	b.SetBytes(int64(len(data) / chunksPerStream))
	b.ReportAllocs()
	var ch chunk
	for done := 0; done < b.N; {
		s := newSSEReader(bytes.NewReader(data))
		for {
			line, err := s.next()
			if err != nil || string(line) == "[DONE]" {
				break
			}
			if err := decodeChunk(line, &ch); err != nil {
				b.Fatal(err)
			}
			done++
		}
	}
}

// BenchmarkDecodeOpenAIGo is the official client's stream decoder on the
// same bytes, for the choice documented in docs/benchmark.md.
func BenchmarkDecodeOpenAIGo(b *testing.B) {
	data := streamBytes(chunksPerStream)
	b.SetBytes(int64(len(data) / chunksPerStream))
	b.ReportAllocs()
	for done := 0; done < b.N; {
		res := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"text/event-stream"}}, Body: io.NopCloser(bytes.NewReader(data))}
		st := ssestream.NewStream[openai.ChatCompletionChunk](ssestream.NewDecoder(res), nil)
		for st.Next() {
			_ = st.Current().Choices[0].Delta.Content
			done++
		}
		if err := st.Err(); err != nil {
			b.Fatal(err)
		}
	}
}
