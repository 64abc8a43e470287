package policy

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

var testKey = []byte("0123456789abcdef0123456789abcdef")

func TestTokenIsKeyedAndStable(t *testing.T) {
	a := NewRedactor(testKey, nil, nil)
	b := NewRedactor([]byte("another key, another token space"), nil, nil)
	again := NewRedactor(testKey, nil, nil)
	if a.Token("s3cret") != again.Token("s3cret") {
		t.Fatal("equal secrets must give equal tokens under one key")
	}
	if a.Token("s3cret") == b.Token("s3cret") {
		t.Fatal("tokens must depend on the key")
	}
	if tok := a.Token("s3cret"); !strings.HasPrefix(tok, TokenPrefix) || len(tok) != len(TokenPrefix)+2*tokenBytes {
		t.Fatalf("token %q has the wrong shape", tok)
	}
}

func TestHeaders(t *testing.T) {
	r := NewRedactor(testKey, []string{"X-Tenant-Secret-Ish"}, nil)
	h := http.Header{
		"Authorization":       {"Bearer abc.def.ghi"},
		"Cookie":              {"sid=AAA; theme=dark"},
		"Set-Cookie":          {"sid=BBB; Path=/; HttpOnly"},
		"X-Api-Key":           {"KEY123"},
		"X-Service-Token":     {"TOK456"},
		"X-Tenant-Secret-Ish": {"CUSTOM789"},
		"Accept":              {"application/json"},
	}
	got := r.Headers(h)
	tests := []struct{ name, want string }{
		{"Authorization", "Bearer " + r.Token("abc.def.ghi")},
		{"Cookie", "sid=" + r.Token("AAA") + "; theme=" + r.Token("dark")},
		{"Set-Cookie", "sid=" + r.Token("BBB") + "; Path=/; HttpOnly"},
		{"X-Api-Key", r.Token("KEY123")},
		{"X-Service-Token", r.Token("TOK456")},
		{"X-Tenant-Secret-Ish", r.Token("CUSTOM789")},
		{"Accept", "application/json"},
	}
	for _, tt := range tests {
		if v := got[tt.name]; len(v) != 1 || v[0] != tt.want {
			t.Errorf("%s = %q, want %q", tt.name, v, tt.want)
		}
	}
	h.Set("Accept", "changed")
	if got["Accept"][0] != "application/json" {
		t.Error("Headers must copy, not alias, the request's header")
	}
}

