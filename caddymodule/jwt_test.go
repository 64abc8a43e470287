package caddymodule

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"testing"
	"time"
)

func b64(v any) string {
	data, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(data)
}

// signJWT builds a compact JWS; sign receives the signing input.
func signJWT(alg string, claims map[string]any, sign func([]byte) []byte) string {
	input := b64(map[string]string{"alg": alg, "typ": "JWT"}) + "." + b64(claims)
	return input + "." + base64.RawURLEncoding.EncodeToString(sign([]byte(input)))
}

func TestJWTClaims(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	claims := map[string]any{"sub": "alice", "tenant": "acme", "exp": float64(now.Unix() + 60)}
	expired := map[string]any{"sub": "alice", "exp": float64(now.Unix() - 3600)}

	secret := []byte("shared-secret")
	hs := func(in []byte) []byte { m := hmac.New(sha256.New, secret); m.Write(in); return m.Sum(nil) }
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	rs := func(in []byte) []byte {
		d := sha256.Sum256(in)
		sig, _ := rsa.SignPKCS1v15(rand.Reader, rsaKey, crypto.SHA256, d[:])
		return sig
	}
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	es := func(in []byte) []byte {
		d := sha256.Sum256(in)
		r, s, _ := ecdsa.Sign(rand.Reader, ecKey, d[:])
		out := make([]byte, 64)
		r.FillBytes(out[:32])
		s.FillBytes(out[32:])
		return out
	}
	edPub, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	ed := func(in []byte) []byte { return ed25519.Sign(edPriv, in) }
	none := func([]byte) []byte { return nil }

	hsV := &jwtVerifier{hmacKey: secret}
	rsV := &jwtVerifier{public: &rsaKey.PublicKey}
	esV := &jwtVerifier{public: &ecKey.PublicKey}
	edV := &jwtVerifier{public: edPub}

	tests := []struct {
		name     string
		token    string
		v        *jwtVerifier
		verified bool
		wantErr  bool
	}{
		{"no verifier: decoded, unverified", signJWT("HS256", claims, hs), nil, false, false},
		{"HS256 good", signJWT("HS256", claims, hs), hsV, true, false},
		{"HS256 wrong secret", signJWT("HS256", claims, hs), &jwtVerifier{hmacKey: []byte("other")}, false, false},
		{"HS256 expired", signJWT("HS256", expired, hs), hsV, false, false},
		{"RS256 good", signJWT("RS256", claims, rs), rsV, true, false},
		{"ES256 good", signJWT("ES256", claims, es), esV, true, false},
		{"EdDSA good", signJWT("EdDSA", claims, ed), edV, true, false},
		{"alg none refused", signJWT("none", claims, none), hsV, false, false},
		{"HS256 signed with the RSA public key refused", signJWT("HS256", claims, func(in []byte) []byte {
			der, _ := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
			m := hmac.New(sha256.New, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
			m.Write(in)
			return m.Sum(nil)
		}), rsV, false, false},
		{"RS256 token, EC key", signJWT("RS256", claims, rs), esV, false, false},
		{"not a JWT", "abc", hsV, false, true},
		{"bad base64", "a.b.c", hsV, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, verified, err := jwtClaims(tt.token, tt.v, now)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if verified != tt.verified {
				t.Fatalf("verified = %v, want %v", verified, tt.verified)
			}
			if err == nil && got["sub"] != "alice" {
				t.Fatalf("claims = %v", got)
			}
		})
	}
}

func TestParsePublicKeyPEM(t *testing.T) {
	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(edPub)
	if _, err := parsePublicKeyPEM(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"", "not pem", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"} {
		if _, err := parsePublicKeyPEM([]byte(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

func FuzzJWTClaims(f *testing.F) {
	v := &jwtVerifier{hmacKey: []byte("k")}
	f.Add(signJWT("HS256", map[string]any{"sub": "a"}, func([]byte) []byte { return []byte("sig") }))
	f.Add("eyJhbGciOiJIUzI1NiJ9.e30.")
	f.Add("..")
	f.Fuzz(func(t *testing.T, token string) {
		_, verified, _ := jwtClaims(token, v, time.Now())
		if verified {
			t.Fatalf("a fuzzed token verified without the key: %q", token)
		}
	})
}
