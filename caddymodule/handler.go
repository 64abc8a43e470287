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
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/caddy-audit/caddy-audit/policy"
	"github.com/caddy-audit/caddy-audit/storage"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Audit levels, from least to most recorded.
const (
	LevelNone     = "none"     // nothing is recorded; an explicit, reviewable choice
	LevelMetadata = "metadata" // who, what, when, where from, outcome
	LevelHeaders  = "headers"  // metadata plus sanitized request and response headers
)

// Failure modes: what happens to a request when it cannot be recorded.
const (
	// FailureBestEffort never slows or fails a request; an event that
	// cannot be written is dropped, counted and reported.
	FailureBestEffort = "best_effort"
	// FailureStrict records the request durably before forwarding it; if
	// that fails the client gets 503 and the upstream sees nothing.
	FailureStrict = "strict"
)

// Handler is the `audit` HTTP handler. It records every request that passes
// through it as an audit event, with credentials replaced by keyed hashes,
// and passes the request on unchanged except for X-Request-ID.
type Handler struct {
	// Level is how much to record: none, metadata (default) or headers.
	Level string `json:"level,omitempty"`

	// FailureMode is best_effort (default) or strict.
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

	app          *App
	recorded     prometheus.Counter // events_recorded_total for this level, looked up once
	redactorOnce *sync.Once         // a pointer: Caddy copies module values
	redactor     *policy.Redactor
	jwt          *jwtVerifier
	logger       *zap.Logger
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
	if err := h.setDefaults(); err != nil {
		return err
	}
	appIface, err := ctx.App("audit")
	if err != nil {
		return fmt.Errorf("loading audit app: %w", err)
	}
	h.app = appIface.(*App)
	h.redactorOnce = new(sync.Once)
	if err := registerMetrics(ctx.GetMetricsRegistry()); err != nil {
		return err
	}
	h.recorded = metrics.recorded.WithLabelValues(h.Level)
	return nil
}

// ready returns the app's pipeline, opening it if the http app started
// before the audit app did, and the redactor keyed with its HMAC key.
func (h *Handler) ready() (*pipeline, error) {
	p, err := h.app.pipeline()
	if err != nil {
		return nil, err
	}
	h.redactorOnce.Do(func() {
		h.redactor = policy.NewRedactor(p.key, h.RedactHeaders, h.RedactQuery)
	})
	return p, nil
}

