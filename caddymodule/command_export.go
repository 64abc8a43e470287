package caddymodule

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
)

func init() { addAuditCommand(exportCommand) }

func exportCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "export [--format ndjson|csv|json|ocsf|ecs] [-o file] [filters]",
		Short: "Export audit events for a SIEM, a spreadsheet or offline verification",
		Long: `
Streams GET /api/v1/events/export to standard output or, with -o, to a
file. The API sends the row count and the SHA-256 of the body as trailers;
the command checks the hash against what it received and prints both on
standard error. A file is written under a temporary name and only renamed
into place when the whole export arrived and matched, so a cut stream
never leaves a file that looks complete.

ndjson without filters is the verifiable export: keep it with a
checkpoint and check it with caddy audit verify --file.`,
		Example: `  caddy audit export -o events.ndjson
  caddy audit export --format csv --workspace acme --from 30d -o acme.csv
  caddy audit export --format ocsf --kind http | your-siem-shipper`,
		Args: cobra.NoArgs,
		RunE: runExport,
	}
	cmd.Flags().String("format", "ndjson", "ndjson, csv, json, ocsf or ecs")
	cmd.Flags().StringP("output", "o", "", "write to this file instead of standard output")
	addEventFilterFlags(cmd)
	addAdminFlags(cmd)
	return cmd
}

func runExport(cmd *cobra.Command, _ []string) error {
	q, err := eventFilterQuery(cmd, time.Now())
	if err != nil {
		return err
	}
	format, _ := cmd.Flags().GetString("format")
	q.Set("format", format)
	output, _ := cmd.Flags().GetString("output")
	client, err := newAdminClient(cmd)
	if err != nil {
		return err
	}

	out, commit := cmd.OutOrStdout(), func() error { return nil }
	if output != "" && output != "-" {
		f, err := os.CreateTemp(filepath.Dir(output), "."+filepath.Base(output)+".partial-*")
		if err != nil {
			return err
		}
		tmp := f.Name()
		defer os.Remove(tmp) // a no-op once renamed
		defer f.Close()
		// Exports hold personal data: owner-only, like the database.
		if err := f.Chmod(0o600); err != nil {
			return err
		}
		out = f
		commit = func() error {
			if err := f.Close(); err != nil {
				return err
			}
			return os.Rename(tmp, output)
		}
	}

	resp, err := client.open(cmd.Context(), http.MethodGet, "/api/v1/events/export?"+q.Encode(), "", nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	bar := newProgress(cmd, "exporting", "bytes", 0)
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(out, h, progressWriter{w: io.Discard, p: bar}), resp.Body)
	bar.finish()
	if err != nil {
		return fmt.Errorf("the export stopped after %s: %v (the server logs why; nothing was kept)", formatBytes(n), err)
	}
	rows, want := resp.Trailer.Get("X-Export-Rows"), resp.Trailer.Get("X-Export-Sha256")
	got := hex.EncodeToString(h.Sum(nil))
	if want == "" {
		return errors.New("the export ended without its X-Export-Sha256 trailer, so it cannot be checked (a proxy between here and the admin API may drop trailers)")
	}
	if got != want {
		return fmt.Errorf("the export's SHA-256 is %s but the server sent %s: the copy is damaged, nothing was kept", got, want)
	}
	if err := commit(); err != nil {
		return err
	}
	dest := "standard output"
	if output != "" && output != "-" {
		dest = output
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "exported %s rows (%s, %s) to %s\nX-Export-Rows: %s\nX-Export-Sha256: %s (checked)\nX-Export-Verifiable: %s\n",
		rows, format, formatBytes(n), dest, rows, want, resp.Trailer.Get("X-Export-Verifiable"))
	return nil
}
