package storage

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Integrity-chain benchmarks on a million synthetic events. They only run
// when selected:
//
//	go test ./storage -run '^$' -bench 'Chain' -benchtime 1x -timeout 30m
//
// BenchmarkChain1M builds the store once (logging its ingest rate and size
// on disk), then times full verification and a full NDJSON export of it.

const chainBenchEvents = 1_000_000

// benchEvent is a typical proxied request: the sizes of its fields are
// those of the example deployment's events (about 700 bytes stored).
func benchEvent(i int) *Event {
	t := chainBase.Add(time.Duration(i) * 30 * 24 * time.Hour / chainBenchEvents)
	return &Event{
		ID:         NewID(t),
		Time:       t,
		Kind:       KindHTTP,
		Stage:      StageResponseComplete,
		Level:      "headers",
		RequestID:  "01JD" + strconv.Itoa(1_000_000+i),
		Method:     []string{"GET", "GET", "GET", "POST", "DELETE"}[i%5],
		Scheme:     "https",
		Host:       "app.example.com",
		Path:       "/api/items/" + strconv.Itoa(i%5000),
		Query:      "page=" + strconv.Itoa(i%7),
		Proto:      "HTTP/2.0",
		Status:     []int{200, 200, 200, 201, 204, 401, 403, 404, 500}[i%9],
		Outcome:    "success",
		DurationNS: int64(1_000_000 + i%50_000),
		TTFBNS:     int64(500_000 + i%20_000),
		BytesIn:    int64(i % 2000),
		BytesOut:   int64(i % 65536),
		ClientIP:   fmt.Sprintf("10.%d.%d.%d", i%7, i%200, i%250),
		ClientPort: 30000 + i%30000,
		UserAgent:  "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
		Referer:    "https://app.example.com/dashboard",
		TLSVersion: "tls1.3",
		TLSCipher:  "TLS_AES_128_GCM_SHA256",
		User:       "user" + strconv.Itoa(i%1000),
		UserSource: "header",
		Workspace:  "ws" + strconv.Itoa(i%10),
		RequestHeaders: map[string][]string{
			"Accept":        {"application/json"},
			"Authorization": {"hmac:5f1c0a9e7b2d4c61"},
		},
		RiskScore: i % 30,
		RiskLevel: "low",
	}
}

