package caddymodule

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/caddy-audit/caddy-audit/detectors"
	"github.com/caddy-audit/caddy-audit/policy"
	"github.com/caddy-audit/caddy-audit/storage"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Audit levels, from least to most recorded; see the policy package.
const (
	LevelNone     = policy.LevelNone
	LevelMetadata = policy.LevelMetadata
	LevelHeaders  = policy.LevelHeaders
	LevelBody     = policy.LevelBody
)

// Failure modes: what happens to a request when it cannot be recorded.
const (
	// FailureBestEffort never slows or fails a request; an event that
	// cannot be written is dropped, counted and reported.
	FailureBestEffort = policy.FailureBestEffort
	// FailureStrict records the request durably before forwarding it; if
	// that fails the client gets 503 and the upstream sees nothing.
	FailureStrict = policy.FailureStrict
)

// Handler is the `audit` HTTP handler. It records every request that passes
// through it as an audit event, with credentials replaced by keyed hashes,
// and passes the request on unchanged except for X-Request-ID.
type Handler struct {
	// Level is how much to record: none, metadata (default), headers or
	// body (bounded, redacted bodies of JSON and form requests and
	// responses). With a policy_file in the audit app, the policy decides
	// and Level must not be set.
	Level string `json:"level,omitempty"`

	// FailureMode is best_effort (default) or strict. With a policy_file,
	// the policy decides and FailureMode must not be set.
	FailureMode string `json:"failure_mode,omitempty"`

	// StrictTimeout is how long a strict request waits for its record to
	// be committed before it is refused with 503. Default 5s.
	StrictTimeout caddy.Duration `json:"strict_timeout,omitempty"`

	// User says where the acting user comes from. Default: the
	// {http.auth.user.id} placeholder that Caddy's authentication
	// handlers set.
	User *IdentitySource `json:"user,omitempty"`

	// Workspace says where the tenant comes from. Default: none.
	Workspace *IdentitySource `json:"workspace,omitempty"`

	// JWTSecret is the HMAC secret (HS256/384/512) that bearer JWTs are
	// checked against; placeholders such as {env.JWT_SECRET} work.
	// Without it or JWTKeyFile, JWT claims are recorded as unverified.
	JWTSecret string `json:"jwt_secret,omitempty"`

	// JWTKeyFile is a PEM public key or certificate (RSA, ECDSA or
	// Ed25519) that bearer JWTs are checked against.
	JWTKeyFile string `json:"jwt_key_file,omitempty"`

	// RedactHeaders are more request or response headers whose values are
	// secrets, added to the built-in list (Authorization, Cookie, ...).
	RedactHeaders []string `json:"redact_headers,omitempty"`

	// RedactQuery are more query parameters whose values are secrets,
	// added to the built-in list (token, password, api_key, ...).
	RedactQuery []string `json:"redact_query,omitempty"`

	app      *App
	recorded [4]prometheus.Counter // events_recorded_total per level, looked up once
	risk     [4]prometheus.Counter // events_risk_total per risk level, looked up once
	// keyless decides failure modes when the store (and with it the HMAC
	// key) cannot be opened; it never redacts anything that is stored.
	keyless    *policy.Engine
	engineOnce *sync.Once // a pointer: Caddy copies module values
	engine     *policy.Engine
	engineErr  error
	jwt        *jwtVerifier
	logger     *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.audit",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision joins the audit app and prepares redaction.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	appIface, err := ctx.App("audit")
	if err != nil {
		return fmt.Errorf("loading audit app: %w", err)
	}
	h.app = appIface.(*App)
	if err := h.setDefaults(); err != nil {
		return err
	}
	if err := registerMetrics(ctx.GetMetricsRegistry()); err != nil {
		return err
	}
	return h.prepare()
}

