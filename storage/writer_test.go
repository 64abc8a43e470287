package storage

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// countingObserver records what the writer reports.
type countingObserver struct {
	committed, writeFails atomic.Int64
	mu                    sync.Mutex
	dropped               map[string]int
}

func (o *countingObserver) Committed(n int, _ time.Duration) { o.committed.Add(int64(n)) }
func (o *countingObserver) WriteFailed(error)                { o.writeFails.Add(1) }
func (o *countingObserver) QueueDepth(int)                   {}
func (o *countingObserver) Dropped(reason string, n int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.dropped == nil {
		o.dropped = map[string]int{}
	}
	o.dropped[reason] += n
}

func (o *countingObserver) drops(reason string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.dropped[reason]
}

func TestWriterFlushesEverythingOnClose(t *testing.T) {
	s := openTemp(t, Options{})
	obs := &countingObserver{}
	w := NewWriter(s, WriterOptions{QueueSize: 100000, MaxBatch: 64, Observer: obs})
	const n = 5000
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < n/8; i++ {
				if err := w.Enqueue(&Event{ID: fmt.Sprintf("%d-%d", g, i), Time: time.Now()}); err != nil {
					t.Error(err)
				}
			}
		}(g)
	}
	wg.Wait()
	w.Close()
	if got := s.Count(); got != n {
		t.Fatalf("stored %d events, want %d", got, n)
	}
	if err := w.Enqueue(&Event{Time: time.Now()}); !errors.Is(err, ErrClosed) {
		t.Fatalf("enqueue after close: %v", err)
	}
	if err := w.Commit(context.Background(), &Event{Time: time.Now()}); !errors.Is(err, ErrClosed) {
		t.Fatalf("commit after close: %v", err)
	}
}

func TestWriterCommitIsDurableBeforeReturn(t *testing.T) {
	s := openTemp(t, Options{})
	w := NewWriter(s, WriterOptions{})
	defer w.Close()
	ev := &Event{ID: "strict", Time: time.Now()}
	if err := w.Commit(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	if ev.Seq == 0 {
		t.Fatal("committed event has no sequence")
	}
	if got, err := s.Get(ev.Seq); err != nil || got.ID != "strict" {
		t.Fatalf("event not readable after Commit returned: %+v %v", got, err)
	}
}

func TestWriterQueueFullDropsAndReportsGap(t *testing.T) {
	s := openTemp(t, Options{})
	obs := &countingObserver{}
	w := NewWriter(s, WriterOptions{QueueSize: 1, MaxBatch: 1, Observer: obs})
	// Hold the write lock so the writer goroutine blocks on its first
	// commit and the queue stays full.
	tx, err := s.db.Begin(true)
	if err != nil {
		t.Fatal(err)
	}
	var full int
	for i := 0; i < 50; i++ {
		if err := w.Enqueue(&Event{ID: fmt.Sprint(i), Time: time.Now()}); errors.Is(err, ErrQueueFull) {
			full++
		}
	}
	_ = tx.Rollback()
	w.Close()
	if full == 0 || obs.drops(DropQueueFull) != full {
		t.Fatalf("queue-full drops: returned %d, observed %d", full, obs.drops(DropQueueFull))
	}
	page, err := s.Query(Filter{Kind: KindLifecycle}, 10, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Events) != 1 || page.Events[0].Action != "events_dropped" {
		t.Fatalf("want one events_dropped lifecycle event, got %+v", page.Events)
	}
	if got := page.Events[0].Details["dropped"]; fmt.Sprint(got) != fmt.Sprint(full) {
		t.Errorf("lifecycle event reports %v dropped, want %d", got, full)
	}
	if stored := s.Count(); stored != 50-full+1 {
		t.Errorf("stored %d events, want the %d accepted plus the gap record", stored, 50-full)
	}
}

func TestWriterDiskFull(t *testing.T) {
	s := openTemp(t, Options{MaxSize: 1 << 20})
	obs := &countingObserver{}
	w := NewWriter(s, WriterOptions{Observer: obs})
	defer w.Close()
	big := strings.Repeat("y", 8000)
	var err error
	for i := 0; i < 500 && err == nil; i++ {
		err = w.Commit(context.Background(), &Event{ID: fmt.Sprint(i), Time: time.Now(), UserAgent: big})
	}
	if !errors.Is(err, ErrFull) {
		t.Fatalf("strict commit on a full store: got %v, want ErrFull", err)
	}
	if obs.writeFails.Load() == 0 {
		t.Error("write failure not reported")
	}
	before := s.Count()
	if err := w.Enqueue(&Event{ID: "lost", Time: time.Now(), UserAgent: big}); err != nil {
		t.Fatalf("best-effort enqueue must not fail synchronously: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for obs.drops(DropWriteError) == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if obs.drops(DropWriteError) != 1 {
		t.Fatalf("best-effort event on a full store: %d write_error drops, want 1", obs.drops(DropWriteError))
	}
	if s.Count() != before {
		t.Fatal("a failed write changed the store")
	}
}

func TestWriterCommitHonoursContext(t *testing.T) {
	s := openTemp(t, Options{})
	w := NewWriter(s, WriterOptions{QueueSize: 1, MaxBatch: 1})
	tx, err := s.db.Begin(true) // stall the writer
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := w.Commit(ctx, &Event{Time: time.Now()}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want deadline exceeded", err)
	}
	_ = tx.Rollback()
	w.Close()
}

func BenchmarkWriterEnqueue(b *testing.B) {
	s := openTemp(b, Options{})
	w := NewWriter(s, WriterOptions{QueueSize: 1 << 16})
	ev := Event{Kind: KindHTTP, Method: "GET", Path: "/api/items/42", Status: 200, User: "alice", ClientIP: "10.1.2.3", UserAgent: "Mozilla/5.0"}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			e := ev
			e.Time = time.Now()
			for w.Enqueue(&e) != nil {
				time.Sleep(time.Microsecond) // queue full: let the writer catch up
			}
		}
	})
	b.StopTimer()
	w.Close()
}