func BenchmarkChain1M(b *testing.B) {
	if testing.Short() {
		b.Skip("a million events")
	}
	dir := b.TempDir()
	s, err := Open(filepath.Join(dir, "audit.db"), Options{CheckpointKeyPath: filepath.Join(dir, "cp.key")})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	const batch = 512
	start := time.Now()
	evs := make([]*Event, 0, batch)
	for i := 0; i < chainBenchEvents; i++ {
		evs = append(evs, benchEvent(i))
		if len(evs) == batch || i == chainBenchEvents-1 {
			if err := s.Append(evs...); err != nil {
				b.Fatal(err)
			}
			evs = evs[:0]
		}
	}
	took := time.Since(start)
	b.Logf("ingest of %d events in batches of %d through Store.Append (chain, encode, current indexes, fsync per batch): %s, %.0f events/s; file %d bytes, %.0f bytes/event",
		chainBenchEvents, batch, took.Round(time.Millisecond), chainBenchEvents/took.Seconds(), s.Size(), float64(s.Size())/chainBenchEvents)
	start = time.Now()
	cp, err := s.Checkpoint()
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("checkpoint of %d events: %s", chainBenchEvents, time.Since(start).Round(time.Microsecond))

	b.Run("Verify", func(b *testing.B) {
		var rep VerifyReport
		for b.Loop() {
			if rep, err = s.Verify(context.Background(), &cp); err != nil {
				b.Fatal(err)
			}
		}
		if !rep.OK || rep.Events != chainBenchEvents {
			b.Fatalf("%s", reportJSON(rep))
		}
		b.ReportMetric(float64(chainBenchEvents)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
		b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/verify")
	})

	b.Run("ExportNDJSON", func(b *testing.B) {
		var res ExportResult
		var written countingWriter
		peak := startPeakSampler()
		for b.Loop() {
			written = 0
			if res, err = s.ExportNDJSON(context.Background(), &written, nil); err != nil {
				b.Fatal(err)
			}
		}
		heap, rssAnon, hwm := peak.stop()
		if res.Rows != chainBenchEvents {
			b.Fatalf("%+v", res)
		}
		b.ReportMetric(float64(chainBenchEvents)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
		b.ReportMetric(float64(written)/chainBenchEvents, "bytes/line")
		b.ReportMetric(float64(heap)/(1<<20), "peak-heap-MiB")
		b.ReportMetric(float64(rssAnon)/(1<<20), "peak-RssAnon-MiB")
		if hwm > 0 {
			b.ReportMetric(float64(hwm)/(1<<20), "VmHWM-MiB")
		}
	})

	b.Run("VerifyNDJSON", func(b *testing.B) {
		f, err := os.Create(filepath.Join(dir, "export.ndjson"))
		if err != nil {
			b.Fatal(err)
		}
		bw := bufio.NewWriter(f)
		if _, err := s.ExportNDJSON(context.Background(), bw, nil); err != nil {
			b.Fatal(err)
		}
		if err := bw.Flush(); err != nil {
			b.Fatal(err)
		}
		pub, _ := s.CheckpointPublicKey()
		var rep VerifyReport
		for b.Loop() {
			if _, err := f.Seek(0, io.SeekStart); err != nil {
				b.Fatal(err)
			}
			if rep, err = VerifyNDJSON(f, &cp, pub); err != nil {
				b.Fatal(err)
			}
		}
		_ = f.Close()
		if !rep.OK {
			b.Fatalf("%s", reportJSON(rep))
		}
		b.ReportMetric(float64(chainBenchEvents)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})

	// Last: it changes the store. One user of a thousand: 1000 events.
	b.Run("EraseSubject", func(b *testing.B) {
		n := 0
		for i := 0; b.Loop(); i++ {
			if n, err = s.EraseSubject("user"+strconv.Itoa(42+i), pseudo); err != nil {
				b.Fatal(err)
			}
		}
		if n != chainBenchEvents/1000 {
			b.Fatalf("erased %d", n)
		}
		b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/subject")
	})
}

// BenchmarkChainEncode is this package's share of the ingest cost per
// event (ns/op): chainEvent (both JSON parts, a salt, two SHA-256, the
// chain head lookup and the link put) and encodeEvent. Transactions are
// rolled back every 512 events, so neither commit nor disk is timed.
func BenchmarkChainEncode(b *testing.B) {
	s := openChainStore(b)
	evs := make([]*Event, 512)
	for i := range evs {
		evs[i] = benchEvent(i)
	}
	tx, err := s.db.Begin(true)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = tx.Rollback() }()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if i == len(evs) {
			b.StopTimer()
			_ = tx.Rollback()
			if tx, err = s.db.Begin(true); err != nil {
				b.Fatal(err)
			}
			i = 0
			b.StartTimer()
		}
		e := *evs[i]
		e.Seq = uint64(i + 1)
		i++
		if err := chainEvent(tx, &e); err != nil {
			b.Fatal(err)
		}
		if _, err := encodeEvent(&e); err != nil {
			b.Fatal(err)
		}
		e.linked.release() // as putEvent does
	}
}

// BenchmarkChainAppend is Store.Append as the writer calls it: 512-event
// batches with whatever indexes exist and an fsync per batch.
func BenchmarkChainAppend(b *testing.B) { benchAppend(b, 512) }

// BenchmarkAppendSmallBatch is Store.Append with 16-event batches: what
// the writer commits when a proxy at a few thousand requests per second
// keeps it busy but not backed up. Fixed per-transaction costs show here
// and not in the 512-event benchmark above; -benchmem shows the memory
// each transaction takes.
func BenchmarkAppendSmallBatch(b *testing.B) { benchAppend(b, 16) }

// benchAppend appends copies of size bench events per Append call.
func benchAppend(b *testing.B, size int) {
	s := openChainStore(b)
	evs := make([]*Event, size)
	for i := range evs {
		evs[i] = benchEvent(i)
	}
	n := 0
	for b.Loop() {
		batch := make([]*Event, len(evs))
		for i, ev := range evs {
			e := *ev
			batch[i] = &e
		}
		if err := s.Append(batch...); err != nil {
			b.Fatal(err)
		}
		n += len(batch)
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
}

type countingWriter int64

func (w *countingWriter) Write(p []byte) (int, error) {
	*w += countingWriter(len(p))
	return len(p), nil
}

// peakSampler tracks the peak Go heap and anonymous RSS while an export
// runs. VmHWM counts bbolt's file pages too (the mmap), so it grows with
// the file however little memory the export allocates; it is reset first
// where the kernel allows (clear_refs 5).
type peakSampler struct {
	done          chan struct{}
	wg            sync.WaitGroup
	heap, rssAnon atomic.Uint64
}

func startPeakSampler() *peakSampler {
	runtime.GC()
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
	p := &peakSampler{done: make(chan struct{})}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		for {
			metrics.Read(sample)
			if v := sample[0].Value.Uint64(); v > p.heap.Load() {
				p.heap.Store(v)
			}
			if v := procStatus("RssAnon"); v > p.rssAnon.Load() {
				p.rssAnon.Store(v)
			}
			select {
			case <-p.done:
				return
			case <-t.C:
			}
		}
	}()
	return p
}

func (p *peakSampler) stop() (heap, rssAnon, hwm uint64) {
	close(p.done)
	p.wg.Wait()
	return p.heap.Load(), p.rssAnon.Load(), procStatus("VmHWM")
}

// procStatus reads a "kB" line of /proc/self/status, in bytes; 0 where
// there is none.
func procStatus(key string) uint64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range bytes.Lines(data) {
		if rest, ok := strings.CutPrefix(string(line), key+":"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}
