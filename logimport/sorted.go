package logimport

import (
	"container/heap"
	"io"
	"iter"
	"time"

	"github.com/caddy-audit/caddy-audit/storage"
)

// DefaultMaxBuffered bounds the events a Sorter holds, whatever the slack.
const DefaultMaxBuffered = 100_000

// Sorter puts a nearly ordered stream of events into event-time order, as
// the detectors need. Access logs are written when a request completes, so
// a long request appears after shorter ones that started later; a window of
// slack (a bit more than the longest request) puts them back in order.
//
// It holds the events of at most one slack window (and never more than
// MaxBuffered): an event is released once an event at least slack later
// has been read. An event that arrives after events later than it were
// already released cannot be put in place; it is still emitted (next, as
// the earliest held) and counted in OutOfOrder. Ties keep input order, so
// the output is deterministic.
type Sorter struct {
	src         *Reader
	slack       time.Duration
	maxBuffered int
	h           evHeap
	seq         uint64
	maxSeen     time.Time
	lastOut     time.Time
	outOfOrder  int64
	err         error // from src: io.EOF or a read error, returned once drained
}

// Sorted returns a Sorter over r with the given slack (negative means 0).
func Sorted(r *Reader, slack time.Duration) *Sorter {
	return &Sorter{src: r, slack: max(slack, 0), maxBuffered: DefaultMaxBuffered}
}

// SetMaxBuffered changes the bound on held events (default
// DefaultMaxBuffered); when it is reached the earliest event is released
// early, which may make later events out of order.
func (s *Sorter) SetMaxBuffered(n int) { s.maxBuffered = max(n, 1) }

// OutOfOrder counts the events emitted later than an event with a later
// time: they were more than slack late.
func (s *Sorter) OutOfOrder() int64 { return s.outOfOrder }

// Reader returns the underlying Reader, for its Stats.
func (s *Sorter) Reader() *Reader { return s.src }

// Next returns the next event in time order, io.EOF at the end, or the
// Reader's read error once the events read before it are out.
func (s *Sorter) Next() (storage.Event, error) {
	for s.err == nil {
		if s.h.Len() > 0 && (s.h.Len() >= s.maxBuffered || !s.h.items[0].ev.Time.After(s.maxSeen.Add(-s.slack))) {
			return s.pop(), nil
		}
		ev, err := s.src.Next()
		if err != nil {
			s.err = err
			break
		}
		if ev.Time.After(s.maxSeen) {
			s.maxSeen = ev.Time
		}
		s.seq++
		heap.Push(&s.h, heldEvent{ev: ev, seq: s.seq})
	}
	if s.h.Len() > 0 {
		return s.pop(), nil
	}
	return storage.Event{}, s.err
}

// All returns an iterator over the remaining events in time order; a read
// error is yielded once, last.
func (s *Sorter) All() iter.Seq2[storage.Event, error] {
	return func(yield func(storage.Event, error) bool) {
		for {
			ev, err := s.Next()
			if err == io.EOF {
				return
			}
			if !yield(ev, err) || err != nil {
				return
			}
		}
	}
}

func (s *Sorter) pop() storage.Event {
	ev := heap.Pop(&s.h).(heldEvent).ev
	if ev.Time.Before(s.lastOut) {
		s.outOfOrder++
	} else {
		s.lastOut = ev.Time
	}
	return ev
}

type heldEvent struct {
	ev  storage.Event
	seq uint64
}

// evHeap is a min-heap by time, then input order.
type evHeap struct{ items []heldEvent }

func (h *evHeap) Len() int { return len(h.items) }
func (h *evHeap) Less(i, j int) bool {
	a, b := &h.items[i], &h.items[j]
	if !a.ev.Time.Equal(b.ev.Time) {
		return a.ev.Time.Before(b.ev.Time)
	}
	return a.seq < b.seq
}
func (h *evHeap) Swap(i, j int) { h.items[i], h.items[j] = h.items[j], h.items[i] }
func (h *evHeap) Push(x any)    { h.items = append(h.items, x.(heldEvent)) }
func (h *evHeap) Pop() any {
	n := len(h.items) - 1
	x := h.items[n]
	h.items[n] = heldEvent{} // release the event's strings and maps
	h.items = h.items[:n]
	return x
}
