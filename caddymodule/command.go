package caddymodule

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/caddy-audit/caddy-audit/storage"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "audit",
		Usage: "<command> [flags]",
		Short: "Work with the caddy-audit trail",
		Long: `
Commands for the audit trail recorded by the audit handler.

While Caddy runs, its audit database is locked; commands that need live
data talk to the admin API (audit_admin) instead, at --admin (default
$CADDY_AUDIT_ADMIN or http://127.0.0.1:9180) with the API key in
$CADDY_AUDIT_KEY or --key-file (default ./data/bootstrap-admin.key).`,
		CobraFunc: func(cmd *cobra.Command) {
			cmd.AddCommand(verifyCommand(), importCommand())
		},
	})
}

// adminClient is how CLI commands reach a running sidecar.
type adminClient struct {
	base, key string
	http      *http.Client
}

func addAdminFlags(cmd *cobra.Command) {
	cmd.Flags().String("admin", envOr("CADDY_AUDIT_ADMIN", "http://127.0.0.1:9180"), "admin API address (audit_admin)")
	cmd.Flags().String("key-file", "./data/bootstrap-admin.key", "file holding the admin API key, when $CADDY_AUDIT_KEY is unset")
}

func newAdminClient(cmd *cobra.Command) (*adminClient, error) {
	base, _ := cmd.Flags().GetString("admin")
	key := os.Getenv("CADDY_AUDIT_KEY")
	if key == "" {
		path, _ := cmd.Flags().GetString("key-file")
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("no API key: set CADDY_AUDIT_KEY or point --key-file at one (%v)", err)
		}
		key = strings.TrimSpace(string(data))
	}
	return &adminClient{base: strings.TrimRight(base, "/"), key: key, http: &http.Client{Timeout: 10 * time.Minute}}, nil
}

// do sends a request with a JSON body (nil for none) and decodes a JSON
// answer into out; problem documents become errors that say what to do
// next.
func (c *adminClient) do(method, path string, body any, out any) error {
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(data)
	}
	return c.send(method, path, "application/json", rd, out)
}

