package caddymodule

import (
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/caddy-audit/caddy-audit/policy"
)

func init() { addAuditCommand(policyCommand) }

// The policy commands work on the file alone, offline: a policy is
// reviewed (and its effect explained) before any Caddy loads it.
func policyCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy validate|explain",
		Short: "Check an audit policy file, or explain what it records for a request",
	}
	cmd.AddCommand(policyValidateCommand(), policyExplainCommand())
	return cmd
}

func policyValidateCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "validate <policy.yaml> [--json]",
		Short: "Check a policy file and show the effective policy",
		Long: `
Reads the policy file as the audit app would at a reload: unknown keys,
wrong types and bad values are reported as file:line:column, all at once.
On success prints the profile, the rules and the policy's SHA-256 (the
hash that policy_changed events carry); --json prints the effective
policy, the profile's defaults and rules included.

Exits 1 when the file is not valid.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := policy.Validate(args[0])
			if err != nil {
				return err
			}
			if asJSON, _ := cmd.Flags().GetBool("json"); asJSON {
				return printJSON(cmd.OutOrStdout(), p)
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "%s: valid, profile %s, %d rules, sha256 %s\n", args[0], cleanText(p.Profile), len(p.Rules), p.Hash())
			fmt.Fprintf(out, "defaults: level %s, failure mode %s\n", cleanText(p.Defaults.Level), cleanText(p.Defaults.FailureMode))
			if len(p.Rules) == 0 {
				return nil
			}
			t := newTable(out, "#", "RULE", "LEVEL", "FAILURE MODE", "TAGS")
			for i, r := range p.Rules {
				t.row(strconv.Itoa(i), r.Name, r.Level, r.FailureMode, strings.Join(r.Tags, ","))
			}
			t.flush()
			return nil
		},
	}
	cmd.Flags().Bool("json", false, "print the effective policy as JSON")
	return cmd
}

func policyExplainCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "explain <policy.yaml> [--method M] [--url URL] [-H 'Name: value']... [--body text|@file] [--user U] [--workspace W] [--status N] [--key-file data/hmac.key] [--json]",
		Short: "Show which rule decides a request and the event that would be stored",
		Long: `
Runs one request through the policy the way the audit handler does: the
deciding rule (first match wins), its level, failure mode and tags, the
rules that match on the status and would win once it is known, and the
sanitized event that would be stored.

Secrets are shown as the hmac: tokens the sidecar stores. With --key-file
pointing at the sidecar's key (data/hmac.key, readable by its owner only)
they are the very tokens in the trail, so an investigator can match them;
without it a random key is used and the tokens match nothing stored.`,
		Args: cobra.ExactArgs(1),
		RunE: runPolicyExplain,
	}
	f := cmd.Flags()
	f.String("method", http.MethodGet, "request method")
	f.String("url", "/", "request URL: a path with its query, or an absolute URL")
	f.StringArrayP("header", "H", nil, "request header 'Name: value' (repeatable)")
	f.String("body", "", "request body, or @file to read it from a file")
	f.String("user", "", "the user the handler would resolve")
	f.String("workspace", "", "the workspace the handler would resolve")
	f.Int("status", 0, "response status to assume (0: unknown, status rules are reported as undecided)")
	f.String("key-file", "", "the sidecar's HMAC key file, to compute the stored tokens")
	f.Bool("json", false, "print the explanation as JSON")
	return cmd
}

func runPolicyExplain(cmd *cobra.Command, args []string) error {
	f := cmd.Flags()
	p, err := policy.Validate(args[0])
	if err != nil {
		return err
	}
	req := policy.ExplainRequest{Header: http.Header{}}
	req.Method, _ = f.GetString("method")
	req.URL, _ = f.GetString("url")
	req.User, _ = f.GetString("user")
	req.Workspace, _ = f.GetString("workspace")
	req.Status, _ = f.GetInt("status")
	headers, _ := f.GetStringArray("header")
	for _, h := range headers {
		name, value, ok := strings.Cut(h, ":")
		if !ok || strings.TrimSpace(name) == "" {
			return fmt.Errorf("--header %q: expected 'Name: value'", h)
		}
		req.Header.Add(strings.TrimSpace(name), strings.TrimSpace(value))
	}
	if body, _ := f.GetString("body"); strings.HasPrefix(body, "@") {
		if req.Body, err = os.ReadFile(body[1:]); err != nil {
			return fmt.Errorf("--body: %w", err)
		}
	} else {
		req.Body = []byte(body)
	}
	var key []byte
	if path, _ := f.GetString("key-file"); path != "" {
		if key, err = policy.ReadKey(path); errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("--key-file %s does not exist: the sidecar writes hmac.key into its data_dir on first start", path)
		} else if err != nil {
			return err
		}
	}
	ex, err := policy.Explain(p, key, req)
	if err != nil {
		return err
	}
	if asJSON, _ := f.GetBool("json"); asJSON {
		return printJSON(cmd.OutOrStdout(), ex)
	}
	out := cmd.OutOrStdout()
	rule := "the defaults (no rule matches)"
	if ex.Index >= 0 {
		rule = fmt.Sprintf("rule %d %q", ex.Index, ex.Rule)
	}
	fmt.Fprintf(out, "decided by: %s\nlevel: %s\nfailure mode: %s\n", rule, ex.Level, ex.FailureMode)
	if len(ex.Tags) > 0 {
		fmt.Fprintf(out, "tags: %s\n", strings.Join(ex.Tags, ", "))
	}
	if len(ex.Undecided) > 0 {
		fmt.Fprintf(out, "would be decided instead by, once the status is known: %s\n", strings.Join(ex.Undecided, ", "))
	}
	if ex.Event == nil {
		fmt.Fprintln(out, "stored event: none (level none)")
		return nil
	}
	if key == nil {
		fmt.Fprintln(out, "stored event (tokens computed with a random key; pass --key-file to match the trail):")
	} else {
		fmt.Fprintln(out, "stored event:")
	}
	return printJSON(out, ex.Event)
}
