package storage

import (
	"errors"
	"testing"
	"time"
)

// FuzzCursor: decodeCursor survives any string; a decoded cursor encodes
// back to one that decodes to the same position; every position round
// trips; and a forged cursor given to Query either is refused with
// ErrBadCursor or pages validly: only events strictly older than the
// cursor's position, newest first, none twice, to the end.
func FuzzCursor(f *testing.F) {
	s := openTemp(f, Options{})
	base := time.Date(2025, 3, 14, 15, 0, 0, 0, time.UTC)
	var evs []*Event
	for i := range 30 {
		// Pairs of events share a time, so positions differ by seq only.
		at := base.Add(time.Duration(i/2) * time.Second)
		evs = append(evs, &Event{ID: NewID(at), Time: at, Kind: KindHTTP, User: []string{"alice", "bob", "carol"}[i%3], Status: 200 + i%2*201})
	}
	if err := s.Append(evs...); err != nil {
		f.Fatal(err)
	}
	mid, err := s.Query(Filter{}, 7, "")
	if err != nil {
		f.Fatal(err)
	}
	for _, c := range []string{
		"", mid.NextCursor, encodeCursor(posOf(base.UnixNano(), 2)), encodeCursor(maxPos), encodeCursor(pos{}),
		"AQ", "AQAAAAAAAAAAAAAAAAAAAAE", "AX__________________________", "!!", "AQAAAAAAAAAAAAAAAAAAAA==", "AgAAAAAAAAAAAAAAAAAAAAAA",
	} {
		f.Add(c, uint64(base.UnixNano()), uint64(3), uint8(5))
	}
	f.Fuzz(func(t *testing.T, cursor string, pt, ps uint64, limit uint8) {
		if got, err := decodeCursor(encodeCursor(pos{pt, ps})); err != nil || got != (pos{pt, ps}) {
			t.Fatalf("position {%d %d} round trips to %v, %v", pt, ps, got, err)
		}
		at, err := decodeCursor(cursor)
		if err == nil {
			if again, err := decodeCursor(encodeCursor(at)); err != nil || again != at {
				t.Fatalf("%q: re-encoded cursor decodes to %v, %v; want %v", cursor, again, err, at)
			}
		} else if !errors.Is(err, ErrBadCursor) {
			t.Fatalf("%q: error %v is not ErrBadCursor", cursor, err)
		}

		n := 1 + int(limit)%10
		seen := map[uint64]bool{}
		prev := pos{}
		for pages, c := 0, cursor; ; pages++ {
			page, qerr := s.Query(Filter{}, n, c)
			if qerr != nil {
				if c != cursor || !errors.Is(qerr, ErrBadCursor) || err == nil && cursor != "" {
					t.Fatalf("%q (page %d): %v", cursor, pages, qerr)
				}
				return
			}
			if len(page.Events) > n || pages > len(evs)+2 {
				t.Fatalf("%q: page %d of %d events for limit %d", cursor, pages, len(page.Events), n)
			}
			for i := range page.Events {
				ev := &page.Events[i]
				p := posOf(timeNS(ev.Time), ev.Seq)
				if cursor != "" && err == nil && p.cmp(at) >= 0 {
					t.Fatalf("%q: event at %v is not older than the cursor's %v", cursor, p, at)
				}
				if len(seen) > 0 && p.cmp(prev) >= 0 {
					t.Fatalf("%q: event at %v after %v: not newest first", cursor, p, prev)
				}
				if seen[ev.Seq] {
					t.Fatalf("%q: event %d returned twice", cursor, ev.Seq)
				}
				seen[ev.Seq], prev = true, p
			}
			if page.NextCursor == "" {
				break
			}
			c = page.NextCursor
		}
		if cursor == "" && len(seen) != len(evs) {
			t.Fatalf("a walk from the start saw %d of %d events", len(seen), len(evs))
		}
	})
}