// prepare compiles the policy without a key (which catches every error at
// provision time) and looks up the metrics.
func (h *Handler) prepare() error {
	eng, err := policy.Compile(h.effectivePolicy(), nil, h.extraRedact())
	if err != nil {
		return err
	}
	h.keyless = eng
	h.engineOnce = new(sync.Once)
	for i, level := range policy.Levels {
		// Level none records nothing, so it has no series (initSeries
		// leaves it out too) and its slot stays nil.
		if level != LevelNone {
			h.recorded[i] = metrics.recorded.WithLabelValues(level)
		}
	}
	for i, level := range detectors.RiskLevels {
		h.risk[i] = metrics.riskLevels.WithLabelValues(level)
	}
	return nil
}

// effectivePolicy is the app's policy, or without one a policy of this
// handler's level and failure mode.
func (h *Handler) effectivePolicy() *policy.Policy {
	if h.app != nil && h.app.policy != nil {
		return h.app.policy
	}
	return &policy.Policy{Defaults: policy.Defaults{Level: h.Level, FailureMode: h.FailureMode}}
}

func (h *Handler) extraRedact() policy.Redact {
	return policy.Redact{Headers: h.RedactHeaders, Query: h.RedactQuery}
}

// ready returns the app's pipeline, opening it if the http app started
// before the audit app did, and the policy engine keyed with its HMAC key.
func (h *Handler) ready() (*pipeline, *policy.Engine, error) {
	p, err := h.app.pipeline()
	if err != nil {
		return nil, nil, err
	}
	h.engineOnce.Do(func() {
		h.engine, h.engineErr = policy.Compile(h.effectivePolicy(), p.key, h.extraRedact())
	})
	return p, h.engine, h.engineErr
}

// setDefaults validates the config and fills in defaults.
func (h *Handler) setDefaults() error {
	if h.app != nil && h.app.policy != nil && (h.Level != "" || h.FailureMode != "") {
		return fmt.Errorf("level and failure_mode are set by the audit policy file %s; remove them from the audit handler (or add a rule to the policy)", h.app.PolicyFile)
	}
	switch h.Level {
	case "":
		h.Level = LevelMetadata
	case LevelNone, LevelMetadata, LevelHeaders, LevelBody:
	default:
		return fmt.Errorf("level: unknown level %q (want none, metadata, headers or body)", h.Level)
	}
	switch h.FailureMode {
	case "":
		h.FailureMode = FailureBestEffort
	case FailureBestEffort, FailureStrict:
	default:
		return fmt.Errorf("failure_mode: unknown mode %q (want best_effort or strict)", h.FailureMode)
	}
	if h.StrictTimeout < 0 {
		return errors.New("strict_timeout must not be negative")
	}
	if h.StrictTimeout == 0 {
		h.StrictTimeout = caddy.Duration(5 * time.Second)
	}
	if h.User == nil {
		h.User = &IdentitySource{Source: sourcePlaceholder, Name: "{http.auth.user.id}"}
	}
	if err := h.User.validate("user", userSources...); err != nil {
		return err
	}
	if h.Workspace != nil {
		if err := h.Workspace.validate("workspace", workspaceSources...); err != nil {
			return err
		}
	}
	return h.provisionJWT()
}

func (h *Handler) provisionJWT() error {
	if h.JWTSecret == "" && h.JWTKeyFile == "" {
		return nil
	}
	repl := caddy.NewReplacer()
	h.jwt = &jwtVerifier{}
	if h.JWTSecret != "" {
		secret, err := repl.ReplaceOrErr(h.JWTSecret, true, true)
		if err != nil {
			return fmt.Errorf("jwt_secret: %w", err)
		}
		h.jwt.hmacKey = []byte(secret)
	}
	if h.JWTKeyFile != "" {
		data, err := os.ReadFile(repl.ReplaceAll(h.JWTKeyFile, ""))
		if err != nil {
			return fmt.Errorf("jwt_key_file: %w", err)
		}
		if h.jwt.public, err = parsePublicKeyPEM(data); err != nil {
			return fmt.Errorf("jwt_key_file %s: %w", h.JWTKeyFile, err)
		}
	}
	return nil
}