func TestWriterOnCommitSeesEveryEventInSeqOrder(t *testing.T) {
	s := openTemp(t, Options{})
	var mu sync.Mutex
	var seqs []uint64
	w := NewWriter(s, WriterOptions{MaxBatch: 7, OnCommit: func(evs []*Event) {
		mu.Lock()
		defer mu.Unlock()
		for _, ev := range evs {
			seqs = append(seqs, ev.Seq)
		}
	}})
	now := time.Now()
	for range 100 {
		if err := w.EnqueueWait(context.Background(), &Event{ID: NewID(now), Time: now, Kind: KindHTTP}); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	mu.Lock()
	defer mu.Unlock()
	if len(seqs) != 100 {
		t.Fatalf("OnCommit saw %d events, want 100", len(seqs))
	}
	for i, seq := range seqs {
		if seq != uint64(i+1) {
			t.Fatalf("event %d has seq %d", i, seq)
		}
	}
}

// batchObserver records the size of every commit.
type batchObserver struct {
	countingObserver
	mu      sync.Mutex
	batches []int
}

func (o *batchObserver) Committed(n int, d time.Duration) {
	o.countingObserver.Committed(n, d)
	o.mu.Lock()
	defer o.mu.Unlock()
	o.batches = append(o.batches, n)
}

func (o *batchObserver) sizes() []int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]int(nil), o.batches...)
}

// With a commit delay far longer than the test, best-effort events wait
// together, and only a strict event, a full batch or Close commits them:
// a test that hung here would mean the writer waited the delay out.
func TestWriterCommitDelay(t *testing.T) {
	ev := func(i int) *Event { return &Event{ID: fmt.Sprint(i), Time: time.Now()} }
	t.Run("a strict event commits the waiting ones at once", func(t *testing.T) {
		s := openTemp(t, Options{})
		obs := &batchObserver{}
		w := NewWriter(s, WriterOptions{CommitDelay: time.Hour, Observer: obs})
		defer w.Close()
		for i := range 5 {
			if err := w.Enqueue(ev(i)); err != nil {
				t.Fatal(err)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := w.Commit(ctx, ev(5)); err != nil {
			t.Fatal(err)
		}
		if got := s.Count(); got != 6 {
			t.Fatalf("stored %d events after the strict commit, want 6", got)
		}
		if sizes := obs.sizes(); len(sizes) > 2 || sizes[len(sizes)-1] < 2 {
			t.Fatalf("commits %v: the best-effort events did not wait for company", sizes)
		}
	})
	t.Run("a full batch commits without waiting", func(t *testing.T) {
		s := openTemp(t, Options{})
		obs := &batchObserver{}
		w := NewWriter(s, WriterOptions{CommitDelay: time.Hour, MaxBatch: 8, Observer: obs})
		defer w.Close()
		for i := range 8 {
			if err := w.Enqueue(ev(i)); err != nil {
				t.Fatal(err)
			}
		}
		for deadline := time.Now().Add(time.Minute); obs.committed.Load() < 8; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("a full batch of 8 was not committed; commits %v", obs.sizes())
			}
		}
	})
	t.Run("close commits what waits", func(t *testing.T) {
		s := openTemp(t, Options{})
		obs := &batchObserver{}
		w := NewWriter(s, WriterOptions{CommitDelay: time.Hour, Observer: obs})
		for i := range 3 {
			if err := w.Enqueue(ev(i)); err != nil {
				t.Fatal(err)
			}
		}
		w.Close()
		if got := s.Count(); got != 3 {
			t.Fatalf("stored %d events after Close, want 3", got)
		}
	})
}
