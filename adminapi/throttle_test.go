package adminapi

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/caddy-audit/caddy-audit/detectors"
	"github.com/caddy-audit/caddy-audit/storage"
)

// from sends GET /api/v1/me from addr with secret.
func (e *testEnv) from(addr, secret string) *httptest.ResponseRecorder {
	e.t.Helper()
	req := httptest.NewRequest(http.MethodGet, "/api/v1/me", nil)
	req.RemoteAddr = addr + ":50000"
	if secret != "" {
		req.Header.Set("Authorization", "Bearer "+secret)
	}
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, req)
	return w
}

// openAlerts returns the brute-force alerts in the store.
func (e *testEnv) bruteForceAlerts() []storage.Alert {
	e.t.Helper()
	page, err := e.store.ListAlerts(storage.AlertFilter{Detector: detectors.DetectorBruteForce}, 100, "")
	if err != nil {
		e.t.Fatal(err)
	}
	return page.Alerts
}

func TestBadKeysAreThrottled(t *testing.T) {
	e := newEnv(t, nil)
	valid := e.key("auditor", "", nil)
	const attacker, bystander = "203.0.113.7", "198.51.100.20"
	bad := "cka_" + "x" + valid[5:]

	// Four failures spread over the minute, and a valid call in between:
	// the address is not blocked yet, and a success resets nothing.
	for i := range badKeyLimit - 1 {
		wantProblem(t, e.from(attacker, bad), 401, errInvalidKey)
		e.clock = e.clock.Add(10 * time.Second)
		if i == 1 {
			if w := e.from(attacker, valid); w.Code != 200 {
				t.Fatalf("valid key from the attacker's address before the block: %d", w.Code)
			}
		}
	}
	if len(e.bruteForceAlerts()) != 0 {
		t.Fatal("alert raised before the threshold")
	}
	// The fifth within the minute is still answered 401, and blocks.
	wantProblem(t, e.from(attacker, "Basic Zm9vOmJhcg=="), 401, "malformed") // a malformed header counts too
	w := e.from(attacker, bad)
	wantProblem(t, w, http.StatusTooManyRequests, "retry in 30 seconds")
	if ra := w.Header().Get("Retry-After"); ra != "30" {
		t.Errorf("Retry-After = %q, want 30", ra)
	}
	// Even a valid key is not looked at while blocked; others are not
	// affected; a request without a key is not a guess.
	wantProblem(t, e.from(attacker, valid), http.StatusTooManyRequests, "too many invalid API keys")
	if w := e.from(bystander, valid); w.Code != 200 {
		t.Errorf("bystander: %d", w.Code)
	}
	for range badKeyLimit + 2 {
		wantProblem(t, e.from(bystander, ""), 401, "API key is required")
	}
	if w := e.from(bystander, valid); w.Code != 200 {
		t.Errorf("bystander after keyless requests: %d", w.Code)
	}
	if ev := e.lastEvent(); ev.Action != "rbac.me" {
		t.Errorf("last event %s", ev.Action)
	}

	alerts := e.bruteForceAlerts()
	if len(alerts) != 1 {
		t.Fatalf("%d alerts, want 1", len(alerts))
	}
	al := alerts[0]
	episode := t0
	wantID := detectors.AlertID(storage.AuditWorkspace, "brute_force", "admin_api_invalid_keys", storage.Subject{Kind: "ip", Value: attacker}, episode.Format(time.RFC3339Nano))
	if al.ID != wantID || al.Rule != "admin_api_invalid_keys" || al.Severity != storage.SeverityHigh || al.Subject.Kind != storage.SubjectIP ||
		al.Subject.Value != attacker || al.Workspace != storage.AuditWorkspace || al.Mitre.ID != "T1110" || al.Status != storage.StatusOpen ||
		al.Count != 5 || !al.FirstSeen.Equal(t0) || !al.LastSeen.Equal(t0.Add(40*time.Second)) || len(al.RecommendedActions) == 0 {
		t.Errorf("alert = %+v", al)
	}
	if f := al.Evidence.Figures; f["failures"] != 5 || f["threshold"] != 5 || f["window_s"] != 60 || f["block_s"] != 30 {
		t.Errorf("figures = %v", f)
	}

	// When the block ends, the counter starts over; five more failures
	// block for twice as long and update the same alert.
	e.clock = e.clock.Add(30 * time.Second)
	for range badKeyLimit {
		wantProblem(t, e.from(attacker, bad), 401, errInvalidKey)
	}
	w = e.from(attacker, bad)
	if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") != "60" {
		t.Errorf("second block: %d, Retry-After %q", w.Code, w.Header().Get("Retry-After"))
	}
	alerts = e.bruteForceAlerts()
	if len(alerts) != 1 || alerts[0].ID != wantID || alerts[0].Count != 10 || alerts[0].Evidence.Figures["block_s"] != 60 {
		t.Errorf("after the second block: %+v", alerts)
	}
	var throttled int
	for _, ev := range e.rec.recorded() {
		if ev.Action == "auth.throttled" {
			throttled++
			if ev.Status != 429 || ev.ClientIP != attacker {
				t.Errorf("throttled event %+v", ev)
			}
		}
	}
	if throttled != 3 {
		t.Errorf("%d throttled calls recorded, want 3", throttled)
	}
}

