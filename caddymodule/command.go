package caddymodule

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"syscall"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
)

// auditCommands are the constructors of the `caddy audit` subcommands.
// Each command file appends its own in an init function, so a new group
// (say `caddy audit policy`) is one new file and no edit here; they are
// called when Cobra builds the tree, after every init has run.
var auditCommands []func() *cobra.Command

// addAuditCommand registers a `caddy audit` subcommand constructor.
func addAuditCommand(newCmd func() *cobra.Command) {
	auditCommands = append(auditCommands, newCmd)
}

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
$CADDY_AUDIT_KEY or --key-file (default ./data/bootstrap-admin.key).

Tables are for people; --json prints what the API answered, for scripts.`,
		CobraFunc: buildAuditCommand,
	})
}

// buildAuditCommand adds every registered subcommand to `caddy audit`.
func buildAuditCommand(cmd *cobra.Command) {
	for _, newCmd := range auditCommands {
		sub := newCmd()
		// A failed call already says what went wrong and what to do;
		// the usage text would bury that.
		sub.SilenceUsage = true
		cmd.AddCommand(sub)
	}
}

// defaultKeyFile is where Caddyfile.example's data_dir puts the bootstrap
// key, relative to the directory Caddy was started from.
const defaultKeyFile = "./data/bootstrap-admin.key"

// adminClient is how CLI commands reach a running sidecar.
type adminClient struct {
	base string
	key  string
	// keySource says where the key came from, for error messages.
	keySource string
	// agent is the User-Agent, which the admin trail records: "events
	// --follow" uses it to leave out its own polls.
	agent string
	http  *http.Client
}

func addAdminFlags(cmd *cobra.Command) {
	cmd.Flags().String("admin", envOr("CADDY_AUDIT_ADMIN", "http://127.0.0.1:9180"), "admin API address (audit_admin); $CADDY_AUDIT_ADMIN")
	cmd.Flags().String("key-file", defaultKeyFile, "file holding the admin API key, when $CADDY_AUDIT_KEY is unset")
}

func newAdminClient(cmd *cobra.Command) (*adminClient, error) {
	base, _ := cmd.Flags().GetString("admin")
	base = strings.TrimRight(base, "/")
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	c := &adminClient{
		base:      base,
		key:       os.Getenv("CADDY_AUDIT_KEY"),
		keySource: "$CADDY_AUDIT_KEY",
		agent:     "caddy-audit-cli/" + cmd.Name(),
		http:      &http.Client{Timeout: 10 * time.Minute},
	}
	if c.key == "" {
		path, _ := cmd.Flags().GetString("key-file")
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("no admin API key: $CADDY_AUDIT_KEY is unset and --key-file %s cannot be read (%v).\n"+
				"  Caddy writes bootstrap-admin.key to its audit data_dir on first start (./data/ with Caddyfile.example):\n"+
				"  run this from the directory Caddy was started in, point --key-file at the key, or set CADDY_AUDIT_KEY",
				path, errors.Unwrap(err))
		}
		c.key = strings.TrimSpace(string(data))
		c.keySource = path
	}
	return c, nil
}

// do sends a request with a JSON body (nil for none) and decodes a JSON
// answer into out (nil to discard it).
func (c *adminClient) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(data)
	}
	resp, err := c.open(ctx, method, path, "application/json", rd)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	}
	return decodeJSON(resp, out)
}

// open sends a request and returns the response when it succeeded; the
// caller reads and closes the body. A failure becomes an error that says
// what to do next.
func (c *adminClient) open(ctx context.Context, method, path, contentType string, body io.Reader) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, fmt.Errorf("--admin %s: %v", c.base, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	req.Header.Set("User-Agent", c.agent)
	if body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, c.unreachable(err)
	}
	if resp.StatusCode >= 400 {
		defer resp.Body.Close()
		return nil, c.problem(method, path, resp)
	}
	return resp, nil
}

func (c *adminClient) unreachable(err error) error {
	hint := "Is Caddy running (./xcaddy.sh run)? Does its config have a site with the audit_admin handler on that address?\n" +
		"  Point --admin or $CADDY_AUDIT_ADMIN at it"
	if errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("nothing listens at %s (the admin API address tried).\n  %s", c.base, hint)
	}
	return fmt.Errorf("cannot reach the admin API at %s: %v.\n  %s", c.base, err, hint)
}

// problem turns an error answer (an RFC 9457 problem document, or
// whatever a proxy in between sent) into an error with a next step.
func (c *adminClient) problem(method, path string, resp *http.Response) error {
	var p struct {
		Detail string `json:"detail"`
	}
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if json.Unmarshal(raw, &p) != nil || p.Detail == "" {
		p.Detail = strings.TrimSpace(string(raw))
		if len(p.Detail) > 200 {
			p.Detail = p.Detail[:200] + "..."
		}
	}
	msg := fmt.Sprintf("%s %s%s: %s: %s", method, c.base, path, resp.Status, p.Detail)
	switch resp.StatusCode {
	case http.StatusUnauthorized:
		return fmt.Errorf("%s.\n  The admin API refused the key from %s. Use the key Caddy wrote to bootstrap-admin.key in its audit data_dir\n"+
			"  on first start (--key-file), or ask an administrator for one (caddy audit keys create --name <you> --role auditor)\n"+
			"  and put it in $CADDY_AUDIT_KEY", msg, c.keySource)
	case http.StatusForbidden:
		return fmt.Errorf("%s.\n  The key from %s is valid but its role lacks the permission named above: ask an administrator\n"+
			"  for a key whose role grants it (caddy audit keys create --role <role>; GET /api/v1/permissions lists them)", msg, c.keySource)
	case http.StatusTooManyRequests:
		return fmt.Errorf("%s.\n  Too many invalid keys from this address: wait %s seconds and check the key", msg, resp.Header.Get("Retry-After"))
	case http.StatusServiceUnavailable:
		return fmt.Errorf("%s.\n  The admin API answers but the audit store is not available: see Caddy's log", msg)
	}
	return errors.New(msg)
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// decodeJSON decodes a successful answer's JSON body into out.
func decodeJSON(resp *http.Response, out any) error {
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: the answer is not the JSON expected: %v", resp.Request.Method, resp.Request.URL.Path, err)
	}
	return nil
}
