package storage

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Drop reasons reported to the Observer and recorded in lifecycle events.
const (
	DropQueueFull  = "queue_full"
	DropWriteError = "write_error"
	DropClosed     = "closed"
)

// ErrQueueFull means a best-effort event was dropped because the writer
// could not keep up.
var ErrQueueFull = errors.New("audit queue is full")

// Observer receives the writer's health signals (metrics live in the Caddy
// module; this package stays free of them). Methods are called from the
// writer's goroutine and from Enqueue callers, so they must be cheap and
// safe for concurrent use.
type Observer interface {
	// Committed reports a batch of n events written in d.
	Committed(n int, d time.Duration)
	// Dropped reports n best-effort events lost for reason.
	Dropped(reason string, n int)
	// WriteFailed reports a failed commit.
	WriteFailed(err error)
	// QueueDepth reports the number of events waiting.
	QueueDepth(n int)
}

// WriterOptions tunes NewWriter. The zero value is usable.
type WriterOptions struct {
	// QueueSize bounds the events waiting to be written. Default 8192.
	QueueSize int
	// MaxBatch bounds the events committed in one transaction. Default
	// 4096: with indexes and the chain, one fsync per 512 events capped
	// ingest near 45k events/s on two cores, 4096 near 80k.
	MaxBatch int
	// CommitDelay is how long a best-effort event may wait for others to
	// share its commit. A commit costs about the same for one event as
	// for dozens (the fsyncs, the pages around the append point), so under
	// steady traffic waiting a few milliseconds divides that cost by the
	// events that arrive meanwhile; the price is that a crash loses the
	// events of the window, as it loses those in the queue. A batch with a
	// strict event (Commit) is committed at once, and so is a full one.
	// Zero commits at once.
	CommitDelay time.Duration
	// Observer receives health signals; nil means none.
	Observer Observer
	// OnError is told about write failures, for logging; nil means ignore.
	OnError func(error)
	// OnCommit is handed every batch of events right after it was
	// committed, with their Seq set, in seq order; nil means nobody
	// listens. It runs on the writer's goroutine, so it must not block
	// (the detector worker hands the batch to a bounded channel and
	// counts a drop when it is full). The slice is reused after the call
	// returns: copy it to keep it. The events must not be modified.
	OnCommit func(events []*Event)
}

type pending struct {
	ev  *Event
	ack chan error // nil for best-effort events
}

// Writer is the single goroutine that writes to the store. It batches
// whatever is queued when a commit starts (group commit): under light load
// each event commits alone and at once, under heavy load one fsync carries
// hundreds.
type Writer struct {
	store *Store
	opts  WriterOptions
	queue chan pending

	mu     sync.RWMutex // held for reading while sending on queue
	closed bool
	done   chan struct{}

	gapMu sync.Mutex
	gap   dropGap
}

// dropGap describes events lost since the last successful lifecycle record.
type dropGap struct {
	counts      map[string]int
	first, last time.Time
}

// NewWriter starts a writer for s.
func NewWriter(s *Store, opts WriterOptions) *Writer {
	if opts.QueueSize <= 0 {
		opts.QueueSize = 8192
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 4096
	}
	if opts.Observer == nil {
		opts.Observer = nopObserver{}
	}
	w := &Writer{
		store: s,
		opts:  opts,
		queue: make(chan pending, opts.QueueSize),
		done:  make(chan struct{}),
	}
	go w.run()
	return w
}

// Enqueue queues ev without waiting. If the queue is full or the writer is
// closed, the event is dropped, counted, and reported in a lifecycle event
// once the store accepts writes again.
func (w *Writer) Enqueue(ev *Event) error {
	sent, err := w.trySend(pending{ev: ev})
	switch {
	case err != nil:
		w.drop(DropClosed, ev.Time)
		return err
	case !sent:
		w.drop(DropQueueFull, ev.Time)
		return ErrQueueFull
	}
	return nil
}

// Commit writes ev and waits until it is durably on disk. It waits for
// queue space rather than dropping. On error the event is not stored.
func (w *Writer) Commit(ctx context.Context, ev *Event) error {
	ack := make(chan error, 1)
	if err := w.send(ctx, pending{ev: ev, ack: ack}); err != nil {
		return err
	}
	select {
	case err := <-ack:
		return err
	case <-ctx.Done():
		// The event may still be written; the caller must treat it as not
		// recorded, which is the safe side for strict mode.
		return ctx.Err()
	}
}

// EnqueueWait queues ev, waiting for queue space instead of dropping, but
// not for the commit.
func (w *Writer) EnqueueWait(ctx context.Context, ev *Event) error {
	return w.send(ctx, pending{ev: ev})
}

