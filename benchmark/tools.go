package benchmark

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

func regexpMatch(re, s string) bool { return regexp.MustCompile(re).MatchString(s) }

// Tool is a function the model may call, with a fake implementation vgrid
// runs in multi-step cases.
type Tool struct {
	Name        string
	Description string
	Schema      string // JSON schema of the arguments
	Result      func(args map[string]any) string
	schema      *jsonschema.Schema
}

func (t *Tool) def() json.RawMessage {
	b, _ := json.Marshal(map[string]any{"type": "function", "function": map[string]any{
		"name": t.Name, "description": t.Description, "parameters": json.RawMessage(t.Schema)}})
	return b
}

// compile compiles the tool's schema once.
func (t *Tool) compile() (*jsonschema.Schema, error) {
	if t.schema != nil {
		return t.schema, nil
	}
	doc, err := jsonschema.UnmarshalJSON(strings.NewReader(t.Schema))
	if err != nil {
		return nil, fmt.Errorf("tool %s schema: %w", t.Name, err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource(t.Name+".json", doc); err != nil {
		return nil, err
	}
	s, err := c.Compile(t.Name + ".json")
	if err != nil {
		return nil, fmt.Errorf("tool %s schema: %w", t.Name, err)
	}
	t.schema = s
	return s, nil
}

// Expect is a call the model must make: the function and argument values
// (dotted paths into the arguments, compared case-insensitively as text).
type Expect struct {
	Function string
	Args     map[string]string
}

// ToolCase is one tool-calling test.
type ToolCase struct {
	Name   string
	Prompt string
	Tools  []*Tool
	Expect []Expect // in order; more than one means a multi-step task
}

// ToolCases are the built-in cases in English.
func ToolCases() []ToolCase {
	cases, _ := ToolCasesIn("en")
	return cases
}

// ToolCasesIn are the built-in cases with their prompts in a language ("en",
// "fr"): a single call, a three-tool task that vgrid executes step by step,
// and nested object arguments. The tools stay as applications name and
// describe them, in English; the model must map the request to them.
func ToolCasesIn(lang string) ([]ToolCase, error) {
	cases := toolCasesEN()
	switch lang {
	case "", "en":
		return cases, nil
	case "fr":
		fr := map[string]struct {
			prompt string
			args   []map[string]string
		}{
			"single": {"Quelle est la météo à Lisbonne en ce moment, en celsius ?",
				[]map[string]string{{"city": "Lisbonne", "unit": "celsius"}}},
			"multi-step": {"Cherche des vols de Paris à Tokyo, puis réserve un hôtel à Tokyo pour 3 nuits, puis convertis le prix du vol de 1200 USD en EUR. Utilise les outils, un à la fois.",
				[]map[string]string{{"origin": "Paris", "destination": "Tokyo"}, {"city": "Tokyo", "nights": "3"}, {"amount": "1200", "from_currency": "USD", "to_currency": "EUR"}}},
			"nested": {"Crée un utilisateur nommé Alice Martin avec l'adresse alice@example.com, qui préfère le français et veut la newsletter.",
				[]map[string]string{{"name": "Alice Martin", "email": "alice@example.com", "preferences.language": "french", "preferences.newsletter": "true"}}},
		}
		for i := range cases {
			t := fr[cases[i].Name]
			cases[i].Prompt = t.prompt
			for j := range cases[i].Expect {
				cases[i].Expect[j].Args = t.args[j]
			}
		}
		return cases, nil
	}
	return nil, fmt.Errorf("language %q: the tool-calling cases are written in en and fr", lang)
}

func toolCasesEN() []ToolCase {
	weather := &Tool{Name: "get_weather", Description: "Get the current weather for a city",
		Schema: `{"type":"object","properties":{"city":{"type":"string","minLength":1},"unit":{"type":"string","enum":["celsius","fahrenheit"]}},"required":["city"],"additionalProperties":false}`,
		Result: func(a map[string]any) string {
			return fmt.Sprintf(`{"city":%q,"temperature":18,"conditions":"cloudy"}`, a["city"])
		}}
	flights := &Tool{Name: "search_flights", Description: "Search flights between two cities",
		Schema: `{"type":"object","properties":{"origin":{"type":"string","minLength":1},"destination":{"type":"string","minLength":1}},"required":["origin","destination"],"additionalProperties":false}`,
		Result: func(a map[string]any) string {
			return fmt.Sprintf(`{"flight":"AF276","from":%q,"to":%q,"price":1200,"currency":"USD"}`, a["origin"], a["destination"])
		}}
	hotel := &Tool{Name: "book_hotel", Description: "Book a hotel in a city for a number of nights",
		Schema: `{"type":"object","properties":{"city":{"type":"string","minLength":1},"nights":{"type":"integer","minimum":1}},"required":["city","nights"],"additionalProperties":false}`,
		Result: func(a map[string]any) string {
			return fmt.Sprintf(`{"booking":"H-3391","city":%q,"nights":%v}`, a["city"], a["nights"])
		}}
	currency := &Tool{Name: "convert_currency", Description: "Convert an amount between currencies",
		Schema: `{"type":"object","properties":{"amount":{"type":"number"},"from_currency":{"type":"string","pattern":"^[A-Z]{3}$"},"to_currency":{"type":"string","pattern":"^[A-Z]{3}$"}},"required":["amount","from_currency","to_currency"],"additionalProperties":false}`,
		Result: func(a map[string]any) string {
			return fmt.Sprintf(`{"amount":%v,"converted":1104.0,"currency":%q}`, a["amount"], a["to_currency"])
		}}
	user := &Tool{Name: "create_user", Description: "Create a user account with preferences",
		Schema: `{"type":"object","properties":{"name":{"type":"string","minLength":1},"email":{"type":"string","pattern":"^[^@]+@[^@]+$"},"preferences":{"type":"object","properties":{"language":{"type":"string","enum":["english","french","german"]},"newsletter":{"type":"boolean"}},"required":["language","newsletter"],"additionalProperties":false}},"required":["name","email","preferences"],"additionalProperties":false}`,
		Result: func(a map[string]any) string { return `{"id":"u-1842","created":true}` }}
	return []ToolCase{
		{Name: "single", Prompt: "What is the weather in Lisbon right now, in celsius?", Tools: []*Tool{weather},
			Expect: []Expect{{Function: "get_weather", Args: map[string]string{"city": "Lisbon", "unit": "celsius"}}}},
		{Name: "multi-step", Tools: []*Tool{flights, hotel, currency},
			Prompt: "Search flights from Paris to Tokyo, then book a hotel in Tokyo for 3 nights, then convert the 1200 USD flight price to EUR. Use the tools, one at a time.",
			Expect: []Expect{
				{Function: "search_flights", Args: map[string]string{"origin": "Paris", "destination": "Tokyo"}},
				{Function: "book_hotel", Args: map[string]string{"city": "Tokyo", "nights": "3"}},
				{Function: "convert_currency", Args: map[string]string{"amount": "1200", "from_currency": "USD", "to_currency": "EUR"}},
			}},
		{Name: "nested", Tools: []*Tool{user},
			Prompt: "Create a user named Alice Martin with email alice@example.com who prefers french and wants the newsletter.",
			Expect: []Expect{{Function: "create_user", Args: map[string]string{"name": "Alice Martin", "email": "alice@example.com",
				"preferences.language": "french", "preferences.newsletter": "true"}}}},
	}
}

// lookup follows a dotted path in decoded JSON.
func lookup(v any, path string) (any, bool) {
	for _, k := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = m[k]; !ok {
			return nil, false
		}
	}
	return v, true
}

// CheckCall validates one call: the expected function, arguments that parse
// as JSON, validate against the tool's schema and hold the expected values.
func CheckCall(tools []*Tool, want Expect, call ToolCall) (map[string]any, error) {
	if call.Function.Name != want.Function {
		return nil, fmt.Errorf("called %q, expected %q", call.Function.Name, want.Function)
	}
	var tool *Tool
	for _, t := range tools {
		if t.Name == want.Function {
			tool = t
		}
	}
	if tool == nil {
		return nil, fmt.Errorf("no tool %q in the case", want.Function)
	}
	var args map[string]any
	if err := json.Unmarshal([]byte(call.Function.Arguments), &args); err != nil {
		return nil, fmt.Errorf("%s arguments are not JSON: %v: %.200q", want.Function, err, call.Function.Arguments)
	}
	s, err := tool.compile()
	if err != nil {
		return nil, err
	}
	inst, _ := jsonschema.UnmarshalJSON(strings.NewReader(call.Function.Arguments))
	if err := s.Validate(inst); err != nil {
		return nil, fmt.Errorf("%s arguments do not match the schema: %v", want.Function, err)
	}
	for path, expected := range want.Args {
		got, ok := lookup(args, path)
		if !ok {
			return nil, fmt.Errorf("%s: argument %s missing", want.Function, path)
		}
		if !strings.EqualFold(fmt.Sprint(got), expected) {
			return nil, fmt.Errorf("%s: argument %s = %v, expected %s", want.Function, path, got, expected)
		}
	}
	return args, nil
}

// ToolOutcome is one tool case's result.
type ToolOutcome struct {
	Case   string   `json:"case"`
	Passed bool     `json:"passed"`
	Reason string   `json:"reason"`
	Calls  []string `json:"calls"`
	Steps  int      `json:"steps"`
}
