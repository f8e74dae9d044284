package tlstapreceiver

import (
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/tlstap/tlstap/internal/exchange"
	"github.com/tlstap/tlstap/internal/otelmap"
	"github.com/tlstap/tlstap/receiver/tlstapreceiver/internal/metadata"
)

// converter holds what the pdata conversion needs besides the exchanges.
type converter struct {
	hostName     string
	scopeVersion string
	traces, logs bool // which signals to build
	options      otelmap.Options
	// dropResource holds the resource attributes turned off
	// (resource_attributes: {<key>: {enabled: false}}).
	dropResource map[string]bool
	now          func() time.Time // observed timestamp of log records; nil = time.Now
}

// convert turns a batch of exchanges into one span and one log record each,
// grouped into one ResourceSpans / ResourceLogs per process (in order of
// first appearance). The span and the log record of an exchange share their
// trace and span ids.
//
// The pdata built keeps references to the exchanges' bodies (see
// otelmap.Mapper.Map): the exchanges must not be modified afterwards.
func convert(batch []*exchange.Exchange, c converter) (ptrace.Traces, plog.Logs) {
	td, ld := ptrace.NewTraces(), plog.NewLogs()
	now := time.Now
	if c.now != nil {
		now = c.now
	}
	observed := pcommon.NewTimestampFromTime(now())
	mapper := otelmap.NewMapper(c.options)
	groups := make(map[otelmap.ProcessKey]group, 4)

	for _, ex := range batch {
		key := otelmap.KeyOf(ex.Process)
		g, ok := groups[key]
		if !ok {
			g = newGroup(td, ld, c, mapper.Resource(ex.Process, c.hostName))
			groups[key] = g
		}

		rec := mapper.Map(ex)
		var span ptrace.Span
		var log plog.LogRecord
		if c.traces {
			span = g.spans.AppendEmpty()
			fillSpan(span, &rec.Span)
		}
		if c.logs {
			log = g.logs.AppendEmpty()
			fillLog(log, &rec.Log, observed)
		}
		putRecordAttributes(span, log, rec, c.traces, c.logs)
	}
	return td, ld
}

// group is where the spans and log records of one process go.
type group struct {
	spans ptrace.SpanSlice
	logs  plog.LogRecordSlice
}

// newGroup adds the ResourceSpans and ResourceLogs of one process. The
// resource attributes are put once and copied: a copy skips the search for
// an existing key that every Put makes.
func newGroup(td ptrace.Traces, ld plog.Logs, c converter, resource otelmap.Attributes) group {
	if len(c.dropResource) > 0 {
		kept := make(otelmap.Attributes, 0, len(resource))
		for _, kv := range resource {
			if !c.dropResource[kv.Key] {
				kept = append(kept, kv)
			}
		}
		resource = kept
	}
	var g group
	var built pcommon.Map
	if c.traces {
		rs := td.ResourceSpans().AppendEmpty()
		rs.SetSchemaUrl(otelmap.SchemaURL)
		built = rs.Resource().Attributes()
		putAttributes(built, resource)
		ss := rs.ScopeSpans().AppendEmpty()
		ss.Scope().SetName(metadata.ScopeName)
		ss.Scope().SetVersion(c.scopeVersion)
		g.spans = ss.Spans()
	}
	if c.logs {
		rl := ld.ResourceLogs().AppendEmpty()
		rl.SetSchemaUrl(otelmap.SchemaURL)
		if c.traces {
			built.CopyTo(rl.Resource().Attributes())
		} else {
			putAttributes(rl.Resource().Attributes(), resource)
		}
		sl := rl.ScopeLogs().AppendEmpty()
		sl.Scope().SetName(metadata.ScopeName)
		sl.Scope().SetVersion(c.scopeVersion)
		g.logs = sl.LogRecords()
	}
	return g
}