// ServeHTTP records the request around the rest of the chain.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	start := time.Now()
	repl, _ := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	claims := bearerClaims(r, h.jwt)
	ev := &storage.Event{}
	h.resolveIdentities(ev, r, repl, claims, false)
	mreq := policy.Request{Method: r.Method, Host: r.Host, Path: r.URL.Path, User: ev.User, Workspace: ev.Workspace, Unknown: policy.UnknownStatus}
	if h.User.afterHandling() {
		mreq.Unknown |= policy.UnknownUser
	}
	if h.Workspace != nil && h.Workspace.afterHandling() {
		mreq.Unknown |= policy.UnknownWorkspace
	}

	pipe, eng, err := h.ready()
	if err != nil {
		// The database could not be opened: nothing can be recorded.
		plan := h.keyless.Plan(&mreq)
		if plan.Capture == LevelNone {
			return next.ServeHTTP(w, r)
		}
		if plan.FailureMode == FailureStrict {
			metrics.strictRejects.Inc()
			return caddyhttp.Error(http.StatusServiceUnavailable, fmt.Errorf("audit: request not forwarded: %w", err))
		}
		metrics.dropped.WithLabelValues(storage.DropClosed).Inc()
		return next.ServeHTTP(w, r)
	}
	plan := eng.Plan(&mreq)
	if plan.Capture == LevelNone {
		return next.ServeHTTP(w, r) // an explicit, reviewed choice
	}
	id := requestID(r, start)
	r.Header.Set(requestIDKey, id)
	w.Header().Set(requestIDKey, id)

	h.startEvent(ev, r, start, id)
	info := clientInfo(r)
	// When the decision waits for the response, the request is kept as it
	// came (later handlers may rewrite it) and recorded once decided.
	var snapshot *http.Request
	if plan.Final {
		h.fillRequest(ev, plan.Decision, r, info)
	} else {
		snapshot = r.Clone(r.Context())
	}

	if plan.FailureMode == FailureStrict {
		received := *ev
		if !plan.Final {
			h.fillRequest(&received, plan.Decision, r, info)
		}
		received.Stage = storage.StageRequestReceived
		received.ID = storage.NewID(start)
		h.app.score(&received)
		ctx, cancel := context.WithTimeout(r.Context(), time.Duration(h.StrictTimeout))
		err := pipe.writer.Commit(ctx, &received)
		cancel()
		if err != nil {
			metrics.strictRejects.Inc()
			// The refusal is an outcome too. The store may be the very
			// thing failing, so this is best effort: a drop is counted and
			// reported like any other.
			refused := received
			refused.ID, refused.Stage = ev.ID, storage.StageResponseComplete
			refused.Status, refused.Outcome = http.StatusServiceUnavailable, storage.Outcome(http.StatusServiceUnavailable)
			refused.UpstreamError = "not forwarded: the request could not be recorded durably (" + storage.ErrorKind(err) + ")"
			refused.DurationNS = time.Since(start).Nanoseconds()
			h.app.score(&refused)
			_ = pipe.writer.Enqueue(&refused)
			return caddyhttp.Error(http.StatusServiceUnavailable,
				fmt.Errorf("audit: request %s not forwarded, it could not be recorded: %w", id, err))
		}
	}

	capture := plan.Capture == LevelBody
	var body *countingBody
	if r.Body != nil && r.Body != http.NoBody {
		body = &countingBody{ReadCloser: r.Body}
		if capture {
			body.capture = &policy.Capture{Max: plan.CaptureBytes}
		}
		r.Body = body
	}
	tw := &timingWriter{ResponseWriterWrapper: caddyhttp.ResponseWriterWrapper{ResponseWriter: w}, requestID: id}
	if capture {
		tw.capture = &policy.Capture{Max: plan.CaptureBytes}
	}
	rec := caddyhttp.NewResponseRecorder(tw, nil, nil)

	err = next.ServeHTTP(rec, r)

	end := time.Now()
	ev.Status = rec.Status()
	if ev.Status == 0 && err == nil {
		ev.Status = http.StatusOK // nothing written: net/http sends an empty 200
	}
	var upstreamErr string
	if err != nil {
		ev.Status = http.StatusInternalServerError
		var he caddyhttp.HandlerError
		if errors.As(err, &he) {
			if he.StatusCode != 0 {
				ev.Status = he.StatusCode
			}
			if he.Err != nil {
				upstreamErr = he.Err.Error()
			}
		} else {
			upstreamErr = err.Error()
		}
	}
	h.resolveIdentities(ev, r, repl, claims, true)
	decision := plan.Decision
	if !plan.Final {
		mreq.Status, mreq.User, mreq.Workspace = ev.Status, ev.User, ev.Workspace
		decision = eng.Match(&mreq)
		if decision.Level == LevelNone {
			return err // decided after the response: a status rule said none
		}
		h.fillRequest(ev, decision, snapshot, info)
	}
	red := decision.Redactor()
	if upstreamErr != "" {
		ev.UpstreamError = red.Text(upstreamErr)
	}
	ev.Outcome = storage.Outcome(ev.Status)
	ev.DurationNS = end.Sub(start).Nanoseconds()
	if t := tw.firstByte.Load(); t != 0 {
		ev.TTFBNS = t - start.UnixNano()
	}
	ev.BytesOut = int64(rec.Size())
	if body != nil {
		ev.BytesIn = body.n.Load()
	}
	rank := policy.LevelRank(decision.Level)
	if rank >= policy.LevelRank(LevelHeaders) {
		ev.ResponseHeaders = red.Headers(rec.Header())
	}
	if decision.Level == LevelBody {
		if body != nil && body.capture != nil {
			src := r
			if snapshot != nil {
				src = snapshot
			}
			ev.RequestBody = decision.RecordBody(src.Header.Get("Content-Type"), src.Header.Get("Content-Encoding"), body.capture)
		}
		if tw.capture != nil && tw.capture.Size() > 0 {
			hdr := rec.Header()
			ev.ResponseBody = decision.RecordBody(hdr.Get("Content-Type"), hdr.Get("Content-Encoding"), tw.capture)
		}
	}
	h.app.score(ev)

	h.recorded[rank].Inc()
	if i := slices.Index(detectors.RiskLevels, ev.RiskLevel); i >= 0 {
		h.risk[i].Inc()
	}
	if plan.FailureMode == FailureStrict {
		// The request is already on disk; wait for queue space rather than
		// drop its outcome.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), time.Duration(h.StrictTimeout))
		if werr := pipe.writer.EnqueueWait(ctx, ev); werr != nil {
			h.logger.Error("recording response of strict request", zap.String("request_id", id), zap.Error(werr))
		}
		cancel()
	} else {
		_ = pipe.writer.Enqueue(ev) // a drop is counted and reported by the writer
	}
	return err
}

