package caddymodule

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/caddy-audit/caddy-audit/adminapi"
)

func init() { addAuditCommand(reportCommand) }

func reportCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "report soc2|gdpr|pci|score",
		Short: "Compliance reports and the security score, summarized",
		Long: `
Fetches a report from the admin API (GET /api/v1/reports/...) and prints a
summary: each criterion's status and the gaps an auditor would question.
--json prints the full document, with the queries that reproduce every
figure, for the auditor's file.`,
	}
	for _, r := range []struct {
		name, short string
		decode      func() any
		print       func(io.Writer, any)
	}{
		{"soc2", "SOC 2 evidence for CC6.1, CC6.2, CC6.3, CC7.2 and CC7.3",
			func() any { return new(adminapi.SOC2Report) }, func(w io.Writer, v any) { printSOC2(w, v.(*adminapi.SOC2Report)) }},
		{"gdpr", "GDPR Art. 30 record of the processing, with figures",
			func() any { return new(adminapi.GDPRReport) }, func(w io.Writer, v any) { printGDPR(w, v.(*adminapi.GDPRReport)) }},
		{"pci", "PCI DSS v4 requirement 10 coverage",
			func() any { return new(adminapi.PCIReport) }, func(w io.Writer, v any) { printPCI(w, v.(*adminapi.PCIReport)) }},
		{"score", "Security score 0-100 with its breakdown",
			func() any { return new(adminapi.ScoreReport) }, func(w io.Writer, v any) { printScore(w, v.(*adminapi.ScoreReport)) }},
	} {
		sub := &cobra.Command{
			Use:   r.name + " [--from T] [--to T] [--workspace W] [--json]",
			Short: r.short,
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				q := url.Values{}
				if err := setTimeParams(cmd, q, time.Now(), "from", "to"); err != nil {
					return err
				}
				if v, _ := cmd.Flags().GetString("workspace"); v != "" {
					q.Set("workspace", v)
				}
				client, err := newAdminClient(cmd)
				if err != nil {
					return err
				}
				doc := r.decode()
				if err := client.do(cmd.Context(), http.MethodGet, "/api/v1/reports/"+r.name+"?"+q.Encode(), nil, doc); err != nil {
					return err
				}
				if asJSON, _ := cmd.Flags().GetBool("json"); asJSON {
					return printJSON(cmd.OutOrStdout(), doc)
				}
				r.print(cmd.OutOrStdout(), doc)
				return nil
			},
		}
		sub.Flags().String("from", "", "start of the range: RFC 3339 or a duration ago (default: 30 days before --to)")
		sub.Flags().String("to", "", "end of the range (default: now)")
		sub.Flags().String("workspace", "", "confine the report to this workspace")
		sub.Flags().Bool("json", false, "print the full report as JSON")
		addAdminFlags(sub)
		cmd.AddCommand(sub)
	}
	return cmd
}

// printEnvelope prints what every report shares: range, scope, totals,
// checkpoint.
func printEnvelope(w io.Writer, title string, e *adminapi.ReportEnvelope) {
	scope := "all workspaces"
	if e.Workspace != "" && e.Workspace != "all" {
		scope = "workspace " + cleanCell(e.Workspace)
	}
	fmt.Fprintf(w, "%s, %s .. %s, %s\n", title, shortTime(e.TimeRange.From), shortTime(e.TimeRange.To), scope)
	fmt.Fprintf(w, "  %d events, %d alerts in range\n", e.Totals.Events, e.Totals.Alerts)
	if e.Checkpoint.Present {
		fmt.Fprintf(w, "  latest checkpoint: seq %d, signed %v, %s old\n", e.Checkpoint.Seq, e.Checkpoint.Signed,
			time.Duration(e.Checkpoint.AgeSeconds)*time.Second)
	} else {
		fmt.Fprintln(w, "  no checkpoint yet")
	}
}

func printCriterion(w io.Writer, name, status string, gaps []string) {
	fmt.Fprintf(w, "%-10s %s\n", name, status)
	for _, g := range gaps {
		fmt.Fprintf(w, "             - %s\n", cleanCell(g))
	}
}

