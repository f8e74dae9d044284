package policy

// JSON keys are dense (one ':' every 15–20 bytes in typical API bodies),
// so finding them with one bytes.IndexByte call each costs more in calls
// than in scanning. The key pass looks at eight bytes per step instead
// (SWAR: SIMD within a register), without calls.

const (
	swarLo    = 0x0101010101010101
	swarLow7  = 0x7f7f7f7f7f7f7f7f
	swarHigh  = 0x8080808080808080
	swarColon = swarLo * ':'
)

// colonMask has the high bit set in exactly the bytes of v (eight bytes
// of a body) that are ':'. The sum cannot carry between bytes, so there
// are no false positives.
func colonMask(v uint64) uint64 {
	x := v ^ swarColon
	return ^(((x & swarLow7) + swarLow7) | x) & swarHigh
}
