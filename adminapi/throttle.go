package adminapi

import (
	"container/list"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/caddy-audit/caddy-audit/detectors"
	"github.com/caddy-audit/caddy-audit/storage"
)

// Bad-key throttling: an address that presents badKeyLimit invalid keys
// within badKeyWindow is refused (429) for a while without its keys being
// looked up, and an alert is raised. The block doubles with each repeat in
// one episode, from badKeyBaseBlock up to badKeyMaxBlock; an address that
// stays quiet for badKeyForget starts over.
const (
	badKeyLimit     = 5
	badKeyWindow    = time.Minute
	badKeyBaseBlock = 30 * time.Second
	badKeyMaxBlock  = 5 * time.Minute
	badKeyForget    = 15 * time.Minute
	// badKeyMaxAddrs bounds the memory a flood from many addresses can
	// take: the address that failed least recently gives way.
	badKeyMaxAddrs = 10000
)

// The alert the throttle raises, in the brute_force detector's vocabulary.
const (
	badKeyRule   = "admin_api_invalid_keys"
	badKeyFamily = "admin_api_invalid_keys"
)

// badKeyThrottle counts invalid keys per client address. The zero value is
// ready to use; it is safe for concurrent use.
type badKeyThrottle struct {
	mu sync.Mutex
	// max caps the tracked addresses; 0 means badKeyMaxAddrs.
	max int
	// addrs indexes lru by address.
	addrs map[string]*list.Element
	// lru holds *badKeyState, the most recent failure first.
	lru list.List
}

// badKeyState is what the throttle knows of one address.
type badKeyState struct {
	addr string
	// episodeStart is the first failure after a quiet spell: it names the
	// alert, so every block of one episode updates the same alert.
	episodeStart time.Time
	// recent are the times of the latest failures since the last block,
	// oldest first: a sliding window, so failures cannot slip past the
	// limit by straddling a window boundary.
	recent []time.Time
	// total counts the failures of the episode.
	total int
	// blocks counts the blocks of the episode, for the backoff.
	blocks       int
	blockedUntil time.Time
	lastFailure  time.Time
}

// badKeyBlock is what fail reports when an address crosses the threshold.
type badKeyBlock struct {
	addr string
	// episodeStart names the alert; window is the first of the failures
	// that made the limit.
	episodeStart, at, window time.Time
	// failures in the window (badKeyLimit), total in the episode, the
	// block's number in the episode.
	failures, total, blocks int
	block                   time.Duration
}

// wait returns how long addr is still blocked at now, zero if it is not.
func (t *badKeyThrottle) wait(addr string, now time.Time) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	el, ok := t.addrs[addr]
	if !ok {
		return 0
	}
	st := el.Value.(*badKeyState)
	if st.blockedUntil.After(now) {
		return st.blockedUntil.Sub(now)
	}
	return 0
}

// fail counts an invalid key from addr at now. When the failure makes
// badKeyLimit within the window, it blocks the address and reports the
// block (once: the count starts over).
func (t *badKeyThrottle) fail(addr string, now time.Time) (badKeyBlock, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.addrs == nil {
		t.addrs = make(map[string]*list.Element)
	}
	var st *badKeyState
	if el, ok := t.addrs[addr]; ok {
		st = el.Value.(*badKeyState)
		t.lru.MoveToFront(el)
	} else {
		max := t.max
		if max <= 0 {
			max = badKeyMaxAddrs
		}
		for t.lru.Len() >= max {
			old := t.lru.Back()
			delete(t.addrs, old.Value.(*badKeyState).addr)
			t.lru.Remove(old)
		}
		st = &badKeyState{addr: addr}
		t.addrs[addr] = t.lru.PushFront(st)
	}
	// A clock stepping back counts as a fresh start rather than leaving
	// the address blocked for ever.
	if st.total == 0 || now.Sub(st.lastFailure) >= badKeyForget || now.Before(st.lastFailure) {
		*st = badKeyState{addr: addr, episodeStart: now}
	}
	if len(st.recent) == badKeyLimit {
		st.recent = append(st.recent[:0], st.recent[1:]...)
	}
	st.recent = append(st.recent, now)
	st.total++
	st.lastFailure = now
	if len(st.recent) < badKeyLimit || now.Sub(st.recent[0]) >= badKeyWindow {
		return badKeyBlock{}, false
	}
	block := badKeyMaxBlock
	if st.blocks < 8 {
		block = min(badKeyBaseBlock<<st.blocks, badKeyMaxBlock)
	}
	st.blocks++
	st.blockedUntil = now.Add(block)
	b := badKeyBlock{
		addr: addr, episodeStart: st.episodeStart, at: now, window: st.recent[0],
		failures: len(st.recent), total: st.total, blocks: st.blocks, block: block,
	}
	// The count starts over after the block, so one alert per window.
	st.recent = st.recent[:0]
	return b, true
}

