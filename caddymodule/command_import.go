package caddymodule

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/caddy-audit/caddy-audit/adminapi"
)

func init() { addAuditCommand(importCommand) }

func importCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "import --file <access.log> [--format auto|caddy|common|combined] [--source <name>] [--workspace-header <name>] [--json]",
		Short: "Backfill an access log into the trail and replay it through the detectors",
		Long: `
Streams an access log (Caddy's JSON access log, Common or Combined Log
Format) to the running sidecar (POST /api/v1/import). Its lines become
audit events, with query strings and headers redacted as live traffic is,
and are replayed in event-time order through a fresh detector engine:
the alerts show what the sidecar would have raised at the time. Importing
the same --source twice does not duplicate events.`,
		RunE: runImport,
	}
	cmd.Flags().String("file", "", "access log to import")
	cmd.Flags().String("format", "auto", "auto, caddy, common or combined")
	cmd.Flags().String("source", "", "name recorded with each event (default: the file's base name)")
	cmd.Flags().String("workspace-header", "", "request header naming the workspace (Caddy JSON logs)")
	cmd.Flags().Bool("json", false, "print the API's answer as JSON")
	addAdminFlags(cmd)
	return cmd
}

func runImport(cmd *cobra.Command, _ []string) error {
	file, _ := cmd.Flags().GetString("file")
	if file == "" {
		return errors.New("--file is required")
	}
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	var size int64
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
		size = fi.Size()
	}
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
	bar := newProgress(cmd, "importing "+filepath.Base(file), "bytes", size)
	resp, err := client.open(cmd.Context(), http.MethodPost, "/api/v1/import?"+q.Encode(), "text/plain", progressReader{r: f, p: bar})
	bar.finish()
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var res adminapi.ImportResult
	if err := decodeJSON(resp, &res); err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	if asJSON, _ := cmd.Flags().GetBool("json"); asJSON {
		return printJSON(out, res)
	}
	fmt.Fprintf(out, "imported %s (%s): %d lines, %d events, %d skipped, %d malformed, %d out of order\n",
		cleanCell(res.Source), res.Format, res.Lines, res.Events, res.Skipped, res.Errors, res.OutOfOrder)
	for _, e := range res.LineErrors {
		fmt.Fprintf(out, "  %s\n", cleanCell(e))
	}
	if len(res.Alerts) == 0 {
		fmt.Fprintln(out, "no alerts raised")
	} else {
		fmt.Fprintf(out, "%d alerts raised: %s\n  see them with: caddy audit alerts show <id>\n", len(res.Alerts), strings.Join(res.Alerts, ", "))
	}
	return nil
}
