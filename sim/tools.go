package sim

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"unicode"
)

// toolDef is one entry of a request's "tools".
type toolDef struct {
	Type     string `json:"type"`
	Function struct {
		Name        string          `json:"name"`
		Description string          `json:"description"`
		Parameters  json.RawMessage `json:"parameters"`
	} `json:"function"`
}

// schema is the subset of JSON Schema the simulator fills in.
type schema struct {
	Type       string             `json:"type"`
	Properties map[string]*schema `json:"properties"`
	Required   []string           `json:"required"`
	Enum       []any              `json:"enum"`
	Items      *schema            `json:"items"`
}

// toolCall is a call the simulated model decided to make.
type toolCall struct {
	ID, Name, Arguments string
}

var (
	numberRe  = regexp.MustCompile(`-?\d+(?:\.\d+)?`)
	emailRe   = regexp.MustCompile(`[\w.+-]+@[\w-]+\.[\w.]+`)
	capWordRe = regexp.MustCompile(`\b[\p{Lu}][\p{L}'-]+(?:\s+[\p{Lu}][\p{L}'-]+)*`)
)

// chooseTool picks the tool the user asks for: the one whose name parts and
// description words appear most in the prompt, skipping tools already called
// in this conversation. It returns -1 when none matches.
func chooseTool(tools []toolDef, prompt string, called []string) int {
	words := map[string]bool{}
	for _, w := range strings.FieldsFunc(strings.ToLower(prompt), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) }) {
		words[w] = true
	}
	best, bestScore := -1, 0
	for i, t := range tools {
		if slices.Contains(called, t.Function.Name) {
			continue
		}
		score := 0
		for _, part := range strings.Split(strings.ToLower(t.Function.Name), "_") {
			if len(part) > 2 && (words[part] || words[part+"s"] || words[strings.TrimSuffix(part, "s")]) {
				score += 3
			}
		}
		for _, d := range strings.Fields(strings.ToLower(t.Function.Description)) {
			d = strings.Trim(d, ".,;:()")
			if len(d) > 4 && words[d] {
				score++
			}
		}
		if score > bestScore {
			best, bestScore = i, score
		}
	}
	if bestScore < 3 {
		return -1
	}
	return best
}

// fillArgs generates arguments valid for a schema, taking values from the
// prompt where they appear (a capitalised place after "in"/"for", numbers,
// e-mail addresses, enum values named in the prompt).
func fillArgs(s *schema, name, prompt string) any {
	if s == nil {
		return nil
	}
	if len(s.Enum) > 0 {
		for _, v := range s.Enum {
			if str, ok := v.(string); ok && strings.Contains(strings.ToLower(prompt), strings.ToLower(str)) {
				return v
			}
		}
		return s.Enum[0]
	}
	switch s.Type {
	case "object":
		obj := map[string]any{}
		keys := make([]string, 0, len(s.Properties))
		for k := range s.Properties {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			obj[k] = fillArgs(s.Properties[k], k, prompt)
		}
		return obj
	case "array":
		return []any{fillArgs(s.Items, strings.TrimSuffix(name, "s"), prompt)}
	case "integer", "number":
		v := promptNumber(strings.ToLower(name), prompt)
		if s.Type == "integer" {
			return int(v)
		}
		return v
	case "boolean":
		return !strings.Contains(strings.ToLower(prompt), "not "+strings.ToLower(name)) && !strings.Contains(strings.ToLower(prompt), "no "+strings.ToLower(name))
	}
	lname := strings.ToLower(name)
	after := func(words string) (string, bool) {
		re := regexp.MustCompile(`\b(?:` + words + `)\s+(\p{Lu}[\p{L}'-]+(?:\s+\p{Lu}[\p{L}'-]+)*)`)
		if m := re.FindStringSubmatch(prompt); m != nil {
			return m[1], true
		}
		return "", false
	}
	codes := currencyRe.FindAllString(prompt, -1)
	switch {
	case strings.Contains(lname, "currency") && len(codes) > 0:
		if strings.Contains(lname, "to") || strings.Contains(lname, "target") {
			return codes[len(codes)-1]
		}
		return codes[0]
	case strings.Contains(lname, "origin") || strings.Contains(lname, "from") || strings.Contains(lname, "source"):
		if v, ok := after("from"); ok {
			return v
		}
	case strings.Contains(lname, "destination") || strings.Contains(lname, "target"):
		if v, ok := after("to"); ok {
			return v
		}
	case strings.Contains(lname, "email"):
		if m := emailRe.FindString(prompt); m != "" {
			return m
		}
	case strings.Contains(lname, "city") || strings.Contains(lname, "location") || strings.Contains(lname, "place"):
		if v, ok := after("in|at|for|to"); ok {
			return v
		}
	case strings.Contains(lname, "name") || strings.Contains(lname, "user"):
		if v, ok := after("named|called|for user|user"); ok {
			return v
		}
	}
	if m := capWordRe.FindAllString(prompt, -1); len(m) > 1 {
		return m[1]
	}
	return name
}

// planToolCall returns the call the model makes, or nil when it answers in text.
func planToolCall(tools []toolDef, prompt string, called []string, id string) (*toolCall, error) {
	i := chooseTool(tools, prompt, called)
	if i < 0 {
		return nil, nil
	}
	var s schema
	if len(tools[i].Function.Parameters) > 0 {
		if err := json.Unmarshal(tools[i].Function.Parameters, &s); err != nil {
			return nil, fmt.Errorf("tool %q: parameters are not a JSON schema: %v", tools[i].Function.Name, err)
		}
	}
	args, _ := json.Marshal(fillArgs(&s, tools[i].Function.Name, prompt))
	return &toolCall{ID: id, Name: tools[i].Function.Name, Arguments: string(args)}, nil
}

var currencyRe = regexp.MustCompile(`\b[A-Z]{3}\b`)

// promptNumber picks the number a property asks for: the one before a word
// the property is named after ("3 nights" for nights), the one before a
// currency code for an amount or price, else the first number.
func promptNumber(name, prompt string) float64 {
	parse := func(s string) float64 {
		var f float64
		fmt.Sscan(s, &f)
		return f
	}
	for _, word := range strings.FieldsFunc(name, func(r rune) bool { return r == '_' || r == '-' }) {
		word = strings.TrimSuffix(word, "s")
		if len(word) < 3 {
			continue
		}
		if m := regexp.MustCompile(`(-?\d+(?:\.\d+)?)\s+` + regexp.QuoteMeta(word)).FindStringSubmatch(strings.ToLower(prompt)); m != nil {
			return parse(m[1])
		}
	}
	if strings.Contains(name, "amount") || strings.Contains(name, "price") {
		if m := regexp.MustCompile(`(-?\d+(?:\.\d+)?)\s*[A-Z]{3}\b`).FindStringSubmatch(prompt); m != nil {
			return parse(m[1])
		}
	}
	if m := numberRe.FindString(prompt); m != "" {
		return parse(m)
	}
	return 1
}
