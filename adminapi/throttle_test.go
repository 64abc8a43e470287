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
	bad := flipLast(valid)

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
	// Others are not affected; a request without a key is not a guess.
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
	// block for twice as long. That block comes 30s after the alert was
	// written, within badKeyAlertEvery, so the alert is left alone.
	e.clock = e.clock.Add(30 * time.Second)
	for range badKeyLimit {
		wantProblem(t, e.from(attacker, bad), 401, errInvalidKey)
	}
	w = e.from(attacker, bad)
	if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") != "60" {
		t.Errorf("second block: %d, Retry-After %q", w.Code, w.Header().Get("Retry-After"))
	}
	alerts = e.bruteForceAlerts()
	if len(alerts) != 1 || alerts[0].ID != wantID || alerts[0].Count != 5 || alerts[0].Evidence.Figures["block_s"] != 30 {
		t.Errorf("after the second block: %+v", alerts)
	}
	// The third block, a minute later, updates the same alert.
	e.clock = e.clock.Add(time.Minute)
	for range badKeyLimit {
		wantProblem(t, e.from(attacker, bad), 401, errInvalidKey)
	}
	alerts = e.bruteForceAlerts()
	if len(alerts) != 1 || alerts[0].ID != wantID || alerts[0].Count != 15 || alerts[0].Evidence.Figures["block_s"] != 120 ||
		!alerts[0].LastSeen.Equal(e.clock) {
		t.Errorf("after the third block: %+v", alerts)
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
	if throttled != 2 {
		t.Errorf("%d throttled calls recorded, want 2", throttled)
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
			got, blocked, _ = th.fail("a", now)
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
		if _, blocked, _ := th.fail("slow", t0.Add(time.Duration(i)*16*time.Second)); blocked {
			t.Fatalf("blocked at failure %d", i+1)
		}
	}
	// A sliding window: five failures within a minute block, however
	// they fall on the clock.
	var blocked bool
	for i, at := range []time.Duration{0, 20, 61, 62, 65, 70} {
		if _, blocked, _ = th.fail("straddle", t0.Add(at*time.Second)); blocked != (i == 5) {
			t.Fatalf("failure %d at %ds: blocked %v", i+1, at, blocked)
		}
	}
	// A quiet spell starts a new episode (a new alert id).
	later := now.Add(badKeyForget)
	var got badKeyBlock
	for range badKeyLimit {
		got, _, _ = th.fail("a", later)
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
	var blocks, refused, counted int
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				addr := fmt.Sprintf("a%d", (g+i)%4)
				th.wait(addr, t0)
				_, b, retry := th.fail(addr, t0)
				mu.Lock()
				switch {
				case b:
					blocks++
				case retry > 0:
					refused++
				default:
					counted++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	// 1,600 failures over four addresses at one instant: each address's
	// fifth blocks it, its first four are answered 401 and the rest race
	// the block and are refused without blocking again.
	if blocks != 4 || counted != 4*(badKeyLimit-1) || refused != 1600-4*badKeyLimit {
		t.Errorf("%d blocks, %d counted, %d refused", blocks, counted, refused)
	}
	for i := range 4 {
		if st := th.addrs[fmt.Sprintf("a%d", i)]; st.total != 400 || st.blocks != 1 {
			t.Errorf("a%d: total %d, blocks %d", i, st.total, st.blocks)
		}
	}
}

// TestBlockedAddressKeepsValidKeys: invalid keys from the operator's own
// address (the example binds 127.0.0.1) must not lock the operator out.
// While blocked, valid keys pass; everything else gets 429, uncounted,
// and junk that cannot be a key is refused without a lookup.
func TestBlockedAddressKeepsValidKeys(t *testing.T) {
	e := newEnv(t, nil)
	admin := e.key(roleAdmin, "", nil)
	const local = "127.0.0.1"
	for range badKeyLimit {
		wantProblem(t, e.from(local, flipLast(admin)), 401, errInvalidKey)
	}
	for i, tt := range []struct {
		secret string
		status int
	}{
		{admin, 200},
		{flipLast(admin), 429},
		{"not-a-key", 429},
		{"", 429},
		{admin, 200},
	} {
		w := e.from(local, tt.secret)
		if w.Code != tt.status {
			t.Errorf("request %d: %d, want %d: %s", i, w.Code, tt.status, w.Body)
		}
		if tt.status == 429 && w.Header().Get("Retry-After") != "30" {
			t.Errorf("request %d: Retry-After %q", i, w.Header().Get("Retry-After"))
		}
	}
	// Refusals during the block are not failures: the block is not
	// extended and the episode's count stays at the five that made it.
	if st := e.h.(*api).throttle.addrs[local]; st.total != badKeyLimit || st.blocks != 1 || !st.blockedUntil.Equal(t0.Add(badKeyBaseBlock)) {
		t.Errorf("state after the block: total %d, blocks %d, until %s", st.total, st.blocks, st.blockedUntil)
	}
	if ev := e.lastEvent(); ev.Action != "rbac.me" || ev.Status != 200 {
		t.Errorf("last event %s %d", ev.Action, ev.Status)
	}
}

func TestThrottleKey(t *testing.T) {
	for _, tt := range []struct{ remote, want string }{
		{"192.0.2.7:5000", "192.0.2.7"},
		{"[::ffff:192.0.2.7]:5000", "192.0.2.7"},
		{"[2001:db8:1:2:aaaa:bbbb:cccc:dddd]:443", "2001:db8:1:2::/64"},
		{"[2001:db8:1:2::1%eth0]:443", "2001:db8:1:2::/64"},
		{"[::1]:443", "::/64"},
		{"pipe", "pipe"},
	} {
		if got := throttleKey(tt.remote); got != tt.want {
			t.Errorf("throttleKey(%q) = %q, want %q", tt.remote, got, tt.want)
		}
	}
}

// TestThrottleGroupsIPv6By64: rotating through one /64 does not escape
// the count or the block; the next /64 is someone else.
func TestThrottleGroupsIPv6By64(t *testing.T) {
	e := newEnv(t, nil)
	valid := e.key("auditor", "", nil)
	for i := range badKeyLimit {
		wantProblem(t, e.from(fmt.Sprintf("[2001:db8:1:2::%x]", i+1), flipLast(valid)), 401, errInvalidKey)
	}
	wantProblem(t, e.from("[2001:db8:1:2:ffff::9]", flipLast(valid)), http.StatusTooManyRequests, "too many invalid API keys")
	wantProblem(t, e.from("[2001:db8:1:3::1]", flipLast(valid)), 401, errInvalidKey)
	alerts := e.bruteForceAlerts()
	if len(alerts) != 1 || alerts[0].Subject.Value != "2001:db8:1:2::/64" || alerts[0].Count != badKeyLimit {
		t.Errorf("alerts = %+v", alerts)
	}
}

// TestThrottleNeverEvictsBlocked: a table full of blocked clients refuses
// unknown keys from new clients rather than evicting (which would lift a
// block); valid keys still pass; when a block ends, room is made again.
func TestThrottleNeverEvictsBlocked(t *testing.T) {
	th := badKeyThrottle{max: 3}
	for i := range 3 {
		for range badKeyLimit {
			th.fail(fmt.Sprint("blocked", i), t0.Add(time.Duration(i)*time.Second))
		}
	}
	_, blocked, retry := th.fail("newcomer", t0.Add(10*time.Second))
	if blocked || retry != badKeyBaseBlock-10*time.Second || th.tracked() != 3 {
		t.Errorf("newcomer: blocked %v, retry %s, tracking %d", blocked, retry, th.tracked())
	}
	for i := range 3 {
		if th.wait(fmt.Sprint("blocked", i), t0.Add(10*time.Second)) == 0 {
			t.Errorf("blocked%d was released early", i)
		}
	}
	// The first block ends at t0+30s: that client gives way, the others
	// stay blocked.
	at := t0.Add(badKeyBaseBlock)
	if _, blocked, retry := th.fail("newcomer", at); blocked || retry != 0 {
		t.Errorf("newcomer after the first block ended: blocked %v, retry %s", blocked, retry)
	}
	if _, kept := th.addrs["blocked0"]; kept || th.wait("blocked1", at) == 0 || th.wait("blocked2", at) == 0 || th.tracked() != 3 {
		t.Errorf("after making room: %v", th.addrs)
	}

	// Over HTTP: valid keys pass from a new address, unknown keys get 429.
	e := newEnv(t, nil)
	e.h.(*api).throttle.max = 2
	valid := e.key("auditor", "", nil)
	for _, addr := range []string{"192.0.2.1", "192.0.2.2"} {
		for range badKeyLimit {
			e.from(addr, flipLast(valid))
		}
	}
	wantProblem(t, e.from("192.0.2.3", flipLast(valid)), http.StatusTooManyRequests, "too many invalid API keys")
	if w := e.from("192.0.2.3", valid); w.Code != 200 {
		t.Errorf("valid key from a new address: %d", w.Code)
	}
	for _, addr := range []string{"192.0.2.1", "192.0.2.2"} {
		wantProblem(t, e.from(addr, flipLast(valid)), http.StatusTooManyRequests, "too many invalid API keys")
	}
}

// TestThrottleAlertFlood: one alert per episode, rewritten at most once a
// minute, and at most badKeyAlertBudget alerts a minute across clients.
func TestThrottleAlertFlood(t *testing.T) {
	e := newEnv(t, nil)
	valid := e.key("auditor", "", nil)
	const clients = badKeyAlertBudget + 10
	for i := range clients {
		for range badKeyLimit {
			e.from(fmt.Sprintf("198.51.100.%d", i), flipLast(valid))
		}
	}
	if n := len(e.bruteForceAlerts()); n != badKeyAlertBudget {
		t.Errorf("%d alerts in the first minute, want %d", n, badKeyAlertBudget)
	}
	// A minute on, the blocks have ended; the clients that got no alert
	// get one at their next block, and the alerted ones update theirs.
	e.clock = e.clock.Add(time.Minute)
	for i := range clients {
		for range badKeyLimit {
			e.from(fmt.Sprintf("198.51.100.%d", i), flipLast(valid))
		}
	}
	alerts := e.bruteForceAlerts()
	if len(alerts) != clients {
		t.Fatalf("%d alerts after two minutes, want one per client (%d)", len(alerts), clients)
	}
	// Updates may take half the budget: clients 0-9 update theirs, 10-19
	// keep theirs as written a minute ago (5 failures), 20-29 get their
	// first, counting the whole episode (10).
	var stale, current int
	for _, al := range alerts {
		switch al.Count {
		case badKeyLimit:
			stale++
		case 2 * badKeyLimit:
			current++
		}
	}
	if stale != 10 || current != 20 {
		t.Errorf("%d alerts not updated, %d current; want 10 and 20", stale, current)
	}
}

// tracked returns how many clients the throttle remembers.
func (t *badKeyThrottle) tracked() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.addrs)
}
