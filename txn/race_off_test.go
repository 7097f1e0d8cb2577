//go:build !race

package txn

// raceEnabled reports whether tests run under the race detector.
const raceEnabled = false
