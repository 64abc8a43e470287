package policy

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestJSONBody(t *testing.T) {
	r := NewRedactor(testKey, nil, nil).With(Redact{BodyFields: []string{"member_no"}})
	tok := r.Token
	tests := []struct{ name, in, want string }{
		{"flat", `{"user":"alice","password":"hunter2","n":1}`,
			`{"user":"alice","password":"` + tok("hunter2") + `","n":1}`},
		{"key spellings", `{"cardNumber":"x1","Card-Number":"x2","card_number":"x3","CVV":123,"resetPasswordToken":"x4"}`,
			`{"cardNumber":"` + tok("x1") + `","Card-Number":"` + tok("x2") + `","card_number":"` + tok("x3") + `","CVV":"` + tok("123") + `","resetPasswordToken":"` + tok("x4") + `"}`},
		{"configured field", `{"member_no":"M-1"}`, `{"member_no":"` + tok("M-1") + `"}`},
		{"nested and arrays", `{"a":[{"token":"t1"},{"ok":"v"}],"b":{"secret":{"x":"deep","y":[1,"z"]}},"c":"keep"}`,
			`{"a":[{"token":"` + tok("t1") + `"},{"ok":"v"}],"b":{"secret":{"x":"` + tok("deep") + `","y":["` + tok("1") + `","` + tok("z") + `"]}},"c":"keep"}`},
		{"value patterns", `{"note":"card 4111 1111 1111 1111","n":4111111111111111}`,
			`{"note":"card ` + tok("4111111111111111") + `","n":"` + tok("4111111111111111") + `"}`},
		{"escapes", `{"pass\u0077ord":"a\"b","msg":"line\nnext"}`, `{"pass\u0077ord":"` + tok(`a"b`) + `","msg":"line\nnext"}`},
		{"formatting kept", "{\n  \"password\" : \"p\",\n  \"x\": [ true, null ]\n}", "{\n  \"password\" : \"" + tok("p") + "\",\n  \"x\": [ true, null ]\n}"},
		{"top-level array", `["4111111111111111", "x"]`, `["` + tok("4111111111111111") + `", "x"]`},
		{"not json", `password=hunter2 card 4111111111111111`, `password=hunter2 card ` + tok("4111111111111111")},
		{"secret key after secret value", `{"password":"a","b":"c"}`, `{"password":"` + tok("a") + `","b":"c"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := r.Body("application/json; charset=utf-8", []byte(tt.in), false); got != tt.want {
				t.Errorf("\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}

// A body cut at the capture bound is still redacted, and the value cut in
// two is tokenized whole: a card cut short no longer passes Luhn.
func TestTruncatedBodies(t *testing.T) {
	r := NewRedactor(testKey, nil, nil)
	tests := []struct{ ct, in, secretPrefix string }{
		{"application/json", `{"password":"hunter2-and-more`, "hunter2"},
		{"application/json", `{"note":"pay with 4111 1111 11`, "4111 1111 11"},
		{"application/json", `{"n":41111111`, "41111111"},
		{"application/x-www-form-urlencoded", "a=1&note=4111+1111+11", "4111+1111+11"},
		{"text/plain", "token is eyJhbGciOiJIUzI1NiJ9.eyJzdW", "eyJhbGciOiJIUzI1NiJ9"},
	}
	for _, tt := range tests {
		got := r.Body(tt.ct, []byte(tt.in), true)
		if strings.Contains(got, tt.secretPrefix) || !strings.Contains(got, TokenPrefix) {
			t.Errorf("%s %q -> %q", tt.ct, tt.in, got)
		}
	}
}

func TestFormBody(t *testing.T) {
	r := NewRedactor(testKey, nil, nil).With(Redact{BodyFields: []string{"pin_code"}})
	in := "user=alice&password=demo&pin_code=1234&note=ssn+123-45-6789&card=4111111111111111&flag"
	got := r.Body("application/x-www-form-urlencoded", []byte(in), false)
	want := "user=alice&password=" + r.Token("demo") + "&pin_code=" + r.Token("1234") + "&note=ssn+" + r.Token("123-45-6789") + "&card=" + r.Token("4111111111111111") + "&flag"
	if got != want {
		t.Fatalf("\n got %s\nwant %s", got, want)
	}
}

func TestCapture(t *testing.T) {
	c := &Capture{Max: 10}
	for _, part := range []string{"hello ", "world, ", "and more"} {
		if n, err := c.Write([]byte(part)); n != len(part) || err != nil {
			t.Fatalf("Write must accept everything: %d %v", n, err)
		}
	}
	if string(c.Bytes()) != "hello worl" || c.Size() != 21 || !c.Truncated() {
		t.Fatalf("kept %q of %d, truncated %v", c.Bytes(), c.Size(), c.Truncated())
	}
	small := &Capture{Max: 10}
	_, _ = small.Write([]byte("hi"))
	if small.Truncated() || string(small.Bytes()) != "hi" {
		t.Fatal("a body under the bound is whole")
	}
}

func TestCapturedType(t *testing.T) {
	b := Body{ContentTypes: []string{"application/json", "application/*+json", "text/*"}}
	for ct, want := range map[string]bool{
		"application/json":                  true,
		"Application/JSON; charset=utf-8":   true,
		"application/vnd.api+json":          true,
		"text/plain":                        true,
		"text/html; charset=utf-8":          true,
		"application/x-www-form-urlencoded": false,
		"image/png":                         false,
		"":                                  false,
		"application/jsonx":                 false,
	} {
		if got := b.CapturedType(ct); got != want {
			t.Errorf("%q: %v", ct, got)
		}
	}
}

// FuzzBodyRedaction: a secret under a sensitive key, or a card number
// anywhere, never survives in a JSON or form body, whatever surrounds it,
// cut or not; the result is valid UTF-8.
func FuzzBodyRedaction(f *testing.F) {
	f.Add(`{"a":`, `}`, "s3cretvalue", false)
	f.Add(`[`, `]`, "x y", true)
	f.Add(``, ``, "\xff\xfe", false)
	f.Add(`{"x":{"y":[`, `]}}`, `q"uote`, false)
	r := NewRedactor(testKey, nil, nil)
	f.Fuzz(func(t *testing.T, prefix, suffix, secret string, cut bool) {
		if len(secret) < 6 || strings.ContainsAny(prefix+suffix, `"\`) {
			return
		}
		q, _ := json.Marshal(secret)
		for _, body := range []string{
			prefix + `{"password":` + string(q) + `}` + suffix,
			prefix + `{"list":[{"api_key":` + string(q) + `}],"card":"4111 1111 1111 1111"}` + suffix,
		} {
			out := r.Body("application/json", []byte(body), cut)
			if !utf8.ValidString(out) {
				t.Fatalf("invalid UTF-8: %q", out)
			}
			plain := withoutTokens(out)
			if strings.Contains(plain, string(q)) || utf8.ValidString(secret) && !strings.ContainsAny(secret, `<>&`) && strings.Contains(plain, `"`+secret+`"`) {
				t.Fatalf("secret %q survived: %s", secret, out)
			}
			if strings.Contains(plain, "4111 1111 1111 1111") {
				t.Fatalf("card survived: %s", out)
			}
		}
		form := fmt.Sprintf("%s&password=%s&x=%s", prefix, secret, suffix)
		if strings.ContainsAny(secret, "&=%+") {
			return
		}
		if out := r.Body("application/x-www-form-urlencoded", []byte(form), cut); strings.Contains(withoutTokens(out), "password="+secret) {
			t.Fatalf("form secret survived: %s", out)
		}
	})
}

// body4KiB is a 4 KiB JSON document like an API's: an array of records
// with a few secrets and a card number among ordinary fields.
func body4KiB() []byte {
	var b strings.Builder
	b.WriteString(`{"items":[`)
	for i := 0; b.Len() < 4000; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":%d,"name":"widget %d","price":%d.99,"tags":["a","b"],"owner":{"user":"user%d","token":"tok-%08d"}}`, i, i, i, i, i)
	}
	b.WriteString(`],"payment":{"card_number":"4111111111111111","note":"paid by 5500 0000 0000 0004"}}`)
	return []byte(b.String())
}

// BenchmarkRedactBody is the redactor's cost per event at the body level
// with a 4 KiB JSON request body (and the same as the response): the
// request-path price of level body over headers. "patterns_only" scans a
// 4 KiB body with no JSON structure, for comparison.
func BenchmarkRedactBody(b *testing.B) {
	body := body4KiB()
	r := NewRedactor(testKey, nil, nil)
	// Baselines: what the standard library takes merely to check the
	// same document, and to decode it.
	b.Run("baseline_json_valid", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			_ = json.Valid(body)
		}
	})
	b.Run("baseline_json_unmarshal", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			var v any
			_ = json.Unmarshal(body, &v)
		}
	})
	b.Run("json_4KiB", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			_ = r.Body("application/json", body, false)
		}
	})
	text := []byte(strings.Repeat("lorem ipsum dolor sit amet 12345 ", len(body)/33))
	b.Run("text_4KiB", func(b *testing.B) {
		b.SetBytes(int64(len(text)))
		b.ReportAllocs()
		for b.Loop() {
			_ = r.Body("text/plain", text, false)
		}
	})
}

