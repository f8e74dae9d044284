package engine

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/zap"
)

// TestRewriteKeepingSizeAndMtime: a file rewritten in place with other
// bytes of the same length, its mtime then restored, is a new version:
// the probes placed for the old content are detached and the file is
// analysed again.
func TestRewriteKeepingSizeAndMtime(t *testing.T) {
	p := filepath.Join(t.TempDir(), "libssl.so.3")
	if err := os.WriteFile(p, bytes.Repeat([]byte{0x90}, 4096), 0o755); err != nil {
		t.Fatal(err)
	}
	mtime := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := os.Chtimes(p, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	old, err := statVersion(p)
	if err != nil {
		t.Fatal(err)
	}
	k := &kernel{logger: zap.NewNop(), uprobes: map[fileID]hooked{old.id: {probes: 3, ver: old}}, nUprobes: 3}
	if !k.current(old) {
		t.Fatal("unchanged file not current")
	}
	// ctime has a clock-tick granularity on some file systems: make sure
	// the rewrite lands on a later tick than the first write.
	time.Sleep(20 * time.Millisecond)
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(bytes.Repeat([]byte{0xcc}, 4096), 0); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := os.Chtimes(p, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	now, err := statVersion(p)
	if err != nil {
		t.Fatal(err)
	}
	if now.id != old.id || now.size != old.size || now.mtimeNs != old.mtimeNs {
		t.Fatalf("the rewrite should keep inode, size and mtime: %+v -> %+v", old, now)
	}
	if k.current(now) {
		t.Fatal("rewritten file (same size and mtime) still counts as hooked for its old content")
	}
	if k.attached(old.id) || k.nUprobes != 0 {
		t.Errorf("old probes not detached: attached %v, %d probes", k.attached(old.id), k.nUprobes)
	}
}