func TestQuery(t *testing.T) {
	r := NewRedactor(testKey, nil, []string{"otp"})
	tests := []struct{ in, want string }{
		{"", ""},
		{"page=2&sort=asc", "page=2&sort=asc"},
		{"token=abc&page=2", "token=" + r.Token("abc") + "&page=2"},
		{"ACCESS_TOKEN=abc", "ACCESS_TOKEN=" + r.Token("abc")},
		{"pass%77ord=hunter2", "pass%77ord=" + r.Token("hunter2")},
		{"reset_password=x", "reset_password=" + r.Token("x")},
		{"otp=123456", "otp=" + r.Token("123456")},
		{"flag&token", "flag&token"},
		{"a=%zz&password=p%", "a=%zz&password=" + r.Token("p%")},
		{"monkey=banana", "monkey=banana"},
	}
	for _, tt := range tests {
		if got := r.Query(tt.in); got != tt.want {
			t.Errorf("Query(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestURL(t *testing.T) {
	r := NewRedactor(testKey, nil, nil)
	tests := []struct{ in, want string }{
		{"", ""},
		{"https://app.example/reset", "https://app.example/reset"},
		{"https://app.example/reset?token=abc&lang=en", "https://app.example/reset?token=" + r.Token("abc") + "&lang=en"},
		{"https://app.example/cb#access_token=xyz&state=1", "https://app.example/cb#access_token=" + r.Token("xyz") + "&state=1"},
		{"https://app.example/cb?x=1#access_token=xyz", "https://app.example/cb?x=1#access_token=" + r.Token("xyz")},
	}
	for _, tt := range tests {
		if got := r.URL(tt.in); got != tt.want {
			t.Errorf("URL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	h := r.Headers(http.Header{"Referer": {"https://app.example/?password=hunter2"}, "Location": {"/next?code=s3cr3t"}})
	if strings.Contains(fmt.Sprint(h), "hunter2") || strings.Contains(fmt.Sprint(h), "s3cr3t") {
		t.Fatalf("URL headers leak secrets: %v", h)
	}
}

func TestClean(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain", "plain"},
		{"caf\xc3\xa9", "café"},
		{"bad\xffbyte", `bad\xffbyte`},
		{"\x00nul", "\x00nul"},
	}
	for _, tt := range tests {
		if got := Clean(tt.in); got != tt.want {
			t.Errorf("Clean(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	long := strings.Repeat("é", MaxValueLen)
	got := Clean(long)
	if !utf8.ValidString(got) || !strings.Contains(got, "[truncated ") || len(got) > MaxValueLen+40 {
		t.Errorf("long value not cut cleanly: len %d", len(got))
	}
}

func TestLoadOrCreateKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "hmac.key")
	k1, err := LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(path)
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode: %v %v", info.Mode(), err)
	}
	k2, err := LoadOrCreateKey(path)
	if err != nil || string(k1) != string(k2) || len(k1) != KeySize {
		t.Fatalf("reloaded key differs or has the wrong size: %v", err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateKey(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("world-readable key accepted: %v", err)
	}
	bad := filepath.Join(t.TempDir(), "bad.key")
	if err := os.WriteFile(bad, []byte("not hex"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateKey(bad); err == nil {
		t.Fatal("garbage key accepted")
	}
}

// FuzzRedactor checks that a secret sent as a credential header value or a
// sensitive query parameter never survives redaction, whatever it holds.
func FuzzRedactor(f *testing.F) {
	f.Add("hunter2", "page=1")
	f.Add("a b;c=d", "x=%zz&y")
	f.Add("\xff\xfe", "token")
	r := NewRedactor(testKey, nil, nil)
	f.Fuzz(func(t *testing.T, secret, query string) {
		// Shorter strings occur in ordinary text; separators make the
		// secret several values (each tokenized on its own).
		if len(secret) < 6 || strings.ContainsAny(secret, " ;=&") || strings.Contains(Clean(query), secret) {
			return
		}
		h := http.Header{}
		for _, name := range []string{"Authorization", "Proxy-Authorization", "Cookie", "Set-Cookie", "X-Api-Key", "X-Refresh-Token"} {
			h.Set(name, "Bearer "+secret)
		}
		h.Set("Cookie", "sid="+secret)
		for name, vals := range r.Headers(h) {
			for _, v := range vals {
				if strings.Contains(withoutTokens(v), secret) {
					t.Fatalf("%s leaks the secret: %q", name, v)
				}
			}
		}
		for _, name := range []string{"token", "password", "api_key", "client_secret"} {
			if q := r.Query(query + "&" + name + "=" + secret); strings.Contains(withoutTokens(q), secret) {
				t.Fatalf("query leaks the secret: %q", q)
			}
		}
		if !utf8.ValidString(Clean(secret)) || !utf8.ValidString(r.Query(query)) {
			t.Fatal("invalid UTF-8 returned")
		}
	})
}

var tokenRE = regexp.MustCompile(`hmac:[0-9a-f]{24}`)

// withoutTokens drops tokens, whose hex digits may spell a short secret by
// chance.
func withoutTokens(s string) string { return tokenRE.ReplaceAllString(s, "#") }

func TestAllowHeaders(t *testing.T) {
	base := NewRedactor(testKey, nil, nil).With(Redact{AllowHeaders: []string{"accept", "Authorization", "X-Trace"}})
	h := http.Header{"Accept": {"a"}, "Authorization": {"Bearer SECRETSECRET"}, "X-Trace": {"t"}, "X-Other": {"o"}}
	got := base.Headers(h)
	if len(got) != 3 || got["X-Other"] != nil || got["Authorization"][0] != "Bearer "+base.Token("SECRETSECRET") {
		t.Fatalf("allow-list: %v", got)
	}
	narrower := base.With(Redact{AllowHeaders: []string{"Accept", "X-Other"}})
	if got := narrower.Headers(h); len(got) != 1 || got["Accept"] == nil {
		t.Fatalf("a rule's allow-list narrows the defaults': %v", got)
	}
}

// Every word that marks a header or parameter as sensitive marks a body
// field too, in the ASCII fast path and in the folded one.
func TestSensitiveFieldWords(t *testing.T) {
	r := NewRedactor([]byte("k"), nil, nil)
	for _, w := range sensitiveWords {
		for _, name := range []string{"x_" + w + "_y", "é_" + w} {
			if !r.SensitiveField(name) {
				t.Errorf("SensitiveField(%q) = false, but %q is a sensitive word", name, w)
			}
		}
	}
}
