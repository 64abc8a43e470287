package storage

import (
	"fmt"
	"math/rand/v2"
	"time"
)

// synth generates realistic audit traffic for benchmarks and property
// tests: a fixed population of users (each in one workspace, with a few
// usual addresses), mixed methods, statuses and paths, about 10% of events
// suspicious, a sprinkle of admin and lifecycle events, and request ids
// half generated here (ULIDs, time-ordered) and half passed through from a
// load balancer (random hex, no order).
type synth struct {
	rng        *rand.Rand
	users      int
	workspaces int
	ips        []string
	userIPs    [][]string
	start      time.Time
	span       time.Duration
}

func newSynth(seed uint64, users, workspaces, ips int, start time.Time, span time.Duration) *synth {
	g := &synth{
		rng:        rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		users:      users,
		workspaces: workspaces,
		start:      start,
		span:       span,
	}
	for i := 0; i < ips; i++ {
		if i%10 == 9 {
			g.ips = append(g.ips, fmt.Sprintf("2001:db8:%x::%x", i/256, i%256))
		} else {
			g.ips = append(g.ips, fmt.Sprintf("10.%d.%d.%d", i/65536, i/256%256, i%256))
		}
	}
	g.userIPs = make([][]string, users)
	for u := range g.userIPs {
		for range 1 + g.rng.IntN(4) {
			g.userIPs[u] = append(g.userIPs[u], g.ips[g.rng.IntN(len(g.ips))])
		}
	}
	return g
}

var (
	synthMethods  = []string{"GET", "GET", "GET", "GET", "GET", "GET", "GET", "POST", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"}
	synthStatuses = []int{200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 201, 204, 204, 304, 400, 401, 401, 403, 404, 404, 500, 502}
	synthAgents   = []string{
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
		"curl/8.7.1",
		"python-requests/2.31.0",
	}
	synthScanPaths = []string{"/.env", "/.git/config", "/wp-login.php", "/phpmyadmin/index.php", "/admin/../../etc/passwd", "/actuator/health"}
)

// event returns the i-th of n events, spread evenly over the span with
// jitter so times are almost but not quite in order.
func (g *synth) event(i, n int) *Event {
	r := g.rng
	t := g.start.Add(time.Duration(float64(g.span) * (float64(i) + r.Float64()) / float64(n))).UTC().Truncate(time.Millisecond)
	u := r.IntN(g.users)
	ev := &Event{
		ID:           NewID(t),
		Time:         t,
		Kind:         KindHTTP,
		Stage:        StageResponseComplete,
		Level:        "metadata",
		Method:       synthMethods[r.IntN(len(synthMethods))],
		Scheme:       "https",
		Host:         "app.example.com",
		Proto:        "HTTP/2.0",
		Status:       synthStatuses[r.IntN(len(synthStatuses))],
		DurationNS:   int64(r.IntN(200_000_000)),
		TTFBNS:       int64(r.IntN(50_000_000)),
		BytesIn:      int64(r.IntN(4096)),
		BytesOut:     int64(r.IntN(1 << 16)),
		ClientIP:     g.userIPs[u][r.IntN(len(g.userIPs[u]))],
		ClientPort:   1024 + r.IntN(60000),
		UserAgent:    synthAgents[r.IntN(len(synthAgents))],
		TLSVersion:   "1.3",
		TLSCipher:    "TLS_AES_128_GCM_SHA256",
		User:         fmt.Sprintf("user-%03d", u),
		UserSource:   "header",
		UserVerified: r.IntN(2) == 0,
		Workspace:    fmt.Sprintf("ws-%02d", u%g.workspaces),
	}
	if r.IntN(2) == 0 {
		ev.RequestID = ev.ID
	} else {
		ev.RequestID = fmt.Sprintf("%016x%016x", r.Uint64(), r.Uint64())
	}
	switch p := r.IntN(100); {
	case p < 35:
		ev.Path = "/api/items"
		ev.Query = "page=" + fmt.Sprint(r.IntN(20))
	case p < 65:
		ev.Path = fmt.Sprintf("/api/items/%d", r.IntN(100000))
	case p < 75:
		ev.Path = fmt.Sprintf("/api/users/%d/orders", r.IntN(5000))
	case p < 82:
		ev.Path = "/login"
		ev.Method = "POST"
	case p < 88:
		ev.Path = fmt.Sprintf("/admin/users/%d", r.IntN(500))
	case p < 96:
		ev.Path = fmt.Sprintf("/static/app.%d.js", r.IntN(8))
	default:
		ev.Path = synthScanPaths[r.IntN(len(synthScanPaths))]
		ev.Status = 404
	}
	if ev.Status < 400 {
		ev.Outcome = "success"
	} else {
		ev.Outcome = "failure"
	}
	switch p := r.IntN(100); {
	case p < 10:
		ev.Suspicious = true
		ev.RiskScore = 40 + 5*r.IntN(13)
		ev.RiskLevel = "high"
		if ev.RiskScore >= 70 {
			ev.RiskLevel = "critical"
		}
		ev.RiskFactors = []RiskFactor{
			{Name: "attack_pattern", Points: 5, Detail: "sql_injection"},
			{Name: "sensitive_path", Points: 4, Detail: "/admin"},
		}
	case p < 25:
		ev.RiskScore = 20 + 5*r.IntN(4)
		ev.RiskLevel = "medium"
		ev.RiskFactors = []RiskFactor{{Name: "failed_auth", Points: 3, Detail: "401 Unauthorized"}}
	default:
		ev.RiskLevel = "low"
		if r.IntN(3) == 0 {
			ev.RiskScore = 10
			ev.RiskFactors = []RiskFactor{{Name: "access_denied", Points: 2, Detail: "403 Forbidden"}}
		}
	}
	switch p := r.IntN(200); {
	case p == 0:
		ev.Kind, ev.Stage, ev.Action = KindAdmin, "", "events.search"
	case p == 1:
		ev.Kind, ev.Stage, ev.Action = KindLifecycle, "", "start"
		ev.Method, ev.Path, ev.Status, ev.User, ev.ClientIP = "", "", 0, "", ""
		ev.Workspace = ""
		ev.Details = map[string]any{"version": "v0.1.0"}
	case p < 12:
		ev.Stage = StageRequestReceived
	}
	return ev
}
