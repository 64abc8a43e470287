package caddymodule

import (
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/spf13/cobra"

	"github.com/caddy-audit/caddy-audit/adminapi"
)

func init() { addAuditCommand(keysCommand) }

func keysCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "keys create|list|revoke",
		Short: "Issue, list and revoke admin API keys",
		Long: `
API keys of the admin API. All three need the rbac:manage permission
(role admin) on a key that is not scoped to a workspace. A new key's
secret is printed once and stored only as a hash: keep it then.`,
	}
	cmd.AddCommand(keysCreateCommand(), keysListCommand(), keysRevokeCommand())
	return cmd
}

func keysCreateCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "create --name <label> --role <role> [--workspace W] [--expires-in 90d] [--json]",
		Short: "Issue an API key; its secret is shown once",
		Example: `  caddy audit keys create --name "siem export" --role auditor --expires-in 90d
  CADDY_AUDIT_KEY=$(caddy audit keys create --name ci --role auditor --json | jq -r .secret)`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			body := map[string]string{}
			for flag, field := range map[string]string{"name": "name", "role": "role", "workspace": "workspace", "expires-in": "expires_in"} {
				if v, _ := cmd.Flags().GetString(flag); v != "" {
					body[field] = v
				}
			}
			client, err := newAdminClient(cmd)
			if err != nil {
				return err
			}
			var created struct {
				Secret string           `json:"secret"`
				Key    adminapi.KeyView `json:"key"`
			}
			if err := client.do(cmd.Context(), http.MethodPost, "/api/v1/keys", body, &created); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON, _ := cmd.Flags().GetBool("json"); asJSON {
				return printJSON(out, created)
			}
			k := created.Key
			scope := "all workspaces"
			if k.Workspace != "" {
				scope = "workspace " + k.Workspace
			}
			fmt.Fprintf(out, "key %s (%s): role %s in %s, expires %s\n", k.ID, cleanCell(k.Name), k.Role, cleanCell(scope), optTime(k.ExpiresAt, "never"))
			fmt.Fprintf(out, "secret: %s\n", created.Secret)
			fmt.Fprintln(cmd.ErrOrStderr(), "The secret is shown this once and stored only as a hash: keep it now (for example in $CADDY_AUDIT_KEY).")
			return nil
		},
	}
	cmd.Flags().String("name", "", "a label for the key, such as \"siem export\" (required)")
	cmd.Flags().String("role", "", "admin, security_analyst, auditor, workspace_viewer or a custom role (required)")
	cmd.Flags().String("workspace", "", "confine the key's role to this workspace")
	cmd.Flags().String("expires-in", "", "lifetime: a Go duration (720h) or days (90d); default never")
	cmd.Flags().Bool("json", false, "print the API's answer (secret included) as JSON")
	_ = cmd.MarkFlagRequired("name")
	_ = cmd.MarkFlagRequired("role")
	addAdminFlags(cmd)
	return cmd
}

func keysListCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "list [--json]",
		Short: "List API keys, revoked and expired ones included",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			client, err := newAdminClient(cmd)
			if err != nil {
				return err
			}
			var resp struct {
				Keys []adminapi.KeyView `json:"keys"`
			}
			if err := client.do(cmd.Context(), http.MethodGet, "/api/v1/keys", nil, &resp); err != nil {
				return err
			}
			if asJSON, _ := cmd.Flags().GetBool("json"); asJSON {
				return printJSON(cmd.OutOrStdout(), resp)
			}
			t := newTable(cmd.OutOrStdout(), "ID", "NAME", "PREFIX", "ROLE", "WORKSPACE", "STATUS", "CREATED", "EXPIRES", "LAST USED", "BINDINGS")
			for _, k := range resp.Keys {
				bindings := ""
				for i, b := range k.Bindings {
					if i > 0 {
						bindings += ","
					}
					bindings += b.Role
					if b.Workspace != "" {
						bindings += "@" + b.Workspace
					}
				}
				t.row(k.ID, k.Name, k.Prefix, k.Role, k.Workspace, k.Status, shortTime(k.CreatedAt),
					optTime(k.ExpiresAt, "never"), optTime(k.LastUsedAt, "never"), bindings)
			}
			t.flush()
			return nil
		},
	}
	cmd.Flags().Bool("json", false, "print the API's answer as JSON")
	addAdminFlags(cmd)
	return cmd
}

func keysRevokeCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "revoke <key id> [--json]",
		Short: "Revoke an API key for good",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			client, err := newAdminClient(cmd)
			if err != nil {
				return err
			}
			var k adminapi.KeyView
			if err := client.do(cmd.Context(), http.MethodPost, "/api/v1/keys/"+url.PathEscape(args[0])+"/revoke", nil, &k); err != nil {
				return err
			}
			if asJSON, _ := cmd.Flags().GetBool("json"); asJSON {
				return printJSON(cmd.OutOrStdout(), k)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "key %s (%s) is %s since %s\n", k.ID, cleanCell(k.Name), k.Status, optTime(k.RevokedAt, "-"))
			return nil
		},
	}
	cmd.Flags().Bool("json", false, "print the revoked key as JSON")
	addAdminFlags(cmd)
	return cmd
}

func optTime(t *time.Time, none string) string {
	if t == nil {
		return none
	}
	return shortTime(*t)
}
