// Package otelmap maps a captured exchange.Exchange onto OpenTelemetry
// semantic-convention data: a span, a log record and a per-process resource,
// each carried as an ordered list of typed key/value attributes.
//
// The package does not depend on pdata, so the Collector receiver and the
// Fluent Bit plugin produce exactly the same attribute keys and values: each
// front end only translates this neutral form into its own record format.
//
// Attribute keys beyond the semantic conventions, chosen by tlstap:
//
//	tlstap.flags                  []string  exchange.Flags.Names(), when any flag is set
//	tlstap.tls.library            string    the hook that produced the plaintext (exchange.Conn.Source)
//	tlstap.connection.id          int       engine-unique connection id
//	http.request.body.content     string|bytes  captured request body (log records only)
//	http.response.body.content    string|bytes  captured response body (log records only)
//
// The body content attributes hold the content-decoded body when the engine
// decoded a Content-Encoding, else the body as captured (after transfer
// decoding, at most max_body_bytes). They are strings when the bytes are
// valid UTF-8 and byte values otherwise.
package otelmap

import "strconv"

// ValueType is the type of an attribute value.
type ValueType uint8

const (
	TypeString ValueType = iota
	TypeInt
	TypeBool
	TypeBytes
	TypeStringSlice
)

func (t ValueType) String() string {
	switch t {
	case TypeString:
		return "string"
	case TypeInt:
		return "int"
	case TypeBool:
		return "bool"
	case TypeBytes:
		return "bytes"
	case TypeStringSlice:
		return "[]string"
	}
	return "ValueType(" + strconv.Itoa(int(t)) + ")"
}

// Value is a typed attribute value. Only the field matching Type is meaningful.
type Value struct {
	Type    ValueType
	Str     string
	Int     int64
	Bool    bool
	Bytes   []byte
	Strings []string
}

// KeyValue is one attribute.
type KeyValue struct {
	Key   string
	Value Value
}

// String, Int, Bool, Bytes and Strings build attributes.
func String(k, v string) KeyValue { return KeyValue{k, Value{Type: TypeString, Str: v}} }
func Int(k string, v int64) KeyValue {
	return KeyValue{k, Value{Type: TypeInt, Int: v}}
}
func Bool(k string, v bool) KeyValue    { return KeyValue{k, Value{Type: TypeBool, Bool: v}} }
func Bytes(k string, v []byte) KeyValue { return KeyValue{k, Value{Type: TypeBytes, Bytes: v}} }
func Strings(k string, v []string) KeyValue {
	return KeyValue{k, Value{Type: TypeStringSlice, Strings: v}}
}

// AsAny returns the value as a plain Go value (string, int64, bool, []byte
// or []string), convenient for tests and generic encoders.
func (v Value) AsAny() any {
	switch v.Type {
	case TypeString:
		return v.Str
	case TypeInt:
		return v.Int
	case TypeBool:
		return v.Bool
	case TypeBytes:
		return v.Bytes
	case TypeStringSlice:
		return v.Strings
	}
	return nil
}

// Attributes is an ordered attribute list. Keys are unique.
type Attributes []KeyValue

// Get returns the value of key.
func (a Attributes) Get(key string) (Value, bool) {
	for _, kv := range a {
		if kv.Key == key {
			return kv.Value, true
		}
	}
	return Value{}, false
}

// Map returns the attributes as a map of plain Go values (see Value.AsAny).
func (a Attributes) Map() map[string]any {
	m := make(map[string]any, len(a))
	for _, kv := range a {
		m[kv.Key] = kv.Value.AsAny()
	}
	return m
}
