package caddymodule

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/caddy-audit/caddy-audit/storage"
)

func init() { addAuditCommand(verifyCommand) }

func verifyCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "verify [--file <export.ndjson> | --db <audit.db>] [--checkpoint <file>] [--public-key <base64|file>] [--json]",
		Short: "Verify the integrity chain, live or offline on an export",
		Long: `
Without --file or --db, asks the running sidecar to walk its whole hash
chain (POST /api/v1/integrity/verify), against --checkpoint if given,
otherwise against the store's own latest checkpoint.

With --file, verifies an NDJSON export (GET /api/v1/events/export with no
filter, or caddy audit export) offline: every event's link, every personal
part against its commitment, and, with --checkpoint, that the file reaches
the checkpoint's head with the same link (a truncated or rolled-back copy
fails). Pin the signing key with --public-key (GET
/api/v1/integrity/checkpoint shows it); without it the key embedded in the
checkpoint is used, which proves the checkpoint is intact but not who
signed it.

With --db, verifies a database file directly, such as a backup or the live
file of a stopped Caddy (a running Caddy holds its lock).

Exits 1 when a problem is found.`,
		RunE: runVerify,
	}
	cmd.Flags().String("file", "", "NDJSON export to verify offline (- for standard input)")
	cmd.Flags().String("db", "", "database file to verify offline (Caddy must not be running on it)")
	cmd.Flags().String("checkpoint", "", "checkpoint JSON kept off the host")
	cmd.Flags().String("public-key", "", "the checkpoint signing key: base64, or a file holding it")
	cmd.Flags().Bool("json", false, "print the report as JSON")
	addAdminFlags(cmd)
	return cmd
}

func runVerify(cmd *cobra.Command, _ []string) error {
	file, _ := cmd.Flags().GetString("file")
	db, _ := cmd.Flags().GetString("db")
	cpPath, _ := cmd.Flags().GetString("checkpoint")
	pubArg, _ := cmd.Flags().GetString("public-key")
	asJSON, _ := cmd.Flags().GetBool("json")
	if file != "" && db != "" {
		return errors.New("--file and --db exclude each other: verify an export or a database file")
	}

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
	switch {
	case file != "":
		in := io.Reader(cmd.InOrStdin())
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
	case db != "":
		if rep, err = verifyDBFile(cmd, db, cp); err != nil {
			return err
		}
	default:
		client, err := newAdminClient(cmd)
		if err != nil {
			return err
		}
		body := map[string]any{}
		if cp != nil {
			body["checkpoint"] = cp
		}
		if err := client.do(cmd.Context(), http.MethodPost, "/api/v1/integrity/verify", body, &rep); err != nil {
			return err
		}
	}
	printReport(cmd.OutOrStdout(), rep, asJSON)
	if !rep.OK {
		return errors.New("integrity verification failed")
	}
	return nil
}

// verifyDBFile verifies a database file that no Caddy has open.
func verifyDBFile(cmd *cobra.Command, path string, cp *storage.Checkpoint) (storage.VerifyReport, error) {
	// storage.Open creates a missing file; a typo must not verify an
	// empty new database and call it intact.
	if _, err := os.Stat(path); err != nil {
		return storage.VerifyReport{}, err
	}
	store, err := storage.Open(path, storage.Options{LockTimeout: time.Second})
	if errors.Is(err, storage.ErrLocked) {
		return storage.VerifyReport{}, fmt.Errorf("%s is locked by another process, most likely the Caddy that writes it.\n"+
			"  Stop Caddy (caddy stop) to verify the file itself, verify a copy (GET /api/v1/backup), or leave out --db\n"+
			"  to have the running sidecar verify it through the admin API", path)
	}
	if err != nil {
		return storage.VerifyReport{}, err
	}
	defer store.Close()
	return store.Verify(cmd.Context(), cp)
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
		_ = printJSON(w, rep)
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
		fmt.Fprintf(w, "  problem at seq %d: %s: %s\n", p.Seq, p.Kind, cleanCell(p.Detail))
	}
	if rep.ProblemCount > int64(len(rep.Problems)) {
		fmt.Fprintf(w, "  ... %d problems in all\n", rep.ProblemCount)
	}
}