func printSOC2(w io.Writer, r *adminapi.SOC2Report) {
	printEnvelope(w, "SOC 2", &r.ReportEnvelope)
	fmt.Fprintln(w)
	printCriterion(w, "CC6.1", r.CC61.Status, r.CC61.Gaps)
	printCriterion(w, "CC6.2", r.CC62.Status, r.CC62.Gaps)
	printCriterion(w, "CC6.3", r.CC63.Status, r.CC63.Gaps)
	printCriterion(w, "CC7.2", r.CC72.Status, r.CC72.Gaps)
	printCriterion(w, "CC7.3", r.CC73.Status, r.CC73.Gaps)
	fmt.Fprintf(w, "\n%d proxied requests (%.0f%% with a verified user), %d admin API calls (%d denied)\n",
		r.CC61.ProxiedRequests, 100*r.CC61.VerifiedShare, r.CC61.AdminAPICalls, r.CC61.AdminAPIDenied)
	fmt.Fprintf(w, "%d alerts: %d acknowledged, %d resolved, %d false positives, %d critical open\n",
		r.CC73.Alerts, r.CC73.Acknowledged, r.CC73.Resolved, r.CC73.FalsePositive, r.CC73.OpenCritical)
}

func printPCI(w io.Writer, r *adminapi.PCIReport) {
	printEnvelope(w, "PCI DSS 10", &r.ReportEnvelope)
	fmt.Fprintln(w)
	t := newTable(w, "REQUIREMENT", "EVENTS", "STATUS", "WHAT")
	for _, c := range r.EventClasses {
		t.row(c.Requirement, fmt.Sprint(c.Count), c.Status, c.Title)
	}
	t.flush()
	f := r.Fields
	fmt.Fprintf(w, "\n10.2.2 fields over %d events: user %.0f%%, type %.0f%%, time %.0f%%, outcome %.0f%%, origin %.0f%%, resource %.0f%%\n",
		f.Events, 100*f.User, 100*f.Type, 100*f.Time, 100*f.Outcome, 100*f.Origin, 100*f.Resource)
	printCriterion(w, "10.3", r.Protection.Status, r.Protection.Gaps)
	printCriterion(w, "10.5", r.Retention.Status, r.Retention.Gaps)
	fmt.Fprintf(w, "%-10s %s (%d events dropped, %d drop records)\n", "10.7", r.Failures.Status, r.Failures.DroppedEvents, r.Failures.DropRecords)
}

func printGDPR(w io.Writer, r *adminapi.GDPRReport) {
	printEnvelope(w, "GDPR Art. 30 record", &r.ReportEnvelope)
	rec := r.Record
	fmt.Fprintf(w, "\ncontroller:  %s\n", cleanCell(rec.Controller.Name))
	fmt.Fprintf(w, "purposes:    %s\n", cleanCell(strings.Join(rec.Purposes, "; ")))
	fmt.Fprintf(w, "legal basis: %s\n", cleanCell(rec.LegalBasis))
	fmt.Fprintln(w, "personal data:")
	for _, d := range rec.PersonalData {
		fmt.Fprintf(w, "  %-18s %8d events  %s\n", cleanCell(d.Field), d.Events, cleanCell(d.Description))
	}
	g := r.Figures
	fmt.Fprintf(w, "figures: %d users, %d client IPs, %d user agents; %d erasures (%d events), %d subject exports\n",
		g.DistinctUsers, g.DistinctIPs, g.DistinctUserAgents, g.ErasureRequests, g.ErasedEvents, g.SubjectExports)
}

func printScore(w io.Writer, r *adminapi.ScoreReport) {
	printEnvelope(w, "Security score", &r.ReportEnvelope)
	fmt.Fprintf(w, "\nscore: %d / 100\n\n", r.Score)
	t := newTable(w, "COMPONENT", "VALUE", "WHY")
	for _, c := range r.Components {
		t.row(c.Name, fmt.Sprintf("%.1f / %.0f", c.Value, c.Weight), c.Explanation)
	}
	t.flush()
}
