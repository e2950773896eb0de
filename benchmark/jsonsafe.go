package benchmark

import (
	"bytes"
	"encoding"
	"encoding/json"
	"math"
	"reflect"
	"sort"
	"strings"
)

// A report must never be lost to its encoding: encoding/json refuses NaN
// and ±Inf, and a report can hold them (an empty sample's percentiles, an
// nvidia-smi "[N/A]" reading, a ratio over zero). jsonSafe turns a value
// into what encoding/json writes for it, field for field (tags, omitempty,
// embedded structs, the values' own MarshalJSON), with every NaN or
// infinite float written as null.

// MarshalJSON writes the report with NaN and infinite values as null.
func (r Report) MarshalJSON() ([]byte, error) {
	type plain Report // no methods: no recursion
	return json.Marshal(jsonSafe(reflect.ValueOf(plain(r))))
}

// object is a JSON object that keeps its fields in order.
type object []field

type field struct {
	name  string
	value any
}

func (o object) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, f := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(f.name)
		b.Write(k)
		b.WriteByte(':')
		v, err := json.Marshal(f.value)
		if err != nil {
			return nil, err
		}
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

var (
	marshalerType     = reflect.TypeFor[json.Marshaler]()
	textMarshalerType = reflect.TypeFor[encoding.TextMarshaler]()
)

func jsonSafe(v reflect.Value) any {
	if !v.IsValid() {
		return nil
	}
	if (v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface) && v.IsNil() {
		return nil
	}
	if v.Type().Implements(marshalerType) || v.Type().Implements(textMarshalerType) {
		return v.Interface() // its own encoding (Stats, CI and time.Time write no NaN)
	}
	if v.CanAddr() && (v.Addr().Type().Implements(marshalerType) || v.Addr().Type().Implements(textMarshalerType)) {
		return v.Addr().Interface()
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		return jsonSafe(v.Elem())
	case reflect.Float32, reflect.Float64:
		if f := v.Float(); math.IsNaN(f) || math.IsInf(f, 0) {
			return nil
		}
		return v.Interface()
	case reflect.Struct:
		o := object{}
		appendFields(&o, v, map[string]bool{})
		return o
	case reflect.Slice:
		if v.IsNil() {
			return nil
		}
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return v.Interface() // []byte: base64, as encoding/json
		}
		fallthrough
	case reflect.Array:
		out := make([]any, v.Len())
		for i := range out {
			out[i] = jsonSafe(v.Index(i))
		}
		return out
	case reflect.Map:
		if v.IsNil() {
			return nil
		}
		keys := v.MapKeys()
		sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
		var o object
		for _, k := range keys {
			o = append(o, field{k.String(), jsonSafe(v.MapIndex(k))})
		}
		return o
	}
	return v.Interface()
}

// appendFields adds a struct's fields as encoding/json names and orders
// them: the fields of an untagged embedded struct come in its place, unless
// a shallower field has the name.
func appendFields(o *object, v reflect.Value, taken map[string]bool) {
	t := v.Type()
	type entry struct {
		name     string
		value    reflect.Value
		embedded bool
		omit     bool
	}
	var entries []entry
	mine := map[string]bool{}
	for i := range t.NumField() {
		sf := t.Field(i)
		tag := sf.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		fv := v.Field(i)
		if sf.Anonymous && name == "" {
			if fv.Kind() == reflect.Pointer {
				if fv.IsNil() {
					continue
				}
				fv = fv.Elem()
			}
			if fv.Kind() == reflect.Struct {
				entries = append(entries, entry{value: fv, embedded: true})
				continue
			}
		}
		if !sf.IsExported() {
			continue
		}
		if name == "" {
			name = sf.Name
		}
		mine[name] = true
		entries = append(entries, entry{name: name, value: fv, omit: strings.Contains(","+opts+",", ",omitempty,")})
	}
	inner := map[string]bool{}
	for k := range taken {
		inner[k] = true
	}
	for k := range mine {
		inner[k] = true
	}
	for _, e := range entries {
		switch {
		case e.embedded:
			appendFields(o, e.value, inner)
		case taken[e.name] || e.omit && isEmpty(e.value):
		default:
			*o = append(*o, field{e.name, jsonSafe(e.value)})
		}
	}
}

// isEmpty is encoding/json's omitempty test.
func isEmpty(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Array, reflect.Map, reflect.Slice, reflect.String:
		return v.Len() == 0
	case reflect.Bool:
		return !v.Bool()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return v.Int() == 0
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return v.Uint() == 0
	case reflect.Float32, reflect.Float64:
		return v.Float() == 0
	case reflect.Interface, reflect.Pointer:
		return v.IsNil()
	}
	return false
}
