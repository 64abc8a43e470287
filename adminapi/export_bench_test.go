package adminapi

import (
	"net/http"
	"net/http/httptest"
	"runtime"
	"runtime/metrics"
	"strconv"
	"testing"
	"time"

	"github.com/caddy-audit/caddy-audit/storage"
)

// discardWriter is a ResponseWriter that keeps nothing of the body, so a
// benchmark measures the export rather than a recorder's buffer.
type discardWriter struct {
	h     http.Header
	bytes int64
}

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) WriteHeader(int)             {}
func (d *discardWriter) Write(p []byte) (int, error) { d.bytes += int64(len(p)); return len(p), nil }

// heapSampler records the largest live heap seen while it runs, read
// from runtime/metrics (no stop-the-world, unlike ReadMemStats).
type heapSampler struct {
	stop chan struct{}
	done chan uint64
}

func sampleHeap(every time.Duration) *heapSampler {
	s := &heapSampler{stop: make(chan struct{}), done: make(chan uint64)}
	go func() {
		sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		var peak uint64
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			metrics.Read(sample)
			peak = max(peak, sample[0].Value.Uint64())
			select {
			case <-s.stop:
				s.done <- peak
				return
			case <-tick.C:
			}
		}
	}()
	return s
}

func (s *heapSampler) peak() uint64 {
	close(s.stop)
	return <-s.done
}

// BenchmarkExportCSV exports benchExportRows realistic events as CSV
// through the HTTP handler and reports rows/s and the peak live heap
// during the export (MB above what was live before it started):
//
//	go test ./adminapi -run '^$' -bench BenchmarkExportCSV -benchtime 3x
func BenchmarkExportCSV(b *testing.B) {
	for _, format := range []string{"csv", "ocsf"} {
		b.Run(format, func(b *testing.B) { benchExport(b, format) })
	}
}

const benchExportRows = 100_000

func benchExport(b *testing.B, format string) {
	e := newEnv(b, nil)
	e.rec = nil
	batch := make([]*storage.Event, 0, 1000)
	for i := range benchExportRows {
		at := t0.Add(time.Duration(i) * 10 * time.Millisecond)
		batch = append(batch, &storage.Event{ID: storage.NewID(at), Time: at, Kind: storage.KindHTTP, Stage: storage.StageResponseComplete,
			RequestID: "req-" + strconv.Itoa(i), Method: "GET", Scheme: "https", Host: "app.example", Path: "/api/items/" + strconv.Itoa(i%500),
			Query: "page=" + strconv.Itoa(i%7), Proto: "HTTP/1.1", Status: []int{200, 200, 200, 404, 401}[i%5], Outcome: "success",
			DurationNS: int64(i%900) * 1000, BytesOut: 2048, ClientIP: "192.0.2." + strconv.Itoa(i%250), ClientPort: 40000 + i%20000,
			UserAgent: "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
			User:      "user" + strconv.Itoa(i%300), UserSource: "header", Workspace: []string{"acme", "globex"}[i%2], RiskScore: i % 60, RiskLevel: "low"})
		if len(batch) == cap(batch) {
			e.seed(batch...)
			batch = batch[:0]
		}
	}
	secret := e.key("admin", "", nil)
	b.ResetTimer()
	var peak, base uint64
	var bytes int64
	for range b.N {
		runtime.GC()
		sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		metrics.Read(sample)
		base = sample[0].Value.Uint64()
		s := sampleHeap(time.Millisecond)
		req := httptest.NewRequest(http.MethodGet, "/api/v1/events/export?format="+format, nil)
		req.Header.Set("Authorization", "Bearer "+secret)
		w := &discardWriter{h: http.Header{}}
		e.h.ServeHTTP(w, req)
		if p := s.peak(); p > base {
			peak = max(peak, p-base)
		}
		if got := w.h.Get("X-Export-Rows"); got != strconv.Itoa(benchExportRows) {
			b.Fatalf("rows = %s", got)
		}
		bytes = w.bytes
	}
	b.ReportMetric(float64(benchExportRows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MB")
	b.ReportMetric(float64(bytes)/(1<<20), "body-MB")
}
