package logimport

import (
	"bytes"
	"encoding/json"
	"io"
	"testing"
)

// checkLine parses one line as format f through the full Reader path and
// checks what every produced event must satisfy.
func checkLine(t *testing.T, f Format, line []byte) {
	r := NewReader(bytes.NewReader(line), withRedactor(Options{Format: f, Source: "fuzz", MaxLineBytes: 1 << 16}))
	for {
		ev, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("unexpected read error %v", err)
		}
		if ev.Status < 100 || ev.Status > 999 {
			t.Fatalf("status %d out of range", ev.Status)
		}
		if ev.Time.IsZero() || ev.Time.Before(minTime) || !ev.Time.Before(maxTime) || ev.Time.Location().String() != "UTC" {
			t.Fatalf("time %v", ev.Time)
		}
		if len(ev.ID) != 26 || ev.BytesOut < 0 || ev.BytesIn < 0 || ev.DurationNS < 0 {
			t.Fatalf("id %q bytes %d/%d duration %d", ev.ID, ev.BytesIn, ev.BytesOut, ev.DurationNS)
		}
		if _, err := json.Marshal(ev); err != nil {
			t.Fatalf("event does not marshal: %v", err)
		}
	}
	st := r.Stats()
	if st.Events+st.Errors+st.Blank+st.Skipped != st.Lines {
		t.Fatalf("stats do not add up: %+v", st)
	}
	for _, e := range st.FirstErrors {
		if e.Line < 1 || e.Line > st.Lines {
			t.Fatalf("error line %d of %d", e.Line, st.Lines)
		}
	}
}

func FuzzCaddyJSON(f *testing.F) {
	f.Add([]byte(caddyFloatTS))
	f.Add([]byte(caddyRFC3339))
	f.Add([]byte(`{"ts":1e300,"request":{},"status":200}`))
	f.Add([]byte(`{"ts":"14/Oct/2025:09:00:00 +0000","request":{"uri":"http://x"},"status":200,"duration":"-1s"}`))
	f.Fuzz(func(t *testing.T, line []byte) { checkLine(t, FormatCaddyJSON, line) })
}

func FuzzCLF(f *testing.F) {
	f.Add([]byte(clfLine))
	f.Add([]byte(`1.2.3.4 - - [10/Oct/2025:13:55:36 -0700] "-" 400 -`))
	f.Add([]byte(`1.2.3.4 - - [10/Oct/2025:13:55:36 -0700] "GET \" HTTP/1.0" 200 1`))
	f.Fuzz(func(t *testing.T, line []byte) { checkLine(t, FormatCommon, line) })
}

func FuzzCombined(f *testing.F) {
	f.Add([]byte(combinedLine))
	f.Add([]byte(`1.2.3.4 - - [10/Oct/2025:13:55:36 -0700] "GET / HTTP/1.0" 200 1 "\x" "\\"`))
	f.Add([]byte(`1.2.3.4 - - [10/Oct/2025:13:55:36 -0700] "GET / HTTP/1.0" 200 1 "a" "b\`))
	f.Fuzz(func(t *testing.T, line []byte) { checkLine(t, FormatCombined, line) })
}

func FuzzDetect(f *testing.F) {
	for _, s := range []string{caddyFloatTS, clfLine, combinedLine, "", "{", "\ufeff{}"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got := Detect(data)
		if got < FormatAuto || got > FormatCombined {
			t.Fatalf("Detect = %v", got)
		}
		// A detected text line parses as what it was detected as (JSON is
		// detected by shape only, so it may not).
		if got == FormatCommon || got == FormatCombined {
			if !bytes.ContainsAny(data, "\n") {
				var rec record
				if err := parseCLF(bytes.TrimSpace(bytes.TrimPrefix(bytes.TrimSpace(data), utf8BOM)), got == FormatCombined, &rec); err != nil {
					t.Fatalf("detected %v but: %v", got, err)
				}
			}
		}
		// Auto-detection through a Reader never panics either.
		checkLine(t, FormatAuto, data)
		if got.String() == "" {
			t.Fatal("a detected format has no name")
		}
	})
}
