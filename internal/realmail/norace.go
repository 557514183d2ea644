//go:build !race

package realmail

// RaceEnabled reports whether the race detector is on: it makes parsing
// several times slower, so tests that only need variety take a sample.
const RaceEnabled = false
