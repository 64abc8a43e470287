package adminapi

import (
	"encoding/base64"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestGenerateKey(t *testing.T) {
	secret, rec, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(secret, "cka_"))
	if !strings.HasPrefix(secret, "cka_") || err != nil || len(raw) != 32 {
		t.Errorf("secret %q is not cka_ + base64url of 32 bytes (%v)", secret, err)
	}
	if rec.Prefix != secret[:12] || rec.Hash != HashKey(secret) || rec.ID == "" || rec.CreatedAt.IsZero() {
		t.Errorf("record = %+v", rec)
	}
	if strings.Contains(rec.Hash, secret[4:]) {
		t.Error("record holds the secret")
	}
	other, _, _ := GenerateKey()
	if other == secret {
		t.Error("two keys are equal")
	}
}

func TestHashKey(t *testing.T) {
	// SHA-256("abc") from FIPS 180-2.
	if got := HashKey("abc"); got != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Errorf("HashKey(abc) = %s", got)
	}
}

// readKeyFile returns the secret in a bootstrap file and checks its mode.
func readKeyFile(t *testing.T, path string) string {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v, want 0600", fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	if !strings.HasSuffix(s, "\n") || strings.Count(s, "\n") != 1 {
		t.Errorf("file %q: want the secret and one newline", s)
	}
	return strings.TrimSuffix(s, "\n")
}

func TestBootstrap(t *testing.T) {
	e := newEnv(t, nil)
	path := filepath.Join(t.TempDir(), "data", "bootstrap-admin.key")

	created, err := Bootstrap(e.store, path)
	if err != nil || !created {
		t.Fatalf("first Bootstrap = %v, %v; want created", created, err)
	}
	secret := readKeyFile(t, path)
	if w := e.get("/api/v1/events", secret); w.Code != http.StatusOK {
		t.Fatalf("bootstrap key answered %d: %s", w.Code, w.Body)
	}
	key, err := e.store.APIKeyByHash(HashKey(secret))
	if err != nil || key.Role != "admin" || key.Name != "bootstrap admin" || key.Workspace != "" {
		t.Errorf("stored key = %+v, %v", key, err)
	}

	created, err = Bootstrap(e.store, path)
	if err != nil || created {
		t.Fatalf("second Bootstrap = %v, %v; want nothing done", created, err)
	}
	if again := readKeyFile(t, path); again != secret {
		t.Error("second Bootstrap changed the file")
	}
	if n, _ := e.store.CountAPIKeys(); n != 1 {
		t.Errorf("%d keys after two bootstraps, want 1", n)
	}
}

func TestBootstrapReplacesStaleFile(t *testing.T) {
	// A crash after writing the file but before committing the key leaves
	// a file whose secret works nowhere; the next start must replace it.
	e := newEnv(t, nil)
	path := filepath.Join(t.TempDir(), "bootstrap-admin.key")
	if err := os.WriteFile(path, []byte("cka_stale\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	created, err := Bootstrap(e.store, path)
	if err != nil || !created {
		t.Fatalf("Bootstrap = %v, %v; want created", created, err)
	}
	secret := readKeyFile(t, path)
	if secret == "cka_stale" {
		t.Fatal("stale file kept")
	}
	if w := e.get("/api/v1/events", secret); w.Code != http.StatusOK {
		t.Fatalf("replacement key answered %d", w.Code)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only the key file (no temp leftovers)", len(entries))
	}
}

func TestBootstrapWithExistingKeys(t *testing.T) {
	e := newEnv(t, nil)
	e.key("auditor", "", nil)
	path := filepath.Join(t.TempDir(), "bootstrap-admin.key")
	created, err := Bootstrap(e.store, path)
	if err != nil || created {
		t.Fatalf("Bootstrap = %v, %v; want nothing done", created, err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("file written although a key exists (stat: %v)", err)
	}
}
