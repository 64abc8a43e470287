package caddymodule

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"hash"
	"math/big"
	"strings"
	"time"
)

// maxJWTLen bounds the token we are willing to decode.
const maxJWTLen = 16 << 10

// jwtVerifier checks JWT signatures with one configured key. The audit
// handler is not an authenticator: a token that fails verification still
// names a user, but that user is recorded as unverified.
type jwtVerifier struct {
	hmacKey []byte
	public  crypto.PublicKey
}

// parsePublicKeyPEM reads an RSA, ECDSA or Ed25519 public key (PKIX or
// certificate).
func parsePublicKeyPEM(data []byte) (crypto.PublicKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM block found")
	}
	switch block.Type {
	case "CERTIFICATE":
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		return cert.PublicKey, nil
	case "RSA PUBLIC KEY":
		return x509.ParsePKCS1PublicKey(block.Bytes)
	}
	key, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	switch key.(type) {
	case *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey:
		return key, nil
	}
	return nil, fmt.Errorf("unsupported public key type %T", key)
}

// jwtClaims decodes token's claims. verified is true only when v is set,
// the signature checks out with an algorithm matching the key, and the
// token is within its exp/nbf window at now.
func jwtClaims(token string, v *jwtVerifier, now time.Time) (claims map[string]any, verified bool, err error) {
	if len(token) > maxJWTLen {
		return nil, false, errors.New("token too long")
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, false, errors.New("not a JWS compact token")
	}
	var header struct {
		Alg string `json:"alg"`
	}
	if err := decodeSegment(parts[0], &header); err != nil {
		return nil, false, fmt.Errorf("header: %w", err)
	}
	if err := decodeSegment(parts[1], &claims); err != nil {
		return nil, false, fmt.Errorf("claims: %w", err)
	}
	if v == nil {
		return claims, false, nil
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return claims, false, nil
	}
	signed := parts[0] + "." + parts[1]
	if !v.verify(header.Alg, []byte(signed), sig) {
		return claims, false, nil
	}
	return claims, timeValid(claims, now), nil
}

func decodeSegment(seg string, into any) error {
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(seg, "="))
	if err != nil {
		return err
	}
	return json.Unmarshal(raw, into)
}

func timeValid(claims map[string]any, now time.Time) bool {
	const leeway = 30 // seconds
	unix := now.Unix()
	if exp, ok := claims["exp"].(float64); ok && float64(unix) > exp+leeway {
		return false
	}
	if nbf, ok := claims["nbf"].(float64); ok && float64(unix) < nbf-leeway {
		return false
	}
	return true
}

// verify checks sig over signed. The algorithm must fit the configured key
// type, which rules out "none" and HMAC-with-a-public-key confusion.
func (v *jwtVerifier) verify(alg string, signed, sig []byte) bool {
	var newHash func() hash.Hash
	var cryptoHash crypto.Hash
	switch alg[min(2, len(alg)):] {
	case "256":
		newHash, cryptoHash = sha256.New, crypto.SHA256
	case "384":
		newHash, cryptoHash = sha512.New384, crypto.SHA384
	case "512":
		newHash, cryptoHash = sha512.New, crypto.SHA512
	}
	if alg == "EdDSA" {
		pub, ok := v.public.(ed25519.PublicKey)
		return ok && ed25519.Verify(pub, signed, sig)
	}
	if newHash == nil {
		return false
	}
	switch {
	case strings.HasPrefix(alg, "HS") && v.hmacKey != nil:
		m := hmac.New(newHash, v.hmacKey)
		m.Write(signed)
		return hmac.Equal(m.Sum(nil), sig)
	}
	h := newHash()
	h.Write(signed)
	digest := h.Sum(nil)
	switch pub := v.public.(type) {
	case *rsa.PublicKey:
		switch {
		case strings.HasPrefix(alg, "RS"):
			return rsa.VerifyPKCS1v15(pub, cryptoHash, digest, sig) == nil
		case strings.HasPrefix(alg, "PS"):
			return rsa.VerifyPSS(pub, cryptoHash, digest, sig, nil) == nil
		}
	case *ecdsa.PublicKey:
		if !strings.HasPrefix(alg, "ES") || len(sig)%2 != 0 {
			return false
		}
		// JWS carries r||s, not ASN.1.
		n := len(sig) / 2
		r, s := new(big.Int).SetBytes(sig[:n]), new(big.Int).SetBytes(sig[n:])
		return ecdsa.Verify(pub, digest, r, s)
	}
	return false
}
