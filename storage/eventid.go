package storage

import (
	"context"
	"errors"
	"time"

	bolt "go.etcd.io/bbolt"
)

// IDTime returns the time encoded in a ULID event id (its first 48 bits,
// Unix milliseconds), and whether id is a well-formed ULID at all: 26
// characters of the Crockford alphabet, the first at most 7. Lower case
// is accepted, as Crockford base32 is case-insensitive.
func IDTime(id string) (time.Time, bool) {
	if len(id) != 26 {
		return time.Time{}, false
	}
	var ms uint64
	for i := range len(id) {
		v := crockfordValue(id[i])
		if v < 0 || i == 0 && v > 7 {
			return time.Time{}, false
		}
		if i < 10 {
			ms = ms<<5 | uint64(v)
		}
	}
	return time.UnixMilli(int64(ms)).UTC(), true
}

// crockfordValue is the value of one ULID character, -1 if it is none.
func crockfordValue(c byte) int {
	if c >= 'a' && c <= 'z' {
		c -= 'a' - 'A'
	}
	for i := range len(crockford) {
		if crockford[i] == c {
			return i
		}
	}
	return -1
}

// errFound stops a walk once the wanted event is seen.
var errFound = errors.New("found")

// EventByID returns the event with the given ULID id, or ErrNotFound.
// There is no index by id, but none is needed: every writer derives the
// id from the event's own time (NewID(t), IDWithTail(t, ...)), so the
// event lies in the millisecond the id names, and the lookup is a query
// of that millisecond through the time index. An id that is not a ULID
// is not found; events stored with other ids (tests, hand-made imports)
// are reachable through Query only.
func (s *Store) EventByID(ctx context.Context, id string) (Event, error) {
	t, ok := IDTime(id)
	if !ok {
		return Event{}, ErrNotFound
	}
	var out Event
	f := Filter{From: t, To: t.Add(time.Millisecond)}
	err := s.viewIndexed(func(tx *bolt.Tx) error {
		return forEachMatch(ctx, tx, &f, true, nil, func(_ pos, ev *Event) error {
			// Ids are stored upper case; accept the id as typed otherwise.
			if equalFoldASCII(ev.ID, id) {
				out = *ev
				return errFound
			}
			return nil
		})
	})
	switch {
	case errors.Is(err, errFound):
		return out, nil
	case err != nil:
		return Event{}, err
	}
	return Event{}, ErrNotFound
}
