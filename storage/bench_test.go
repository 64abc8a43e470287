package storage

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The 1M-event benchmarks. They only run when -bench selects them, e.g.
//
//	go test ./storage -run '^$' -bench 'Ingest1M|QueryUser1M|Disk1M' -benchtime 1x
//
// Traffic comes from synth: 500 users in 50 workspaces, 2,000 addresses,
// 30 days, mixed methods, statuses and paths, ~10% suspicious.
const (
	benchEvents     = 1_000_000
	benchBatch      = 10_000
	benchUsers      = 500
	benchWorkspaces = 50
	benchIPs        = 2000
	benchSpan       = 30 * 24 * time.Hour
)

var benchStart = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

// benchDB is one 1M-event database per test process, shared by the query
// and size benchmarks so it is generated once.
var benchDB struct {
	once sync.Once
	dir  string
	path string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if benchDB.dir != "" {
		_ = os.RemoveAll(benchDB.dir)
	}
	os.Exit(code)
}

// ingestSynth appends n synthetic events to s in batches and returns the
// time spent inside Append (generation is not counted).
func ingestSynth(tb testing.TB, s *Store, n, batch int, seed uint64) time.Duration {
	tb.Helper()
	g := newSynth(seed, benchUsers, benchWorkspaces, benchIPs, benchStart, benchSpan)
	var spent time.Duration
	evs := make([]*Event, 0, batch)
	for i := 0; i < n; {
		evs = evs[:0]
		for ; i < n && len(evs) < batch; i++ {
			evs = append(evs, g.event(i, n))
		}
		start := time.Now()
		if err := s.Append(evs...); err != nil {
			tb.Fatal(err)
		}
		spent += time.Since(start)
	}
	return spent
}

// openBenchDB returns the shared 1M-event store, building it on first use.
func openBenchDB(b *testing.B) *Store {
	b.Helper()
	benchDB.once.Do(func() {
		benchDB.dir, benchDB.err = os.MkdirTemp("", "audit-bench-")
		if benchDB.err != nil {
			return
		}
		benchDB.path = filepath.Join(benchDB.dir, "audit.db")
		s, err := Open(benchDB.path, Options{})
		if err != nil {
			benchDB.err = err
			return
		}
		ingestSynth(b, s, benchEvents, benchBatch, 1)
		benchDB.err = s.Close()
	})
	if benchDB.err != nil {
		b.Fatal(benchDB.err)
	}
	s, err := Open(benchDB.path, Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	return s
}

func skipShort(b *testing.B) {
	if testing.Short() {
		b.Skip("1M-event benchmark skipped in -short mode")
	}
}

// BenchmarkIngest1M appends 1M events into an empty store in batches of
// 10,000 (what the group-commit writer does under heavy load, in bigger
// batches) and reports events per second of Append time.
func BenchmarkIngest1M(b *testing.B) {
	skipShort(b)
	var spent time.Duration
	var size int64
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		s, err := Open(filepath.Join(b.TempDir(), "audit.db"), Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		spent += ingestSynth(b, s, benchEvents, benchBatch, uint64(i)+1)
		b.StopTimer()
		size = s.Size()
		_ = s.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(benchEvents*b.N)/spent.Seconds(), "events/s")
	b.ReportMetric(float64(size)/benchEvents, "disk-B/event")
}

// BenchmarkQueryUser1M asks for the first page of 100 events of a random
// user over the last 30 days, the investigator's first click, and reports
// latency percentiles over all iterations.
func BenchmarkQueryUser1M(b *testing.B) {
	skipShort(b)
	s := openBenchDB(b)
	rng := rand.New(rand.NewPCG(7, 7))
	to := benchStart.Add(benchSpan)
	f := Filter{From: to.Add(-30 * 24 * time.Hour), To: to}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		f.User = synthUser(rng.IntN(benchUsers))
		start := time.Now()
		page, err := s.Query(f, 100, "")
		lat = append(lat, time.Since(start))
		if err != nil {
			b.Fatal(err)
		}
		if len(page.Events) != 100 {
			b.Fatalf("user %s: %d events, want a full page", f.User, len(page.Events))
		}
	}
	b.StopTimer()
	reportPercentiles(b, lat)
}

