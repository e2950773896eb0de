package sim

import (
	"fmt"
	"strconv"
	"strings"
)

// DefaultVersion is the vLLM release the simulator plays unless
// VLLM_SIM_VERSION says otherwise.
const DefaultVersion = "0.27.0"

// Personality is what differs, on the wire and on the command line,
// between the vLLM releases the simulator can play (VLLM_SIM_VERSION).
// The boundaries are vLLM's own changes:
//
//   - --help: all options in sections up to 0.9; config groups only from
//     0.10, with --help=all for the options. --help=KEY exists from 0.9;
//     before, argparse refuses it ("ignored explicit argument").
//   - /metrics: vllm:gpu_cache_usage_perc and vllm:gpu_prefix_cache_{queries,hits}
//     up to 0.9; both those and vllm:kv_cache_usage_perc /
//     vllm:prefix_cache_{queries,hits} in 0.10 (the old ones marked
//     DEPRECATED); the new names only from 0.11.
//   - reasoning: message.reasoning_content up to 0.11.0; reasoning_content
//     and reasoning from 0.11.1 (vllm-project/vllm PR #27752, Nov 2025);
//     reasoning only from 0.16 (PR #33402, Jan 2026).
type Personality struct {
	Version          string
	KeywordHelp      bool // `--help=KEY` searches (0.9 on); before, argparse refuses a value for --help
	GroupsHelp       bool // `--help` lists config groups; `--help=all` the options
	OldMetrics       bool // vllm:gpu_cache_usage_perc, vllm:gpu_prefix_cache_*
	NewMetrics       bool // vllm:kv_cache_usage_perc, vllm:prefix_cache_*
	ReasoningContent bool // the reasoning text in "reasoning_content"
	Reasoning        bool // ... in "reasoning"
}

// PersonalityOf returns the behaviour of a vLLM version ("0.9.2", "v0.11.1").
func PersonalityOf(version string) (Personality, error) {
	if version == "" {
		version = DefaultVersion
	}
	v := strings.TrimPrefix(version, "v")
	var n [3]int
	parts := strings.SplitN(v, ".", 3)
	for i, p := range parts {
		// "0.11.1rc2", "0.10.2.post1": the leading digits count.
		end := 0
		for end < len(p) && p[end] >= '0' && p[end] <= '9' {
			end++
		}
		x, err := strconv.Atoi(p[:end])
		if err != nil {
			return Personality{}, fmt.Errorf("VLLM_SIM_VERSION=%q: want a vLLM version such as 0.9.2 or 0.11.1", version)
		}
		n[i] = x
	}
	if len(parts) < 2 || n[0] != 0 {
		return Personality{}, fmt.Errorf("VLLM_SIM_VERSION=%q: want a 0.x vLLM version such as 0.9.2 or 0.11.1", version)
	}
	minor, patch := n[1], n[2]
	return Personality{
		Version:          v,
		KeywordHelp:      minor >= 9,
		GroupsHelp:       minor >= 10,
		OldMetrics:       minor <= 10,
		NewMetrics:       minor >= 10,
		ReasoningContent: minor < 16,
		Reasoning:        minor > 11 || minor == 11 && patch >= 1,
	}, nil
}
