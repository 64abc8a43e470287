// Command loadtest measures what the audit module costs in front of an
// application, against plain Caddy of the same version, and whether it
// stays flat over time.
//
//	go run ./loadtest -duration 20s -conns 64 -rounds 3
//	go run ./loadtest -soak 10m -rate 1000 -conns 32
//
// It builds both Caddy binaries from this go.mod (internal/caddybin/plain
// and internal/caddybin/audit), starts a stand-in upstream (Go net/http,
// in this process), and drives every variant with the same generator and the same
// request mix (mix.go): (a) reverse_proxy, (b) plus Caddy's JSON access log
// to a file, (c) plus audit at level metadata, best_effort (what the
// production profile sets), (d) the same in strict, (e) level body with
// 4 KiB JSON bodies when the build has that level. Rounds alternate the
// variants (a b c d e a b c d e ...), each on a fresh Caddy and data
// directory, so machine noise shows in the min/median/max spread.
//
// The generator and the upstream run in this process and share the
// machine's cores with Caddy; the report gives their CPU share so that it
// can be taken into account.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"
)

func main() {
	var (
		duration = flag.Duration("duration", 20*time.Second, "measured load per variant and round")
		warmup   = flag.Duration("warmup", 3*time.Second, "unmeasured load before each measurement")
		conns    = flag.Int("conns", 64, "concurrent connections")
		rounds   = flag.Int("rounds", 3, "rounds; each runs every variant once")
		only     = flag.String("variants", "abcde", "variants to run, by letter")
		rate     = flag.Float64("rate", 0, "requests per second (0: as fast as the connections go); soak default 2000")
		latRate  = flag.Float64("latency-rate", 1000, "after each throughput run, measure latency at this fixed rate for half the duration (0: skip)")
		soak     = flag.Duration("soak", 0, "instead of the comparison, run variant c under constant load this long")
		sample   = flag.Duration("sample", 5*time.Second, "soak: sampling interval")
		profile  = flag.Duration("profile", 0, "after the rounds, take a CPU profile of variants c and d under load for this long")
		workDir  = flag.String("dir", "", "working directory (default: a new temporary one, removed afterwards)")
		keep     = flag.Bool("keep", false, "keep the working directory")
	)
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	dir := *workDir
	if dir == "" {
		d, err := os.MkdirTemp("", "caddy-audit-load-")
		if err != nil {
			fatal(err)
		}
		dir = d
		if !*keep {
			defer os.RemoveAll(dir)
		}
	}
	fmt.Printf("building plain Caddy and Caddy with caddy-audit from this go.mod into %s\n", dir)
	bins, err := buildBinaries(dir)
	if err != nil {
		fatal(err)
	}
	up, err := startUpstream()
	if err != nil {
		fatal(err)
	}
	defer up.close()
	fmt.Printf("machine: %d CPUs (%s), %s; generator and upstream share them with Caddy (no pinning)\n",
		runtime.NumCPU(), cpuModel(), runtime.Version())

	if *soak > 0 {
		r := *rate
		if r == 0 {
			r = 2000
		}
		if err := runSoak(ctx, bins, up, dir, soakOpts{duration: *soak, conns: *conns, rate: r, sample: *sample}); err != nil {
			fatal(err)
		}
		return
	}

	var variants []variant
	for _, v := range allVariants {
		if strings.Contains(*only, v.name) {
			variants = append(variants, v)
		}
	}
	b := &bench{bins: bins, up: up, dir: dir, conns: *conns, duration: *duration, warmup: *warmup, rate: *rate, latRate: *latRate, mix: buildMix(4096)}
	fmt.Printf("load: %d connections, %s warm-up + %s measured per variant, %d rounds, rate %s; latency also at %s for %s\n",
		*conns, *warmup, *duration, *rounds, rateText(*rate), rateText(*latRate), *duration/2)
	fmt.Printf("load average before: %s\n", loadAvg())
	results := make(map[string][]runStats)
	for round := 1; round <= *rounds && ctx.Err() == nil; round++ {
		for _, v := range variants {
			if ctx.Err() != nil {
				break
			}
			if v.level == "body" && !b.levelAvailable(v) {
				if round == 1 {
					fmt.Printf("round %d  (%s) %-40s not available in this build (the handler rejects `level body`)\n", round, v.name, v.title)
				}
				continue
			}
			st, err := b.run(ctx, v, round, nil)
			if err != nil {
				fatal(fmt.Errorf("variant %s round %d: %w", v.name, round, err))
			}
			fmt.Printf("round %d  (%s) %-40s %s\n", round, v.name, v.title, st.line())
			results[v.name] = append(results[v.name], st)
		}
	}
	fmt.Printf("load average after: %s\n", loadAvg())
	report(os.Stdout, variants, results)
	if *profile > 0 {
		for _, v := range variants {
			if v.name != "a" && v.name != "c" && v.name != "d" {
				continue
			}
			if err := b.profileRun(ctx, v, *profile); err != nil {
				fatal(err)
			}
		}
	}
}

func rateText(r float64) string {
	if r == 0 {
		return "unlimited (closed loop)"
	}
	return fmt.Sprintf("%.0f/s", r)
}

func cpuModel() string {
	data, _ := os.ReadFile("/proc/cpuinfo")
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "model name"); ok {
			return strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
		}
	}
	return "unknown CPU"
}

// loadAvg is /proc/loadavg: other work on the machine shows here.
func loadAvg() string {
	data, _ := os.ReadFile("/proc/loadavg")
	return strings.TrimSpace(string(data))
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "loadtest:", err)
	os.Exit(1)
}

