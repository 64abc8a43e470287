package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/caddy-audit/caddy-audit/policy"
	"github.com/caddy-audit/caddy-audit/storage"
)

// The reliability tests start real Caddy processes (both builds, from this
// go.mod) and put them under load, so they only run when asked:
//
//	LOADTEST_RELIABILITY=short go test -count=1 -v -run Reliability ./loadtest   # CI, about a minute
//	LOADTEST_RELIABILITY=long  go test -count=1 -v -run Reliability -timeout 30m ./loadtest
//
// They assert counts (lost, duplicated, failed), never timings. The disk
// full tests mount a tmpfs and therefore need root; they skip otherwise.

// scale is how long the tests drive load: seconds in the short form.
type scale struct {
	load  time.Duration // load per test phase
	conns int
	big   int64 // bytes of the huge request body
}

var (
	relBins    binaries
	relBinsDir string
	relBinsErr error
	relOnce    sync.Once
)

func TestMain(m *testing.M) {
	code := m.Run()
	if relBinsDir != "" {
		os.RemoveAll(relBinsDir)
	}
	os.Exit(code)
}

func reliability(t *testing.T) scale {
	t.Helper()
	var s scale
	switch os.Getenv("LOADTEST_RELIABILITY") {
	case "short":
		s = scale{load: 6 * time.Second, conns: 16, big: 64 << 20}
	case "long":
		s = scale{load: 60 * time.Second, conns: 64, big: 1 << 30}
	default:
		t.Skip("set LOADTEST_RELIABILITY=short or long to run the reliability tests (they start Caddy processes)")
	}
	relOnce.Do(func() {
		relBinsDir, relBinsErr = os.MkdirTemp("", "caddy-audit-reliability-bin-")
		if relBinsErr == nil {
			relBins, relBinsErr = buildBinaries(relBinsDir)
		}
	})
	if relBinsErr != nil {
		t.Fatal(relBinsErr)
	}
	return s
}

// testUpstream starts the stand-in app, tracking request ids.
func testUpstream(t *testing.T) *upstream {
	t.Helper()
	up, err := startUpstream()
	if err != nil {
		t.Fatal(err)
	}
	up.track.Store(true)
	t.Cleanup(up.close)
	return up
}

// auditInstance prepares (does not start) an audit Caddy in a test dir.
func auditInstance(t *testing.T, up *upstream, level, mode string) *instance {
	t.Helper()
	v := variant{name: "t", audit: true, level: level, mode: mode}
	in, err := newInstance(v, t.TempDir(), up.addr)
	if err != nil {
		t.Fatal(err)
	}
	return in
}

func startInstance(t *testing.T, in *instance) {
	t.Helper()
	if err := in.start(relBins); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if in.proc.alive() {
			in.proc.kill()
		}
	})
}

// outcomes collects what the generator saw, per request id.
type outcomes struct {
	mu  sync.Mutex
	all map[string]outcome
	gen map[string]int // which Caddy process generation answered
	cur int
}

func newOutcomes() *outcomes {
	return &outcomes{all: make(map[string]outcome), gen: make(map[string]int)}
}

func (o *outcomes) add(x outcome) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.all[x.id] = x
	o.gen[x.id] = o.cur
}

func (o *outcomes) nextGeneration() {
	o.mu.Lock()
	o.cur++
	o.mu.Unlock()
}

// answered is a request that got a whole response.
func answered(x outcome) bool { return x.err == nil && x.status != 0 }

// eventIndex counts stored events per stage and request id.
type eventIndex struct {
	count     map[string]map[string]int // stage -> request id -> events
	byID      map[string]storage.Event  // response_complete events by request id
	lifecycle []storage.Event
}

func indexEvents(evs []storage.Event) eventIndex {
	ix := eventIndex{count: make(map[string]map[string]int), byID: make(map[string]storage.Event)}
	for _, ev := range evs {
		switch ev.Kind {
		case "http":
			if ix.count[ev.Stage] == nil {
				ix.count[ev.Stage] = make(map[string]int)
			}
			ix.count[ev.Stage][ev.RequestID]++
			if ev.Stage == "response_complete" {
				ix.byID[ev.RequestID] = ev
			}
		case "lifecycle":
			ix.lifecycle = append(ix.lifecycle, ev)
		}
	}
	return ix
}

