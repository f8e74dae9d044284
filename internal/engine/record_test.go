package engine

import (
	"encoding/binary"
	"testing"
	"time"

	tlsbpf "github.com/tlstap/tlstap/bpf"
)

// TestDecodeExecRecord: an exec record laid out as the kernel writes it
// decodes to the identity fields, with garbage after each string ignored.
func TestDecodeExecRecord(t *testing.T) {
	b := make([]byte, execSize)
	for i := range b {
		b[i] = 0xAA // ring memory is not cleared between records
	}
	le := binary.LittleEndian
	b[0] = tlsbpf.EvExec
	le.PutUint32(b[4:], 4242)
	le.PutUint32(b[execPPID:], 1)
	le.PutUint32(b[execUID:], 1000)
	le.PutUint64(b[execStart:], uint64(90*time.Second))
	path, args := "/usr/bin/curl", "curl\x00-s\x00"
	le.PutUint16(b[execPLen:], uint16(len(path)))
	le.PutUint16(b[execALen:], uint16(len(args)))
	copy(b[execPath:], path)
	copy(b[execArgs:], args)
	for i, name := range []string{"docker-abc.scope", "system.slice", ""} {
		copy(b[execCg+i*cgName:], name+"\x00")
	}
	var r record
	if err := decodeRecord(b, &r); err != nil {
		t.Fatal(err)
	}
	e := r.exec
	if !r.execOK || e.PID != 4242 || e.PPID != 1 || e.UID != 1000 || e.StartBoottime != 90*time.Second ||
		e.Path != path || string(e.Args) != args || e.CgroupPath != "/system.slice/docker-abc.scope" {
		t.Errorf("decoded %+v", e)
	}
	// Lengths beyond their arrays are clamped, never read past the record.
	le.PutUint16(b[execPLen:], 0xffff)
	le.PutUint16(b[execALen:], 0xffff)
	if err := decodeRecord(b, &r); err != nil || len(r.exec.Path) != execArgs-execPath || len(r.exec.Args) != execCg-execArgs {
		t.Errorf("oversized lengths: err %v, path %d args %d bytes", err, len(r.exec.Path), len(r.exec.Args))
	}
	if err := decodeRecord(b[:execSize-1], &r); err == nil {
		t.Errorf("a short exec record decoded")
	}
}
