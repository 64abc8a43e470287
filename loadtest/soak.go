package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"
)

type soakOpts struct {
	duration time.Duration
	conns    int
	rate     float64
	sample   time.Duration
}

// soakSample is one observation of the running sidecar.
type soakSample struct {
	at         time.Duration
	rssKB      int64
	anonKB     int64 // RssAnon: the heap and stacks, without bbolt's file pages
	heapInuse  float64
	goroutines float64
	queue      float64
	dbBytes    int64
	recorded   float64
	dropped    float64
}

// runSoak drives variant c at a constant rate for opts.duration and samples
// RSS (all of it, and the anonymous part: bbolt maps the database file, so
// file pages it touches count in RSS and grow with the file), goroutines, the audit queue and the database size. Growth is judged
// after a warm-up of a tenth of the run (at least one minute when the run
// allows it): the Go heap, bbolt's mmap and connection pools settle first.
func runSoak(ctx context.Context, bins binaries, up *upstream, dir string, o soakOpts) error {
	v := allVariants[2]
	in, err := newInstance(v, filepath.Join(dir, "soak"), up.addr)
	if err != nil {
		return err
	}
	if err := in.start(bins); err != nil {
		return err
	}
	defer func() { _ = in.proc.stop(60 * time.Second) }()
	fmt.Printf("soak: (%s) %s, %d connections at %.0f req/s for %s, sampling every %s\n",
		v.name, v.title, o.conns, o.rate, o.duration, o.sample)

	done := make(chan *loadResult, 1)
	start := time.Now()
	var samples []soakSample
	take := func() error {
		s := soakSample{at: time.Since(start)}
		var err error
		if s.rssKB, err = procStatusKB(in.proc.pid(), "VmRSS"); err != nil {
			return err
		}
		if s.anonKB, err = procStatusKB(in.proc.pid(), "RssAnon"); err != nil {
			return err
		}
		caddyMetrics, err := promValues(in.adminURL() + "/metrics")
		if err != nil {
			return err
		}
		s.goroutines = caddyMetrics["go_goroutines"]
		s.heapInuse = caddyMetrics["go_memstats_heap_inuse_bytes"]
		audit, err := promValues(in.auditAdminURL() + "/metrics")
		if err != nil {
			return err
		}
		s.queue = audit["caddy_audit_queue_depth"]
		s.recorded = audit["caddy_audit_events_recorded_total"]
		s.dropped = audit["caddy_audit_events_dropped_total"]
		if fi, err := os.Stat(filepath.Join(in.cfg.dataDir, "audit.db")); err == nil {
			s.dbBytes = fi.Size()
		}
		samples = append(samples, s)
		fmt.Printf("  %6s  RSS %4d MiB (anon %4d MiB, Go heap %4.0f MiB)  goroutines %4.0f  queue %5.0f  db %6.1f MiB  events %9.0f  dropped %.0f\n",
			s.at.Round(time.Second), s.rssKB>>10, s.anonKB>>10, s.heapInuse/(1<<20), s.goroutines, s.queue, float64(s.dbBytes)/(1<<20), s.recorded, s.dropped)
		return nil
	}
	// Idle before the load: the goroutine baseline.
	if err := take(); err != nil {
		return err
	}
	idleBefore := samples[0]
	go func() {
		done <- runLoad(ctx, loadOpts{target: in.proxyURL(), conns: o.conns, rate: o.rate, duration: o.duration,
			mix: buildMix(4096), idPrefix: "soak-"})
	}()
	tick := time.NewTicker(o.sample)
	defer tick.Stop()
	var res *loadResult
loop:
	for {
		select {
		case res = <-done:
			break loop
		case <-tick.C:
			if err := take(); err != nil {
				return err
			}
		}
	}
	// Idle after the load: goroutines of finished connections must go.
	time.Sleep(o.sample)
	if err := take(); err != nil {
		return err
	}
	fmt.Printf("load: %d responses (%.0f req/s), %d errors, p50 %s, p99 %s\n",
		res.requests, res.rps(), res.errors, fmtDur(res.lat.quantile(0.5)), fmtDur(res.lat.quantile(0.99)))
	warm := max(o.duration/10, min(time.Minute, o.duration/3))
	var base *soakSample
	for i := range samples {
		if samples[i].at >= warm {
			base = &samples[i]
			break
		}
	}
	if base == nil || len(samples) < 3 {
		return fmt.Errorf("soak too short to judge growth: %d samples", len(samples))
	}
	loaded := samples[len(samples)-2] // the last sample under load
	idle := samples[len(samples)-1]
	var peakG float64
	var peakRSS, peakAnon, peakQ int64
	for _, s := range samples {
		if s.at >= warm && s.at <= loaded.at {
			peakG = max(peakG, s.goroutines)
			peakRSS = max(peakRSS, s.rssKB)
			peakAnon = max(peakAnon, s.anonKB)
			peakQ = max(peakQ, int64(s.queue))
		}
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "\nafter warm-up (%s)\tat warm-up\tend of load\tgrowth\tpeak\n", warm)
	fmt.Fprintf(tw, "RSS\t%d MiB\t%d MiB\t%+.1f%%\t%d MiB\n", base.rssKB>>10, loaded.rssKB>>10, 100*(float64(loaded.rssKB)/float64(base.rssKB)-1), peakRSS>>10)
	fmt.Fprintf(tw, "RSS anonymous (heap, stacks)\t%d MiB\t%d MiB\t%+.1f%%\t%d MiB\n", base.anonKB>>10, loaded.anonKB>>10, 100*(float64(loaded.anonKB)/float64(base.anonKB)-1), peakAnon>>10)
	fmt.Fprintf(tw, "Go heap in use\t%.0f MiB\t%.0f MiB\t%+.1f%%\t\n", base.heapInuse/(1<<20), loaded.heapInuse/(1<<20), 100*(loaded.heapInuse/base.heapInuse-1))
	fmt.Fprintf(tw, "goroutines\t%.0f\t%.0f\t%+.0f\t%.0f (idle: %.0f before the load, %.0f after)\n", base.goroutines, loaded.goroutines, loaded.goroutines-base.goroutines, peakG, idleBefore.goroutines, idle.goroutines)
	fmt.Fprintf(tw, "queue depth\t%.0f\t%.0f\t\t%d\n", base.queue, loaded.queue, peakQ)
	events := loaded.recorded - base.recorded
	perEvent := 0.0
	if events > 0 {
		perEvent = float64(loaded.dbBytes-base.dbBytes) / events
	}
	fmt.Fprintf(tw, "DB size\t%.1f MiB\t%.1f MiB\t%.0f B/event\t\n", float64(base.dbBytes)/(1<<20), float64(loaded.dbBytes)/(1<<20), perEvent)
	fmt.Fprintf(tw, "events dropped\t%.0f\t%.0f\t\t\n", base.dropped, loaded.dropped)
	return tw.Flush()
}