// send is do with a body of any type, streamed.
func (c *adminClient) send(method, path, contentType string, body io.Reader, out any) error {
	req, err := http.NewRequest(method, c.base+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	if body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("the admin API at %s is unreachable (is Caddy running with an audit_admin site? --admin sets the address): %v", c.base, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 400 {
		var p struct {
			Detail string `json:"detail"`
		}
		_ = json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&p)
		hint := ""
		if resp.StatusCode == http.StatusUnauthorized {
			hint = " (check CADDY_AUDIT_KEY or --key-file)"
		}
		return fmt.Errorf("%s %s: %s: %s%s", method, path, resp.Status, p.Detail, hint)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

func verifyCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "verify [--file <export.ndjson>] [--checkpoint <file>] [--public-key <base64|file>] [--json]",
		Short: "Verify the integrity chain, live or offline on an export",
		Long: `
Without --file, asks the running sidecar to walk its whole hash chain
(POST /api/v1/integrity/verify), against --checkpoint if given, otherwise
against the store's own latest checkpoint.

With --file, verifies an NDJSON export (GET /api/v1/events/export with no
filter) offline: every event's link, every personal part against its
commitment, and, with --checkpoint, that the file reaches the checkpoint's
head with the same link (a truncated or rolled-back copy fails). Pin the
signing key with --public-key (GET /api/v1/integrity/checkpoint shows it);
without it the key embedded in the checkpoint is used, which proves the
checkpoint is intact but not who signed it.

Exits 1 when a problem is found.`,
		RunE: runVerify,
	}
	cmd.Flags().String("file", "", "NDJSON export to verify offline (- for standard input)")
	cmd.Flags().String("checkpoint", "", "checkpoint JSON kept off the host")
	cmd.Flags().String("public-key", "", "the checkpoint signing key: base64, or a file holding it")
	cmd.Flags().Bool("json", false, "print the report as JSON")
	addAdminFlags(cmd)
	return cmd
}

func runVerify(cmd *cobra.Command, _ []string) error {
	file, _ := cmd.Flags().GetString("file")
	cpPath, _ := cmd.Flags().GetString("checkpoint")
	pubArg, _ := cmd.Flags().GetString("public-key")
	asJSON, _ := cmd.Flags().GetBool("json")

	cp, cpPub, err := readCheckpoint(cpPath)
	if err != nil {
		return err
	}
	pub, err := readPublicKey(pubArg)
	if err != nil {
		return err
	}
	if pub == nil {
		pub = cpPub
	}

	var rep storage.VerifyReport
	if file != "" {
		in := io.Reader(os.Stdin)
		if file != "-" {
			f, err := os.Open(file)
			if err != nil {
				return err
			}
			defer f.Close()
			in = f
		}
		if rep, err = storage.VerifyNDJSON(in, cp, pub); err != nil {
			return fmt.Errorf("reading %s: %w", file, err)
		}
	} else {
		client, err := newAdminClient(cmd)
		if err != nil {
			return err
		}
		body := map[string]any{}
		if cp != nil {
			body["checkpoint"] = cp
		}
		if err := client.do(http.MethodPost, "/api/v1/integrity/verify", body, &rep); err != nil {
			return err
		}
	}
	printReport(cmd.OutOrStdout(), rep, asJSON)
	if !rep.OK {
		// Cobra would print usage for an error; the report said it all.
		cmd.SilenceUsage = true
		return errors.New("integrity verification failed")
	}
	return nil
}

func importCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "import --file <access.log> [--format auto|caddy|common|combined] [--source <name>] [--workspace-header <name>]",
		Short: "Backfill an access log into the trail and replay it through the detectors",
		Long: `
Streams an access log (Caddy's JSON access log, Common or Combined Log
Format) to the running sidecar (POST /api/v1/import). Its lines become
audit events, with query strings and headers redacted as live traffic is,
and are replayed in event-time order through a fresh detector engine:
the alerts show what the sidecar would have raised at the time. Importing
the same --source twice does not duplicate events.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			file, _ := cmd.Flags().GetString("file")
			if file == "" {
				return errors.New("--file is required")
			}
			f, err := os.Open(file)
			if err != nil {
				return err
			}
			defer f.Close()
			source, _ := cmd.Flags().GetString("source")
			if source == "" {
				source = filepath.Base(file)
			}
			q := url.Values{"source": {source}}
			if v, _ := cmd.Flags().GetString("format"); v != "" {
				q.Set("format", v)
			}
			if v, _ := cmd.Flags().GetString("workspace-header"); v != "" {
				q.Set("workspace_header", v)
			}
			client, err := newAdminClient(cmd)
			if err != nil {
				return err
			}
			var res map[string]any
			if err := client.send(http.MethodPost, "/api/v1/import?"+q.Encode(), "text/plain", f, &res); err != nil {
				return err
			}
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetIndent("", "  ")
			return enc.Encode(res)
		},
	}
	cmd.Flags().String("file", "", "access log to import")
	cmd.Flags().String("format", "auto", "auto, caddy, common or combined")
	cmd.Flags().String("source", "", "name recorded with each event (default: the file's base name)")
	cmd.Flags().String("workspace-header", "", "request header naming the workspace (Caddy JSON logs)")
	addAdminFlags(cmd)
	return cmd
}

// readCheckpoint reads a checkpoint file: either a bare checkpoint or the
// body of GET /api/v1/integrity/checkpoint, whose public key it returns.
func readCheckpoint(path string) (*storage.Checkpoint, []byte, error) {
	if path == "" {
		return nil, nil, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	var wrapped struct {
		Checkpoint *storage.Checkpoint `json:"checkpoint"`
		PublicKey  string              `json:"public_key"`
	}
	if err := json.Unmarshal(data, &wrapped); err == nil && wrapped.Checkpoint != nil {
		// The key saved with the checkpoint pins the signer as of then.
		pub, err := base64.StdEncoding.DecodeString(wrapped.PublicKey)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: public_key is not base64: %v", path, err)
		}
		return wrapped.Checkpoint, pub, nil
	}
	var cp storage.Checkpoint
	if err := json.Unmarshal(data, &cp); err != nil {
		return nil, nil, fmt.Errorf("%s is not a checkpoint: %v", path, err)
	}
	return &cp, nil, nil
}

// readPublicKey takes base64 or a file holding base64.
func readPublicKey(arg string) ([]byte, error) {
	if arg == "" {
		return nil, nil
	}
	text := arg
	if data, err := os.ReadFile(arg); err == nil {
		text = string(data)
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(text))
	if err != nil {
		return nil, fmt.Errorf("--public-key: neither a readable file nor base64: %v", err)
	}
	return key, nil
}

func printReport(w io.Writer, rep storage.VerifyReport, asJSON bool) {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(rep)
		return
	}
	verdict := "OK"
	if !rep.OK {
		verdict = "FAILED"
	}
	fmt.Fprintf(w, "integrity: %s\n", verdict)
	fmt.Fprintf(w, "  events %d (seq %d-%d), tombstones %d, erased %d, %d ms\n",
		rep.Events, rep.FirstSeq, rep.LastSeq, rep.Tombstones, rep.Erased, rep.DurationMS)
	if rep.CheckpointSeq != 0 {
		fmt.Fprintf(w, "  checkpoint seq %d: verified %v\n", rep.CheckpointSeq, rep.CheckpointVerified)
	}
	if rep.CheckpointNote != "" {
		fmt.Fprintf(w, "  note: %s\n", rep.CheckpointNote)
	}
	for _, p := range rep.Problems {
		fmt.Fprintf(w, "  problem at seq %d: %s: %s\n", p.Seq, p.Kind, p.Detail)
	}
	if rep.ProblemCount > int64(len(rep.Problems)) {
		fmt.Fprintf(w, "  ... %d problems in all\n", rep.ProblemCount)
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