// A secret inside a document inside a value: JSON in a JSON string, a
// form in a JSON string, JSON in a form field or query parameter, and
// name=value pairs in free text.
func TestNestedDocuments(t *testing.T) {
	r := NewRedactor(testKey, nil, nil)
	const secret = "N3stedS3cret99"
	inner, _ := json.Marshal(map[string]string{"password": secret})
	innerQ, _ := json.Marshal(string(inner))
	tests := []struct{ ct, body string }{
		{"application/json", `{"payload":` + string(innerQ) + `}`},
		{"application/json", `{"echo":"user=a&password=` + secret + `&x=1"}`},
		{"application/json", `{"log":"login failed for password: ` + secret + ` at 10:00"}`},
		{"application/x-www-form-urlencoded", "data=" + url.QueryEscape(string(inner))},
		{"text/plain", "retry with token=" + secret + "; done"},
		{"text/plain", `{"deep":"{\"deeper\":\"{\\\"api_key\\\":\\\"` + secret + `\\\"}\"}"}`},
	}
	for _, tt := range tests {
		got := r.Body(tt.ct, []byte(tt.body), false)
		if strings.Contains(got, secret) || !strings.Contains(got, TokenPrefix) {
			t.Errorf("%s %s\n-> %s", tt.ct, tt.body, got)
		}
	}
	if q := r.Query("payload=" + url.QueryEscape(string(inner)) + "&page=2"); strings.Contains(q, secret) {
		t.Errorf("query: %s", q)
	}
	if h := r.Text("X-Debug: session=" + secret); strings.Contains(h, secret) {
		t.Errorf("text: %s", h)
	}
	// Ordinary text with colons and equals signs stays.
	for _, s := range []string{"https://app.example/a?b=c", "at 10:30 the total=42", "ratio: 1/2"} {
		if got := r.Text(s); got != s {
			t.Errorf("%q changed to %q", s, got)
		}
	}
}
