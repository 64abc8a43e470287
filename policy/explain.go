package policy

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"net/http"
	"strings"

	"github.com/caddy-audit/caddy-audit/storage"
)

// ExplainRequest is a request to explain: what `caddy audit policy
// explain` reads from its flags.
type ExplainRequest struct {
	Method string
	// URL is absolute ("https://app.example/api/items/7?x=1") or a path
	// with an optional query; Host, when set, overrides its host.
	URL    string
	Host   string
	Header http.Header
	Body   []byte
	// Workspace and User are the identities the handler would resolve.
	Workspace, User string
	// Status is the response status to assume; 0 leaves it unknown, so
	// rules that match on status are reported as undecided.
	Status int
	// ClientIP is the client address to show IP handling with.
	ClientIP string
}

// Explanation says how a policy treats a request.
type Explanation struct {
	// PolicyHash is the effective policy's SHA-256.
	PolicyHash string `json:"policy_sha256"`
	// Rule and Index name the deciding rule; Rule is empty and Index -1
	// when the defaults decided.
	Rule  string `json:"rule,omitempty"`
	Index int    `json:"index"`
	// Level, FailureMode and Tags are what the decision sets.
	Level       string   `json:"level"`
	FailureMode string   `json:"failure_mode"`
	Tags        []string `json:"tags,omitempty"`
	// Undecided lists the rules before the deciding one that match on
	// something not given (the status), and would win if it matched.
	Undecided []string `json:"undecided,omitempty"`
	// Event is what would be stored (without time, IDs and risk), or nil
	// at level none.
	Event *storage.Event `json:"event,omitempty"`
}

// Explain reports which rule of the effective policy p decides req, and
// the event the audit handler would store for it. Tokens are computed with
// key; pass nil for a random key (tokens then match nothing stored).
func Explain(p *Policy, key []byte, req ExplainRequest) (*Explanation, error) {
	if key == nil {
		key = make([]byte, KeySize)
		_, _ = rand.Read(key)
	}
	eng, err := Compile(p, key, Redact{})
	if err != nil {
		return nil, err
	}
	return eng.Explain(req)
}

// Explain is the package-level Explain with this engine's policy and key.
func (e *Engine) Explain(req ExplainRequest) (*Explanation, error) {
	method := strings.ToUpper(req.Method)
	if method == "" {
		method = http.MethodGet
	}
	if !IsToken(method) {
		return nil, fmt.Errorf("method %q is not an HTTP method", req.Method)
	}
	target := req.URL
	if target == "" {
		target = "/"
	}
	if !strings.Contains(target, "://") && !strings.HasPrefix(target, "/") {
		return nil, fmt.Errorf("URL %q: want an absolute URL or a path starting with /", req.URL)
	}
	r, err := newRequest(method, target, req.Body)
	if err != nil {
		return nil, err
	}
	for name, vals := range req.Header {
		r.Header[http.CanonicalHeaderKey(name)] = append([]string(nil), vals...)
	}
	if req.Host != "" {
		r.Host = req.Host
	}
	mr := &Request{Method: method, Host: r.Host, Path: r.URL.Path, Workspace: req.Workspace, User: req.User, Status: req.Status}
	out := &Explanation{PolicyHash: e.hash}
	var d *Decision
	if req.Status == 0 {
		mr.Unknown = UnknownStatus
		plan := e.Plan(mr)
		d = plan.Decision
		if !plan.Final {
			limit := len(e.rules)
			if d.Index >= 0 {
				limit = d.Index
			}
			for i := range limit {
				if e.rules[i].match(mr) == maybe {
					out.Undecided = append(out.Undecided, e.rules[i].decision.Rule)
				}
			}
		}
	} else {
		d = e.Match(mr)
	}
	out.Rule, out.Index, out.Level, out.FailureMode, out.Tags = d.Rule, d.Index, d.Level, d.FailureMode, d.Tags
	if d.Level == LevelNone {
		return out, nil
	}
	ev := &storage.Event{Kind: storage.KindHTTP, Stage: storage.StageResponseComplete, Scheme: "http",
		Workspace: Clean(req.Workspace), User: Clean(req.User), Status: req.Status, Proto: r.Proto}
	if strings.HasPrefix(target, "https://") {
		ev.Scheme = "https"
	}
	if req.Status != 0 {
		ev.Outcome = storage.Outcome(req.Status)
	}
	d.RecordRequest(ev, r)
	ev.ClientIP = d.IP(req.ClientIP)
	ev.BytesIn = int64(len(req.Body))
	if d.Level == LevelBody && len(req.Body) > 0 {
		c := &Capture{Max: d.Body.MaxBytes}
		_, _ = c.Write(req.Body)
		ev.RequestBody = d.RecordBody(r.Header.Get("Content-Type"), r.Header.Get("Content-Encoding"), c)
	}
	out.Event = ev
	return out, nil
}

// newRequest builds the request to explain. A path without a host gets
// none; Host in ExplainRequest sets one.
func newRequest(method, target string, body []byte) (*http.Request, error) {
	r, err := http.NewRequest(method, target, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("URL %q: %w", target, err)
	}
	return r, nil
}
