package caddymodule

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/caddy-audit/caddy-audit/policy"
	"github.com/caddy-audit/caddy-audit/storage"
)

// secretGen makes values of every kind the redaction promises to keep off
// the disk, each unique, so that finding one in the file can only mean it
// leaked.
type secretGen struct{ rng *rand.Rand }

func (g secretGen) chars(n int, alphabet string) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[g.rng.IntN(len(alphabet))]
	}
	return string(b)
}

const (
	alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	upper = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b64u  = alnum + "-_"
)

func (g secretGen) credential() string { return "S3c" + g.chars(21, alnum) }

// card is a Visa-range number with a valid Luhn digit.
func (g secretGen) card() string {
	d := []byte("4" + g.chars(14, "0123456789"))
	sum := 0
	for i := len(d) - 1; i >= 0; i-- {
		v := int(d[i] - '0')
		if (len(d)-i)%2 == 1 {
			v *= 2
			if v > 9 {
				v -= 9
			}
		}
		sum += v
	}
	return string(d) + string(rune('0'+(10-sum%10)%10))
}

func (g secretGen) ssn() string {
	return fmt.Sprintf("%03d-%02d-%04d", 1+g.rng.IntN(600), 1+g.rng.IntN(98), 1+g.rng.IntN(9998))
}

func (g secretGen) jwt() string {
	return "eyJ" + g.chars(20, b64u) + ".eyJ" + g.chars(30, b64u) + "." + g.chars(22, b64u)
}

func (g secretGen) awsKey() string { return "AKIA" + g.chars(16, upper) }

func (g secretGen) email() string {
	return strings.ToLower(g.chars(10, "abcdefghijklmnopqrstuvwxyz")) + "@" + strings.ToLower(g.chars(8, "abcdefghijklmnopqrstuvwxyz")) + ".example"
}

// leakRequest builds a request carrying fresh secrets in headers, query,
// path, and a JSON or form body, and says which strings must not be
// stored (with the encodings they travel in).
func leakRequest(g secretGen, form bool) (*http.Request, []string, string) {
	cred, cookie, apiKey, qtok, bodyPass := g.credential(), g.credential(), g.credential(), g.credential(), g.credential()
	card, card2, ssn, jwt, aws, mail, bearer := g.card(), g.card(), g.ssn(), g.jwt(), g.awsKey(), g.email(), g.credential()
	pemBody := g.chars(48, alnum)
	respSecret := g.credential()
	grouped := card2[:4] + " " + card2[4:8] + " " + card2[8:12] + " " + card2[12:]

	path := "/api/users/" + url.PathEscape(mail) + "/cards/" + card + "/keys/" + aws
	q := url.Values{"token": {qtok}, "q": {grouped}, "page": {"2"}, "id": {jwt}}
	var body, ct string
	if form {
		ct = "application/x-www-form-urlencoded"
		body = url.Values{"user": {"alice"}, "password": {bodyPass}, "note": {"ssn " + ssn}, "contact": {mail}}.Encode()
	} else {
		ct = "application/json"
		b, _ := json.Marshal(map[string]any{
			"user": "alice", "password": bodyPass, "nested": map[string]any{"api_key": apiKey, "list": []any{card, ssn}},
			"note": "reach me at " + mail, "key": "-----BEGIN PRIVATE KEY-----\n" + pemBody + "\n-----END PRIVATE KEY-----",
		})
		body = string(b)
	}
	r := httptest.NewRequest("POST", "http://app.example"+path+"?"+q.Encode(), strings.NewReader(body))
	r.Header.Set("Content-Type", ct)
	r.Header.Set("Authorization", "Bearer "+cred)
	r.Header.Set("Cookie", "sid="+cookie+"; theme=dark")
	r.Header.Set("X-Api-Key", apiKey)
	r.Header.Set("X-Debug", "Bearer "+bearer+" card "+grouped)
	r.Header.Set("Referer", "https://app.example/reset?token="+qtok+"&email="+url.QueryEscape(mail))
	r.Header.Set("X-User-ID", "alice")
	r.Header.Set("X-Workspace-ID", "acme")
	secrets := []string{cred, cookie, apiKey, qtok, bodyPass, card, card2, grouped, ssn, jwt, aws, mail, bearer, pemBody, respSecret,
		url.QueryEscape(grouped), url.QueryEscape(mail), url.PathEscape(mail), strings.ReplaceAll(ssn, "-", "")}
	return r, secrets, respSecret
}

