package benchmark

import (
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"
)

// fillNaN sets every float of v, through pointers, slices (one element),
// maps (one entry) and nested structs, to NaN, and the rest to non-zero
// values where that is needed to reach them.
func fillNaN(v reflect.Value, depth int) {
	if depth > 8 {
		return
	}
	switch v.Kind() {
	case reflect.Float32, reflect.Float64:
		v.SetFloat(math.NaN())
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		fillNaN(v.Elem(), depth+1)
	case reflect.Struct:
		for i := range v.NumField() {
			if f := v.Field(i); f.CanSet() {
				fillNaN(f, depth+1)
			}
		}
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 1, 1)
		fillNaN(s.Index(0), depth+1)
		v.Set(s)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		k := reflect.New(v.Type().Key()).Elem()
		if k.Kind() == reflect.String {
			k.SetString("k")
		}
		e := reflect.New(v.Type().Elem()).Elem()
		fillNaN(e, depth+1)
		m.SetMapIndex(k, e)
		v.Set(m)
	}
}

// A report is never lost to an encoding error: whatever float of it has
// no value (NaN from an empty sample, an nvidia-smi "[N/A]", a metric the
// server does not expose), the report encodes, writing null, and reads
// back.
func TestReportNeverFailsToEncode(t *testing.T) {
	var r Report
	fillNaN(reflect.ValueOf(&r).Elem(), 0)
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatalf("a report with NaN in every float does not encode: %v", err)
	}
	if strings.Contains(string(b), "NaN") {
		t.Errorf("NaN written into the JSON")
	}
	var back Report
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("the encoded report does not read back: %v", err)
	}
}

// Without NaN, the report's encoding is encoding/json's, byte for byte.
func TestReportEncodingIsEncodingJSONs(t *testing.T) {
	var r Report
	fillNaN(reflect.ValueOf(&r).Elem(), 0)
	var zeroNaN func(v reflect.Value, depth int)
	zeroNaN = func(v reflect.Value, depth int) {
		if depth > 8 {
			return
		}
		switch v.Kind() {
		case reflect.Float32, reflect.Float64:
			v.SetFloat(1.5)
		case reflect.Pointer:
			if !v.IsNil() {
				zeroNaN(v.Elem(), depth+1)
			}
		case reflect.Struct:
			for i := range v.NumField() {
				if f := v.Field(i); f.CanSet() {
					zeroNaN(f, depth+1)
				}
			}
		case reflect.Slice:
			for i := range v.Len() {
				zeroNaN(v.Index(i), depth+1)
			}
		case reflect.Map:
			for _, k := range v.MapKeys() {
				e := reflect.New(v.Type().Elem()).Elem()
				e.Set(v.MapIndex(k))
				zeroNaN(e, depth+1)
				v.SetMapIndex(k, e)
			}
		}
	}
	zeroNaN(reflect.ValueOf(&r).Elem(), 0)
	type plain Report
	want, err := json.Marshal(plain(r))
	if err != nil {
		t.Fatal(err)
	}
	got, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("encodings differ:\n got %s\nwant %s", got, want)
	}
}