func synthUser(u int) string {
	return "user-" + string(rune('0'+u/100)) + string(rune('0'+u/10%10)) + string(rune('0'+u%10))
}

func reportPercentiles(b *testing.B, lat []time.Duration) {
	slices.Sort(lat)
	at := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
	}
	b.ReportMetric(at(0.50), "p50-ms")
	b.ReportMetric(at(0.95), "p95-ms")
	b.ReportMetric(at(0.99), "p99-ms")
}

// BenchmarkDisk1M reports the file size per event of the shared database,
// and how much of it the events and the indexes take.
func BenchmarkDisk1M(b *testing.B) {
	skipShort(b)
	s := openBenchDB(b)
	for i := 0; i < b.N; i++ {
		_ = s.Size()
	}
	var events, index int
	var detail []string
	_ = s.view(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, bk *bolt.Bucket) error {
			st := bk.Stats()
			alloc := st.BranchAlloc + st.LeafAlloc
			switch {
			case string(name) == string(bucketEvents):
				events += alloc
			case strings.HasPrefix(string(name), "idx_"):
				index += alloc
				detail = append(detail, fmt.Sprintf("%s %.1f", strings.TrimPrefix(string(name), "idx_"), float64(alloc)/benchEvents))
			}
			return nil
		})
	})
	b.ReportMetric(float64(s.Size())/benchEvents, "disk-B/event")
	b.ReportMetric(float64(events)/benchEvents, "events-B/event")
	b.ReportMetric(float64(index)/benchEvents, "index-B/event")
	b.Logf("index bytes per event: %s", strings.Join(detail, ", "))
}

// BenchmarkQueryMixed1M asks for first pages of 100 under filters an
// investigator combines, each over the last 30 days, and reports latency
// percentiles: none of them may degrade into a scan of the store.
func BenchmarkQueryMixed1M(b *testing.B) {
	skipShort(b)
	s := openBenchDB(b)
	rng := rand.New(rand.NewPCG(8, 8))
	to := benchStart.Add(benchSpan)
	yes := true
	filters := []func() Filter{
		func() Filter { return Filter{Workspace: synthWorkspace(rng.IntN(benchWorkspaces))} },
		func() Filter { return Filter{Workspace: synthWorkspace(rng.IntN(benchWorkspaces)), Suspicious: &yes} },
		func() Filter { return Filter{Workspace: synthWorkspace(rng.IntN(benchWorkspaces)), StatusClass: 5} },
		func() Filter { return Filter{StatusClass: 5, Method: "DELETE"} },
		func() Filter { return Filter{Status: 401, PathPrefix: "/login"} },
		func() Filter { return Filter{PathPrefix: "/admin/", MinRisk: 70} },
		func() Filter { return Filter{PathPrefix: "/api/users/1"} },
		func() Filter { return Filter{RiskLevel: "critical", Kind: KindHTTP} },
		func() Filter {
			return Filter{User: synthUser(rng.IntN(benchUsers)), ClientIP: "10.0.0." + string(rune('1'+rng.IntN(9)))}
		},
		func() Filter { return Filter{RequestID: "0123456789abcdef0123456789abcdef"} },
	}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		f := filters[i%len(filters)]()
		f.From, f.To = to.Add(-30*24*time.Hour), to
		start := time.Now()
		_, err := s.Query(f, 100, "")
		lat = append(lat, time.Since(start))
		if err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	reportPercentiles(b, lat)
}

func synthWorkspace(w int) string {
	return "ws-" + string(rune('0'+w/10)) + string(rune('0'+w%10))
}

