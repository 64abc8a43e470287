package logimport

import (
	"bytes"
	"io"
	"testing"
)

// benchLines reads n copies of line per iteration batch and reports lines/s.
func benchFormat(b *testing.B, line string, o Options) {
	const n = 1000
	data := bytes.Repeat([]byte(line+"\n"), n)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		r := NewReader(bytes.NewReader(data), o)
		for {
			_, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
		}
		if r.Stats().Events != n {
			b.Fatalf("stats %+v", r.Stats())
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "lines/s")
}

func BenchmarkCaddyJSON(b *testing.B) {
	benchFormat(b, caddyFloatTS, withRedactor(Options{Format: FormatCaddyJSON}))
}

func BenchmarkCaddyJSONNoHeaders(b *testing.B) {
	benchFormat(b, caddyFloatTS, Options{Format: FormatCaddyJSON})
}

func BenchmarkCommon(b *testing.B) {
	benchFormat(b, clfLine, withRedactor(Options{Format: FormatCommon}))
}

func BenchmarkCombined(b *testing.B) {
	benchFormat(b, combinedLine, withRedactor(Options{Format: FormatCombined}))
}

func BenchmarkSorted(b *testing.B) {
	data := bytes.Repeat([]byte(combinedLine+"\n"), 1000)
	b.ReportAllocs()
	for b.Loop() {
		s := Sorted(NewReader(bytes.NewReader(data), withRedactor(Options{})), 0)
		for _, err := range s.All() {
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(1000*b.N)/b.Elapsed().Seconds(), "lines/s")
}