// checkNoDuplicates fails t if a (stage, request id) pair is stored more
// than once.
func (ix eventIndex) checkNoDuplicates(t *testing.T) {
	t.Helper()
	var d []string
	for stage, ids := range ix.count {
		for id, n := range ids {
			if n > 1 {
				d = append(d, fmt.Sprintf("%s/%s x%d", stage, id, n))
			}
		}
	}
	if len(d) > 0 {
		t.Errorf("%d events stored twice, e.g. %v", len(d), d[:min(len(d), 5)])
	}
}

// droppedRecorded sums the `dropped` counts of events_dropped lifecycle
// events: the gaps the trail itself admits to.
func (ix eventIndex) droppedRecorded() int {
	n := 0
	for _, ev := range ix.lifecycle {
		if ev.Action == "events_dropped" {
			if v, ok := ev.Details["dropped"].(float64); ok {
				n += int(v)
			}
		}
	}
	return n
}

// restartAndExport stops Caddy gracefully (which flushes the queue), starts
// it again on the same data, exports every event and verifies the chain.
func restartAndExport(t *testing.T, in *instance) eventIndex {
	t.Helper()
	if in.proc.alive() {
		if err := in.proc.stop(60 * time.Second); err != nil {
			t.Fatal(err)
		}
	}
	startInstance(t, in)
	ac, err := newAdminClient(in.auditAdminURL(), in.cfg.dataDir)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	evs, err := ac.exportEvents(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := ac.verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("integrity: chain of %d events verifies (last seq %d)", rep.Events, rep.LastSeq)
	return indexEvents(evs)
}

func auditMetrics(t *testing.T, in *instance) map[string]float64 {
	t.Helper()
	m, err := promValues(in.auditAdminURL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestReliabilityKill9Strict kills the audit Caddy with SIGKILL under load
// in strict mode and starts it again: every request that got a response,
// and every request the upstream saw, has its request_received event;
// nothing is stored twice; the chain verifies.
func TestReliabilityKill9Strict(t *testing.T) {
	s := reliability(t)
	up := testUpstream(t)
	in := auditInstance(t, up, "metadata", "strict")
	startInstance(t, in)
	outs := newOutcomes()
	killed := make(chan struct{})
	go func() {
		defer close(killed)
		time.Sleep(s.load / 3)
		outs.nextGeneration()
		in.proc.kill()
		if err := in.start(relBins); err != nil {
			t.Error(err)
		}
		outs.nextGeneration()
	}()
	res := runLoad(context.Background(), loadOpts{target: in.proxyURL(), conns: s.conns, duration: s.load,
		mix: buildMix(1024), idPrefix: "k9-", onDone: outs.add})
	<-killed
	ix := restartAndExport(t, in)
	seen := up.seenIDs()

	var responded, refused, before, after, lostComplete int
	for id, x := range outs.all {
		if !answered(x) {
			continue
		}
		responded++
		if x.status == 503 && !x.fromUp {
			refused++
			continue
		}
		if n := ix.count["request_received"][id]; n != 1 {
			t.Errorf("request %s got %d but has %d request_received events", id, x.status, n)
		}
		switch outs.gen[id] {
		case 0:
			before++
			// Answered by the killed process: its response_complete
			// event may have been in the queue (only request_received is
			// committed before forwarding).
			if ix.count["response_complete"][id] == 0 {
				lostComplete++
			}
		case 2:
			after++
			if n := ix.count["response_complete"][id]; n != 1 {
				t.Errorf("request %s answered after the restart has %d response_complete events", id, n)
			}
		}
	}
	for id := range seen {
		if strings.HasPrefix(id, "k9-") && ix.count["request_received"][id] != 1 {
			t.Errorf("the upstream saw %s, which has %d request_received events", id, ix.count["request_received"][id])
		}
	}
	ix.checkNoDuplicates(t)
	if before == 0 || after == 0 {
		t.Errorf("load did not span the kill: %d answers before, %d after", before, after)
	}
	t.Logf("kill -9 in strict mode: %d answered (%d by the killed process, %d after the restart, %d refused 503), %d transport errors during the kill, upstream saw %d; request_received missing: 0; duplicates: 0; response_complete lost in the crash: %d of %d",
		responded, before, after, refused, res.errors, len(seen), lostComplete, before)
}

// TestReliabilityReloadUnderLoad runs `caddy reload` five times under load,
// each time with a changed response header: no request fails because of
// the module, no event is lost or stored twice, and the recorded-events
// counter keeps counting. The same reloads against plain Caddy tell
// Caddy's own behaviour from the module's: on a reload Caddy closes the
// old server's keep-alive connections, and a non-idempotent request that a
// client had just written on one of them fails with a reset (Go's client
// retries only idempotent ones). Those resets are counted for both builds
// and are not failures of the module; any other failure (an error status
// from Caddy itself, another transport error) is.
func TestReliabilityReloadUnderLoad(t *testing.T) {
	s := reliability(t)
	plain := reloadRun(t, s, false)
	audit := reloadRun(t, s, true)
	t.Logf("5 reloads under load: plain Caddy %d of %d requests reset by the connection handover, %d other failures; audit build %d of %d reset, %d other failures",
		plain.reset, plain.total, plain.other, audit.reset, audit.total, audit.other)
	if plain.other > 0 || audit.other > 0 {
		t.Errorf("requests failed other than by a keep-alive reset: plain %d, audit %d", plain.other, audit.other)
	}
}

type reloadFailures struct{ total, reset, other int }

// handoverReset says whether err is the client side of Caddy closing a
// keep-alive connection of the old config while a request was on it.
func handoverReset(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "connection reset by peer") ||
		strings.Contains(msg, "server closed idle connection") ||
		strings.HasSuffix(msg, ": EOF")
}

func reloadRun(t *testing.T, s scale, audit bool) reloadFailures {
	up := testUpstream(t)
	var in *instance
	if audit {
		in = auditInstance(t, up, "metadata", "best_effort")
	} else {
		var err error
		if in, err = newInstance(allVariants[0], t.TempDir(), up.addr); err != nil {
			t.Fatal(err)
		}
	}
	in.cfg.extra = "\theader X-Reload-Gen 0"
	startInstance(t, in)
	outs := newOutcomes()
	var recorded []float64
	reloaded := make(chan struct{})
	go func() {
		defer close(reloaded)
		for i := 1; i <= 5; i++ {
			time.Sleep(s.load / 7)
			in.cfg.extra = fmt.Sprintf("\theader X-Reload-Gen %d", i)
			path, err := in.writeConfig()
			if err == nil {
				err = in.proc.reload(path)
			}
			if err != nil {
				t.Error(err)
				return
			}
			if audit {
				time.Sleep(100 * time.Millisecond)
				m, err := promValues(in.auditAdminURL() + "/metrics")
				if err != nil {
					t.Error(err)
					return
				}
				recorded = append(recorded, m["caddy_audit_events_recorded_total"])
			}
		}
	}()
	res := runLoad(context.Background(), loadOpts{target: in.proxyURL(), conns: s.conns, duration: s.load,
		mix: buildMix(1024), idPrefix: fmt.Sprintf("rl%v-", audit), onDone: outs.add})
	<-reloaded
	var f reloadFailures
	for _, x := range outs.all {
		f.total++
		switch {
		case answered(x) && x.fromUp:
		case x.err != nil && x.status == 0 && handoverReset(x.err):
			f.reset++
		default:
			f.other++
			t.Errorf("audit=%v: request %s failed: status %d, err %v", audit, x.id, x.status, x.err)
		}
	}
	cfg, err := http.Get(in.adminURL() + "/config/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(cfg.Body)
	cfg.Body.Close()
	if !strings.Contains(string(body), `"X-Reload-Gen":["5"]`) {
		t.Errorf("the fifth reload is not in force: %s", body)
	}
	if !audit {
		_ = in.proc.stop(30 * time.Second)
		return f
	}
	if len(recorded) != 5 {
		t.Fatalf("metrics read after %d of 5 reloads", len(recorded))
	}
	for i := 1; i < len(recorded); i++ {
		if recorded[i] <= recorded[i-1] {
			t.Errorf("caddy_audit_events_recorded_total stopped counting across reload %d: %v", i+1, recorded)
		}
	}
	t.Logf("caddy_audit_events_recorded_total after each reload: %v", recorded)
	ix := restartAndExport(t, in)
	lost := 0
	for id, x := range outs.all {
		if answered(x) && ix.count["response_complete"][id] != 1 {
			lost++
			if lost <= 5 {
				t.Errorf("request %s (status %d) has %d response_complete events", id, x.status, ix.count["response_complete"][id])
			}
		}
	}
	unrecordedSeen := 0
	for id := range up.seenIDs() {
		// Only the generator's requests: the readiness probe of the
		// restart may still be in the queue.
		if strings.HasPrefix(id, "rltrue-") && ix.count["response_complete"][id] != 1 {
			unrecordedSeen++
			t.Errorf("the upstream saw %s, which has %d events", id, ix.count["response_complete"][id])
		}
	}
	ix.checkNoDuplicates(t)
	if n := ix.droppedRecorded(); n > 0 {
		t.Errorf("the trail records %d dropped events", n)
	}
	t.Logf("audit build: %d requests, %d responses, %d answered without an event, %d seen upstream without an event, 0 duplicated",
		f.total, res.requests, lost, unrecordedSeen)
	return f
}

// waitFor polls cond every 50ms for up to d.
func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return cond()
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a tmpfs")
	}
}

// tmpfs mounts a tmpfs of size bytes at dir for the test.
func tmpfs(t *testing.T, dir string, size int64) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := runCmd("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d,mode=0700", size), "tmpfs", dir); err != nil {
		t.Skipf("cannot mount a tmpfs (%v): %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := runCmd("umount", "-l", dir); err != nil {
			t.Logf("umount %s: %v %s", dir, err, out)
		}
	})
}