// startEvent fills what every event of the request shares and no policy
// decision changes.
func (h *Handler) startEvent(ev *storage.Event, r *http.Request, start time.Time, id string) {
	ev.ID = storage.NewID(start)
	ev.Time = start.UTC()
	ev.Kind = storage.KindHTTP
	ev.Stage = storage.StageResponseComplete
	ev.RequestID = id
	ev.Scheme = "http"
	ev.Proto = r.Proto
	if r.TLS != nil {
		ev.Scheme = "https"
		ev.TLSVersion = tls.VersionName(r.TLS.Version)
		ev.TLSCipher = tls.CipherSuiteName(r.TLS.CipherSuite)
	}
}

// client is where a request came from, as received (before IP handling).
type client struct {
	ip           string
	port         int
	forwardedFor []string
}

func clientInfo(r *http.Request) client {
	var c client
	c.ip, _ = caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string)
	if host, port, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		if c.ip == "" {
			c.ip = host
		}
		c.port, _ = strconv.Atoi(port)
	}
	for _, v := range r.Header.Values("X-Forwarded-For") {
		for hop := range strings.SplitSeq(v, ",") {
			if hop = strings.TrimSpace(hop); hop != "" {
				c.forwardedFor = append(c.forwardedFor, hop)
			}
		}
	}
	return c
}

