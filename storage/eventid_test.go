package storage

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestIDTime(t *testing.T) {
	at := time.Date(2025, 3, 14, 15, 9, 26, 535_897_000, time.UTC)
	id := NewID(at)
	got, ok := IDTime(id)
	if !ok || !got.Equal(at.Truncate(time.Millisecond)) {
		t.Fatalf("IDTime(%s) = %v, %v; want %v", id, got, ok, at.Truncate(time.Millisecond))
	}
	if got, ok := IDTime(strings.ToLower(id)); !ok || !got.Equal(at.Truncate(time.Millisecond)) {
		t.Errorf("lower case id: %v, %v", got, ok)
	}
	for _, bad := range []string{"", "a", id[:25], id + "0", "8" + id[1:], "U" + id[1:], "0000000000000000000000000!"} {
		if _, ok := IDTime(bad); ok {
			t.Errorf("IDTime(%q) accepted", bad)
		}
	}
	if got, ok := IDTime("00000000000000000000000000"); !ok || got.UnixMilli() != 0 {
		t.Errorf("zero id: %v %v", got, ok)
	}
}

func TestEventByID(t *testing.T) {
	s := openTemp(t, Options{})
	at := time.Date(2025, 3, 14, 15, 0, 0, 0, time.UTC)
	var evs []*Event
	// Three events in the same millisecond and one a millisecond later:
	// the lookup must pick the right one among neighbours.
	for i, d := range []time.Duration{0, 10, 999_999, time.Millisecond} {
		evs = append(evs, &Event{ID: NewID(at.Add(d)), Time: at.Add(d), Kind: KindHTTP, User: string(rune('a' + i))})
	}
	if err := s.Append(evs...); err != nil {
		t.Fatal(err)
	}
	for _, want := range evs {
		got, err := s.EventByID(context.Background(), want.ID)
		if err != nil || got.ID != want.ID || got.User != want.User || got.Seq == 0 {
			t.Errorf("EventByID(%s) = %s/%s seq %d, %v; want %s/%s", want.ID, got.ID, got.User, got.Seq, err, want.ID, want.User)
		}
	}
	if got, err := s.EventByID(context.Background(), strings.ToLower(evs[1].ID)); err != nil || got.User != "b" {
		t.Errorf("lower case lookup: %+v %v", got.User, err)
	}
	for _, missing := range []string{NewID(at), NewID(at.Add(time.Hour)), "not-an-id", ""} {
		if _, err := s.EventByID(context.Background(), missing); !errors.Is(err, ErrNotFound) {
			t.Errorf("EventByID(%q): %v, want ErrNotFound", missing, err)
		}
	}
}