func TestThrottleBackoff(t *testing.T) {
	var th badKeyThrottle
	now := t0
	want := []time.Duration{30 * time.Second, time.Minute, 2 * time.Minute, 4 * time.Minute, 5 * time.Minute, 5 * time.Minute}
	for i, block := range want {
		var got badKeyBlock
		var blocked bool
		for range badKeyLimit {
			got, blocked = th.fail("a", now)
		}
		if !blocked || got.block != block || got.blocks != i+1 || got.total != (i+1)*badKeyLimit || !got.episodeStart.Equal(t0) {
			t.Fatalf("block %d = %+v (%v), want %s", i, got, blocked, block)
		}
		if wait := th.wait("a", now); wait != block {
			t.Errorf("wait = %s, want %s", wait, block)
		}
		now = now.Add(block)
		if wait := th.wait("a", now); wait != 0 {
			t.Errorf("still blocked at the end: %s", wait)
		}
	}
	// Failures spread wider than the window never block.
	for i := range 3 * badKeyLimit {
		if _, blocked := th.fail("slow", t0.Add(time.Duration(i)*16*time.Second)); blocked {
			t.Fatalf("blocked at failure %d", i+1)
		}
	}
	// A sliding window: five failures within a minute block, however
	// they fall on the clock.
	var blocked bool
	for i, at := range []time.Duration{0, 20, 61, 62, 65, 70} {
		if _, blocked = th.fail("straddle", t0.Add(at*time.Second)); blocked != (i == 5) {
			t.Fatalf("failure %d at %ds: blocked %v", i+1, at, blocked)
		}
	}
	// A quiet spell starts a new episode (a new alert id).
	later := now.Add(badKeyForget)
	var got badKeyBlock
	for range badKeyLimit {
		got, _ = th.fail("a", later)
	}
	if !got.episodeStart.Equal(later) || got.block != badKeyBaseBlock || got.total != badKeyLimit {
		t.Errorf("after a quiet spell: %+v", got)
	}
}

func TestThrottleIsBounded(t *testing.T) {
	th := badKeyThrottle{max: 3}
	for i := range 10 {
		th.fail(fmt.Sprintf("10.0.0.%d", i), t0.Add(time.Duration(i)*time.Second))
	}
	if n := th.tracked(); n != 3 {
		t.Fatalf("tracking %d addresses, want 3", n)
	}
	// The most recent stay, the oldest went.
	for i := range 10 {
		_, kept := th.addrs[fmt.Sprintf("10.0.0.%d", i)]
		if kept != (i >= 7) {
			t.Errorf("address %d kept = %v", i, kept)
		}
	}
	// A blocked address that keeps failing stays tracked (it is the most
	// recent), so eviction cannot be used to shake off a block cheaply.
	for range badKeyLimit {
		th.fail("attacker", t0.Add(time.Minute))
	}
	th.fail("other1", t0.Add(time.Minute))
	th.fail("other2", t0.Add(time.Minute))
	if th.wait("attacker", t0.Add(time.Minute)) == 0 {
		t.Error("the attacker was evicted by two newer addresses")
	}
	var def badKeyThrottle
	for i := range badKeyMaxAddrs + 50 {
		def.fail(fmt.Sprint(i), t0)
	}
	if n := def.tracked(); n != badKeyMaxAddrs {
		t.Errorf("default cap: tracking %d, want %d", n, badKeyMaxAddrs)
	}
}

func TestThrottleConcurrent(t *testing.T) {
	var th badKeyThrottle
	var wg sync.WaitGroup
	var mu sync.Mutex
	blocks := 0
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				addr := fmt.Sprintf("a%d", (g+i)%4)
				th.wait(addr, t0)
				if _, b := th.fail(addr, t0); b {
					mu.Lock()
					blocks++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	// 1,600 failures over four addresses at one instant: every fifth of
	// each address's failures blocks it.
	if blocks != 1600/badKeyLimit {
		t.Errorf("%d blocks, want %d", blocks, 1600/badKeyLimit)
	}
}