// fill writes a file into dir until the file system is full.
func fill(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			break // ENOSPC
		}
	}
	return path
}

func runCmd(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}

// TestReliabilityDiskFull fills the file system under the audit data on a
// tmpfs while load runs, then frees it. best_effort: every request is
// answered by the upstream, drops are counted, the trail records the gap
// once space returns, and every answered request is either stored or
// counted as dropped. strict: refused requests get 503 and the upstream
// sees none of them. The same with max_db_size instead of a full disk.
func TestReliabilityDiskFull(t *testing.T) {
	s := reliability(t)
	for _, tc := range []struct {
		name, mode string
		maxSize    bool
	}{
		{"tmpfs/best_effort", "best_effort", false},
		{"tmpfs/strict", "strict", false},
		{"max_db_size/best_effort", "best_effort", true},
		{"max_db_size/strict", "strict", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			requireRoot(t)
			diskFull(t, s, tc.mode, tc.maxSize)
		})
	}
}

func diskFull(t *testing.T, s scale, mode string, maxSize bool) {
	up := testUpstream(t)
	in := auditInstance(t, up, "metadata", mode)
	if maxSize {
		// Small enough to fill within the test; the cap is checked when
		// bbolt grows the file.
		in.cfg.appOptions = []string{"max_db_size 2MiB"}
	} else {
		tmpfs(t, in.cfg.dataDir, 24<<20)
	}
	startInstance(t, in)
	outs := newOutcomes()
	stop := make(chan struct{})
	done := make(chan *loadResult)
	go func() {
		done <- runLoad(context.Background(), loadOpts{target: in.proxyURL(), conns: 8, duration: 10 * time.Minute,
			rate: 1000, mix: buildMix(1024), idPrefix: "df-", onDone: outs.add, stop: stop})
	}()
	time.Sleep(time.Second)
	var filler string
	if !maxSize {
		filler = fill(t, in.cfg.dataDir)
	}
	// The store fails once it must grow the file; wait for the first failure.
	failed := waitFor(s.load+30*time.Second, func() bool {
		m := auditMetrics(t, in)
		return m["caddy_audit_events_dropped_total"] > 0 || m["caddy_audit_strict_rejections_total"] > 0
	})
	if !failed {
		close(stop)
		<-done
		t.Fatalf("the store never reported a full disk: %v", auditMetrics(t, in))
	}
	outs.nextGeneration() // generation 1: the disk is full
	time.Sleep(s.load / 2)
	full := auditMetrics(t, in)
	if filler != "" {
		if err := os.Remove(filler); err != nil {
			t.Fatal(err)
		}
		outs.nextGeneration() // generation 2: space is back
		time.Sleep(s.load / 2)
	}
	close(stop)
	res := <-done
	after := auditMetrics(t, in)
	if !in.proc.alive() {
		t.Fatal("caddy died with a full disk")
	}
	dropped := int(after["caddy_audit_events_dropped_total"])
	rejected := int(after["caddy_audit_strict_rejections_total"])
	seen := up.seenIDs()

	var answeredN, fromUp, refused, refusedSeen, okAfter int
	for id, x := range outs.all {
		if !answered(x) {
			continue
		}
		answeredN++
		if x.fromUp {
			fromUp++
			if outs.gen[id] == 2 {
				okAfter++
			}
		}
		if x.status == 503 && !x.fromUp {
			refused++
			if seen[id] > 0 {
				refusedSeen++
				t.Errorf("request %s was refused with 503 but the upstream saw it", id)
			}
		}
	}
	if mode == "best_effort" {
		if fromUp != answeredN || res.errors > 0 {
			t.Errorf("best_effort with a full disk: %d of %d answered by the upstream, %d transport errors", fromUp, answeredN, res.errors)
		}
		if dropped == 0 {
			t.Error("no drop was counted")
		}
	} else {
		if refused == 0 || rejected == 0 {
			t.Errorf("strict with a full disk: %d requests refused, %d rejections counted", refused, rejected)
		}
		// Requests in flight when the load stopped were refused too, but
		// the generator had stopped waiting for their answers.
		if rejected < refused || rejected > refused+8 {
			t.Errorf("strict: %d 503 answers but caddy_audit_strict_rejections_total = %d", refused, rejected)
		}
	}
	if filler != "" && okAfter == 0 {
		t.Error("no request went through to the upstream after space returned")
	}
	if maxSize {
		// The cap stays: nothing can be written until an operator acts.
		t.Logf("max_db_size %s: %d answered (%d by the upstream, %d refused 503, none of them seen upstream), %d transport errors; dropped %d, strict rejections %d",
			mode, answeredN, fromUp, refused, res.errors, dropped, rejected)
		return
	}
	if mode == "best_effort" {
		// Once space is back the writer records the gap.
		if !waitFor(10*time.Second, func() bool { return int(auditMetrics(t, in)["caddy_audit_events_dropped_total"]) == dropped }) {
			t.Log("drops still counting after the load stopped")
		}
	}
	ix := restartAndExport(t, in)
	missing := 0
	for id, x := range outs.all {
		if answered(x) && x.fromUp && ix.count["response_complete"][id] == 0 {
			missing++
		}
	}
	recordedGap := ix.droppedRecorded()
	ix.checkNoDuplicates(t)
	if mode == "best_effort" {
		if recordedGap != dropped {
			t.Errorf("events_dropped lifecycle events record %d drops; the metric counted %d", recordedGap, dropped)
		}
		if missing != dropped {
			t.Errorf("%d answered requests have no event, %d drops were counted: %d lost without a trace", missing, dropped, missing-dropped)
		}
	} else {
		for id := range seen {
			if strings.HasPrefix(id, "df-") && ix.count["request_received"][id] != 1 {
				t.Errorf("the upstream saw %s, which has %d request_received events", id, ix.count["request_received"][id])
			}
		}
	}
	t.Logf("tmpfs %s: %d answered (%d by the upstream, %d refused 503 of which %d seen upstream, %d by the upstream after space returned), %d transport errors; metrics while full %v dropped / %v rejections, at the end dropped %d, rejections %d; events_dropped records %d; answered without an event %d",
		mode, answeredN, fromUp, refused, refusedSeen, okAfter, res.errors,
		full["caddy_audit_events_dropped_total"], full["caddy_audit_strict_rejections_total"], dropped, rejected, recordedGap, missing)
}