// fillRequest records the request side of ev as decided: the sanitized
// request line and headers, the rule and tags, and the client addresses
// under the policy's IP handling.
func (h *Handler) fillRequest(ev *storage.Event, d *policy.Decision, r *http.Request, c client) {
	d.RecordRequest(ev, r)
	ev.ClientIP = d.IP(c.ip)
	ev.ClientPort = c.port
	if d.IPHandling != policy.IPKeep {
		ev.ClientPort = 0 // with the time, a port singles out a device behind a NAT
	}
	ev.ForwardedFor = nil
	for _, hop := range c.forwardedFor {
		ev.ForwardedFor = append(ev.ForwardedFor, d.IP(hop))
	}
}

// resolveIdentities fills user and workspace from the sources that are
// ready: before handling (after=false) or after it (after=true).
func (h *Handler) resolveIdentities(ev *storage.Event, r *http.Request, repl *caddy.Replacer, claims func() (map[string]any, bool), after bool) {
	if h.User.afterHandling() == after {
		if id := h.User.resolve(r, repl, claims); id.value != "" {
			ev.User, ev.UserSource, ev.UserVerified = policy.Clean(id.value), id.source, id.verified
		}
	}
	if h.Workspace != nil && h.Workspace.afterHandling() == after {
		if id := h.Workspace.resolve(r, repl, claims); id.value != "" {
			ev.ClaimWorkspace(policy.Clean(id.value))
		}
	}
}

// countingBody counts request body bytes as the upstream reads them and,
// at the body level, keeps the first of them: the upstream receives the
// body unchanged and as it streams.
type countingBody struct {
	io.ReadCloser
	n       atomic.Int64
	capture *policy.Capture // nil unless capturing; read after next returns
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	if b.capture != nil && n > 0 {
		_, _ = b.capture.Write(p[:n])
	}
	return n, err
}

// timingWriter notes when the response headers went out (time to first
// byte) and makes sure they carry exactly one X-Request-ID: ours, even when
// the upstream echoes the header back (reverse_proxy adds, not replaces,
// upstream headers). It sits under Caddy's response recorder, which does
// the counting and keeps Flush and Hijack working through Unwrap.
type timingWriter struct {
	// By value: one allocation per request fewer; its pointer methods
	// (Unwrap, ReadFrom, Push) are promoted to *timingWriter all the same.
	caddyhttp.ResponseWriterWrapper
	requestID string
	firstByte atomic.Int64    // unix ns; 0 until headers are written
	capture   *policy.Capture // the response body's first bytes, at the body level
}

func (tw *timingWriter) WriteHeader(status int) {
	if status >= 200 || status == http.StatusSwitchingProtocols {
		tw.headersOut()
	}
	tw.ResponseWriterWrapper.WriteHeader(status)
}

func (tw *timingWriter) Write(p []byte) (int, error) {
	tw.headersOut()
	n, err := tw.ResponseWriterWrapper.Write(p)
	if tw.capture != nil && n > 0 {
		_, _ = tw.capture.Write(p[:n])
	}
	return n, err
}

func (tw *timingWriter) ReadFrom(r io.Reader) (int64, error) {
	tw.headersOut()
	if tw.capture != nil {
		// Seen as it passes; this gives up sendfile, at the body level only.
		r = io.TeeReader(r, tw.capture)
	}
	return tw.ResponseWriterWrapper.ReadFrom(r)
}

// headersOut runs once, just before the final response headers are sent.
func (tw *timingWriter) headersOut() {
	if tw.firstByte.CompareAndSwap(0, time.Now().UnixNano()) {
		tw.Header().Set(requestIDKey, tw.requestID)
	}
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
	_ http.ResponseWriter         = (*timingWriter)(nil)
)
