package storage

import (
	"fmt"
	"syscall"
	"testing"
	"time"
)

// cpuTime is the process's user and system CPU time: what a commit costs
// both cores, where the benchmark's own clock sees only the wait.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkAppendProxyLoad is Store.Append as the writer calls it behind a
// busy proxy: the load harness's population (20 users in 4 workspaces, 21
// addresses), events in time order, on a store that already holds 100k of
// them, at the batch sizes the writer commits. It reports CPU time per
// event (generating the events included, about 2 µs) and the pages each
// Append writes, flushes of the deferred index entries included: what
// the batch size and the deferral change.
func BenchmarkAppendProxyLoad(b *testing.B) {
	for _, size := range []int{16, 64, 256, 1024} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			s := openTemp(b, Options{})
			start := time.Now().Add(-time.Hour)
			g := newSynth(7, 20, 4, 21, start, time.Hour)
			const prefill = 100_000
			for i := 0; i < prefill; i += 10_000 {
				evs := make([]*Event, 0, 10_000)
				for j := i; j < i+10_000; j++ {
					evs = append(evs, g.event(j, prefill+b.N*size+size))
				}
				if err := s.Append(evs...); err != nil {
					b.Fatal(err)
				}
			}
			before := s.db.Stats().TxStats
			i := prefill
			n := 0
			cpu0 := cpuTime()
			b.ResetTimer()
			for b.Loop() {
				b.StopTimer()
				evs := make([]*Event, size)
				for j := range evs {
					evs[j] = g.event(i, prefill+b.N*size+size)
					i++
				}
				b.StartTimer()
				if err := s.Append(evs...); err != nil {
					b.Fatal(err)
				}
				n += size
			}
			after := s.db.Stats().TxStats
			b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(n), "cpu-µs/event")
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(n), "µs/event")
			b.ReportMetric(float64(after.GetWrite()-before.GetWrite())/float64(b.N), "pages/commit")
		})
	}
}
