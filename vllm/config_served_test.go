package vllm

import (
	"strings"
	"testing"
)

// Served agrees with ParseServeArgs on every form of naming the model,
// the port and the key, and stays silent on flags vLLM would refuse.
func TestServedAgreesWithTheConfig(t *testing.T) {
	for _, args := range []string{
		"--model Qwen/Qwen3-32B-AWQ --port 5000",
		"Qwen/Qwen3-32B-AWQ --served-model-name medium other --api-key k",
		"--port 8011",
		"Qwen/Qwen3-32B-AWQ --model other/model",
		"--model=m --served-model-name=name --port=9000 --api-key=secret",
	} {
		words := strings.Fields(args)
		c, err := ParseServeArgs(words)
		if err != nil {
			t.Fatalf("%s: %v", args, err)
		}
		model, port, key := Flags(ParseArgs(words)).Served()
		if model != c.ServedNames[0] || port != c.Port || key != c.APIKey {
			t.Errorf("%s: Served() = %s %d %q, the config says %s %d %q", args, model, port, key, c.ServedNames[0], c.Port, c.APIKey)
		}
	}
	if model, port, _ := Flags(ParseArgs(strings.Fields("--model m --no-such-flag 1"))).Served(); model != "m" || port != 8000 {
		t.Errorf("with an unknown flag: %s %d", model, port)
	}
}
