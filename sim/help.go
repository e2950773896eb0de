package sim

import (
	"fmt"
	"strings"

	"github.com/vgrid/vgrid/vllm"
)

// The simulator's --help, in argparse's format, listing exactly the
// options it accepts (vllm.Specs, their single-dash aliases, -h), so vgrid
// checks a grid against it as against a real vLLM image. Its shape follows
// the personality: options in one section up to 0.9; config groups only for
// --help, and every option for --help=all, from 0.10 (--help=KEY from
// 0.9, refused by argparse before); the python -m
// ...api_server entry point prints the usage block with every option.

// helpDefaults are the defaults the simulator applies (ParseServeArgs).
var helpDefaults = map[string]string{"port": "8000", "host": "0.0.0.0", "gpu-memory-utilization": "0.9",
	"tensor-parallel-size": "1", "kv-cache-dtype": "auto", "dtype": "auto", "block-size": "16"}

type helpOption struct{ invocation, usage, help string }

func helpOptions() []helpOption {
	out := []helpOption{{"-h, --help", "-h", "show this help message and exit"}}
	for _, s := range vllm.Specs() {
		meta := strings.ToUpper(strings.ReplaceAll(s.Name, "-", "_"))
		inv := "--" + s.Name
		var value string
		switch {
		case s.Kind == vllm.KindBool && s.Negatable:
			inv += ", --no-" + s.Name
		case s.Kind == vllm.KindBool:
		case s.Kind == vllm.KindEnum:
			value = " {" + strings.Join(s.Allowed, ",") + "}"
		case s.Multi:
			value = " " + meta + " [" + meta + " ...]"
		default:
			value = " " + meta
		}
		inv = strings.Replace(inv, "--"+s.Name, "--"+s.Name+value, 1)
		usage := "--" + s.Name + value
		if s.Kind == vllm.KindBool && s.Negatable {
			usage = "--" + s.Name + " | --no-" + s.Name
		}
		if a := vllm.ShortAlias(s.Name); a != "" {
			inv += ", -" + a + value
		}
		def := helpDefaults[s.Name]
		switch {
		case s.Kind == vllm.KindBool && s.DefaultOn:
			def = "True"
		case s.Kind == vllm.KindBool:
			def = "False"
		case def == "":
			def = "None"
		}
		help := fmt.Sprintf("%s (vllm-sim).", s.Kind)
		if s.Kind == vllm.KindInt || s.Kind == vllm.KindFloat {
			help = fmt.Sprintf("%s in [%g, %g] (vllm-sim).", s.Kind, s.Min, s.Max)
		}
		out = append(out, helpOption{inv, usage, help + " (default: " + def + ")"})
	}
	return out
}

// argparse's layout: the invocation at column 2, the help at column 24, on
// the next line when the invocation is longer than 20 columns.
func formatOptions(b *strings.Builder, opts []helpOption) {
	for _, o := range opts {
		if len(o.invocation) <= 20 {
			fmt.Fprintf(b, "  %-22s%s\n", o.invocation, o.help)
			continue
		}
		fmt.Fprintf(b, "  %s\n%s%s\n", o.invocation, strings.Repeat(" ", 24), o.help)
	}
}

// usageBlock writes argparse's usage with every option, wrapped.
func usageBlock(b *strings.Builder, prog string, opts []helpOption) {
	head := "usage: " + prog + " "
	line := head
	for _, o := range opts {
		part := "[" + o.usage + "]"
		if len(line)+len(part) > 100 && line != head {
			b.WriteString(strings.TrimRight(line, " ") + "\n")
			line = strings.Repeat(" ", len(head))
		}
		line += part + " "
	}
	b.WriteString(line + "[model_tag]\n")
}

// Help returns what `vllm serve` (or api_server.py) prints for --help, or
// for --help=KEY (topic); ok is false when argparse refuses the request
// (--help=all before 0.10), with argparse's message.
func Help(p Personality, prog, topic string) (text string, ok bool) {
	var b strings.Builder
	opts := helpOptions()
	if topic != "" && !p.KeywordHelp {
		return fmt.Sprintf("usage: %s [model_tag] [options]\n%s: error: argument -h/--help: ignored explicit argument '%s'\n", prog, prog, topic), false
	}
	switch {
	case prog == "api_server.py" && p.GroupsHelp && topic == "":
		usageBlock(&b, prog, opts)
		b.WriteString("\nvLLM OpenAI-Compatible RESTful API server (vllm-sim " + p.Version + ").\n\nConfig Groups:\n")
		b.WriteString("  positional arguments\n  options                 every option vllm-sim accepts\n")
	case p.GroupsHelp && topic == "":
		fmt.Fprintf(&b, "usage: %s [model_tag] [options]\n\nLaunch a local OpenAI-compatible API server (vllm-sim %s).\n\n", prog, p.Version)
		b.WriteString("  Use `--help=all` to show all available flags at once.\n\nConfig Groups:\n")
		b.WriteString("  positional arguments\n  options                 every option vllm-sim accepts\n\n")
		fmt.Fprintf(&b, "For full list:            %s --help=all\n", prog)
	default:
		if topic != "" && topic != "all" {
			var match []helpOption
			key := strings.ReplaceAll(strings.ToLower(topic), "_", "-")
			for _, o := range opts {
				if strings.Contains(strings.SplitN(o.invocation, " ", 2)[0], key) {
					match = append(match, o)
				}
			}
			fmt.Fprintf(&b, "Arguments matching '%s':\n", key)
			formatOptions(&b, match)
			return b.String(), true
		}
		fmt.Fprintf(&b, "usage: %s [model_tag] [options]\n\nStart the vLLM OpenAI Compatible API server (vllm-sim %s).\n\n", prog, p.Version)
		b.WriteString("positional arguments:\n  model_tag             The model tag to serve (optional if specified in config) (default: None)\n\noptions:\n")
		formatOptions(&b, opts)
	}
	return b.String(), true
}
