package policy

import (
	"encoding/binary"
	"math/bits"
)

// JSON keys are dense (one ':' every 15–20 bytes in typical API bodies),
// so finding them with one bytes.IndexByte call each costs more in calls
// than in scanning. eachColon looks at eight bytes per step instead (SWAR:
// SIMD within a register) and calls nothing for words without a ':'.

const (
	swarLo    = 0x0101010101010101
	swarLow7  = 0x7f7f7f7f7f7f7f7f
	swarHigh  = 0x8080808080808080
	swarColon = swarLo * ':'
)

// eachColon calls f with the index of every ':' in b, in order, until f
// returns true; it reports whether f did.
func eachColon(b []byte, f func(i int) bool) bool {
	i := 0
	for ; i+8 <= len(b); i += 8 {
		x := binary.LittleEndian.Uint64(b[i:]) ^ swarColon
		if (x-swarLo)&^x&swarHigh == 0 {
			continue // no zero byte in x: no ':' in these eight
		}
		// Exact per-byte mask (no borrow between bytes).
		m := ^(((x & swarLow7) + swarLow7) | x) & swarHigh
		for m != 0 {
			if f(i + bits.TrailingZeros64(m)/8) {
				return true
			}
			m &= m - 1
		}
	}
	for ; i < len(b); i++ {
		if b[i] == ':' && f(i) {
			return true
		}
	}
	return false
}