// hostileCase is one request no well-behaved client sends.
type hostileCase struct {
	name string
	// raw is sent as is on a new connection (the id is substituted for
	// %ID%); nil means send() does the work.
	raw  string
	send func(t *testing.T, in *instance, id string) int
	// reaches says whether the request reaches the audit handler (Go's
	// HTTP server refuses some before any handler runs).
	reaches bool
	check   func(t *testing.T, ev storage.Event)
}

// TestReliabilityHostileRequests sends requests built to hurt a proxy:
// huge headers, invalid UTF-8, NUL bytes, 10k query parameters, bodies
// trickled one byte at a time and bodies far larger than memory should
// hold. The sidecar stays up, its RSS stays bounded, requests that reach
// the handler are recorded (values cut at the handler's limit), and a
// normal request still goes through at the end.
func TestReliabilityHostileRequests(t *testing.T) {
	s := reliability(t)
	up := testUpstream(t)
	in := auditInstance(t, up, "headers", "best_effort")
	// Caddy refuses request heads over 16 KiB (431) before any handler
	// runs, so such requests leave no event. An operator who raises the
	// limit lets them through to the audit handler, which must cope.
	in.cfg.global = "\tservers {\n\t\tmax_header_size 4MiB\n\t}"
	startInstance(t, in)

	peakRSS := sampleRSS(in)
	idleKB, _ := procStatusKB(in.proc.pid(), "VmRSS")

	cases := []hostileCase{
		{name: "header of 5 MiB (over max_header_size)", raw: "GET /api/items HTTP/1.1\r\nHost: x\r\nX-Request-ID: %ID%\r\nX-Huge: " + strings.Repeat("B", 5<<20) + "\r\n\r\n"},
		{name: "header of 1 MiB", raw: "GET /api/items HTTP/1.1\r\nHost: x\r\nX-Request-ID: %ID%\r\nX-Huge: " + strings.Repeat("A", 1<<20) + "\r\nConnection: close\r\n\r\n", reaches: true,
			check: func(t *testing.T, ev storage.Event) {
				v := ev.RequestHeaders["X-Huge"]
				if len(v) != 1 || len(v[0]) > 8<<10 {
					t.Errorf("1 MiB header stored as %d values, first %d bytes: not truncated", len(v), len(firstOr(v)))
				} else {
					t.Logf("1 MiB header value stored as %d bytes, ending %q", len(v[0]), v[0][max(0, len(v[0])-40):])
				}
			}},
		{name: "200 headers of 4 KiB", raw: "GET /api/items HTTP/1.1\r\nHost: x\r\nX-Request-ID: %ID%\r\n" + manyHeaders(200, 4<<10) + "Connection: close\r\n\r\n", reaches: true},
		{name: "invalid UTF-8 in the path", raw: "GET /caf\xe9/\xff\xfe HTTP/1.1\r\nHost: x\r\nX-Request-ID: %ID%\r\nConnection: close\r\n\r\n", reaches: true,
			check: func(t *testing.T, ev storage.Event) {
				if !utf8.ValidString(ev.Path) {
					t.Errorf("path stored as invalid UTF-8: %q", ev.Path)
				}
				t.Logf("path stored as %q", ev.Path)
			}},
		{name: "invalid UTF-8 in headers", raw: "GET /api/items HTTP/1.1\r\nHost: x\r\nX-Request-ID: %ID%\r\nUser-Agent: bad\xff\xfeagent\r\nX-Bad: \xc3\x28\xa0\xa1\r\nConnection: close\r\n\r\n", reaches: true,
			check: func(t *testing.T, ev storage.Event) {
				if !utf8.ValidString(ev.UserAgent) || !utf8.ValidString(firstOr(ev.RequestHeaders["X-Bad"])) {
					t.Errorf("header stored as invalid UTF-8: %q %q", ev.UserAgent, ev.RequestHeaders["X-Bad"])
				}
				t.Logf("user agent stored as %q, X-Bad as %q", ev.UserAgent, ev.RequestHeaders["X-Bad"])
			}},
		{name: "NUL byte in a header (refused by Go)", raw: "GET /api/items HTTP/1.1\r\nHost: x\r\nX-Request-ID: %ID%\r\nX-Nul: a\x00b\r\nConnection: close\r\n\r\n"},
		{name: "escaped NUL in path and query", raw: "GET /api/items/%00x?q=%00&token=a%00b HTTP/1.1\r\nHost: x\r\nX-Request-ID: %ID%\r\nConnection: close\r\n\r\n", reaches: true,
			check: func(t *testing.T, ev storage.Event) {
				if strings.Contains(ev.Path+ev.Query, "\x00") {
					t.Errorf("raw NUL stored: path %q query %q", ev.Path, ev.Query)
				}
				if strings.Contains(ev.Query, "a%00b") {
					t.Errorf("token value stored in clear: %q", ev.Query)
				}
			}},
		{name: "10,000 query parameters", raw: "GET /api/items?" + manyParams(10000) + " HTTP/1.1\r\nHost: x\r\nX-Request-ID: %ID%\r\nConnection: close\r\n\r\n", reaches: true,
			check: func(t *testing.T, ev storage.Event) { t.Logf("10k-parameter query stored as %d bytes", len(ev.Query)) }},
		{name: "20,000 query parameters", raw: "GET /api/items?" + manyParams(20000) + " HTTP/1.1\r\nHost: x\r\nX-Request-ID: %ID%\r\nConnection: close\r\n\r\n", reaches: true,
			check: func(t *testing.T, ev storage.Event) { t.Logf("20k-parameter query stored as %d bytes", len(ev.Query)) }},
		{name: fmt.Sprintf("body of %d MiB", s.big>>20), reaches: true, send: func(t *testing.T, in *instance, id string) int {
			return postBody(t, in, id, "application/octet-stream", io.LimitReader(zeroReader{}, s.big), s.big)
		}, check: func(t *testing.T, ev storage.Event) {
			if ev.BytesIn != s.big {
				t.Errorf("huge body: bytes_in %d, want %d", ev.BytesIn, s.big)
			}
		}},
	}
	var ids []string
	results := make(map[string]int)
	for i, c := range cases {
		id := fmt.Sprintf("hostile-%d", i)
		ids = append(ids, id)
		var status int
		if c.send != nil {
			status = c.send(t, in, id)
		} else {
			status = sendRaw(t, in, strings.ReplaceAll(c.raw, "%ID%", id))
		}
		results[id] = status
		t.Logf("%-45s -> %d", c.name, status)
		if !in.proc.alive() {
			t.Fatalf("caddy died on %s", c.name)
		}
	}

	// Slowloris: many connections trickle their bodies one byte at a time
	// while normal traffic must still be served.
	slow := 50
	slowBodies(t, in, s, slow, "slow-", "application/octet-stream")
	peak := peakRSS()
	t.Logf("RSS: %d MiB idle, peak %d MiB during the hostile requests (a %d MiB body went through)", idleKB>>10, peak>>10, s.big>>20)
	if peak > 512<<10 {
		t.Errorf("peak RSS %d MiB: memory is not bounded by the request sizes", peak>>10)
	}
	if !httpOK(in.auditAdminURL() + "/healthz") {
		t.Error("admin /healthz does not answer after the hostile requests")
	}

	ix := restartAndExport(t, in)
	for i, c := range cases {
		id := ids[i]
		n := ix.count["response_complete"][id]
		switch {
		case c.reaches && n != 1:
			t.Errorf("%s (status %d): %d events", c.name, results[id], n)
		case !c.reaches && n != 0:
			t.Errorf("%s (status %d) was refused by Go's server, yet has %d events", c.name, results[id], n)
		case c.check != nil && n == 1:
			c.check(t, ix.byID[id])
		}
	}
	for i := range slow {
		id := fmt.Sprintf("slow-%d", i)
		if ix.count["response_complete"][id] != 1 || ix.byID[id].BytesIn != 30 {
			t.Errorf("slow body %s: %d events, bytes_in %d", id, ix.count["response_complete"][id], ix.byID[id].BytesIn)
		}
	}
	ix.checkNoDuplicates(t)
}