// TestSecretsNeverReachTheDBFile is the redaction promise as a property:
// requests carrying credentials, card numbers, SSNs, JWTs, cloud keys,
// private keys and e-mail addresses (the policy asks for those) in
// headers, query, path, JSON and form bodies and the response, recorded
// through the real handler into a real store at every level, leave none of
// those values anywhere in the database file: live pages, free pages and
// slack alike, read as raw bytes after the store is closed.
func TestSecretsNeverReachTheDBFile(t *testing.T) {
	g := secretGen{rand.New(rand.NewPCG(20261126, 6))}
	for _, level := range policy.Levels {
		for _, mode := range []string{FailureBestEffort, FailureStrict} {
			t.Run(level+"/"+mode, func(t *testing.T) {
				eff, err := (&policy.Policy{Defaults: policy.Defaults{Level: level, FailureMode: mode,
					Redact: policy.Redact{Patterns: []string{policy.PatternEmail}},
					Body:   &policy.Body{ContentTypes: []string{"application/json", "application/x-www-form-urlencoded", "text/*"}}}}).Effective()
				if err != nil {
					t.Fatal(err)
				}
				h := newPolicyHandler(t, &Handler{User: &IdentitySource{Source: sourceHeader, Name: "X-User-ID"},
					Workspace: &IdentitySource{Source: sourceHeader, Name: "X-Workspace-ID"}}, eff)
				var all []string
				for i := range 12 {
					r, secrets, respSecret := leakRequest(g, i%2 == 1)
					all = append(all, secrets...)
					next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
						in, _ := io.ReadAll(r.Body)
						w.Header().Set("Set-Cookie", "sid="+respSecret+"; HttpOnly")
						w.Header().Set("Content-Type", "application/json")
						// The upstream echoes the request: secrets go back out too.
						_, _ = fmt.Fprintf(w, `{"echo":%q,"session_token":%q}`, in, respSecret)
						return nil
					})
					if err := h.ServeHTTP(httptest.NewRecorder(), caddyRequest(r, "203.0.113.9"), next); err != nil {
						t.Fatal(err)
					}
				}
				want := 12
				if level == LevelNone {
					want = 0
				}
				if level != LevelNone {
					httpEvents(t, h, want)
				}
				assertNoSecretsInFile(t, h, all, level != LevelNone)
			})
		}
	}
}

// assertNoSecretsInFile closes h's store and searches its file.
func assertNoSecretsInFile(t *testing.T, h *Handler, secrets []string, expectRecords bool) {
	t.Helper()
	path := h.app.pipe.store.Path()
	if err := closeTestPipeline(h.app.pipe); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// The search must be able to find what is there: the path prefix is
	// stored in clear.
	if expectRecords != bytes.Contains(data, []byte("/api/users/")) {
		t.Fatalf("records in the file: %v, want %v", !expectRecords, expectRecords)
	}
	for _, s := range secrets {
		if i := bytes.Index(data, []byte(s)); i >= 0 {
			lo, hi := max(0, i-60), min(len(data), i+len(s)+60)
			t.Errorf("secret %q is in the database file at %d: %q", s, i, data[lo:hi])
		}
	}
}

// fuzzStore is one store per fuzzing process: opening bbolt per input
// would measure bbolt, not the redaction.
var fuzzStore struct {
	once sync.Once
	dir  string
	h    map[string]*Handler
	err  error
}

