//go:build !race

package storage

// raceSlowdown divides the iterations of the property tests under the race
// detector, which makes decoding events about ten times slower.
const raceSlowdown = 1
