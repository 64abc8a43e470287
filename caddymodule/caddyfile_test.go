package caddymodule

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddytest"
	_ "github.com/caddyserver/caddy/v2/modules/standard"
)

// TestAdaptGolden adapts each testdata/adapt file's Caddyfile half and
// compares the JSON with its other half (Caddy's own adapt tests work the
// same way; `caddy adapt --pretty` prints the JSON for a new file).
func TestAdaptGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/adapt/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			caddyfileText, want, ok := strings.Cut(string(data), "----------\n")
			if !ok {
				t.Fatalf("%s: no ---------- separator", file)
			}
			if strings.TrimSpace(want) == "" {
				t.Fatalf("%s has no expected JSON", file)
			}
			caddytest.AssertAdapt(t, caddyfileText, "caddyfile", strings.TrimRight(want, "\n"))
		})
	}
}

func TestCaddyfileErrors(t *testing.T) {
	tests := []struct {
		name, input, want string
		parse             func(*caddyfile.Dispenser) error
	}{
		{"handler unknown subdirective", "audit {\n level headers\n colour blue\n}", `unknown audit subdirective "colour"`, handlerParse},
		{"handler argument", "audit everything", "wrong argument count", handlerParse},
		{"handler level arity", "audit {\n level\n}", "wrong argument count", handlerParse},
		{"user source unknown", "audit {\n user cookie sid\n}", `unknown identity source "cookie"`, handlerParse},
		{"user header without name", "audit {\n user header\n}", "header needs a name", handlerParse},
		{"host takes no name", "audit {\n workspace host example.com\n}", "host takes no name", handlerParse},
		{"bad duration", "audit {\n strict_timeout soon\n}", "strict_timeout", handlerParse},
		{"app unknown option", "audit {\n data_dir ./d\n colour blue\n}", `unknown audit option "colour"`, appParse},
		{"app bad size", "audit {\n max_db_size lots\n}", "max_db_size", appParse},
		{"app detectors_file arity", "audit {\n detectors_file\n}", "wrong argument count", appParse},
		{"app policy_file arity", "audit {\n policy_file a.yaml b.yaml\n}", "wrong argument count", appParse},
		{"app bad sweep_interval", "audit {\n sweep_interval often\n}", "sweep_interval", appParse},
		{"app bad commit_delay", "audit {\n commit_delay soon\n}", "commit_delay", appParse},
		{"app commit_delay off arity", "audit {\n commit_delay off now\n}", "wrong argument count", appParse},
		{"app commit_delay arity", "audit {\n commit_delay\n}", "wrong argument count", appParse},
		{"app negative queue", "audit {\n queue_size -1\n}", "queue_size: want a non-negative integer", appParse},
		{"admin takes nothing", "audit_admin {\n x\n}", "takes no options", adminParse},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.parse(caddyfile.NewTestDispenser(tt.input))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error containing %q", err, tt.want)
			}
			if !strings.Contains(err.Error(), "Testfile:") {
				t.Errorf("error does not say where: %v", err)
			}
		})
	}
}

func TestCommitDelayOff(t *testing.T) {
	var a App
	if err := a.UnmarshalCaddyfile(caddyfile.NewTestDispenser("audit {\n commit_delay off\n}")); err != nil {
		t.Fatal(err)
	}
	if a.CommitDelay != -1 {
		t.Fatalf("commit_delay off: %d, want -1 (commit at once)", a.CommitDelay)
	}
}

func handlerParse(d *caddyfile.Dispenser) error { return new(Handler).UnmarshalCaddyfile(d) }
func appParse(d *caddyfile.Dispenser) error     { return new(App).UnmarshalCaddyfile(d) }
func adminParse(d *caddyfile.Dispenser) error   { return new(AdminHandler).UnmarshalCaddyfile(d) }

func FuzzUnmarshalCaddyfile(f *testing.F) {
	f.Add("audit {\n level headers\n user header X-User-ID\n}")
	f.Add("audit {\n max_db_size 1GiB\n}")
	f.Add("audit {\n workspace path_segment 0\n}")
	f.Fuzz(func(t *testing.T, input string) {
		for _, parse := range []func(*caddyfile.Dispenser) error{handlerParse, appParse, adminParse} {
			_ = parse(caddyfile.NewTestDispenser(input)) // must not panic
		}
	})
}
