package storage

import (
	"crypto/rand"
	"encoding/binary"
	"time"
)

// crockford is the ULID alphabet: no I, L, O or U, so ids read aloud well.
const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// NewID returns a ULID for t: 48 bits of Unix milliseconds followed by 80
// random bits, as 26 Crockford base32 characters. Ids sort by time.
func NewID(t time.Time) string {
	var tail [10]byte
	_, _ = rand.Read(tail[:]) // crypto/rand.Read never fails on supported platforms
	return IDWithTail(t, tail)
}

// IDWithTail is NewID with the 80 low bits given: replays and imports
// derive them from their input so the same input always gets the same id.
func IDWithTail(t time.Time, tail [10]byte) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(t.UnixMilli())<<16)
	copy(b[6:], tail[:])
	var out [26]byte
	// 128 bits as 26 five-bit groups, the first group holding 3 bits.
	hi := binary.BigEndian.Uint64(b[:8])
	lo := binary.BigEndian.Uint64(b[8:])
	for i := 25; i >= 0; i-- {
		out[i] = crockford[lo&31]
		lo = lo>>5 | hi<<59
		hi >>= 5
	}
	return string(out[:])
}

// Outcome is an HTTP status's outcome as events record it: success for
// 2xx and 3xx, failure otherwise (including no status at all).
func Outcome(status int) string {
	if status >= 200 && status < 400 {
		return "success"
	}
	return "failure"
}