// setDefaults validates the config and fills in defaults.
func (h *Handler) setDefaults() error {
	switch h.Level {
	case "":
		h.Level = LevelMetadata
	case LevelNone, LevelMetadata, LevelHeaders:
	default:
		return fmt.Errorf("level: unknown level %q (want none, metadata or headers)", h.Level)
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
	if h.Level == LevelNone {
		return next.ServeHTTP(w, r)
	}
	pipe, err := h.ready()
	if err != nil {
		// The database could not be opened: nothing can be recorded.
		if h.FailureMode == FailureStrict {
			metrics.strictRejects.Inc()
			return caddyhttp.Error(http.StatusServiceUnavailable, fmt.Errorf("audit: request not forwarded: %w", err))
		}
		metrics.dropped.WithLabelValues(storage.DropClosed).Inc()
		return next.ServeHTTP(w, r)
	}
	start := time.Now()
	id := requestID(r, start)
	r.Header.Set(requestIDHeader, id)
	w.Header().Set(requestIDHeader, id)

	repl, _ := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	claims := bearerClaims(r, h.jwt)
	ev := h.requestEvent(r, start, id, repl, claims)

	if h.FailureMode == FailureStrict {
		received := *ev
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
			refused := *ev
			refused.Status, refused.Outcome = http.StatusServiceUnavailable, storage.Outcome(http.StatusServiceUnavailable)
			refused.UpstreamError = "not forwarded: the request could not be recorded durably (" + storage.ErrorKind(err) + ")"
			refused.DurationNS = time.Since(start).Nanoseconds()
			h.app.score(&refused)
			_ = pipe.writer.Enqueue(&refused)
			return caddyhttp.Error(http.StatusServiceUnavailable,
				fmt.Errorf("audit: request %s not forwarded, it could not be recorded: %w", id, err))
		}
	}

	var body *countingBody
	if r.Body != nil && r.Body != http.NoBody {
		body = &countingBody{ReadCloser: r.Body}
		r.Body = body
	}
	tw := &timingWriter{ResponseWriterWrapper: &caddyhttp.ResponseWriterWrapper{ResponseWriter: w}, requestID: id}
	rec := caddyhttp.NewResponseRecorder(tw, nil, nil)

	err = next.ServeHTTP(rec, r)

	end := time.Now()
	ev.Status = rec.Status()
	if ev.Status == 0 && err == nil {
		ev.Status = http.StatusOK // nothing written: net/http sends an empty 200
	}
	if err != nil {
		ev.Status = http.StatusInternalServerError
		var he caddyhttp.HandlerError
		if errors.As(err, &he) {
			if he.StatusCode != 0 {
				ev.Status = he.StatusCode
			}
			if he.Err != nil {
				ev.UpstreamError = policy.Clean(he.Err.Error())
			}
		} else {
			ev.UpstreamError = policy.Clean(err.Error())
		}
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
	h.resolveIdentities(ev, r, repl, claims, true)
	if h.Level == LevelHeaders {
		ev.ResponseHeaders = h.redactor.Headers(rec.Header())
	}
	h.app.score(ev)

	h.recorded.Inc()
	if h.FailureMode == FailureStrict {
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

// requestEvent captures what is known before the request is handled.
func (h *Handler) requestEvent(r *http.Request, start time.Time, id string, repl *caddy.Replacer, claims func() (map[string]any, bool)) *storage.Event {
	ev := &storage.Event{
		ID:        storage.NewID(start),
		Time:      start.UTC(),
		Kind:      storage.KindHTTP,
		Stage:     storage.StageResponseComplete,
		Level:     h.Level,
		RequestID: id,
		Method:    policy.Clean(r.Method),
		Scheme:    "http",
		Host:      policy.Clean(r.Host),
		Path:      policy.Clean(r.URL.EscapedPath()),
		Query:     h.redactor.Query(r.URL.RawQuery),
		Proto:     r.Proto,
		UserAgent: policy.Clean(r.UserAgent()),
		Referer:   h.redactor.URL(r.Referer()),
	}
	if r.TLS != nil {
		ev.Scheme = "https"
		ev.TLSVersion = tls.VersionName(r.TLS.Version)
		ev.TLSCipher = tls.CipherSuiteName(r.TLS.CipherSuite)
	}
	ev.ClientIP, _ = caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string)
	if host, port, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		if ev.ClientIP == "" {
			ev.ClientIP = host
		}
		ev.ClientPort, _ = strconv.Atoi(port)
	}
	for _, v := range r.Header.Values("X-Forwarded-For") {
		for _, hop := range strings.Split(v, ",") {
			if hop = strings.TrimSpace(hop); hop != "" {
				ev.ForwardedFor = append(ev.ForwardedFor, policy.Clean(hop))
			}
		}
	}
	if h.Level == LevelHeaders {
		ev.RequestHeaders = h.redactor.Headers(r.Header)
	}
	h.resolveIdentities(ev, r, repl, claims, false)
	return ev
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
			ev.Workspace = policy.Clean(id.value)
			if storage.ReservedWorkspace(ev.Workspace) {
				// Kept as a claim for the investigator, not as the tenant.
				ev.SetDetail("reserved_workspace_claimed", ev.Workspace)
				ev.Workspace = ""
			}
		}
	}
}

// countingBody counts request body bytes as the upstream reads them.
type countingBody struct {
	io.ReadCloser
	n atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}

// timingWriter notes when the response headers went out (time to first
// byte) and makes sure they carry exactly one X-Request-ID: ours, even when
// the upstream echoes the header back (reverse_proxy adds, not replaces,
// upstream headers). It sits under Caddy's response recorder, which does
// the counting and keeps Flush and Hijack working through Unwrap.
type timingWriter struct {
	*caddyhttp.ResponseWriterWrapper
	requestID string
	firstByte atomic.Int64 // unix ns; 0 until headers are written
}

func (tw *timingWriter) WriteHeader(status int) {
	if status >= 200 || status == http.StatusSwitchingProtocols {
		tw.headersOut()
	}
	tw.ResponseWriterWrapper.WriteHeader(status)
}

func (tw *timingWriter) Write(p []byte) (int, error) {
	tw.headersOut()
	return tw.ResponseWriterWrapper.Write(p)
}

func (tw *timingWriter) ReadFrom(r io.Reader) (int64, error) {
	tw.headersOut()
	return tw.ResponseWriterWrapper.ReadFrom(r)
}

// headersOut runs once, just before the final response headers are sent.
func (tw *timingWriter) headersOut() {
	if tw.firstByte.CompareAndSwap(0, time.Now().UnixNano()) {
		tw.Header().Set(requestIDHeader, tw.requestID)
	}
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
	_ http.ResponseWriter         = (*timingWriter)(nil)
)