// FuzzSecretsNeverReachTheDB: whatever surrounds a secret, at every
// level, it does not reach the database file. The secret travels as a
// credential header, a sensitive query parameter, a JSON password field, a
// form password field and a card number in the path; the rest of the
// request is fuzzed.
func FuzzSecretsNeverReachTheDB(f *testing.F) {
	f.Add("S3cretValue123456", "/api/items", "page=1", `{"a":1}`, uint8(0))
	f.Add("hunter2hunter2", "/x/y", "a=%zz&b", `[`, uint8(3))
	f.Add("p@ss w0rd;=&", "/", "", `{"password":`, uint8(2))
	f.Cleanup(func() {
		if h := fuzzStore.h[LevelNone]; h != nil {
			_ = closeTestPipeline(h.app.pipe)
		}
		if fuzzStore.dir != "" {
			_ = os.RemoveAll(fuzzStore.dir)
		}
	})
	f.Fuzz(func(t *testing.T, secret, path, query, extra string, which uint8) {
		// A secret that ordinary text contains, or with separators that
		// make it several values, cannot be told from the rest.
		if len(secret) < 10 || strings.ContainsAny(secret, " \t\r\n;,=&%+\"\\#?/") || !isPrintableASCII(secret) ||
			strings.Contains(path+query+extra, secret) || strings.Contains(secret, "hmac") {
			return
		}
		if !strings.HasPrefix(path, "/") || !isPrintableASCII(path+query+extra) || strings.ContainsAny(path+query, " #?") {
			return
		}
		level := policy.Levels[int(which)%len(policy.Levels)]
		h := fuzzHandler(t, level)
		g := secretGen{rand.New(rand.NewPCG(uint64(len(secret)), uint64(which)))}
		card := g.card()
		target := "http://app.example" + path + "/" + card + "?" + query + "&password=" + url.QueryEscape(secret)
		for _, form := range []bool{false, true} {
			body, ct := `{"x":`+fmt.Sprintf("%q", extra)+`,"password":"`+secret+`"}`, "application/json"
			if form {
				body, ct = "note="+url.QueryEscape(extra)+"&password="+url.QueryEscape(secret), "application/x-www-form-urlencoded"
			}
			r := httptest.NewRequest("POST", target, strings.NewReader(body))
			r.Header.Set("Content-Type", ct)
			r.Header.Set("Authorization", "Bearer "+secret)
			r.Header.Set("X-Api-Key", secret)
			next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
				_, _ = io.Copy(io.Discard, r.Body)
				w.Header().Set("Content-Type", "application/json")
				_, _ = io.WriteString(w, `{"token":"`+secret+`"}`)
				return nil
			})
			if err := h.ServeHTTP(httptest.NewRecorder(), caddyRequest(r, "203.0.113.9"), next); err != nil {
				t.Fatal(err)
			}
		}
		// A committed marker: everything queued before it is on disk.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		now := time.Now()
		if err := h.app.pipe.writer.Commit(ctx, &storage.Event{ID: storage.NewID(now), Time: now, Kind: storage.KindLifecycle, Action: "fuzz_marker"}); err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(h.app.pipe.store.Path())
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range []string{secret, url.QueryEscape(secret), card} {
			if bytes.Contains(data, []byte(s)) {
				t.Fatalf("level %s: %q reached the database file", level, s)
			}
		}
	})
}

func isPrintableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// fuzzHandler returns the process's handler for level, over one store.
func fuzzHandler(t *testing.T, level string) *Handler {
	fuzzStore.once.Do(func() {
		dir, err := os.MkdirTemp("", "fuzz-audit-*")
		if err != nil {
			fuzzStore.err = err
			return
		}
		fuzzStore.dir = dir
		a := &App{DataDir: dir, QueueSize: 1 << 12, MaxBatch: 512, logger: zap.NewNop(),
			dbPath: filepath.Join(dir, "audit.db"), keyPath: filepath.Join(dir, "hmac.key")}
		p, err := openPipeline(a)
		if err != nil {
			fuzzStore.err = err
			return
		}
		a.usePipeline(p)
		fuzzStore.h = map[string]*Handler{}
		for _, l := range policy.Levels {
			h := &Handler{Level: l, app: a, logger: zap.NewNop()}
			err := h.setDefaults()
			if err == nil {
				err = h.prepare()
			}
			if err != nil {
				fuzzStore.err = err
				return
			}
			if _, _, err := h.ready(); err != nil {
				fuzzStore.err = err
				return
			}
			fuzzStore.h[l] = h
		}
	})
	if fuzzStore.err != nil {
		t.Fatal(fuzzStore.err)
	}
	return fuzzStore.h[level]
}