// TestReliabilityHostileBodies is the body level's share of the hostile
// requests: bodies far over max_bytes both ways and slow bodies, through
// the proxy, while the handler tees and redacts what it keeps.
func TestReliabilityHostileBodies(t *testing.T) {
	s := reliability(t)
	up := testUpstream(t)
	in := auditInstance(t, up, "body", "best_effort")
	startInstance(t, in)
	peakRSS := sampleRSS(in)
	idleKB, _ := procStatusKB(in.proc.pid(), "VmRSS")

	if st := postBody(t, in, "body-huge-request", "application/json", io.LimitReader(jsonStream{}, s.big), s.big); st != http.StatusOK {
		t.Errorf("%d MiB JSON request body: status %d", s.big>>20, st)
	}
	if st, n := getSized(t, in, "body-huge-response", s.big); st != http.StatusOK || n != s.big {
		t.Errorf("%d MiB response: status %d, %d bytes received", s.big>>20, st, n)
	}
	slow := 20
	slowBodies(t, in, s, slow, "body-slow-", "application/json")
	peak := peakRSS()
	t.Logf("RSS: %d MiB idle, peak %d MiB while %d MiB went through each way at level body", idleKB>>10, peak>>10, s.big>>20)
	if peak > 512<<10 {
		t.Errorf("peak RSS %d MiB: memory is not bounded by max_bytes", peak>>10)
	}

	ix := restartAndExport(t, in)
	check := func(id, what string, body *storage.Body, bytes int64) {
		t.Helper()
		if ix.count["response_complete"][id] != 1 {
			t.Errorf("%s: %d events", what, ix.count["response_complete"][id])
			return
		}
		switch {
		case body == nil:
			t.Errorf("%s: no body recorded", what)
		case !body.Truncated || body.Size != s.big || int64(len(body.Text)) > policy.MaxBodyBytes+4<<10 || bytes != s.big:
			t.Errorf("%s: truncated %v, size %d, %d bytes kept, counted %d; want truncated, size and count %d", what, body.Truncated, body.Size, len(body.Text), bytes, s.big)
		default:
			t.Logf("%s: size %d, truncated, %d bytes kept", what, body.Size, len(body.Text))
		}
	}
	req, resp := ix.byID["body-huge-request"], ix.byID["body-huge-response"]
	check("body-huge-request", "huge request body", req.RequestBody, req.BytesIn)
	check("body-huge-response", "huge response body", resp.ResponseBody, resp.BytesOut)
	for i := range slow {
		id := fmt.Sprintf("body-slow-%d", i)
		ev := ix.byID[id]
		if ix.count["response_complete"][id] != 1 || ev.BytesIn != 30 || ev.RequestBody == nil || ev.RequestBody.Size != 30 || ev.RequestBody.Truncated {
			t.Errorf("slow body %s: %d events, bytes_in %d, body %+v", id, ix.count["response_complete"][id], ev.BytesIn, ev.RequestBody)
		}
	}
	ix.checkNoDuplicates(t)
}

