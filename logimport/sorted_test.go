package logimport

import (
	"fmt"
	"io"
	"strings"
	"testing"
	"time"
)

func TestSorted(t *testing.T) {
	base := time.Date(2025, 10, 14, 9, 0, 0, 0, time.UTC)
	// Offsets in seconds, in file order: nearly ordered swaps within the
	// 5 s slack, a 10 read after 50 and 51 (but before anything was
	// released past it), equal times, and a 40 read after 60 released
	// everything up to 55: that one is beyond the slack.
	offsets := []int{0, 1, 3, 2, 4, 5, 7, 6, 50, 51, 10, 52, 52, 60, 40, 61}
	var b strings.Builder
	for i, off := range offsets {
		fmt.Fprintf(&b, "192.0.2.1 - - [%s] \"GET /%d HTTP/1.1\" 200 1\n", base.Add(time.Duration(off)*time.Second).Format(clfTime), i)
	}
	s := Sorted(NewReader(strings.NewReader(b.String()), Options{}), 5*time.Second)
	var got []string
	for ev, err := range s.All() {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%d%s", int(ev.Time.Sub(base).Seconds()), ev.Path))
	}
	// Equal times keep file order; the late 40 comes out as soon as it is
	// read, counted.
	want := "0/0 1/1 2/3 3/2 4/4 5/5 6/7 7/6 10/10 50/8 51/9 52/11 52/12 40/14 60/13 61/15"
	if strings.Join(got, " ") != want {
		t.Errorf("order\n got %s\nwant %s", strings.Join(got, " "), want)
	}
	if s.OutOfOrder() != 1 {
		t.Errorf("out of order %d, want 1", s.OutOfOrder())
	}
	if _, err := s.Next(); err != io.EOF {
		t.Errorf("end: %v", err)
	}

	// With a bound of 3 held events memory stays bounded; these swaps are
	// short enough that order is still kept.
	s = Sorted(NewReader(strings.NewReader(b.String()), Options{}), 5*time.Second)
	s.SetMaxBuffered(3)
	n := 0
	for _, err := range s.All() {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != len(offsets) || s.OutOfOrder() != 1 {
		t.Errorf("%d events, %d out of order; want %d and 1", n, s.OutOfOrder(), len(offsets))
	}
	if s.h.Len() != 0 || cap(s.h.items) > 4 {
		t.Errorf("held %d, capacity %d", s.h.Len(), cap(s.h.items))
	}
}
