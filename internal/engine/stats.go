package engine

import "github.com/tlstap/tlstap/internal/policy"

// Stats is a snapshot of the engine's counters. Every way the engine can lose
// or degrade data has a counter here; front ends expose them as metrics.
type Stats struct {
	ExchangesEmitted      uint64       // exchanges handed to the sink
	ExchangesIncomplete   uint64       // emitted exchanges flagged incomplete (gap or loss)
	BodiesTruncated       uint64       // request or response bodies cut at max_body_bytes
	ParseErrors           uint64       // connections whose stream stopped being valid HTTP
	EventsRead            uint64       // ring buffer records read
	EventsLost            uint64       // ring buffer reservations that failed in the kernel (sum over CPUs)
	BytesLost             uint64       // payload bytes the kernel could not deliver
	BytesShed             uint64       // of BytesLost: large calls shed when the ring was filling (load shedding)
	StreamGaps            uint64       // detected holes in a connection byte stream
	ProbesAttached        uint64       // probes currently attached: uprobes plus the tracepoints
	UprobeLinks           uint64       // kernel links holding the uprobes: one per program and file, or one per probe on kernels without uprobe_multi (< 6.6)
	AttachErrors          uint64       // files or processes where attaching failed
	ConnsTracked          uint64       // connections currently tracked in user space
	ConnsEvicted          uint64       // connections dropped by the tracker's memory caps
	DiscoveryDropped      uint64       // exec/exit/mmap notifications dropped (discovery queue full)
	ControlEventsLost     uint64       // exec/exit/close/mmap records the ring buffer could not take
	BadRecords            uint64       // ring buffer records that did not decode
	H2StreamsDropped      uint64       // HTTP/2 requests seen but not emitted: header block undecodable after a loss
	ResponsesUnpaired     uint64       // HTTP/1 responses seen but not emitted: their request was lost, none can be named
	ExecsGated            uint64       // execs the exec gate held until their executable was analysed (or known)
	ExecsAllowedOnTimeout uint64       // of ExecsGated: let run when the bound expired, maybe before their probes were attached
	ExecAnalysisFailures  uint64       // executables the gate could not analyse or hook (the exec ran anyway)
	ExecsUngated          uint64       // execs let run unanalysed: gate queue full, fanotify queue overflow, memfd executables (cannot be marked)
	ExecGateErrors        uint64       // gate unavailable at start, file systems it could not mark, gate processes that died (and were replaced)
	FilesSkipped          uint64       // executables/libraries not hooked: too large, analysis too slow or failed (hostile or malformed)
	JVMsAttached          uint64       // JVMs whose agent feeds the engine now
	JVMAttachFailed       uint64       // JVMs the agent could not be loaded into (also in AttachErrors)
	Policy                policy.Stats // filtered, sampled out, redactions applied
}
