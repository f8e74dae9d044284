package elfmut

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/tlstap/tlstap/internal/testenv"
)

// LibSSL is the host's libssl3 (Debian's libssl3 package).
const LibSSL = "/usr/lib/x86_64-linux-gnu/libssl.so.3"

// stubSource defines OpenSSL's entry points as small functions calling an
// internal one, the shape attachpoint looks for.
const stubSource = `
static int __attribute__((noinline)) internal_rw(void *s, void *b, int n, unsigned long *done) {
	if (done) *done = (unsigned long)n;
	return s != 0 && b != 0;
}
int SSL_read_ex(void *s, void *b, unsigned long n, unsigned long *r) { return internal_rw(s, b, (int)n, r); }
int SSL_read(void *s, void *b, int n) { unsigned long r = 0; int ok = internal_rw(s, b, n, &r); return ok ? (int)r : -1; }
int SSL_write_ex(void *s, const void *b, unsigned long n, unsigned long *w) { return internal_rw(s, (void *)b, (int)n, w); }
int SSL_write(void *s, const void *b, int n) { unsigned long w = 0; int ok = internal_rw(s, (void *)b, n, &w); return ok ? (int)w : -1; }
int SSL_shutdown(void *s) { return s != 0; }
void SSL_free(void *s) { if (s == 0) return; internal_rw(s, s, 0, 0); }
int main(void) { return 0; }
`

// Seeds returns real ELF files of the shapes the library parsers meet:
// the host's libssl3 (GNU hash table, versioned symbols), a shared library
// with a SysV hash table only (the slow path) and a static executable
// with no dynamic symbols at all, both built here with gcc.
func Seeds(tb testing.TB) map[string][]byte {
	tb.Helper()
	testenv.RequireFile(tb, LibSSL)
	gcc := testenv.RequireCommand(tb, "gcc")
	dir := tb.TempDir()
	src := filepath.Join(dir, "stub.c")
	if err := os.WriteFile(src, []byte(stubSource), 0o644); err != nil {
		tb.Fatal(err)
	}
	builds := map[string][]string{
		"sysv-hash.so": {"-O2", "-shared", "-fPIC", "-Wl,--hash-style=sysv", "-o"},
		"static":       {"-O2", "-static", "-o"},
	}
	out := map[string][]byte{}
	for name, args := range builds {
		p := filepath.Join(dir, name)
		if b, err := exec.Command(gcc, append(args, p, src)...).CombinedOutput(); err != nil {
			testenv.Missing(tb, "gcc %s: %v\n%s", name, err, b) // no static libc (libc6-dev) or no linker
		}
		b, err := os.ReadFile(p)
		if err != nil {
			tb.Fatal(err)
		}
		out[name] = b
	}
	b, err := os.ReadFile(LibSSL)
	if err != nil {
		tb.Fatal(err)
	}
	out["libssl.so.3"] = b
	return out
}
