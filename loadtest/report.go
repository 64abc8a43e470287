package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"
)

// report prints the spread of every figure per variant and its ratio to
// variant a (medians), then checks the targets of issue 8.
func report(w io.Writer, variants []variant, results map[string][]runStats) {
	fig := func(name string, f func(runStats) float64) summary {
		var xs []float64
		for _, st := range results[name] {
			xs = append(xs, f(st))
		}
		return summarize(xs)
	}
	rps := func(s runStats) float64 { return s.rps }
	p50 := func(s runStats) float64 { return float64(s.p50) }
	p99 := func(s runStats) float64 { return float64(s.p99) }
	cpu := func(s runStats) float64 { return float64(s.cpuPerReq) }
	rss := func(s runStats) float64 { return float64(s.peakRSSKB) }
	r50 := func(s runStats) float64 { return float64(s.rateP50) }
	r99 := func(s runStats) float64 { return float64(s.rateP99) }
	base := results["a"]

	fmt.Fprintln(w, "\nmin / median / max over the rounds; ratio = median / median of (a)")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "variant\treq/s\tratio\tp50\tratio\tp99\tratio\tCPU/req\tratio\tpeak RSS MiB\tratio\terrors\tdrops\t")
	for _, v := range variants {
		if len(results[v.name]) == 0 {
			fmt.Fprintf(tw, "(%s) %s\tnot available in this build\t\t\t\t\t\t\t\t\t\t\t\n", v.name, v.title)
			continue
		}
		var errs int64
		var drops float64
		for _, st := range results[v.name] {
			errs += st.errs + st.rateErrs
			drops += st.dropped
		}
		ratio := func(f func(runStats) float64) string {
			if len(base) == 0 {
				return "-"
			}
			return fmt.Sprintf("%.2f", fig(v.name, f).med/fig("a", f).med)
		}
		r, l50, l99, c, m := fig(v.name, rps), fig(v.name, p50), fig(v.name, p99), fig(v.name, cpu), fig(v.name, rss)
		fmt.Fprintf(tw, "(%s) %s\t%.0f / %.0f / %.0f\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.0f / %.0f / %.0f\t%s\t%d\t%.0f\t\n",
			v.name, v.title, r.min, r.med, r.max, ratio(rps),
			durSpread(l50), ratio(p50), durSpread(l99), ratio(p99), durSpread(c), ratio(cpu),
			m.min/1024, m.med/1024, m.max/1024, ratio(rss), errs, drops)
	}
	tw.Flush()
	if fig("a", r99).med > 0 {
		fmt.Fprintln(w, "\nlatency at the fixed rate (below saturation), min / median / max:")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "variant\tp50\tp99\tp99 added to (a)\t")
		for _, v := range variants {
			if len(results[v.name]) == 0 {
				continue
			}
			fmt.Fprintf(tw, "(%s) %s\t%s\t%s\t%s\t\n", v.name, v.title, durSpread(fig(v.name, r50)), durSpread(fig(v.name, r99)),
				fmtSigned(time.Duration(fig(v.name, r99).med-fig("a", r99).med)))
		}
		tw.Flush()
	}

	if len(base) == 0 {
		return
	}
	fmt.Fprintln(w, "\ntargets (issue 8), on medians:")
	a := fig("a", rps).med
	check := func(ok bool, format string, args ...any) {
		mark := "met   "
		if !ok {
			mark = "MISSED"
		}
		fmt.Fprintf(w, "  %s %s\n", mark, fmt.Sprintf(format, args...))
	}
	if len(results["c"]) > 0 {
		c := fig("c", rps).med
		check(c >= 0.9*a, "(c) >= 90%% of (a)'s throughput: %.1f%%", 100*c/a)
		if len(results["b"]) > 0 {
			bb := fig("b", rps).med
			check(c > bb, "(c) faster than (b), Caddy's access log: (c) %.0f req/s vs (b) %.0f req/s (%+.1f%%)", c, bb, 100*(c/bb-1))
		}
		added := time.Duration(fig("c", p99).med - fig("a", p99).med)
		check(added <= time.Millisecond, "(c) adds <= 1 ms to p99 at saturation (closed loop): %s", fmtSigned(added))
		if fig("a", r99).med > 0 {
			added := time.Duration(fig("c", r99).med - fig("a", r99).med)
			check(added <= time.Millisecond, "(c) adds <= 1 ms to p99 at the fixed rate: %s", fmtSigned(added))
		}
	}
	if len(results["d"]) > 0 {
		d := fig("d", rps).med
		check(d >= 0.5*a, "(d) >= 50%% of (a)'s throughput at this connection count: %.1f%%", 100*d/a)
	}
}

func durSpread(s summary) string {
	return fmt.Sprintf("%s / %s / %s", fmtDur(time.Duration(s.min)), fmtDur(time.Duration(s.med)), fmtDur(time.Duration(s.max)))
}

func fmtSigned(d time.Duration) string {
	if d < 0 {
		return "-" + fmtDur(-d)
	}
	return "+" + fmtDur(d)
}

// profileRun runs v once more (not counted) and takes a CPU profile from
// Caddy's admin endpoint (/debug/pprof/profile) while the load runs, then
// prints the top of it.
func (b *bench) profileRun(ctx context.Context, v variant, d time.Duration) error {
	path := filepath.Join(b.dir, "cpu-"+v.name+".pprof")
	if b.duration < d+2*time.Second {
		saved := b.duration
		b.duration = d + 2*time.Second
		defer func() { b.duration = saved }()
	}
	errc := make(chan error, 1)
	_, err := b.run(ctx, v, 0, func(in *instance) {
		errc <- fetchProfile(in.adminURL(), d, path)
	})
	if err != nil {
		return err
	}
	if err := <-errc; err != nil {
		return err
	}
	bin := b.bins.plain
	if v.audit {
		bin = b.bins.audit
	}
	out, err := exec.Command("go", "tool", "pprof", "-top", "-nodecount=35", bin, path).CombinedOutput()
	if err != nil {
		return fmt.Errorf("go tool pprof: %v\n%s", err, out)
	}
	fmt.Printf("\nCPU profile of (%s) %s under load (%s), saved in %s:\n%s", v.name, v.title, d, path, out)
	outCum, err := exec.Command("go", "tool", "pprof", "-top", "-cum", "-nodecount=35", bin, path).CombinedOutput()
	if err == nil {
		fmt.Printf("\nsorted by cumulative time:\n%s", outCum)
	}
	return nil
}

func fetchProfile(admin string, d time.Duration, path string) error {
	url := fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", admin, int(d.Seconds()))
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, strings.TrimSpace(string(b)))
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
