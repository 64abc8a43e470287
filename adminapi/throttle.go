package adminapi

import (
	"container/list"
	"fmt"
	"math"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/caddy-audit/caddy-audit/detectors"
	"github.com/caddy-audit/caddy-audit/storage"
)

// Bad-key throttling: a client that presents badKeyLimit invalid keys
// within badKeyWindow is blocked for a while and an alert is raised. The
// block doubles with each repeat in one episode, from badKeyBaseBlock up
// to badKeyMaxBlock; a client that stays quiet for badKeyForget starts
// over.
//
// A block refuses (429) every request from the client except one with a
// key that verifies: keys are 256 bits, so telling a blocked guesser that
// a key is valid helps it nothing, while refusing valid keys would let any
// local process lock the operator out of a listener bound to 127.0.0.1.
// The block's point is to stop counting, alerting and answering 401 to a
// guesser, not to guard keys that cannot be guessed.
//
// A client is an IPv4 address, or an IPv6 /64: one host usually owns a
// whole /64 and can rotate through it at will.
const (
	badKeyLimit     = 5
	badKeyWindow    = time.Minute
	badKeyBaseBlock = 30 * time.Second
	badKeyMaxBlock  = 5 * time.Minute
	badKeyForget    = 15 * time.Minute
	// badKeyMaxAddrs bounds the memory a flood from many clients can
	// take: the unblocked client that failed least recently gives way. A
	// blocked client is never evicted (that would lift its block); when
	// every tracked client is blocked, unknown keys from untracked clients
	// are refused (429) until a block ends. That fails closed for guessers
	// only: valid keys still pass, so the operator is never shut out,
	// whereas evicting would let whoever controls 10,000 addresses lift
	// any block, and growing without bound would let them exhaust memory.
	badKeyMaxAddrs = 10000
	// badKeyAlertEvery is how often one episode's alert is rewritten: the
	// first block raises it, later blocks update it at most this often.
	badKeyAlertEvery = time.Minute
	// badKeyAlertBudget bounds the alerts written per badKeyAlertEvery
	// across all clients (updates may use half of it), so thousands of addresses cannot turn into
	// thousands of store writes and an alert queue nobody can read. Blocks
	// still apply beyond it; the log says alerts were skipped.
	badKeyAlertBudget = 20
)

// The alert the throttle raises, in the brute_force detector's vocabulary.
const (
	badKeyRule   = "admin_api_invalid_keys"
	badKeyFamily = "admin_api_invalid_keys"
)

// throttleKey is the client a remote address counts as: the IP address,
// an IPv4-mapped IPv6 address as IPv4, and an IPv6 address as its /64
// ("2001:db8:1:2::/64"). Anything unparsable counts as itself.
func throttleKey(remoteAddr string) string {
	host, _ := splitRemote(remoteAddr)
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	ip = ip.WithZone("").Unmap()
	if ip.Is4() {
		return ip.String()
	}
	return netip.PrefixFrom(ip, 64).Masked().String()
}

// badKeyThrottle counts invalid keys per client. The zero value is ready
// to use; it is safe for concurrent use.
type badKeyThrottle struct {
	mu sync.Mutex
	// max caps the tracked clients; 0 means badKeyMaxAddrs.
	max int
	// addrs holds every tracked client, blocked or not.
	addrs map[string]*badKeyState
	// lru holds the *badKeyState of the clients not blocked, the most
	// recent failure first: only they may be evicted.
	lru list.List
	// nextRelease is no later than the end of the earliest block in
	// force: before it no blocked client can be released, so a table full
	// of blocked clients is not swept on every request.
	nextRelease time.Time
	// alertWindow starts the current alert budget window; alerts counts
	// the alerts written in it, withheld the new ones the budget kept back.
	alertWindow      time.Time
	alerts, withheld int
}

// badKeyState is what the throttle knows of one client.
type badKeyState struct {
	addr string
	// el is the state's place in the lru; nil while blocked.
	el *list.Element
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
	// alertedAt is when the episode's alert was last written; zero means
	// not yet.
	alertedAt time.Time
}

// badKeyBlock is what fail reports when a client crosses the threshold.
type badKeyBlock struct {
	addr string
	// episodeStart names the alert; window is the first of the failures
	// that made the limit.
	episodeStart, at, window time.Time
	// failures in the window (badKeyLimit), total in the episode, the
	// block's number in the episode.
	failures, total, blocks int
	block                   time.Duration
	// alert says whether to write the alert: the episode's first block,
	// or a later one badKeyAlertEvery after the last write, within the
	// budget.
	alert bool
	// overBudget is set on the first new alert the budget withholds in a
	// window, so the log says so once rather than once per block.
	overBudget bool
}

// limit is the cap on tracked clients.
func (t *badKeyThrottle) limit() int {
	if t.max <= 0 {
		return badKeyMaxAddrs
	}
	return t.max
}

// release puts st, whose block has ended by now, back among the evictable
// clients. Callers hold mu.
func (t *badKeyThrottle) release(st *badKeyState, now time.Time) {
	if st.el == nil && !st.blockedUntil.After(now) {
		st.el = t.lru.PushFront(st)
	}
}

// wait returns how long addr is still blocked at now, zero if it is not.
func (t *badKeyThrottle) wait(addr string, now time.Time) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	st, ok := t.addrs[addr]
	if !ok {
		return 0
	}
	if st.blockedUntil.After(now) {
		return st.blockedUntil.Sub(now)
	}
	t.release(st, now)
	return 0
}