// tracked returns how many addresses the throttle remembers.
func (t *badKeyThrottle) tracked() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.lru.Len()
}

// throttled refuses a request from an address that is blocked, with the
// wait in Retry-After, and records the refusal.
func (a *api) throttled(w http.ResponseWriter, r *http.Request, wait time.Duration) {
	secs := int(math.Ceil(wait.Seconds()))
	a.record(r, storage.APIKey{}, "auth.throttled", http.StatusTooManyRequests, map[string]any{"retry_after_s": secs})
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	writeProblem(w, r, http.StatusTooManyRequests, fmt.Sprintf(
		"too many invalid API keys from this address; retry in %d seconds", secs))
}

// badKey counts an invalid key from r's client address and, when that
// blocks the address, raises (or updates) the brute-force alert.
func (a *api) badKey(r *http.Request, now time.Time) {
	addr, _ := splitRemote(r.RemoteAddr)
	b, blocked := a.throttle.fail(addr, now)
	if !blocked {
		return
	}
	a.log.Warn("blocking an address after invalid API keys", "client_ip", addr, "failures", b.failures, "block", b.block)
	if _, _, err := a.store.PutAlert(badKeyAlert(b)); err != nil {
		a.log.Error("raising the invalid API key alert", "client_ip", addr, "error", err)
	}
}

// badKeyAlert is the alert for a block. Its id derives from the address
// and the episode's first failure by the detectors' scheme, so each block
// of one episode updates the same open alert.
func badKeyAlert(b badKeyBlock) storage.Alert {
	subj := storage.Subject{Kind: storage.SubjectIP, Value: b.addr}
	return storage.Alert{
		ID:        detectors.AlertID(storage.AuditWorkspace, detectors.DetectorBruteForce, badKeyFamily, subj, b.episodeStart.UTC().Format(time.RFC3339Nano)),
		Detector:  detectors.DetectorBruteForce,
		Rule:      badKeyRule,
		Severity:  storage.SeverityHigh,
		Subject:   subj,
		Workspace: storage.AuditWorkspace,
		FirstSeen: b.episodeStart,
		LastSeen:  b.at,
		Count:     b.total,
		Evidence: storage.Evidence{
			// The refusals are audit events of their own (auth.denied,
			// from this address); their ids are not known here.
			EventIDs: []string{},
			Figures: map[string]float64{
				"failures":       float64(b.failures),
				"threshold":      badKeyLimit,
				"window_s":       badKeyWindow.Seconds(),
				"total_failures": float64(b.total),
				"blocks":         float64(b.blocks),
				"block_s":        b.block.Seconds(),
			},
			Observed: map[string]string{
				"target":       "admin API",
				"window_start": b.window.UTC().Format(time.RFC3339Nano),
			},
			Summary: fmt.Sprintf("%s presented %d invalid admin API keys within %s; blocked for %s",
				b.addr, b.failures, badKeyWindow, b.block),
		},
		Mitre: storage.Mitre{ID: "T1110", Name: "Brute Force", Tactic: "Credential Access"},
		RecommendedActions: []string{
			"Find who runs " + b.addr + " and whether it holds an old, revoked or expired key (auth.denied events in workspace " + storage.AuditWorkspace + ").",
			"If nobody should, block the address at the firewall and keep the admin listener bound to localhost or behind client-certificate TLS.",
			"Revoke any key that may have leaked and issue a new one.",
		},
	}
}