// BenchmarkAggregate1M runs a workspace dashboard (one of 50 workspaces,
// 30 days: hourly series, users, status classes, top paths, failed auth,
// distinct addresses per user) and the store-wide counts that come from
// the indexes alone, and reports milliseconds per call of each.
func BenchmarkAggregate1M(b *testing.B) {
	skipShort(b)
	s := openBenchDB(b)
	ctx := context.Background()
	to := benchStart.Add(benchSpan)
	all := Filter{From: to.Add(-30 * 24 * time.Hour), To: to}
	reports := []struct {
		name string
		run  func(f Filter) error
	}{
		{"series", func(f Filter) error { _, err := s.CountByTime(ctx, f, Hourly, nil); return err }},
		{"users", func(f Filter) error { _, err := s.CountByUser(ctx, f, 10); return err }},
		{"status", func(f Filter) error { _, err := s.CountByStatusClass(ctx, f); return err }},
		{"paths", func(f Filter) error { _, err := s.TopPaths(ctx, f, 10); return err }},
		{"failed-auth", func(f Filter) error { _, err := s.FailedAuth(ctx, f, 10); return err }},
		{"ips-per-user", func(f Filter) error { _, err := s.DistinctIPsPerUser(ctx, f, 10); return err }},
	}
	spent := make([]time.Duration, len(reports))
	global := make([]time.Duration, 3)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		f := all
		f.Workspace = synthWorkspace(i % benchWorkspaces)
		for j, r := range reports {
			start := time.Now()
			if err := r.run(f); err != nil {
				b.Fatal(err)
			}
			spent[j] += time.Since(start)
		}
		for j, r := range reports[:3] {
			start := time.Now()
			if err := r.run(all); err != nil {
				b.Fatal(err)
			}
			global[j] += time.Since(start)
		}
	}
	b.StopTimer()
	for j, r := range reports {
		b.ReportMetric(float64(spent[j].Microseconds())/1000/float64(b.N), "ws-"+r.name+"-ms")
	}
	for j, r := range reports[:3] {
		b.ReportMetric(float64(global[j].Microseconds())/1000/float64(b.N), "all-"+r.name+"-ms")
	}
}

// BenchmarkWriterIngest200k sends 200,000 events through the group-commit
// Writer with its default options (batches of at most 512, one fsync per
// batch) from 4 producers: the rate a busy proxy sees, as opposed to the
// large batches of BenchmarkIngest1M.
func BenchmarkWriterIngest200k(b *testing.B) {
	skipShort(b)
	const n, producers = 200_000, 4
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		s, err := Open(filepath.Join(b.TempDir(), "audit.db"), Options{})
		if err != nil {
			b.Fatal(err)
		}
		g := newSynth(uint64(i)+1, benchUsers, benchWorkspaces, benchIPs, benchStart, benchSpan)
		evs := make([]*Event, n)
		for j := range evs {
			evs[j] = g.event(j, n)
		}
		w := NewWriter(s, WriterOptions{QueueSize: 1 << 16})
		b.StartTimer()
		start := time.Now()
		var wg sync.WaitGroup
		for p := range producers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := p; j < n; j += producers {
					if err := w.EnqueueWait(context.Background(), evs[j]); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		w.Close()
		b.ReportMetric(n/time.Since(start).Seconds(), "events/s")
		b.StopTimer()
		_ = s.Close()
		b.StartTimer()
	}
}

// BenchmarkPurge200k purges the older half of 200,000 events, workspace by
// workspace, in the default batch size, and reports events removed per
// second.
func BenchmarkPurge200k(b *testing.B) {
	skipShort(b)
	const n = 200_000
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		s, err := Open(filepath.Join(b.TempDir(), "audit.db"), Options{})
		if err != nil {
			b.Fatal(err)
		}
		ingestSynth(b, s, n, benchBatch, uint64(i)+1)
		workspaces, err := s.EventWorkspaces()
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start, removed := time.Now(), 0
		for _, ws := range workspaces {
			k, err := s.Purge(context.Background(), benchStart.Add(benchSpan/2), ws, 0)
			if err != nil {
				b.Fatal(err)
			}
			removed += k
		}
		b.ReportMetric(float64(removed)/time.Since(start).Seconds(), "events/s")
		b.StopTimer()
		_ = s.Close()
		b.StartTimer()
	}
}

// BenchmarkReindex1M rebuilds every index of the shared database in one
// transaction, as the schema migration does, and reports events per
// second. The result is identical, so the other benchmarks are unaffected.
func BenchmarkReindex1M(b *testing.B) {
	skipShort(b)
	s := openBenchDB(b)
	for i := 0; i < b.N; i++ {
		start := time.Now()
		if err := s.db.Update(reindexAll); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(benchEvents/time.Since(start).Seconds(), "events/s")
	}
}
