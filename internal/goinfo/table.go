package goinfo

import (
	"fmt"
	"regexp"
	"strconv"
)

// Toolchains lists the Go toolchains the offsets table is generated from
// (one, the newest, patch release per series; ./gen builds with each).
// Add a line when a new series is released, then run make go-offsets.
var Toolchains = []string{
	"go1.20.14",
	"go1.21.13",
	"go1.22.12",
	"go1.23.12",
	"go1.24.13",
	"go1.25.14",
	"go1.26.8",
}

// TableEntry is the struct layout of one Go release series, as read by
// ./gen from the DWARF of a probe program built with Toolchain.
type TableEntry struct {
	Minor     int    // 20 for go1.20.x
	Toolchain string // the exact toolchain the entry was read from
	Offsets   Offsets
}

// Table returns the checked-in offsets table (oldest series first).
func Table() []TableEntry { return append([]TableEntry(nil), offsetTable...) }

var goMinorRE = regexp.MustCompile(`go1\.(\d+)`)

// GoMinor returns the minor release number of a Go version string such
// as "go1.22.12", "go1.26rc1" or "devel go1.27-abcdef".
func GoMinor(version string) (int, bool) {
	m := goMinorRE.FindStringSubmatch(version)
	if m == nil {
		return 0, false
	}
	n, err := strconv.Atoi(m[1])
	return n, err == nil
}

// TableOffsets returns the offsets for a Go version from the table: the
// entry of its release series ("table:go1.22"), else the nearest known
// series ("nearest:go1.26"; the caller should warn). Among equally near
// series the older wins.
func TableOffsets(version string) (Offsets, string, bool) {
	minor, ok := GoMinor(version)
	if !ok || len(offsetTable) == 0 {
		return Offsets{}, "", false
	}
	best := -1
	for i, e := range offsetTable {
		if e.Minor == minor {
			return e.Offsets, fmt.Sprintf("table:go1.%d", minor), true
		}
		if best < 0 || abs(e.Minor-minor) < abs(offsetTable[best].Minor-minor) {
			best = i
		}
	}
	e := offsetTable[best]
	return e.Offsets, fmt.Sprintf("nearest:go1.%d", e.Minor), true
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}
