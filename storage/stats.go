package storage

import (
	"context"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Aggregations the event statistics of the admin API need beyond those in
// aggregate.go, built on the same walks and bounds.

// TopClientIPs returns the n client addresses with the most events
// matching f (from the address index when f is a time range).
func (s *Store) TopClientIPs(ctx context.Context, f Filter, n int) (TopCounts, error) {
	return s.topBy(ctx, f, n, idxIP, func(ev *Event) string { return ev.ClientIP })
}

// CountByOutcome returns the number of events matching f per outcome
// (success, failure); events without one (lifecycle events) are Missing.
// Outcome is not indexed, so the matching events are read.
func (s *Store) CountByOutcome(ctx context.Context, f Filter) (TopCounts, error) {
	return s.topBy(ctx, f, 2, -1, func(ev *Event) string { return ev.Outcome })
}

// MaxStepBuckets bounds the buckets of CountByStep.
const MaxStepBuckets = maxSeriesPoints

// CountByStep counts the events matching f in buckets of a fixed width,
// oldest first, empty buckets included, with each Start given in loc (nil:
// UTC). Buckets are aligned to whole multiples of step in absolute time
// (for a minute: the start of every UTC minute, which is the start of a
// local minute in every zone in use today), which is what per-minute
// series want and what CountByTime, aligned to local hours and days,
// cannot give. f.From and f.To are required: the range decides the number
// of buckets, refused above MaxStepBuckets. The indexes alone answer
// whenever they decide f.
func (s *Store) CountByStep(ctx context.Context, f Filter, step time.Duration, loc *time.Location) ([]TimeCount, error) {
	switch {
	case step <= 0:
		return nil, fmt.Errorf("%w: the bucket width must be positive", ErrBadFilter)
	case f.From.IsZero() || f.To.IsZero() || !f.From.Before(f.To):
		return nil, fmt.Errorf("%w: a series by step needs a time range with from before to", ErrBadFilter)
	}
	if loc == nil {
		loc = time.UTC
	}
	first := f.From.Truncate(step)
	n := (f.To.Sub(first) + step - 1) / step
	if n > MaxStepBuckets {
		return nil, fmt.Errorf("%w: the time range spans %d buckets, more than %d", ErrBadFilter, n, MaxStepBuckets)
	}
	counts := make([]int64, n)
	err := s.viewIndexed(func(tx *bolt.Tx) error {
		return forEachMatch(ctx, tx, &f, false, nil, func(at pos, _ *Event) error {
			if i := at.time().Sub(first) / step; i >= 0 && i < n {
				counts[i]++
			}
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	out := make([]TimeCount, n)
	for i := range out {
		out[i] = TimeCount{Start: first.Add(time.Duration(i) * step).In(loc), Count: counts[i]}
	}
	return out, nil
}
