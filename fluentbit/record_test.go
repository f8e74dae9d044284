package main

import (
	"bytes"
	"net/netip"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/ugorji/go/codec"

	"github.com/tlstap/tlstap/internal/exchange"
	"github.com/tlstap/tlstap/internal/otelmap"
)

var (
	fixedTrace = otelmap.TraceID{0x0a, 0xf7, 0x65, 0x19, 0x16, 0xcd, 0x43, 0xdd, 0x84, 0x48, 0xeb, 0x21, 0x1c, 0x80, 0x31, 0x9c}
	fixedSpan  = otelmap.SpanID{0xb7, 0xad, 0x6b, 0x71, 0x69, 0x20, 0x33, 0x31}
	testOpts   = otelmap.Options{
		NewTraceID: func() otelmap.TraceID { return fixedTrace },
		NewSpanID:  func() otelmap.SpanID { return fixedSpan },
	}
	t0 = time.Date(2025, 3, 4, 5, 6, 7, 123456789, time.UTC)
)

func clientExchange() *exchange.Exchange {
	return &exchange.Exchange{
		Role: exchange.RoleClient,
		Request: &exchange.Message{
			Method: "GET", Target: "/hello?x=1", Proto: "HTTP/1.1",
			Headers: []exchange.Header{
				{Name: "Host", Value: "127.0.0.1:8443"},
				{Name: "User-Agent", Value: "curl/7.88.1"},
				{Name: "X-Test", Value: "abc"},
				{Name: "X-Multi", Value: "one"},
				{Name: "x-multi", Value: "two"},
				{Name: "Authorization", Value: "Bearer secret"},
			},
		},
		Response: &exchange.Message{
			StatusCode: 200, Reason: "OK", Proto: "HTTP/1.1",
			Headers:  []exchange.Header{{Name: "Content-Type", Value: "text/plain"}, {Name: "Content-Length", Value: "12"}},
			Body:     []byte("hello world\n"),
			BodySize: 12,
		},
		Start: t0,
		End:   t0.Add(1500 * time.Microsecond),
		Process: exchange.Process{
			PID: 4242, PPID: 1, ExePath: "/usr/bin/curl", ExeName: "curl",
			CommandArgs: []string{"curl", "-sk", "https://127.0.0.1:8443/hello?x=1"},
			Owner:       "root", CreationTime: t0.Add(-time.Second),
		},
		Conn: exchange.Conn{
			ID:     77,
			Local:  netip.MustParseAddrPort("127.0.0.1:50000"),
			Remote: netip.MustParseAddrPort("127.0.0.1:8443"),
			TLS:    true, Source: "openssl",
		},
	}
}

