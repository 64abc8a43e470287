package detectors

import (
	"testing"

	"github.com/caddy-audit/caddy-audit/storage"
)

func TestScore(t *testing.T) {
	tests := []struct {
		name       string
		ev         storage.Event
		factors    []string
		level      string
		suspicious bool
	}{
		{"benign read", storage.Event{Kind: storage.KindHTTP, Method: "GET", Path: "/api/items", Status: 200, UserAgent: "Mozilla/5.0"}, nil, LevelLow, false},
		{"failed login", storage.Event{Kind: storage.KindHTTP, Method: "POST", Path: "/login", Status: 401}, []string{"failed_auth"}, LevelLow, false},
		{"scanner on .env", storage.Event{Kind: storage.KindHTTP, Method: "GET", Path: "/.env", Status: 404, UserAgent: "sqlmap/1.7"}, []string{"scanner_user_agent", "sensitive_path"}, LevelHigh, true},
		{"sql injection", storage.Event{Kind: storage.KindHTTP, Method: "GET", Path: "/api/items", Query: "id=1%27%20OR%20%271%27=%271", Status: 200}, []string{"attack_pattern"}, LevelMedium, false},
		{"traversal and admin denied", storage.Event{Kind: storage.KindHTTP, Method: "GET", Path: "/admin/../../etc/passwd", Status: 403, User: "bob"}, []string{"access_denied", "sensitive_path", "attack_pattern", "unverified_identity"}, LevelHigh, true},
		{"delete", storage.Event{Kind: storage.KindHTTP, Method: "DELETE", Path: "/api/items/1", Status: 204}, []string{"destructive_method"}, LevelLow, false},
		{"failed delete is not destructive", storage.Event{Kind: storage.KindHTTP, Method: "DELETE", Path: "/api/items/1", Status: 404}, nil, LevelLow, false},
		{"upstream error", storage.Event{Kind: storage.KindHTTP, Method: "GET", Path: "/", Status: 502}, []string{"upstream_error"}, LevelLow, false},
		{"verified admin", storage.Event{Kind: storage.KindHTTP, Method: "GET", Path: "/admin", Status: 200, User: "root", UserVerified: true}, []string{"sensitive_path"}, LevelMedium, false},
		{"role change by a claimed user", storage.Event{Kind: storage.KindHTTP, Method: "PUT", Path: "/api/users/bob/roles", Status: 200, User: "bob"}, []string{"privileged_route", "unverified_identity"}, LevelMedium, false},
		{"reading roles is not a change", storage.Event{Kind: storage.KindHTTP, Method: "GET", Path: "/api/users/bob/roles", Status: 200, User: "bob", UserVerified: true}, nil, LevelLow, false},
		{"large response", storage.Event{Kind: storage.KindHTTP, Method: "GET", Path: "/api/export", Status: 200, BytesOut: 11 << 20}, []string{"large_response"}, LevelLow, false},
		{"upper-case query attack", storage.Event{Kind: storage.KindHTTP, Method: "GET", Path: "/search", Query: "q=%3CSCRIPT%3Ealert(1)", Status: 200}, []string{"attack_pattern"}, LevelMedium, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := tt.ev
			Score(&ev)
			var names []string
			sum := 0
			for _, f := range ev.RiskFactors {
				names = append(names, f.Name)
				sum += f.Points
				if f.Detail == "" {
					t.Errorf("factor %s has no detail", f.Name)
				}
			}
			if len(names) != len(tt.factors) {
				t.Fatalf("factors %v, want %v", names, tt.factors)
			}
			for i := range names {
				if names[i] != tt.factors[i] {
					t.Fatalf("factors %v, want %v", names, tt.factors)
				}
			}
			if want := min(100, sum*pointsToScore); ev.RiskScore != want {
				t.Errorf("score %d, want %d (the sum of the factors, scaled)", ev.RiskScore, want)
			}
			if ev.RiskLevel != tt.level || ev.Suspicious != tt.suspicious {
				t.Errorf("level %s suspicious %v, want %s %v (score %d)", ev.RiskLevel, ev.Suspicious, tt.level, tt.suspicious, ev.RiskScore)
			}
		})
	}
}

// The configurable factors: custom admin routes and response size.
func TestScorerConfig(t *testing.T) {
	cfg := Config{Routes: Routes{Admin: []string{"/manage"}}, Risk: RiskConfig{LargeResponseBytes: 1000}}
	s := NewScorer(cfg)
	ev := storage.Event{Kind: storage.KindHTTP, Method: "GET", Path: "/manage/users", Status: 200, BytesOut: 5000, User: "x"}
	s.Score(&ev)
	var names []string
	for _, f := range ev.RiskFactors {
		names = append(names, f.Name)
	}
	if len(names) != 3 || names[0] != "privileged_route" || names[1] != "unverified_identity" || names[2] != "large_response" {
		t.Errorf("factors %v", names)
	}
	off := NewScorer(Config{Risk: RiskConfig{LargeResponseBytes: -1}})
	ev = storage.Event{Kind: storage.KindHTTP, Method: "GET", Path: "/x", Status: 200, BytesOut: 1 << 40}
	off.Score(&ev)
	if len(ev.RiskFactors) != 0 {
		t.Errorf("large_response turned off still scored: %v", ev.RiskFactors)
	}
}

func TestScoreIsIdempotent(t *testing.T) {
	ev := storage.Event{Kind: storage.KindHTTP, Path: "/.git/config", Status: 401, UserAgent: "nikto"}
	Score(&ev)
	first := ev.RiskScore
	Score(&ev)
	if ev.RiskScore != first || len(ev.RiskFactors) != 3 {
		t.Fatalf("rescoring changed the result: %d -> %d, %d factors", first, ev.RiskScore, len(ev.RiskFactors))
	}
}

func BenchmarkScore(b *testing.B) {
	benign := storage.Event{Kind: storage.KindHTTP, Method: "GET", Path: "/api/items/42", Query: "page=2", Status: 200, UserAgent: "Mozilla/5.0 (X11; Linux x86_64)"}
	hostile := storage.Event{Kind: storage.KindHTTP, Method: "GET", Path: "/admin/../.env", Query: "q=<script>", Status: 403, UserAgent: "sqlmap/1.7", User: "x"}
	for _, c := range []struct {
		name string
		ev   storage.Event
	}{{"benign", benign}, {"hostile", hostile}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				ev := c.ev
				Score(&ev)
			}
		})
	}
}