// send waits for queue space, polling with backoff rather than blocking
// under the lock: a sender blocked while holding it would hold up Close,
// and a Close waiting for the lock holds up every new Enqueue, which must
// never wait.
func (w *Writer) send(ctx context.Context, p pending) error {
	for delay := 50 * time.Microsecond; ; delay = min(2*delay, 5*time.Millisecond) {
		if sent, err := w.trySend(p); sent || err != nil {
			return err
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// trySend queues p if there is room, without waiting.
func (w *Writer) trySend(p pending) (sent bool, err error) {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.closed {
		return false, ErrClosed
	}
	select {
	case w.queue <- p:
		return true, nil
	default:
		return false, nil
	}
}

// Close stops accepting events, writes everything already accepted, and
// waits for the writer goroutine to finish. It does not close the Store.
func (w *Writer) Close() {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		close(w.queue)
	}
	w.mu.Unlock()
	<-w.done
}

// Len reports the events waiting to be written.
func (w *Writer) Len() int { return len(w.queue) }

func (w *Writer) drop(reason string, at time.Time) {
	w.opts.Observer.Dropped(reason, 1)
	w.gapMu.Lock()
	defer w.gapMu.Unlock()
	w.gap.add(reason, 1, at, at)
}

// add counts n drops for reason between first and last.
func (g *dropGap) add(reason string, n int, first, last time.Time) {
	if g.counts == nil {
		g.counts = make(map[string]int)
		g.first, g.last = first, last
	}
	g.counts[reason] += n
	if first.Before(g.first) {
		g.first = first
	}
	if last.After(g.last) {
		g.last = last
	}
}

func (w *Writer) run() {
	defer close(w.done)
	batch := make([]pending, 0, w.opts.MaxBatch)
	events := make([]*Event, 0, w.opts.MaxBatch)
	// A ticker writes the record of drops that happened while nothing else
	// was being written (a queue that overflowed then went quiet).
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	delay := time.NewTimer(time.Hour)
	delay.Stop()
	var flushErr error // the last failure of an idle flush
	for {
		var first pending
		var ok bool
		select {
		case first, ok = <-w.queue:
		case <-tick.C:
			w.recordGap()
			// Index entries wait for the next commit or a query; when
			// traffic stops, neither may come soon. A failure (this one's
			// or an Append's) comes back every tick during its backoff: it
			// is reported once.
			err := w.store.FlushIndexes()
			if err != nil && err != flushErr {
				w.writeFailed(err)
			}
			flushErr = err
			continue
		}
		if !ok {
			w.recordGap()
			return
		}
		batch = w.fill(append(batch[:0], first), delay)
		w.opts.Observer.QueueDepth(len(w.queue))
		events = events[:0]
		for _, p := range batch {
			events = append(events, p.ev)
		}
		w.commit(batch, events)
	}
}

// fill adds queued events to batch up to MaxBatch. When the queue runs
// dry and the batch holds only best-effort events, it waits for more until
// CommitDelay after it started (delay is the writer's one timer).
func (w *Writer) fill(batch []pending, delay *time.Timer) []pending {
	strict := batch[0].ack != nil
	waiting := false
	defer func() {
		if waiting {
			delay.Stop()
		}
	}()
	for len(batch) < w.opts.MaxBatch {
		var p pending
		var ok bool
		select {
		case p, ok = <-w.queue:
		default:
			if strict || w.opts.CommitDelay <= 0 {
				return batch
			}
			if !waiting {
				delay.Reset(w.opts.CommitDelay)
				waiting = true
			}
			select {
			case p, ok = <-w.queue:
			case <-delay.C:
				waiting = false
				return batch
			}
		}
		if !ok {
			return batch
		}
		batch = append(batch, p)
		strict = strict || p.ack != nil
	}
	return batch
}

func (w *Writer) commit(batch []pending, events []*Event) {
	start := time.Now()
	err := w.store.Append(events...)
	if err == nil {
		w.opts.Observer.Committed(len(events), time.Since(start))
		for _, p := range batch {
			if p.ack != nil {
				p.ack <- nil
			}
		}
		if w.opts.OnCommit != nil {
			w.opts.OnCommit(events)
		}
		w.recordGap()
		return
	}
	w.writeFailed(err)
	for _, p := range batch {
		if p.ack != nil {
			p.ack <- err
		} else {
			w.drop(DropWriteError, p.ev.Time)
		}
	}
}

// writeFailed tells the observer and OnError about a failed write.
func (w *Writer) writeFailed(err error) {
	w.opts.Observer.WriteFailed(err)
	if w.opts.OnError != nil {
		w.opts.OnError(err)
	}
}

// recordGap writes one lifecycle event describing the drops since the last
// one, so the trail itself shows where it has holes. If that write fails the
// gap is kept and retried.
func (w *Writer) recordGap() {
	w.gapMu.Lock()
	gap := w.gap
	w.gap = dropGap{}
	w.gapMu.Unlock()
	if gap.counts == nil {
		return
	}
	total := 0
	counts := make(map[string]any, len(gap.counts))
	for reason, n := range gap.counts {
		counts[reason] = n
		total += n
	}
	now := time.Now().UTC()
	ev := &Event{
		ID:     NewID(now),
		Time:   now,
		Kind:   KindLifecycle,
		Action: "events_dropped",
		Details: map[string]any{
			"dropped":       total,
			"by_reason":     counts,
			"first_dropped": gap.first.UTC(),
			"last_dropped":  gap.last.UTC(),
		},
	}
	if err := w.store.Append(ev); err != nil {
		// Put the gap back, merged with drops that happened meanwhile.
		w.gapMu.Lock()
		for reason, n := range gap.counts {
			w.gap.add(reason, n, gap.first, gap.last)
		}
		w.gapMu.Unlock()
		return
	}
	w.opts.Observer.Committed(1, time.Since(now))
	if w.opts.OnCommit != nil {
		w.opts.OnCommit([]*Event{ev})
	}
}

type nopObserver struct{}

func (nopObserver) Committed(int, time.Duration) {}
func (nopObserver) Dropped(string, int)          {}
func (nopObserver) WriteFailed(error)            {}
func (nopObserver) QueueDepth(int)               {}