// slowBodies sends n bodies of 30 bytes that trickle in over s.load (ids
// prefix0, prefix1...) while normal traffic runs beside them, and checks
// that all of it was answered.
func slowBodies(t *testing.T, in *instance, s scale, n int, prefix, contentType string) {
	t.Helper()
	var wg sync.WaitGroup
	status := make([]int, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			status[i] = postBody(t, in, fmt.Sprintf("%s%d", prefix, i), contentType, &trickle{n: 30, every: s.load / 30}, 30)
		}()
	}
	time.Sleep(s.load / 3)
	normal := runLoad(context.Background(), loadOpts{target: in.proxyURL(), conns: 4, duration: s.load / 3, mix: buildMix(256), idPrefix: prefix + "normal-"})
	wg.Wait()
	for i, st := range status {
		if st != http.StatusOK {
			t.Errorf("slow body %s%d: status %d", prefix, i, st)
		}
	}
	if normal.requests == 0 || normal.errors > 0 {
		t.Errorf("normal traffic during the slow bodies: %d answered, %d errors", normal.requests, normal.errors)
	}
}

// sampleRSS samples in's VmRSS every 50 ms until the returned function is
// called, which returns the peak in KiB.
func sampleRSS(in *instance) (stop func() int64) {
	var peak atomic.Int64
	done := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			if kb, err := procStatusKB(in.proc.pid(), "VmRSS"); err == nil && kb > peak.Load() {
				peak.Store(kb)
			}
			select {
			case <-done:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	return func() int64 {
		close(done)
		<-sampled
		return peak.Load()
	}
}

// getSized asks the upstream for a JSON response of size bytes and returns
// the status and the bytes received.
func getSized(t *testing.T, in *instance, id string, size int64) (int, int64) {
	req, err := http.NewRequest(http.MethodGet, fmt.Sprintf("%s%s?bytes=%d", in.proxyURL(), sizedPath, size), nil)
	if err != nil {
		t.Error(err)
		return 0, 0
	}
	req.Header.Set("X-Request-ID", id)
	resp, err := (&http.Client{Timeout: 5 * time.Minute}).Do(req)
	if err != nil {
		t.Errorf("%s: %v", id, err)
		return 0, 0
	}
	defer resp.Body.Close()
	n, _ := io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, n
}

func firstOr(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

func manyHeaders(n, size int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "X-Pad-%d: %s\r\n", i, strings.Repeat("p", size))
	}
	return b.String()
}

