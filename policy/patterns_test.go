package policy

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestPatterns(t *testing.T) {
	r := NewRedactor(testKey, nil, nil).With(Redact{Patterns: []string{PatternEmail}})
	tok := r.Token
	pem := "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA1c2\n-----END RSA PRIVATE KEY-----"
	tests := []struct{ in, want string }{
		// Cards: grouped or not, Luhn-checked, brand ranges only.
		{"card 4111111111111111 ok", "card " + tok("4111111111111111") + " ok"},
		{"4111 1111 1111 1111", tok("4111111111111111")},
		{"4111-1111-1111-1111 and 5500 0000 0000 0004", tok("4111111111111111") + " and " + tok("5500000000000004")},
		{"amex 378282246310005.", "amex " + tok("378282246310005") + "."},
		{"4111 1111 1111 1111 2", tok("4111111111111111") + " 2"},
		{"order 12 4111111111111111", "order 12 " + tok("4111111111111111")},
		{"x4111111111111111y", "x" + tok("4111111111111111") + "y"},
		{"4111111111111112", "4111111111111112"},               // Luhn fails
		{"1764157415000000000", "1764157415000000000"},         // a timestamp: no brand starts with 1
		{"41111111111111111111111", "41111111111111111111111"}, // too long for a card
		{"id 12345678901234", "id 12345678901234"},             // starts with 1
		// SSNs.
		{"ssn 123-45-6789.", "ssn " + tok("123-45-6789") + "."},
		{"078 05 1120", tok("078 05 1120")},
		{"000-12-3456 666-12-3456 900-12-3456 123-00-4567 123-45-0000", "000-12-3456 666-12-3456 900-12-3456 123-00-4567 123-45-0000"},
		{"1123-45-6789", "1123-45-6789"},
		// JWTs and bearer credentials.
		{"t=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln", "t=" + tok("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln")},
		{"eyJhbGciOiJub25lIn0.eyJ4IjoxfQ.", tok("eyJhbGciOiJub25lIn0.eyJ4IjoxfQ.")},
		{"eyJust.kidding", "eyJust.kidding"},
		{"Bearer abcdefgh12345", "Bearer " + tok("abcdefgh12345")},
		{"auth: bearer  zz.yy-xx~ww+vv/uu==", "auth: bearer  " + tok("zz.yy-xx~ww+vv/uu==")},
		{"the bearer of this note", "the bearer of this note"},
		// Cloud and SaaS keys.
		{"AKIAIOSFODNN7EXAMPLE", tok("AKIAIOSFODNN7EXAMPLE")},
		{"key=ASIAY34FZKBOKMUTVV7A;", "key=" + tok("ASIAY34FZKBOKMUTVV7A") + ";"},
		{"AKIAIOSFODNN7EXAMPLEX", "AKIAIOSFODNN7EXAMPLEX"},
		{"AIzaSyA-1234567890abcdefghijklmnopqrstu", tok("AIzaSyA-1234567890abcdefghijklmnopqrstu")},
		{"ya29.a0AfH6SMBx-very-long-oauth-token", tok("ya29.a0AfH6SMBx-very-long-oauth-token")},
		{"DefaultEndpointsProtocol=https;AccountName=x;AccountKey=bXlrZXlteWtleQ==;EndpointSuffix=core", "DefaultEndpointsProtocol=https;AccountName=x;AccountKey=" + tok("bXlrZXlteWtleQ==") + ";EndpointSuffix=core"},
		{"Endpoint=sb://x/;SharedAccessKey=c2VjcmV0c2VjcmV0", "Endpoint=sb://x/;SharedAccessKey=" + tok("c2VjcmV0c2VjcmV0")},
		{"ghp_0123456789abcdefghijABCDEFGHIJ012345", tok("ghp_0123456789abcdefghijABCDEFGHIJ012345")},
		{"xoxb-123456789012-abcdef", tok("xoxb-123456789012-abcdef")},
		// Private keys, even cut off.
		{"k=" + pem + " end", "k=-----BEGIN RSA PRIVATE KEY-----" + tok("\nMIIEowIBAAKCAQEA1c2\n-----END RSA PRIVATE KEY-----") + " end"},
		{"-----BEGIN PRIVATE KEY-----\nMIIEvQIBADAN", "-----BEGIN PRIVATE KEY-----" + tok("\nMIIEvQIBADAN")},
		{"-----BEGIN CERTIFICATE-----\nMIIB", "-----BEGIN CERTIFICATE-----\nMIIB"},
		// E-mail, when asked for.
		{"mail alice.smith+x@mail.example.com.", "mail " + tok("alice.smith+x@mail.example.com") + "."},
		{"a@b", "a@b"},
		{"user@host.c0m", "user@host.c0m"},
		{"@example.com", "@example.com"},
		// Nothing to find: the same string back.
		{"plain text, nothing here", "plain text, nothing here"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := r.patterns.redact(tt.in, tok); got != tt.want {
			t.Errorf("redact(%q)\n got %q\nwant %q", tt.in, got, tt.want)
		}
	}
	if got := NewRedactor(testKey, nil, nil).patterns.redact("a@example.com", tok); got != "a@example.com" {
		t.Errorf("e-mail redacted without being asked: %q", got)
	}
}

func TestLuhn(t *testing.T) {
	for _, c := range []string{"4111111111111111", "5500000000000004", "340000000000009", "6011000000000004", "79927398713"} {
		if !luhn([]byte(c)) {
			t.Errorf("%s should pass", c)
		}
	}
	for _, c := range []string{"4111111111111112", "79927398710"} {
		if luhn([]byte(c)) {
			t.Errorf("%s should fail", c)
		}
	}
}

// Patterns apply where values hide: path segments, query values (decoded
// first), headers that are not credentials, and URL-valued headers.
func TestPatternsEverywhere(t *testing.T) {
	r := NewRedactor(testKey, nil, nil).With(Redact{Patterns: []string{PatternEmail}})
	card := "4111111111111111"
	checks := map[string]string{
		"path":         r.Path("/users/alice%40example.com/cards/" + card),
		"query":        r.Query("q=4111+1111+1111+1111&email=alice%40example.com&page=2"),
		"header":       r.Headers(map[string][]string{"X-Note": {"card " + card}})["X-Note"][0],
		"referer":      r.URL("https://x.example/u/alice@example.com?c=" + card),
		"user agent":   r.Text("Mozilla eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln"),
		"query flag":   r.Query(card),
		"escaped path": r.Path("/a%2Fb/" + card),
	}
	for where, got := range checks {
		for _, secret := range []string{card, "alice@example.com", "alice%40example.com", "4111+1111", "eyJhbGciOiJIUzI1NiJ9"} {
			if strings.Contains(got, secret) {
				t.Errorf("%s keeps %q: %s", where, secret, got)
			}
		}
		if !strings.Contains(got, TokenPrefix) {
			t.Errorf("%s has no token: %s", where, got)
		}
	}
	if got := r.Query("q=4111+1111+1111+1111&page=2"); !strings.HasSuffix(got, "&page=2") {
		t.Errorf("the rest of the query must stay: %s", got)
	}
}

// FuzzPatterns: a card, SSN, JWT, AWS key or e-mail address put anywhere
// in any text never survives, and the output is as valid UTF-8 as the
// input.
func FuzzPatterns(f *testing.F) {
	f.Add("before ", " after", uint8(0))
	f.Add("x", "4", uint8(1))
	f.Add("", "", uint8(2))
	f.Add("a.b", "@", uint8(5))
	f.Add("\xff", "\x00", uint8(3))
	secrets := []string{
		"4111111111111111", "5500-0000-0000-0004", "123-45-6789",
		"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl",
		"AKIAIOSFODNN7EXAMPLE", "alice@example.com", "Bearer s3cr3t-b34r3r-t0k3n",
	}
	r := NewRedactor(testKey, nil, nil).With(Redact{Patterns: PatternNames})
	f.Fuzz(func(t *testing.T, before, after string, which uint8) {
		secret := secrets[int(which)%len(secrets)]
		// Glued to a neighbour of its own kind, a value is another value
		// (4111... followed by more digits is not that card).
		if before != "" && isB64URL(before[len(before)-1]) || after != "" && (isB64URL(after[0]) || after[0] == '.' || after[0] == '@' || after[0] == '-' || after[0] == ' ' || after[0] == '=') {
			return
		}
		if strings.ContainsAny(before, "@.%+-_") && secret == "alice@example.com" {
			return // the local part grows into its neighbours
		}
		in := before + secret + after
		out := r.patterns.redact(in, r.Token)
		if strings.Contains(withoutTokens(out), secret) {
			t.Fatalf("%q survived in %q", secret, out)
		}
		if utf8.ValidString(in) && !utf8.ValidString(out) {
			t.Fatalf("invalid UTF-8 out of valid input: %q", out)
		}
		// Nothing to find: the input comes back unchanged.
		if plain := before + after; !strings.Contains(r.patterns.redact(plain, r.Token), TokenPrefix) && r.patterns.redact(plain, r.Token) != plain {
			t.Fatalf("changed without a token: %q", plain)
		}
	})
}
