package caddymodule

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// printJSON writes v indented, for --json.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// table writes aligned columns. Cells are cleaned of tabs and line breaks
// so that a hostile value (a user agent, a path) cannot break the layout
// or move the cursor.
type table struct {
	tw *tabwriter.Writer
}

func newTable(w io.Writer, header ...string) *table {
	t := &table{tw: tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)}
	t.row(header...)
	return t
}

func (t *table) row(cells ...string) {
	for i, c := range cells {
		if i == len(cells)-1 {
			// The last column has room for a whole sentence.
			cells[i] = cleanText(c)
		} else {
			cells[i] = cleanCell(c)
		}
	}
	fmt.Fprintln(t.tw, strings.Join(cells, "\t"))
}

func (t *table) flush() { _ = t.tw.Flush() }

// cleanText replaces control characters (terminal escapes included), so
// that a recorded value cannot move the cursor or fake output lines.
func cleanText(s string) string {
	if s == "" {
		return "-"
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return ' '
		}
		return r
	}, s)
}

// cleanCell is cleanText capped to the width of a table cell.
func cleanCell(s string) string {
	s = cleanText(s)
	if r := []rune(s); len(r) > 60 {
		s = string(r[:59]) + "…"
	}
	return s
}

// shortTime shows a time in the local zone, to the second.
func shortTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04:05")
}

// isTerminal reports whether w is a terminal: progress bars go there and
// nowhere else, so piped output stays clean.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// progress draws a one-line progress bar on the command's standard error
// when that is a terminal, and does nothing otherwise.
type progress struct {
	w     io.Writer // nil: quiet
	label string
	unit  string // "bytes" formats as sizes; anything else is a count
	total int64  // 0 when unknown

	mu    sync.Mutex
	done  int64
	drawn time.Time
}

func newProgress(cmd *cobra.Command, label, unit string, total int64) *progress {
	p := &progress{label: label, unit: unit, total: total}
	if w := cmd.ErrOrStderr(); isTerminal(w) {
		p.w = w
	}
	return p
}

// add counts n more units done.
func (p *progress) add(n int64) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done += n
	if p.w != nil && time.Since(p.drawn) >= 100*time.Millisecond {
		p.draw()
	}
}

// finish draws the final state and ends the line.
func (p *progress) finish() {
	if p == nil || p.w == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.draw()
	fmt.Fprintln(p.w)
}

func (p *progress) draw() {
	p.drawn = time.Now()
	amount := p.format(p.done)
	if p.total <= 0 {
		fmt.Fprintf(p.w, "\r%s %s ", p.label, amount)
		return
	}
	const width = 30
	frac := min(float64(p.done)/float64(p.total), 1)
	fill := int(frac * width)
	fmt.Fprintf(p.w, "\r%s [%s%s] %3.0f%% %s/%s ", p.label, strings.Repeat("=", fill), strings.Repeat(" ", width-fill),
		frac*100, amount, p.format(p.total))
}

func (p *progress) format(n int64) string {
	if p.unit != "bytes" {
		return fmt.Sprintf("%d %s", n, p.unit)
	}
	return formatBytes(n)
}

func formatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// progressReader counts what is read through it.
type progressReader struct {
	r io.Reader
	p *progress
}

func (r progressReader) Read(b []byte) (int, error) {
	n, err := r.r.Read(b)
	r.p.add(int64(n))
	return n, err
}

// progressWriter counts what is written through it.
type progressWriter struct {
	w io.Writer
	p *progress
}

func (w progressWriter) Write(b []byte) (int, error) {
	n, err := w.w.Write(b)
	w.p.add(int64(n))
	return n, err
}

// printJSONLine writes v as one line of JSON (NDJSON).
func printJSONLine(w io.Writer, v any) error {
	return json.NewEncoder(w).Encode(v)
}
