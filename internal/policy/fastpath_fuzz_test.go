package policy

import (
	"encoding/json"
	"strings"
	"testing"
)

// FuzzFastPathsExact: the shortcuts of the policy step never change what
// is found. Each is checked against the slower search it stands for:
//
//   - the JSON key pass (mayHaveSecretKey) says yes whenever the full scan
//     redacts a secret field of a valid document;
//   - the shared card-run check (hasClassRun) agrees with classRuns, and a
//     pattern marked cardRuns finds nothing in a body without such a run;
//   - GitHub tokens looked for inside 40-byte word runs are those found by
//     searching "gh" over the whole body;
//   - nameSet.has, with its signature and last-byte filters, agrees with
//     a map lookup and every glob.
func FuzzFastPathsExact(f *testing.F) {
	for _, s := range []string{
		`{"user":"bob","password":"hunter2"}`,
		`{"a" : {"x_TOKEN"  :1},"b\u0022c":2, "Pass-Word":[3]}`,
		`{"n":"4111 1111 1111 1111","m":"1234-5678-9012"}`,
		"ghp_0123456789abcdefghijABCDEFGHIJ012345 xgho_0123456789abcdefghijABCDEFGHIJ012345 gh",
		"github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456",
		"Authorization", "x-Api-Key", "X-Custom-Auth-Token", "Content-Type",
	} {
		f.Add([]byte(s))
	}
	p := mustNew(f, nil)
	var card *compiledPattern
	for i := range p.patterns {
		if p.patterns[i].pre.cardRuns {
			card = &p.patterns[i]
		}
	}
	if card == nil {
		f.Fatal("the default card pattern is not marked cardRuns")
	}
	var errs errList
	others := newNameSet(&errs, "names", []string{"x-key", "*-token", "pre*", "a?c", "*"})
	if len(errs) > 0 {
		f.Fatal(errs)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		// In valid JSON every key is followed by ':' (the full scan also
		// takes keys without one, in documents that are not JSON).
		var js jsonScan
		if js.scan(b, &p.insp.fields); json.Valid(b) && len(js.edits) > 0 && !mayHaveSecretKey(b, &p.insp.fields) {
			t.Fatalf("key pass missed a secret field the full scan redacts: %q", b)
		}

		run := false
		classRuns(b, cardClass, cardMinLen, func(int, int) { run = true })
		if got := hasClassRun(b, cardClass, cardMinLen); got != run {
			t.Fatalf("hasClassRun = %v, classRuns found a run: %v, in %q", got, run, b)
		}
		if !run {
			if sp := card.find(b, nil); len(sp) > 0 {
				t.Fatalf("card pattern matched %v without a card run in %q", sp, b)
			}
			if sp := findCards(b, nil); len(sp) > 0 {
				t.Fatalf("card detector matched %v without a card run in %q", sp, b)
			}
		}

		got, want := findGitHubTokens(b, nil), findGitHubTokensIn(b, 0, len(b), nil)
		if len(got) != len(want) {
			t.Fatalf("GitHub tokens %v, whole-body search %v, in %q", got, want, b)
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("GitHub tokens %v, whole-body search %v, in %q", got, want, b)
			}
		}

		name := string(b)
		for _, ns := range []*nameSet{&p.headers, &others} {
			if got, want := ns.has(name), refHas(ns, name); got != want {
				t.Fatalf("nameSet.has(%q) = %v, want %v", name, got, want)
			}
		}
	})
}

// refHas is nameSet.has without its filters.
func refHas(s *nameSet, name string) bool {
	lower := strings.ToLower(name)
	if len(name) <= 64 { // has folds ASCII only there
		buf := []byte(name)
		for i, c := range buf {
			if 'A' <= c && c <= 'Z' {
				buf[i] = c + 'a' - 'A'
			}
		}
		lower = string(buf)
	}
	if _, ok := s.exact[lower]; ok {
		return true
	}
	for i := range s.globs {
		if s.globs[i].match(name) {
			return true
		}
	}
	return false
}
