package storage

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// MaxPageSize bounds one page of results.
const MaxPageSize = 1000

// MaxScan bounds the events one Query call reads. A filter that matches
// little may then return a short (even empty) page with a cursor; the
// caller keeps following cursors until there is none.
const MaxScan = 20000

// Filter selects events. Zero fields match everything.
type Filter struct {
	// From and To bound the event time: From <= time < To.
	From, To   time.Time
	User       string
	ClientIP   string
	Workspace  string
	Method     string
	Status     int
	PathPrefix string
	Kind       string
	Stage      string
	RequestID  string
}

func (f *Filter) match(ev *Event) bool {
	return (f.User == "" || ev.User == f.User) &&
		(f.ClientIP == "" || ev.ClientIP == f.ClientIP) &&
		(f.Workspace == "" || ev.Workspace == f.Workspace) &&
		(f.Method == "" || strings.EqualFold(ev.Method, f.Method)) &&
		(f.Status == 0 || ev.Status == f.Status) &&
		(f.PathPrefix == "" || strings.HasPrefix(ev.Path, f.PathPrefix)) &&
		(f.Kind == "" || ev.Kind == f.Kind) &&
		(f.Stage == "" || ev.Stage == f.Stage) &&
		(f.RequestID == "" || ev.RequestID == f.RequestID)
}

// Page is one page of a query, newest event first.
type Page struct {
	Events []Event
	// NextCursor fetches the next (older) page; empty once nothing older
	// is left. A page may be short, or empty, and still have a cursor.
	NextCursor string
}

// ErrBadCursor means a cursor was not produced by Query.
var ErrBadCursor = errors.New("invalid cursor")

// Query returns up to limit events matching f, newest first, starting after
// cursor. Pages are cut on the time index, so a cursor stays valid while new
// events are written.
func (s *Store) Query(f Filter, limit int, cursor string) (Page, error) {
	if limit <= 0 || limit > MaxPageSize {
		return Page{}, fmt.Errorf("limit must be between 1 and %d", MaxPageSize)
	}
	// start is the first index key the scan may return (exclusive when it
	// comes from a cursor).
	var start []byte
	exclusive := false
	if cursor != "" {
		c, err := base64.RawURLEncoding.DecodeString(cursor)
		if err != nil || len(c) != 17 || c[0] != 1 {
			return Page{}, ErrBadCursor
		}
		start, exclusive = c[1:], true
	} else if !f.To.IsZero() {
		start, exclusive = timeKey(f.To, 0), true
	}
	var floor []byte
	if !f.From.IsZero() {
		floor = timeKey(f.From, 0)
	}

	var page Page
	var last []byte // the last index key scanned
	err := s.view(func(tx *bolt.Tx) error {
		events := tx.Bucket(bucketEvents)
		c := tx.Bucket(bucketTimeIndex).Cursor()
		var k []byte
		if start == nil {
			k, _ = c.Last()
		} else {
			k, _ = c.Seek(start)
			if k == nil {
				k, _ = c.Last()
			}
			for k != nil && (bytes.Compare(k, start) > 0 || exclusive && bytes.Equal(k, start)) {
				k, _ = c.Prev()
			}
		}
		for scanned := 0; k != nil; k, _ = c.Prev() {
			if floor != nil && bytes.Compare(k, floor) < 0 {
				return nil
			}
			if len(page.Events) == limit || scanned == MaxScan {
				// More may match: hand out a cursor rather than hold the
				// read transaction open for a rare filter.
				page.NextCursor = encodeCursor(last)
				return nil
			}
			scanned++
			last = k
			val := events.Get(k[8:])
			if val == nil {
				continue // purged between index and record; not an error
			}
			var ev Event
			if err := decodeEvent(val, &ev); err != nil {
				return fmt.Errorf("decoding event seq %d: %w", binary.BigEndian.Uint64(k[8:]), err)
			}
			if f.match(&ev) {
				page.Events = append(page.Events, ev)
			}
		}
		return nil
	})
	return page, err
}

func encodeCursor(key []byte) string {
	// A version byte lets the cursor format change without misreading old ones.
	return base64.RawURLEncoding.EncodeToString(append([]byte{1}, key...))
}

// Get returns the event with the given sequence number.
func (s *Store) Get(seq uint64) (Event, error) {
	var ev Event
	err := s.view(func(tx *bolt.Tx) error {
		val := tx.Bucket(bucketEvents).Get(u64(seq))
		if val == nil {
			return ErrNotFound
		}
		return decodeEvent(val, &ev)
	})
	return ev, err
}
