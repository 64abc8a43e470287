package main

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
)

// template is one request of the mix, built once so that building requests
// costs the generator almost nothing.
type template struct {
	method string
	path   string // with query
	header http.Header
	body   []byte
}

// bodySize is the JSON body size of POST, PUT and PATCH requests in the
// mix: large enough for the body level (variant e) to have something to
// capture, the same in every variant so that they stay comparable.
const bodySize = 4 << 10

// buildMix returns n request templates drawn with a fixed seed: 20 users in
// 4 workspaces; GET 70%, POST 12%, PUT 6%, DELETE 6%, PATCH 6%; answers
// 200, 201, 204, 401, 403, 404 and 500; credentials in Authorization
// (bearer JWT-shaped tokens), Cookie and sometimes a token query parameter.
func buildMix(n int) []template {
	rng := rand.New(rand.NewPCG(8, 8))
	uas := []string{
		"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
		"curl/8.5.0",
		"python-requests/2.32.3",
	}
	mix := make([]template, n)
	for i := range mix {
		user := rng.IntN(20)
		ws := fmt.Sprintf("ws%d", user%4)
		h := http.Header{}
		h.Set("User-Agent", uas[rng.IntN(len(uas))])
		h.Set("Accept", "application/json")
		h.Set("X-User-ID", fmt.Sprintf("user%02d", user))
		h.Set("X-Workspace-ID", ws)
		h.Set("Authorization", "Bearer "+fakeJWT(user, rng))
		h.Set("Cookie", fmt.Sprintf("sid=%016x; theme=dark; lang=en", rng.Uint64()))
		if rng.IntN(4) == 0 {
			h.Set("X-Forwarded-For", fmt.Sprintf("203.0.113.%d", 1+user))
		}
		t := template{header: h}
		item := rng.IntN(5000)
		switch r := rng.IntN(100); {
		case r < 30:
			t.method, t.path = http.MethodGet, "/api/items"
			if rng.IntN(5) == 0 {
				t.path += fmt.Sprintf("?page=%d&token=%x", rng.IntN(9), rng.Uint32())
			}
		case r < 58:
			t.method, t.path = http.MethodGet, fmt.Sprintf("/api/items/%d", item)
		case r < 63:
			t.method, t.path = http.MethodGet, "/admin/settings"
			if user == 0 {
				h.Set("X-User-Role", "admin")
			}
		case r < 67:
			t.method, t.path = http.MethodGet, fmt.Sprintf("/static/missing-%d.js", item)
		case r < 70:
			t.method, t.path = http.MethodGet, "/api/fail"
		case r < 76:
			t.method, t.path = http.MethodPost, "/login"
			pw := "demo"
			if rng.IntN(3) == 0 {
				pw = "wrong"
			}
			t.body = jsonBody(rng, `"username":"user`+fmt.Sprint(user)+`","password":"`+pw+`"`)
		case r < 82:
			t.method, t.path = http.MethodPost, "/api/items"
			t.body = jsonBody(rng, `"name":"new item"`)
		case r < 88:
			t.method, t.path = http.MethodPut, fmt.Sprintf("/api/items/%d", item)
			t.body = jsonBody(rng, `"name":"renamed"`)
		case r < 94:
			t.method, t.path = http.MethodPatch, fmt.Sprintf("/api/items/%d", item)
			t.body = jsonBody(rng, `"name":"patched"`)
		default:
			t.method, t.path = http.MethodDelete, fmt.Sprintf("/api/items/%d", item)
		}
		if t.body != nil {
			h.Set("Content-Type", "application/json")
		}
		mix[i] = t
	}
	return mix
}

// fakeJWT is shaped like a JWT (three base64url parts) so that anything
// that looks for bearer tokens sees one; its signature is random.
func fakeJWT(user int, rng *rand.Rand) string {
	enc := base64.RawURLEncoding
	head := enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))
	claims := enc.EncodeToString(fmt.Appendf(nil, `{"sub":"user%02d","ws":"ws%d","exp":4102444800}`, user, user%4))
	sig := make([]byte, 32)
	for i := range sig {
		sig[i] = byte(rng.UintN(256))
	}
	return head + "." + claims + "." + enc.EncodeToString(sig)
}

// jsonBody is a JSON object of exactly bodySize bytes: the given fields,
// an e-mail address and a card-like number (things a body redactor looks
// for), and padding records.
func jsonBody(rng *rand.Rand, fields string) []byte {
	var b bytes.Buffer
	b.WriteString("{" + fields + `,"email":"someone@example.com","card":"4111111111111111","items":[`)
	for i := 0; b.Len() < bodySize-64; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"n":%d,"v":"%08x"}`, i, rng.Uint32())
	}
	b.WriteString(`],"pad":"`)
	pad := bodySize - b.Len() - 2
	b.WriteString(strings.Repeat("x", max(pad, 0)))
	b.WriteString(`"}`)
	return b.Bytes()
}
