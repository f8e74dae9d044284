package bpf

import "github.com/cilium/ebpf"

// Record layouts shared with the kernel programs (see tlstap.h).
type (
	DataEvent = tlstapDataEvent
	CtlEvent  = tlstapCtlEvent
	ExecEvent = tlstapExecEvent
	ConnAddr  = tlstapConnAddr
	GoOffsets = tlstapGoOffsets
)

// Record types, sources and stat indexes mirrored from tlstap.h.
const (
	EvData  = 1
	EvClose = 2
	EvExec  = 3
	EvExit  = 4
	EvMmap  = 5

	SrcSocket  = 1
	SrcOpenSSL = 2
	SrcGoTLS   = 3
	SrcGnuTLS  = 4
	SrcJava    = 5 // records written by tlstap's agent in a JVM (java.h)

	DirEgress  = 0
	DirIngress = 1

	DfCallStart = 1 // data_event.flags: the record starts a read/write call

	StatLostEvents  = 0
	StatLostBytes   = 1
	StatLostControl = 2
	StatSkipped     = 3
	StatShed        = 4 // bytes of bulk calls shed under ring pressure; also counted lost
	StatMax         = 5

	// MaxGoBinaries is the number of Go layouts the go_layouts map holds.
	MaxGoBinaries = 256

	// MaxCallBytes is the largest per-call capture cap the programs accept.
	MaxCallBytes = 64 * 16384
)

// LoadSpec returns the compiled programs and maps, not yet loaded.
func LoadSpec() (*ebpf.CollectionSpec, error) { return loadTlstap() }