// A reload that changes the policy is recorded with both hashes and what
// changed; one that does not change it is not; reverting records the
// change back.
func TestPolicyChangeIsAudited(t *testing.T) {
	dir := t.TempDir()
	write := func(src string) *policy.Policy {
		path := filepath.Join(dir, "audit-policy.yaml")
		if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
		a := &App{PolicyFile: path}
		if err := a.loadPolicy(); err != nil {
			t.Fatal(err)
		}
		return a.policy
	}
	v1 := write("profile: production\nrules:\n  - name: a\n    match: {paths: [/a]}\n    level: headers\n")
	v1again := write("# reformatted\nprofile: production\nrules:\n- {name: a, match: {paths: [/a]}, level: headers}\n")
	v2 := write("profile: pci\ndefaults: {level: headers}\nrules:\n  - name: b\n    match: {paths: [/b]}\n")

	h := newTestHandler(t, &Handler{})
	p := h.app.pipe
	apps := []*App{}
	start := func(pol *policy.Policy) *App {
		a := &App{logger: zap.NewNop(), policy: pol, policyPath: filepath.Join(dir, "audit-policy.yaml"), pipe: p}
		a.pipeOnce = new(sync.Once)
		a.pipeOnce.Do(func() {})
		p.adopt(a)
		apps = append(apps, a)
		return a
	}
	start(v1)
	start(v1again)
	newest := start(v2)
	p.abandon(newest) // a failed reload: v1 is in force again
	_ = apps

	p.writer.Close()
	page, err := p.store.Query(storage.Filter{Kind: storage.KindLifecycle}, 100, "")
	if err != nil {
		t.Fatal(err)
	}
	var got []storage.Event
	for _, ev := range page.Events {
		if strings.HasPrefix(ev.Action, "policy_") {
			got = append([]storage.Event{ev}, got...) // oldest first
		}
	}
	if len(got) != 3 {
		t.Fatalf("want loaded, changed, changed back; got %d: %v", len(got), got)
	}
	if got[0].Action != actionPolicyLoaded || got[0].Details["new_sha256"] != v1.Hash() || got[0].Details["old_sha256"] != "" {
		t.Errorf("first: %s %v", got[0].Action, got[0].Details)
	}
	ch := got[1]
	changes := fmt.Sprint(ch.Details["changes"])
	if ch.Action != actionPolicyChanged || ch.Details["old_sha256"] != v1.Hash() || ch.Details["new_sha256"] != v2.Hash() {
		t.Errorf("change: %s %v", ch.Action, ch.Details)
	}
	for _, want := range []string{`profile: "production" -> "pci"`, "defaults.level", "defaults.retention_days: 90 -> 365", "rule added: b", "rule removed: a", "rule added: pci:auth", "rule removed: production:health-checks"} {
		if !strings.Contains(changes, want) {
			t.Errorf("changes %s\nlack %q", changes, want)
		}
	}
	if pol, ok := ch.Details["policy"].(map[string]any); !ok || pol["profile"] != "pci" {
		t.Errorf("the event carries the effective policy: %v", ch.Details["policy"])
	}
	if back := got[2]; back.Details["new_sha256"] != v1.Hash() || back.Details["old_sha256"] != v2.Hash() {
		t.Errorf("revert: %v", back.Details)
	}
	if !slices.Contains([]string{v1.Hash()}, v1again.Hash()) {
		t.Error("a reformatted file is the same policy")
	}
}

// The policy's retention, business hours and detector sensitivity reach
// the app's settings where the app leaves them unset.
func TestPolicyAppliesToApp(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.yaml")
	if err := os.WriteFile(path, []byte("profile: hipaa\ndefaults:\n  business_hours: {timezone: Europe/Berlin}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a := &App{PolicyFile: path, RetentionFloorDays: 3000}
	if err := a.loadPolicy(); err != nil {
		t.Fatal(err)
	}
	if err := a.loadDetectorConfig(); err != nil {
		t.Fatal(err)
	}
	days, floor := a.retentionFromPolicy()
	if days != 3000 || floor != 3000 {
		t.Errorf("retention %d floor %d: the app's higher floor wins and the default cannot undercut it", days, floor)
	}
	if a.detectorCfg.BusinessHours.Timezone != "Europe/Berlin" || a.detectorCfg.BruteForce.Burst.Capacity != 3 {
		t.Errorf("detector config %+v", a.detectorCfg.Settings.BusinessHours)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("defaults:\n  levle: body\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := (&App{PolicyFile: bad}).loadPolicy()
	if err == nil || !strings.Contains(err.Error(), "bad.yaml:2:3: policy.defaults: unknown key \"levle\"") {
		t.Fatalf("got %v", err)
	}
}