// makeRoom evicts the least recently failing unblocked client, releasing
// the clients whose blocks have ended if none is left. It reports false
// when every tracked client is still blocked. Callers hold mu.
func (t *badKeyThrottle) makeRoom(now time.Time) bool {
	if t.lru.Len() == 0 && !now.Before(t.nextRelease) {
		t.nextRelease = time.Time{}
		for _, st := range t.addrs {
			switch {
			case st.el != nil:
			case !st.blockedUntil.After(now):
				// Released at the back: it failed before anything else
				// still tracked, so it goes first.
				st.el = t.lru.PushBack(st)
			case t.nextRelease.IsZero() || st.blockedUntil.Before(t.nextRelease):
				t.nextRelease = st.blockedUntil
			}
		}
	}
	old := t.lru.Back()
	if old == nil {
		return false
	}
	delete(t.addrs, old.Value.(*badKeyState).addr)
	t.lru.Remove(old)
	return true
}

// fail counts an invalid key from addr at now. When the failure makes
// badKeyLimit within the window, it blocks the client and reports the
// block (once: the count starts over). A positive retry says to refuse
// this request with 429 instead of 401: the client is already blocked (a
// request that raced the block), or it is untracked and every tracked
// client is blocked (see badKeyMaxAddrs).
func (t *badKeyThrottle) fail(addr string, now time.Time) (b badKeyBlock, blocked bool, retry time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.addrs == nil {
		t.addrs = make(map[string]*badKeyState)
	}
	st, ok := t.addrs[addr]
	if !ok {
		if len(t.addrs) >= t.limit() && !t.makeRoom(now) {
			return badKeyBlock{}, false, max(t.nextRelease.Sub(now), time.Second)
		}
		st = &badKeyState{addr: addr}
		st.el = t.lru.PushFront(st)
		t.addrs[addr] = st
	}
	if st.blockedUntil.After(now) {
		st.total++
		st.lastFailure = now
		return badKeyBlock{}, false, st.blockedUntil.Sub(now)
	}
	t.release(st, now)
	t.lru.MoveToFront(st.el)
	// A clock stepping back counts as a fresh start rather than leaving
	// the client blocked for ever.
	if st.total == 0 || now.Sub(st.lastFailure) >= badKeyForget || now.Before(st.lastFailure) {
		*st = badKeyState{addr: addr, el: st.el, episodeStart: now}
	}
	if len(st.recent) == badKeyLimit {
		st.recent = append(st.recent[:0], st.recent[1:]...)
	}
	st.recent = append(st.recent, now)
	st.total++
	st.lastFailure = now
	if len(st.recent) < badKeyLimit || now.Sub(st.recent[0]) >= badKeyWindow {
		return badKeyBlock{}, false, 0
	}
	block := badKeyMaxBlock
	if st.blocks < 8 {
		block = min(badKeyBaseBlock<<st.blocks, badKeyMaxBlock)
	}
	st.blocks++
	st.blockedUntil = now.Add(block)
	t.lru.Remove(st.el)
	st.el = nil
	if t.nextRelease.IsZero() || st.blockedUntil.Before(t.nextRelease) {
		t.nextRelease = st.blockedUntil
	}
	b = badKeyBlock{
		addr: addr, episodeStart: st.episodeStart, at: now, window: st.recent[0],
		failures: len(st.recent), total: st.total, blocks: st.blocks, block: block,
	}
	b.alert, b.overBudget = t.alertDue(st, now)
	// The count starts over after the block.
	st.recent = st.recent[:0]
	return b, true, 0
}

// alertDue decides whether a block of st at now writes its alert, and
// counts the write against the budget. Updates may use only half the
// budget, so a flood of repeat offenders cannot crowd out the first alert
// of a new one. Callers hold mu.
func (t *badKeyThrottle) alertDue(st *badKeyState, now time.Time) (due, overBudget bool) {
	update := !st.alertedAt.IsZero()
	if update && now.Sub(st.alertedAt) < badKeyAlertEvery && !now.Before(st.alertedAt) {
		return false, false
	}
	if now.Sub(t.alertWindow) >= badKeyAlertEvery || now.Before(t.alertWindow) {
		t.alertWindow, t.alerts, t.withheld = now, 0, 0
	}
	switch {
	case update && t.alerts >= badKeyAlertBudget/2:
		return false, false
	case t.alerts >= badKeyAlertBudget:
		t.withheld++
		return false, t.withheld == 1
	}
	t.alerts++
	st.alertedAt = now
	return true, false
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

// badKey counts an invalid key from client and, when that blocks the
// client, raises (or updates) the brute-force alert as alertDue allows.
// A positive result means the request is to be refused with 429 rather
// than 401, for that long (see fail).
func (a *api) badKey(client string, now time.Time) time.Duration {
	b, blocked, retry := a.throttle.fail(client, now)
	if !blocked {
		return retry
	}
	a.log.Warn("blocking a client after invalid API keys", "client_ip", client, "failures", b.failures, "block", b.block)
	switch {
	case b.alert:
		if _, _, err := a.store.PutAlert(badKeyAlert(b)); err != nil {
			a.log.Error("raising the invalid API key alert", "client_ip", client, "error", err)
		}
	case b.overBudget:
		a.log.Warn("invalid API keys from many clients: alerts beyond the budget are skipped until the next minute; blocks still apply",
			"budget", badKeyAlertBudget, "per", badKeyAlertEvery)
	}
	return 0
}

// badKeyAlert is the alert for a block. Its id derives from the client
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