// putRecordAttributes writes the attributes of the span and of the log
// record of rec (only those whose signal is on). With both on, the
// attributes they share are put once, into the log record, and copied.
func putRecordAttributes(span ptrace.Span, log plog.LogRecord, rec *otelmap.Record, traces, logs bool) {
	switch {
	case traces && logs:
		la, sa := log.Attributes(), span.Attributes()
		la.EnsureCapacity(len(rec.Log.Attributes))
		putAttributes(la, rec.Log.Attributes[:rec.Shared])
		// CopyTo reuses the destination's array when it is large enough.
		sa.EnsureCapacity(len(rec.Span.Attributes))
		la.CopyTo(sa)
		putAttributes(sa, rec.Span.Attributes[rec.Shared:])
		putAttributes(la, rec.Log.Attributes[rec.Shared:])
	case traces:
		putAttributes(span.Attributes(), rec.Span.Attributes)
	case logs:
		putAttributes(log.Attributes(), rec.Log.Attributes)
	}
}

func fillSpan(s ptrace.Span, src *otelmap.Span) {
	s.SetTraceID(pcommon.TraceID(src.TraceID))
	s.SetSpanID(pcommon.SpanID(src.SpanID))
	flags := uint32(src.TraceFlags)
	if !src.ParentSpanID.IsZero() {
		s.SetParentSpanID(pcommon.SpanID(src.ParentSpanID))
		// The parent lives in another process: the OTLP flags say "remote".
		flags |= 0x100 | 0x200
	}
	s.SetFlags(flags)
	if src.TraceState != "" {
		s.TraceState().FromRaw(src.TraceState)
	}
	s.SetName(src.Name)
	s.SetKind(spanKind(src.Kind))
	s.SetStartTimestamp(pcommon.NewTimestampFromTime(src.Start))
	s.SetEndTimestamp(pcommon.NewTimestampFromTime(src.End))
	switch src.Status {
	case otelmap.StatusError:
		s.Status().SetCode(ptrace.StatusCodeError)
		s.Status().SetMessage(src.StatusMsg)
	case otelmap.StatusOK:
		s.Status().SetCode(ptrace.StatusCodeOk)
	}
}

func spanKind(k otelmap.SpanKind) ptrace.SpanKind {
	switch k {
	case otelmap.SpanKindClient:
		return ptrace.SpanKindClient
	case otelmap.SpanKindServer:
		return ptrace.SpanKindServer
	case otelmap.SpanKindInternal:
		return ptrace.SpanKindInternal
	}
	return ptrace.SpanKindUnspecified
}

func fillLog(l plog.LogRecord, src *otelmap.LogRecord, observed pcommon.Timestamp) {
	l.SetEventName(src.EventName)
	l.SetTimestamp(pcommon.NewTimestampFromTime(src.Timestamp))
	l.SetObservedTimestamp(observed)
	l.SetSeverityNumber(plog.SeverityNumber(src.Severity))
	l.SetSeverityText(src.SeverityText)
	l.Body().SetStr(src.Body)
	l.SetTraceID(pcommon.TraceID(src.TraceID))
	l.SetSpanID(pcommon.SpanID(src.SpanID))
	l.SetFlags(plog.LogRecordFlags(src.TraceFlags))
}

// putAttributes copies neutral attributes into a pdata map.
func putAttributes(m pcommon.Map, attrs otelmap.Attributes) {
	m.EnsureCapacity(m.Len() + len(attrs))
	for _, kv := range attrs {
		v := kv.Value
		switch v.Type {
		case otelmap.TypeString:
			m.PutStr(kv.Key, v.Str)
		case otelmap.TypeInt:
			m.PutInt(kv.Key, v.Int)
		case otelmap.TypeBool:
			m.PutBool(kv.Key, v.Bool)
		case otelmap.TypeBytes:
			m.PutEmptyBytes(kv.Key).FromRaw(v.Bytes)
		case otelmap.TypeStringSlice:
			s := m.PutEmptySlice(kv.Key)
			s.EnsureCapacity(len(v.Strings))
			for _, str := range v.Strings {
				s.AppendEmpty().SetStr(str)
			}
		}
	}
}
