package engine

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/tlstap/tlstap/internal/jvmattach"
)

// javaLease is the proof, readable from inside a JVM, that the tlstap which
// attached to it still lives: an empty file in the JVM's /tmp on which
// tlstap holds an exclusive lock. The kernel releases the lock when the
// file's last descriptor closes, so also when tlstap is SIGKILLed; the hook
// in the JVM then gets the shared lock it asks for at most once a second,
// and turns itself inert (java/hook, TlstapHook.live).
type javaLease struct {
	f    *os.File
	host string // path as tlstap sees it, through /proc/<pid>/root
	jvm  string // path as the JVM sees it
}

// newJavaLease creates and locks the lease file of the JVM t. The name is
// random and created exclusively (the JVM's /tmp is shared with its
// users); the file belongs to the JVM's user, so the hook may remove it
// once it found tlstap gone. sameNS says the JVM shares our mount
// namespace: the file is then removed by its own path, which outlives
// the JVM's /proc/<pid>/root.
func newJavaLease(t jvmattach.Target, sameNS bool) (*javaLease, error) {
	f, err := os.CreateTemp(filepath.Join(t.Root, "tmp"), ".tlstap-lease-")
	if err != nil {
		return nil, fmt.Errorf("create java lease: %w", err)
	}
	l := &javaLease{f: f, host: f.Name(), jvm: "/tmp/" + filepath.Base(f.Name())}
	if sameNS {
		l.host = l.jvm
	}
	// An open-file-description lock: tied to this descriptor, not to the
	// process, so no other open or close of the file by tlstap drops it.
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: 0, Len: 0}
	if err := unix.FcntlFlock(f.Fd(), unix.F_OFD_SETLK, &lk); err != nil {
		l.release()
		return nil, fmt.Errorf("lock java lease %s: %w", l.host, err)
	}
	if err := f.Chown(t.UID, t.GID); err != nil {
		l.release()
		return nil, fmt.Errorf("give java lease %s to uid %d: %w", l.host, t.UID, err)
	}
	return l, nil
}

// release drops the lock and removes the file: the hook, if still on,
// turns inert at its next check.
func (l *javaLease) release() {
	if l == nil {
		return
	}
	_ = os.Remove(l.host)
	_ = l.f.Close()
}