func serverExchange() *exchange.Exchange {
	return &exchange.Exchange{
		Role: exchange.RoleServer,
		Request: &exchange.Message{
			Method: "POST", Target: "/upload?id=7", Proto: "HTTP/1.1",
			Headers: []exchange.Header{
				{Name: "Host", Value: "api.example.com"},
				{Name: "Content-Type", Value: "application/octet-stream"},
				{Name: "traceparent", Value: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
			},
			Body:          []byte{0xff, 0x00, 0xfe, 0x01},
			BodySize:      100,
			BodyTruncated: true,
		},
		Response: &exchange.Message{StatusCode: 503, Proto: "HTTP/1.1", Body: []byte("busy")},
		Start:    t0,
		End:      t0.Add(2 * time.Millisecond),
		Process:  exchange.Process{PID: 99, ExeName: "python3", ExePath: "/usr/bin/python3.11"},
		Conn: exchange.Conn{
			ID:     5,
			Local:  netip.MustParseAddrPort("10.0.0.1:8080"),
			Remote: netip.MustParseAddrPort("10.0.0.2:41000"),
			Source: "socket",
		},
		Flags: exchange.RequestTruncated,
	}
}

// decodeRecords decodes concatenated [EventTime, map] records with the
// test's own strict msgpack reader.
func decodeRecords(t *testing.T, b []byte) (times []time.Time, maps []map[string]any) {
	t.Helper()
	r := &mpReader{b: b}
	for r.off < len(b) {
		v, err := r.next()
		if err != nil {
			t.Fatalf("record %d: %v", len(maps), err)
		}
		rec, ok := v.([]any)
		if !ok || len(rec) != 2 {
			t.Fatalf("record %d is %#v, want a 2-element array", len(maps), v)
		}
		sec, nsec, ok := eventTimeOf(rec[0])
		if !ok {
			t.Fatalf("record %d time = %#v, want ext type 0 with 8 bytes", len(maps), rec[0])
		}
		times = append(times, time.Unix(int64(sec), int64(nsec)))
		m, ok := rec[1].(mpMap)
		if !ok {
			t.Fatalf("record %d body is %T, want map", len(maps), rec[1])
		}
		maps = append(maps, m.Values)
	}
	return times, maps
}

// The codec the plugin uses reads the records back too.
func TestRecordDecodesWithCodec(t *testing.T) {
	_, _, b := encodeOne(t, clientExchange())
	var rec []any
	if err := codec.NewDecoderBytes(b, &codec.MsgpackHandle{}).Decode(&rec); err != nil || len(rec) != 2 {
		t.Fatalf("codec decode: %v %#v", err, rec)
	}
	if ext, ok := rec[0].(codec.RawExt); !ok || ext.Tag != 0 || len(ext.Data) != 8 {
		t.Errorf("time = %#v", rec[0])
	}
}

func encodeOne(t *testing.T, ex *exchange.Exchange) (time.Time, map[string]any, []byte) {
	t.Helper()
	e := newRecordEncoder("node-1", testOpts)
	b, err := e.appendRecord(nil, ex)
	if err != nil {
		t.Fatal(err)
	}
	times, maps := decodeRecords(t, b)
	if len(maps) != 1 {
		t.Fatalf("%d records, want 1", len(maps))
	}
	return times[0], maps[0], b
}

type want map[string]any

// check compares field by field and reports keys missing or unexpected.
func check(t *testing.T, got map[string]any, w want) {
	t.Helper()
	for k, v := range w {
		g, ok := got[k]
		if !ok {
			t.Errorf("%s: missing", k)
			continue
		}
		if !reflect.DeepEqual(g, v) {
			t.Errorf("%s = %#v (%T), want %#v (%T)", k, g, g, v, v)
		}
	}
	var extra []string
	for k := range got {
		if _, ok := w[k]; !ok {
			extra = append(extra, k)
		}
	}
	sort.Strings(extra)
	if len(extra) > 0 {
		t.Errorf("unexpected keys: %q", extra)
	}
}

func TestRecordClientExchange(t *testing.T) {
	ex := clientExchange()
	ts, m, raw := encodeOne(t, ex)
	// fixarray(2), fixext8 type 0: Fluent Bit's EventTime.
	if !bytes.HasPrefix(raw, []byte{0x92, 0xd7, 0x00}) {
		t.Errorf("record starts % x, want 92 d7 00", raw[:3])
	}
	if !ts.Equal(ex.End) {
		t.Errorf("EventTime = %v, want exchange end %v", ts, ex.End)
	}
	check(t, m, want{
		"message":                             "GET https://127.0.0.1:8443/hello?x=1 -> 200",
		"event.name":                          "tlstap.http.exchange",
		"severity_text":                       "INFO",
		"severity_number":                     int64(9),
		"span.name":                           "GET",
		"span.kind":                           "client",
		"trace_id":                            "0af7651916cd43dd8448eb211c80319c",
		"span_id":                             "b7ad6b7169203331",
		"duration_ns":                         int64(1500000),
		"service.name":                        "unknown_service:curl",
		"process.pid":                         int64(4242),
		"process.parent_pid":                  int64(1),
		"process.creation.time":               "2025-03-04T05:06:06.123456789Z",
		"process.executable.name":             "curl",
		"process.executable.path":             "/usr/bin/curl",
		"process.command_args":                []any{"curl", "-sk", "https://127.0.0.1:8443/hello?x=1"},
		"process.owner":                       "root",
		"host.name":                           "node-1",
		"http.request.method":                 "GET",
		"url.full":                            "https://127.0.0.1:8443/hello?x=1",
		"url.scheme":                          "https",
		"server.address":                      "127.0.0.1",
		"server.port":                         int64(8443),
		"network.peer.address":                "127.0.0.1",
		"network.peer.port":                   int64(8443),
		"network.protocol.name":               "http",
		"network.protocol.version":            "1.1",
		"network.transport":                   "tcp",
		"http.response.status_code":           int64(200),
		"user_agent.original":                 "curl/7.88.1",
		"http.request.body.size":              int64(0),
		"http.response.body.size":             int64(12),
		"tlstap.tls.library":                  "openssl",
		"tlstap.connection.id":                int64(77),
		"http.request.header.host":            []any{"127.0.0.1:8443"},
		"http.request.header.user-agent":      []any{"curl/7.88.1"},
		"http.request.header.x-test":          []any{"abc"},
		"http.request.header.x-multi":         []any{"one", "two"},
		"http.request.header.authorization":   []any{"REDACTED"},
		"http.response.header.content-type":   []any{"text/plain"},
		"http.response.header.content-length": []any{"12"},
		"http.response.body.content":          "hello world\n",
	})
	if _, ok := m["tlstap.flags"]; ok {
		t.Error("tlstap.flags present on an exchange without flags")
	}
}

func TestRecordServerExchange(t *testing.T) {
	ex := serverExchange()
	ts, m, _ := encodeOne(t, ex)
	if !ts.Equal(ex.End) {
		t.Errorf("EventTime = %v, want exchange end %v", ts, ex.End)
	}
	check(t, m, want{
		"message":                          "POST http://api.example.com:8080/upload?id=7 -> 503",
		"event.name":                       "tlstap.http.exchange",
		"severity_text":                    "ERROR",
		"severity_number":                  int64(17),
		"span.name":                        "POST",
		"span.kind":                        "server",
		"otel.status_code":                 "ERROR",
		"trace_id":                         "4bf92f3577b34da6a3ce929d0e0e4736", // from traceparent
		"span_id":                          "b7ad6b7169203331",
		"parent_span_id":                   "00f067aa0ba902b7",
		"duration_ns":                      int64(2000000),
		"service.name":                     "unknown_service:python3",
		"process.pid":                      int64(99),
		"process.executable.name":          "python3",
		"process.executable.path":          "/usr/bin/python3.11",
		"host.name":                        "node-1",
		"http.request.method":              "POST",
		"url.path":                         "/upload",
		"url.query":                        "id=7",
		"url.scheme":                       "http",
		"server.address":                   "api.example.com",
		"server.port":                      int64(8080),
		"client.address":                   "10.0.0.2",
		"client.port":                      int64(41000),
		"network.peer.address":             "10.0.0.2",
		"network.peer.port":                int64(41000),
		"network.protocol.name":            "http",
		"network.protocol.version":         "1.1",
		"network.transport":                "tcp",
		"http.response.status_code":        int64(503),
		"http.request.body.size":           int64(100),
		"http.response.body.size":          int64(0),
		"error.type":                       "503",
		"tlstap.flags":                     []any{"request_truncated"},
		"tlstap.tls.library":               "socket",
		"tlstap.connection.id":             int64(5),
		"http.request.header.host":         []any{"api.example.com"},
		"http.request.header.content-type": []any{"application/octet-stream"},
		"http.request.header.traceparent":  []any{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
		"http.request.body.content":        []byte{0xff, 0x00, 0xfe, 0x01}, // not UTF-8: bin
		"http.response.body.content":       "busy",
	})
}

// The record carries exactly otelmap's resource and log attributes, with the
// same names and values as the Collector receiver, plus the plugin's own keys.
func TestRecordKeysAreOtelmapAttributes(t *testing.T) {
	for _, ex := range []*exchange.Exchange{clientExchange(), serverExchange()} {
		_, m, _ := encodeOne(t, ex)
		rec := otelmap.Map(ex, testOpts)
		attrs := append(otelmap.Resource(ex.Process, "node-1", nil), rec.Log.Attributes...)
		for _, kv := range attrs {
			got, ok := m[kv.Key]
			if !ok {
				t.Errorf("%s: missing", kv.Key)
				continue
			}
			w := kv.Value.AsAny()
			if ss, ok := w.([]string); ok {
				a := make([]any, len(ss))
				for i, s := range ss {
					a[i] = s
				}
				w = a
			}
			if !reflect.DeepEqual(got, w) {
				t.Errorf("%s = %#v, want %#v", kv.Key, got, w)
			}
		}
		own := []string{keyMessage, keyEventName, keySeverityText, keySeverityNumber, keySpanName, keySpanKind,
			keyStatusCode, keyStatusDesc, keyTraceID, keySpanID, keyParentSpanID, keyDurationNS}
		n := len(attrs)
		for _, k := range own {
			if _, ok := m[k]; ok {
				n++
			}
		}
		if n != len(m) {
			t.Errorf("record has %d keys, want %d (attributes + plugin keys)", len(m), n)
		}
	}
}

func TestRecordNoResponse(t *testing.T) {
	ex := clientExchange()
	ex.Response = nil
	ex.Flags = exchange.NoResponse | exchange.Incomplete
	ex.End = ex.Start
	_, m, _ := encodeOne(t, ex)
	if m["otel.status_code"] != "ERROR" || m["otel.status_description"] != "no_response" {
		t.Errorf("status = %v / %v", m["otel.status_code"], m["otel.status_description"])
	}
	if !reflect.DeepEqual(m["tlstap.flags"], []any{"incomplete", "no_response"}) {
		t.Errorf("flags = %#v", m["tlstap.flags"])
	}
	if m["duration_ns"] != int64(0) || m["message"] != "GET https://127.0.0.1:8443/hello?x=1 -> no response" {
		t.Errorf("duration %v message %v", m["duration_ns"], m["message"])
	}
	if _, ok := m["http.response.status_code"]; ok {
		t.Error("status code present without a response")
	}
}

// Concatenated records decode one after the other; the encoder is reusable.
func TestRecordsConcatenate(t *testing.T) {
	e := newRecordEncoder("h", testOpts)
	var buf []byte
	for i := 0; i < 50; i++ {
		ex := clientExchange()
		ex.End = t0.Add(time.Duration(i) * time.Second)
		if i%2 == 1 {
			ex = serverExchange()
			ex.End = t0.Add(time.Duration(i) * time.Second)
		}
		var err error
		if buf, err = e.appendRecord(buf, ex); err != nil {
			t.Fatal(err)
		}
	}
	times, maps := decodeRecords(t, buf)
	if len(maps) != 50 {
		t.Fatalf("%d records", len(maps))
	}
	for i := range maps {
		if !times[i].Equal(t0.Add(time.Duration(i) * time.Second)) {
			t.Errorf("record %d time %v", i, times[i])
		}
		kind := map[bool]string{false: "client", true: "server"}[i%2 == 1]
		if maps[i]["span.kind"] != kind {
			t.Errorf("record %d kind %v", i, maps[i]["span.kind"])
		}
	}
}

func BenchmarkAppendRecord(b *testing.B) {
	e := newRecordEncoder("h", otelmap.Options{})
	ex := clientExchange()
	var buf []byte
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		buf, _ = e.appendRecord(buf[:0], ex)
	}
	b.SetBytes(int64(len(buf)))
}

// The record time is the instant the receiver stamps the exchange's log
// record with: the end of the exchange, its start when it has no end.
func TestRecordTimeIsLogTimestamp(t *testing.T) {
	e := newRecordEncoder("h", testOpts)
	for _, ex := range []*exchange.Exchange{clientExchange(), func() *exchange.Exchange {
		ex := clientExchange()
		ex.End = time.Time{}
		return ex
	}()} {
		buf, err := e.appendRecord(nil, ex)
		if err != nil {
			t.Fatal(err)
		}
		times, _ := decodeRecords(t, buf)
		want := otelmap.Map(ex, testOpts).Log.Timestamp
		if len(times) != 1 || !times[0].Equal(want) {
			t.Errorf("record time %v, want the log record timestamp %v", times, want)
		}
	}
}
