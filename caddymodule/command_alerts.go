package caddymodule

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/caddy-audit/caddy-audit/adminapi"
	"github.com/caddy-audit/caddy-audit/storage"
)

func init() { addAuditCommand(alertsCommand) }

func alertsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "alerts list|show|ack|resolve|false-positive",
		Short: "List, read and work the detectors' alerts",
		Long: `
The alert workflow of the admin API: list and filter alerts, read one with
its evidence and history, acknowledge it (someone is looking), resolve it
or mark it a false positive. The workflow commands need the alerts:manage
permission (roles admin and security_analyst).`,
	}
	cmd.AddCommand(alertsListCommand(), alertsShowCommand(),
		alertTransitionCommand("ack", "acknowledge", "Acknowledge an alert: someone is looking at it"),
		alertTransitionCommand("resolve", "resolve", "Resolve an alert"),
		alertTransitionCommand("false-positive", "false_positive", "Mark an alert a false positive"))
	return cmd
}

func alertsListCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "list [--detector D] [--severity S] [--status S] [--workspace W] [--subject V] [--from T] [--to T] [--json]",
		Short: "List alerts, newest first",
		Example: `  caddy audit alerts list
  caddy audit alerts list --status open --severity critical
  caddy audit alerts list --detector brute_force --from 24h --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := url.Values{}
			for _, name := range []string{"detector", "severity", "status", "workspace", "subject", "cursor"} {
				if v, _ := cmd.Flags().GetString(name); v != "" {
					q.Set(name, v)
				}
			}
			if err := setTimeParams(cmd, q, time.Now(), "from", "to"); err != nil {
				return err
			}
			limit, _ := cmd.Flags().GetInt("limit")
			q.Set("limit", strconv.Itoa(limit))
			client, err := newAdminClient(cmd)
			if err != nil {
				return err
			}
			var page adminapi.AlertsPage
			if err := client.do(cmd.Context(), http.MethodGet, "/api/v1/alerts?"+q.Encode(), nil, &page); err != nil {
				return err
			}
			if asJSON, _ := cmd.Flags().GetBool("json"); asJSON {
				return printJSON(cmd.OutOrStdout(), page)
			}
			t := newTable(cmd.OutOrStdout(), "ID", "LAST SEEN", "SEVERITY", "DETECTOR", "RULE", "SUBJECT", "WORKSPACE", "COUNT", "STATUS")
			for _, a := range page.Alerts {
				t.row(a.ID, shortTime(a.LastSeen), a.Severity, a.Detector, a.Rule, a.Subject.Kind+" "+a.Subject.Value,
					a.Workspace, strconv.Itoa(a.Count), a.Status)
			}
			t.flush()
			if len(page.Alerts) == 0 {
				fmt.Fprintln(cmd.ErrOrStderr(), "no alerts match")
			}
			if page.NextCursor != "" {
				fmt.Fprintf(cmd.ErrOrStderr(), "more: add --cursor %s\n", page.NextCursor)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.String("detector", "", "brute_force, unusual_access, data_exfiltration, privilege_escalation, mass_deletion or unauthorized_access")
	f.String("severity", "", "low, medium, high or critical")
	f.String("status", "", "open, acknowledged, resolved or false_positive")
	f.String("workspace", "", "alerts of this workspace")
	f.String("subject", "", "alerts about this IP or user")
	f.String("from", "", "last seen at or after: RFC 3339 or a duration ago (24h, 7d)")
	f.String("to", "", "first seen before: RFC 3339 or a duration ago")
	f.Int("limit", 50, "alerts per page, 1-1000")
	f.String("cursor", "", "next_cursor of the previous page")
	f.Bool("json", false, "print the API's answer as JSON")
	addAdminFlags(cmd)
	return cmd
}

func alertsShowCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "show <alert id> [--json]",
		Short: "Show one alert with its evidence and history",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			client, err := newAdminClient(cmd)
			if err != nil {
				return err
			}
			var a storage.Alert
			if err := client.do(cmd.Context(), http.MethodGet, "/api/v1/alerts/"+url.PathEscape(args[0]), nil, &a); err != nil {
				return err
			}
			if asJSON, _ := cmd.Flags().GetBool("json"); asJSON {
				return printJSON(cmd.OutOrStdout(), a)
			}
			printAlert(cmd.OutOrStdout(), &a)
			return nil
		},
	}
	cmd.Flags().Bool("json", false, "print the alert as JSON")
	addAdminFlags(cmd)
	return cmd
}

// alertTransitionCommand is ack, resolve or false-positive: a POST to
// /api/v1/alerts/{id}/<action> with an optional comment.
func alertTransitionCommand(use, action, short string) *cobra.Command {
	cmd := &cobra.Command{
		Use:   use + " <alert id>... [--comment text] [--json]",
		Short: short,
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			comment, _ := cmd.Flags().GetString("comment")
			asJSON, _ := cmd.Flags().GetBool("json")
			client, err := newAdminClient(cmd)
			if err != nil {
				return err
			}
			var failed []error
			for _, id := range args {
				var a storage.Alert
				err := client.do(cmd.Context(), http.MethodPost, "/api/v1/alerts/"+url.PathEscape(id)+"/"+action,
					map[string]string{"comment": comment}, &a)
				if err != nil {
					failed = append(failed, fmt.Errorf("%s: %w", id, err))
					continue
				}
				if asJSON {
					_ = printJSONLine(cmd.OutOrStdout(), a)
				} else {
					fmt.Fprintf(cmd.OutOrStdout(), "%s %s: %s (%s %s)\n", a.ID, a.Status, cleanCell(a.Evidence.Summary), a.Severity, a.Detector)
				}
			}
			return errors.Join(failed...)
		},
	}
	cmd.Flags().String("comment", "", "a note kept in the alert's history")
	cmd.Flags().Bool("json", false, "print each changed alert as a line of JSON")
	addAdminFlags(cmd)
	return cmd
}

func printAlert(w io.Writer, a *storage.Alert) {
	field := func(name, value string) { fmt.Fprintf(w, "%-12s %s\n", name+":", cleanCell(value)) }
	field("id", a.ID)
	field("summary", a.Evidence.Summary)
	field("detector", a.Detector+" / "+a.Rule)
	field("severity", a.Severity)
	field("status", a.Status)
	if a.StatusBy != "" {
		field("status by", a.StatusBy+" at "+shortTime(a.StatusAt))
	}
	field("subject", a.Subject.Kind+" "+a.Subject.Value)
	field("workspace", a.Workspace)
	field("seen", fmt.Sprintf("%s .. %s, %d times", shortTime(a.FirstSeen), shortTime(a.LastSeen), a.Count))
	if a.Mitre.ID != "" {
		field("mitre", a.Mitre.ID+" "+a.Mitre.Name+" ("+a.Mitre.Tactic+")")
	}
	if len(a.Evidence.Figures) > 0 {
		fmt.Fprintln(w, "figures:")
		for _, k := range slices.Sorted(maps.Keys(a.Evidence.Figures)) {
			fmt.Fprintf(w, "  %-22s %g\n", cleanCell(k), a.Evidence.Figures[k])
		}
	}
	if len(a.Evidence.Observed) > 0 {
		fmt.Fprintln(w, "observed:")
		for _, k := range slices.Sorted(maps.Keys(a.Evidence.Observed)) {
			fmt.Fprintf(w, "  %-22s %s\n", cleanCell(k), cleanCell(a.Evidence.Observed[k]))
		}
	}
	if n := len(a.Evidence.EventIDs); n > 0 {
		fmt.Fprintf(w, "events:      %d ids kept, first %s (caddy audit events --request-id or GET /api/v1/events/{id})\n", n, a.Evidence.EventIDs[0])
	}
	if len(a.RecommendedActions) > 0 {
		fmt.Fprintln(w, "recommended:")
		for _, r := range a.RecommendedActions {
			fmt.Fprintf(w, "  - %s\n", cleanCell(r))
		}
	}
	if len(a.History) > 0 {
		fmt.Fprintln(w, "history:")
		for _, h := range a.History {
			line := fmt.Sprintf("%s %s", shortTime(h.At), h.By)
			if h.From != "" || h.To != "" {
				line += fmt.Sprintf(": %s -> %s", h.From, h.To)
			}
			if h.Comment != "" {
				line += ": " + h.Comment
			}
			fmt.Fprintf(w, "  %s\n", cleanCell(line))
		}
	}
}
