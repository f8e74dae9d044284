package main

import (
	"encoding/binary"
	"fmt"
	"reflect"
	"time"

	"github.com/ugorji/go/codec"

	"github.com/tlstap/tlstap/internal/exchange"
	"github.com/tlstap/tlstap/internal/otelmap"
)

// Keys the plugin adds to otelmap's attribute names. Everything else in a
// record is an otelmap resource or log-record attribute, under the same name
// the Collector receiver uses.
const (
	keyMessage        = "message"         // otelmap's one-line display string (the log body)
	keyEventName      = "event.name"      // otelmap.EventName
	keySeverityText   = "severity_text"   // INFO, WARN, ERROR
	keySeverityNumber = "severity_number" // OpenTelemetry severity number
	keySpanName       = "span.name"
	keySpanKind       = "span.kind" // client, server
	keyStatusCode     = "otel.status_code"
	keyStatusDesc     = "otel.status_description"
	keyTraceID        = "trace_id" // 32 lowercase hex digits
	keySpanID         = "span_id"  // 16 lowercase hex digits
	keyParentSpanID   = "parent_span_id"
	keyDurationNS     = "duration_ns" // last response byte - first request byte
)

// eventTime is Fluent Bit's EventTime: msgpack ext type 0 holding seconds and
// nanoseconds as two big-endian uint32.
type eventTime time.Time

type eventTimeExt struct{}

func (eventTimeExt) WriteExt(v any) []byte {
	var t time.Time
	switch x := v.(type) {
	case eventTime:
		t = time.Time(x)
	case *eventTime:
		t = time.Time(*x)
	default:
		panic(fmt.Sprintf("eventTime ext: unexpected %T", v))
	}
	b := make([]byte, 8)
	binary.BigEndian.PutUint32(b, uint32(t.Unix()))
	binary.BigEndian.PutUint32(b[4:], uint32(t.Nanosecond()))
	return b
}

func (eventTimeExt) ReadExt(dst any, b []byte) {
	if len(b) != 8 {
		panic(fmt.Sprintf("eventTime ext: %d bytes, want 8", len(b)))
	}
	*dst.(*eventTime) = eventTime(time.Unix(int64(binary.BigEndian.Uint32(b)), int64(binary.BigEndian.Uint32(b[4:]))))
}

// fields is an ordered msgpack map: keys and values alternate.
type fields []any

// MapBySlice tells the codec to encode fields as a map, in order.
func (fields) MapBySlice() {}

// newHandle returns the msgpack handle for Fluent Bit records: str for
// strings, bin for bytes, ext type 0 for EventTime.
func newHandle() *codec.MsgpackHandle {
	h := &codec.MsgpackHandle{WriteExt: true}
	if err := h.SetBytesExt(reflect.TypeOf(eventTime{}), 0, eventTimeExt{}); err != nil {
		panic(err)
	}
	return h
}

// recordEncoder turns exchanges into Fluent Bit records [EventTime, map].
// It is not safe for concurrent use.
type recordEncoder struct {
	enc      *codec.Encoder
	scratch  []byte
	hostName string
	opts     otelmap.Options
}

func newRecordEncoder(hostName string, opts otelmap.Options) *recordEncoder {
	e := &recordEncoder{hostName: hostName, opts: opts}
	e.enc = codec.NewEncoderBytes(&e.scratch, newHandle())
	return e
}

// appendRecord appends the msgpack record of ex to dst. On error dst is
// returned unchanged.
func (e *recordEncoder) appendRecord(dst []byte, ex *exchange.Exchange) ([]byte, error) {
	// The record's time is the receiver's log record timestamp: the end of
	// the exchange (its start when it never ended), so that both front
	// ends stamp an exchange with the same instant.
	ts := ex.End
	if ts.IsZero() {
		ts = ex.Start
	}
	if ts.IsZero() {
		ts = time.Now()
	}
	e.enc.ResetBytes(&e.scratch)
	if err := e.enc.Encode([]any{eventTime(ts), e.fields(ex)}); err != nil {
		return dst, err
	}
	return append(dst, e.scratch...), nil
}

// fields builds the flat record map of one exchange.
func (e *recordEncoder) fields(ex *exchange.Exchange) fields {
	rec := otelmap.Map(ex, e.opts)
	res := otelmap.Resource(ex.Process, e.hostName, e.opts.ServiceNames)
	f := make(fields, 0, 2*(14+len(res)+len(rec.Log.Attributes)))
	add := func(k string, v any) { f = append(f, k, v) }

	add(keyMessage, rec.Log.Body)
	add(keyEventName, rec.Log.EventName)
	add(keySeverityText, rec.Log.SeverityText)
	add(keySeverityNumber, int64(rec.Log.Severity))
	add(keySpanName, rec.Span.Name)
	add(keySpanKind, rec.Span.Kind.String())
	switch rec.Span.Status {
	case otelmap.StatusError:
		add(keyStatusCode, "ERROR")
		if rec.Span.StatusMsg != "" {
			add(keyStatusDesc, rec.Span.StatusMsg)
		}
	case otelmap.StatusOK:
		add(keyStatusCode, "OK")
	}
	add(keyTraceID, rec.Span.TraceID.String())
	add(keySpanID, rec.Span.SpanID.String())
	if !rec.Span.ParentSpanID.IsZero() {
		add(keyParentSpanID, rec.Span.ParentSpanID.String())
	}
	var dur int64
	if !ex.Start.IsZero() && ex.End.After(ex.Start) {
		dur = int64(ex.End.Sub(ex.Start))
	}
	add(keyDurationNS, dur)
	for _, kv := range res {
		add(kv.Key, value(kv.Value))
	}
	for _, kv := range rec.Log.Attributes {
		add(kv.Key, value(kv.Value))
	}
	return f
}

// value is the natural msgpack form of an attribute value: int for ints,
// str for strings, bin for bytes, array of str for string slices.
func value(v otelmap.Value) any {
	switch v.Type {
	case otelmap.TypeString:
		return v.Str
	case otelmap.TypeInt:
		return v.Int
	case otelmap.TypeBool:
		return v.Bool
	case otelmap.TypeBytes:
		if v.Bytes == nil {
			return []byte{}
		}
		return v.Bytes
	case otelmap.TypeStringSlice:
		if v.Strings == nil {
			return []string{}
		}
		return v.Strings
	}
	return nil
}