func manyParams(n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte('&')
		}
		fmt.Fprintf(&b, "p%d=%d", i, i)
	}
	return b.String()
}

// sendRaw writes raw on a new connection and returns the status of the
// answer (0 if the connection closed without one).
func sendRaw(t *testing.T, in *instance, raw string) int {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(in.proxyURL(), "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	go func() { _, _ = io.WriteString(conn, raw) }() // the server may answer before reading it all
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// postBody streams body to /api/items/1 with the given id.
func postBody(t *testing.T, in *instance, id, contentType string, body io.Reader, size int64) int {
	req, err := http.NewRequest(http.MethodPost, in.proxyURL()+"/api/items/1", body)
	if err != nil {
		t.Error(err)
		return 0
	}
	req.ContentLength = size
	req.Header.Set("X-Request-ID", id)
	req.Header.Set("Content-Type", contentType)
	resp, err := (&http.Client{Timeout: 5 * time.Minute}).Do(req)
	if err != nil {
		t.Errorf("%s: %v", id, err)
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// trickle yields n bytes, one every `every`.
type trickle struct {
	n     int
	every time.Duration
}

func (r *trickle) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, io.EOF
	}
	time.Sleep(r.every)
	p[0] = 'x'
	r.n--
	return 1, nil
}

// seenIDs returns a copy of the request ids the upstream saw while
// tracking.
func (u *upstream) seenIDs() map[string]int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return maps.Clone(u.seen)
}