// bench runs variants.
type bench struct {
	bins     binaries
	up       *upstream
	dir      string
	conns    int
	duration time.Duration
	warmup   time.Duration
	rate     float64
	latRate  float64
	mix      []template
	avail    map[string]bool
}

// levelAvailable asks the audit build whether it accepts v's level
// (`caddy validate` provisions the handler without opening anything).
func (b *bench) levelAvailable(v variant) bool {
	if ok, seen := b.avail[v.level]; seen {
		return ok
	}
	in, err := newInstance(v, filepath.Join(b.dir, "validate-"+v.name), b.up.addr)
	if err != nil {
		fatal(err)
	}
	path, err := in.writeConfig()
	if err != nil {
		fatal(err)
	}
	cmd := exec.Command(b.bins.audit, "validate", "--config", path, "--adapter", "caddyfile")
	cmd.Dir = in.dir
	out, err := cmd.CombinedOutput()
	ok := err == nil
	if !ok && !strings.Contains(string(out), "level") {
		fatal(fmt.Errorf("validating variant %s: %v\n%s", v.name, err, out))
	}
	if b.avail == nil {
		b.avail = make(map[string]bool)
	}
	b.avail[v.level] = ok
	return ok
}

// runStats is one measured run of one variant.
type runStats struct {
	rps            float64
	p50, p99       time.Duration
	cpuPerReq      time.Duration // Caddy's user+system CPU per response
	peakRSSKB      int64         // VmHWM
	harnessCPUPct  float64       // generator + upstream CPU, % of one core
	caddyCPUPct    float64
	requests, errs int64
	dropped        float64       // audit events dropped (best_effort) during the run
	rateP50        time.Duration // latency at the fixed rate
	rateP99        time.Duration
	rateErrs       int64
	byClass        [6]int64
}

func (s runStats) line() string {
	return fmt.Sprintf("%6.0f req/s p50 %7s p99 %7s cpu/req %5s peak RSS %3d MiB (caddy %3.0f%% cpu, generator+upstream %3.0f%%; errors %d, audit drops %.0f) | at fixed rate: p50 %6s p99 %6s",
		s.rps, fmtDur(s.p50), fmtDur(s.p99), fmtDur(s.cpuPerReq), s.peakRSSKB>>10, s.caddyCPUPct, s.harnessCPUPct, s.errs, s.dropped, fmtDur(s.rateP50), fmtDur(s.rateP99))
}

func fmtDur(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%.0fµs", float64(d)/1e3)
	default:
		return fmt.Sprintf("%.2fms", float64(d)/1e6)
	}
}

// run starts a fresh Caddy for v, warms it up, measures, and stops it.
func (b *bench) run(ctx context.Context, v variant, round int, during func(*instance)) (runStats, error) {
	in, err := newInstance(v, filepath.Join(b.dir, fmt.Sprintf("r%d-%s", round, v.name)), b.up.addr)
	if err != nil {
		return runStats{}, err
	}
	if err := in.start(b.bins); err != nil {
		return runStats{}, err
	}
	defer func() {
		_ = in.proc.stop(30 * time.Second)
		// Fresh state for every run; the DB of a long run is large.
		_ = os.RemoveAll(in.dir)
	}()
	opts := loadOpts{target: in.proxyURL(), conns: b.conns, rate: b.rate, mix: b.mix, idPrefix: fmt.Sprintf("r%d%s-", round, v.name)}
	if b.warmup > 0 {
		opts.duration = b.warmup
		runLoad(ctx, opts)
	}
	pid := in.proc.pid()
	cpu0, err := cpuTicks(pid)
	if err != nil {
		return runStats{}, err
	}
	self0, _ := cpuTicks(os.Getpid())
	if during != nil {
		go during(in)
	}
	opts.duration = b.duration
	res := runLoad(ctx, opts)
	cpu1, err := cpuTicks(pid)
	if err != nil {
		return runStats{}, err
	}
	self1, _ := cpuTicks(os.Getpid())
	hwm, err := procStatusKB(pid, "VmHWM")
	if err != nil {
		return runStats{}, err
	}
	if !in.proc.alive() {
		return runStats{}, fmt.Errorf("caddy died during the run:\n%s", tail(filepath.Join(in.dir, "caddy.log"), 20))
	}
	cpu := time.Duration(cpu1-cpu0) * time.Second / clockTick
	st := runStats{
		rps: res.rps(), p50: res.lat.quantile(0.50), p99: res.lat.quantile(0.99),
		peakRSSKB: hwm, requests: res.requests, errs: res.errors, byClass: res.byClass,
		caddyCPUPct:   100 * cpu.Seconds() / res.elapsed.Seconds(),
		harnessCPUPct: 100 * (time.Duration(self1-self0) * time.Second / clockTick).Seconds() / res.elapsed.Seconds(),
	}
	if res.requests > 0 {
		st.cpuPerReq = cpu / time.Duration(res.requests)
	}
	if v.audit {
		m, err := promValues(in.auditAdminURL() + "/metrics")
		if err != nil {
			return runStats{}, err
		}
		st.dropped = m["caddy_audit_events_dropped_total"]
	}
	if b.latRate > 0 && during == nil {
		// Latency at a rate the machine sustains: at saturation p99 is
		// queueing, not what a request costs.
		opts.duration, opts.rate = b.duration/2, b.latRate
		lr := runLoad(ctx, opts)
		st.rateP50, st.rateP99, st.rateErrs = lr.lat.quantile(0.50), lr.lat.quantile(0.99), lr.errors
	}
	return st, nil
}

// summary is min, median and max of one figure over the rounds.
type summary struct{ min, med, max float64 }

func summarize(xs []float64) summary {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return summary{}
	}
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return summary{s[0], med, s[len(s)-1]}
}
