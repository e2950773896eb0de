package main

import (
	"strings"

	"github.com/spf13/cobra"

	"github.com/vgrid/vgrid/benchmark"
	"github.com/vgrid/vgrid/vllm"
)

// Shell completion (`vgrid completion bash|zsh|fish|powershell`, from
// cobra) completes commands and flags, and through these functions run
// IDs from the store, scenario names and vLLM flags.

// completeRuns completes run IDs from the store named by --store or the
// default, read-only, newest first; "latest" too.
func (a *app) completeRuns(cmd *cobra.Command, _ []string, prefix string) ([]string, cobra.ShellCompDirective) {
	path, _ := cmd.Flags().GetString("store")
	st, err := a.readStore(path)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	defer st.Close()
	runs, err := st.Runs()
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	out := []string{"latest\tthe most recent run"}
	for _, r := range runs {
		if strings.HasPrefix(r.ID, prefix) {
			out = append(out, r.ID+"\t"+r.State.String()+" "+r.Grid.Name)
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

// completeFiles completes file names with these extensions.
func completeFiles(exts ...string) cobra.CompletionFunc {
	return func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return exts, cobra.ShellCompDirectiveFilterFileExt
	}
}

// completeScenarios completes --scenario values.
func completeScenarios(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return append([]string{"all"}, benchmark.Scenarios...), cobra.ShellCompDirectiveNoFileComp
}

// completeFlagSettings completes vgrid profile set's KEY=VALUE words: the
// vLLM flags vgrid knows, then, after '=', their allowed values.
func completeFlagSettings(_ *cobra.Command, _ []string, prefix string) ([]string, cobra.ShellCompDirective) {
	if name, _, ok := strings.Cut(prefix, "="); ok {
		spec, _ := vllm.Lookup(name)
		var vals []string
		switch spec.Kind {
		case vllm.KindBool:
			vals = []string{"true", "false"}
		case vllm.KindEnum:
			vals = spec.Allowed
		}
		out := make([]string, 0, len(vals))
		for _, v := range vals {
			out = append(out, name+"="+v)
		}
		return out, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveNoSpace
	}
	var out []string
	for _, s := range vllm.Specs() {
		if strings.HasPrefix(s.Name, prefix) {
			out = append(out, s.Name+"=\t"+s.Kind.String())
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveNoSpace
}
