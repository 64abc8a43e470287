package storage

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	bolt "go.etcd.io/bbolt"
)

var (
	// bucketAlerts maps an alert id to the Alert as JSON.
	bucketAlerts = []byte("alerts")
	// bucketAlertsByTime orders alerts by last_seen: last_seen (int64 ns
	// BE) | id -> nil. ListAlerts walks it newest first.
	bucketAlertsByTime = []byte("alerts_by_last_seen")
	// keyDetectorSeq is the meta record of the last event seq the detector
	// worker has judged (uint64 BE), so a restart resumes after it.
	keyDetectorSeq = []byte("detector_seq")
)

// alertBuckets are created with the core buckets.
var alertBuckets = [][]byte{bucketAlerts, bucketAlertsByTime}

// MaxAlertHistory bounds the status changes and comments kept per alert;
// the oldest entries give way (HistoryDropped counts them), so an alert
// someone comments on in a loop cannot grow without bound.
const MaxAlertHistory = 100

// maxAlertScan bounds the alerts ListAlerts decodes for one page. A page
// that reaches it ends early with a cursor, so a selective filter over many
// alerts answers in bounded time and the client pages on.
const maxAlertScan = 10000

// MaxCommentLength bounds one comment, in bytes.
const MaxCommentLength = 4096

// Errors of the alert workflow.
var (
	// ErrInvalidTransition means the status change is not allowed from the
	// alert's current status (see ValidTransition).
	ErrInvalidTransition = errors.New("invalid status transition")
)

// AlertChange is one entry of an alert's history: a status change (From
// and To set) or a comment (From and To empty), by whom and when.
type AlertChange struct {
	// At is when the change was made.
	At time.Time `json:"at"`
	// By is the principal (API key id) that made it.
	By string `json:"by"`
	// From is the status before a status change.
	From string `json:"from,omitempty"`
	// To is the status after a status change.
	To string `json:"to,omitempty"`
	// Comment is the analyst's note, if any.
	Comment string `json:"comment,omitempty"`
}

// AlertFilter selects alerts for ListAlerts. Empty fields match anything.
type AlertFilter struct {
	// Detector matches the detector name exactly.
	Detector string
	// Severity matches the severity exactly.
	Severity string
	// Status matches the status exactly.
	Status string
	// Workspace matches the alert's workspace exactly.
	Workspace string
	// SubjectValue matches the subject's value (IP, user, workspace).
	SubjectValue string
	// From and To bound LastSeen: From <= last_seen < To.
	From, To time.Time
}

func (f *AlertFilter) match(a *Alert) bool {
	return (f.Detector == "" || a.Detector == f.Detector) &&
		(f.Severity == "" || a.Severity == f.Severity) &&
		(f.Status == "" || a.Status == f.Status) &&
		(f.Workspace == "" || a.Workspace == f.Workspace) &&
		(f.SubjectValue == "" || a.Subject.Value == f.SubjectValue)
}

// AlertPage is one page of ListAlerts, newest last_seen first.
type AlertPage struct {
	// Alerts are the matching alerts.
	Alerts []Alert
	// NextCursor fetches the next (older) page; empty when nothing older
	// is left. A page may be short, or empty, and still have a cursor.
	NextCursor string
}

// AlertWrite says what PutAlert did.
type AlertWrite struct {
	// Created is true when no alert with this id was stored before.
	Created bool
	// Escalated is true when the stored severity rose.
	Escalated bool
}

// AlertCounts are the stored alerts counted for metrics and reports.
type AlertCounts struct {
	// ByDetectorSeverity counts all alerts: detector -> severity -> n.
	ByDetectorSeverity map[string]map[string]int `json:"by_detector_severity"`
	// OpenBySeverity counts alerts still open or acknowledged (not yet
	// closed), by severity.
	OpenBySeverity map[string]int `json:"open_by_severity"`
	// Total is the number of stored alerts.
	Total int `json:"total"`
}

// SeverityRank orders severities from low (1) to critical (4); unknown
// names rank 0, below low.
func SeverityRank(s string) int {
	switch s {
	case SeverityLow:
		return 1
	case SeverityMedium:
		return 2
	case SeverityHigh:
		return 3
	case SeverityCritical:
		return 4
	}
	return 0
}

// alertTimeKey is the ListAlerts order key: last_seen, then id.
func alertTimeKey(t time.Time, id string) []byte {
	k := make([]byte, 8, 8+len(id))
	binary.BigEndian.PutUint64(k, uint64(timeNS(t)))
	return append(k, id...)
}

// PutAlert stores an alert the detector engine opened or updated. A new id
// is stored as given (status open unless set). An existing id is merged:
// the detector's view (rule, evidence, actions) replaces the stored one
// when it has counted at least as many events, severity and last_seen only
// rise, first_seen only falls, and the analyst's fields (status, status_by,
// status_at, history) are always kept: an engine update must never reopen
// an alert an analyst closed, including when a restart replays the events
// that raised it. It returns the stored alert and what changed.
func (s *Store) PutAlert(in Alert) (Alert, AlertWrite, error) {
	if in.ID == "" {
		return Alert{}, AlertWrite{}, errors.New("alert needs an id")
	}
	var out Alert
	var w AlertWrite
	err := s.update(func(tx *bolt.Tx) error {
		b, byTime := tx.Bucket(bucketAlerts), tx.Bucket(bucketAlertsByTime)
		old := b.Get([]byte(in.ID))
		merged := in
		merged.FirstSeen, merged.LastSeen = in.FirstSeen.UTC(), in.LastSeen.UTC()
		if merged.Status == "" {
			merged.Status = StatusOpen
		}
		if old == nil {
			w.Created = true
		} else {
			var cur Alert
			if err := json.Unmarshal(old, &cur); err != nil {
				return fmt.Errorf("alert %s: %w: %v", in.ID, ErrCorrupt, err)
			}
			if in.Count < cur.Count {
				// A replay of part of the history: keep what was seen.
				merged.Evidence, merged.Rule, merged.RecommendedActions = cur.Evidence, cur.Rule, cur.RecommendedActions
				merged.Count = cur.Count
			}
			if SeverityRank(cur.Severity) >= SeverityRank(in.Severity) {
				merged.Severity = cur.Severity
			} else {
				w.Escalated = true
			}
			if !cur.FirstSeen.IsZero() && cur.FirstSeen.Before(merged.FirstSeen) {
				merged.FirstSeen = cur.FirstSeen
			}
			if cur.LastSeen.After(merged.LastSeen) {
				merged.LastSeen = cur.LastSeen
			}
			if merged.Workspace == "" {
				merged.Workspace = cur.Workspace
			}
			merged.Status, merged.StatusBy, merged.StatusAt = cur.Status, cur.StatusBy, cur.StatusAt
			merged.History, merged.HistoryDropped = cur.History, cur.HistoryDropped
			if !cur.LastSeen.Equal(merged.LastSeen) {
				if err := byTime.Delete(alertTimeKey(cur.LastSeen, cur.ID)); err != nil {
					return err
				}
			}
		}
		val, err := json.Marshal(merged)
		if err != nil {
			return err
		}
		if err := b.Put([]byte(in.ID), val); err != nil {
			return err
		}
		out = merged
		return byTime.Put(alertTimeKey(merged.LastSeen, merged.ID), nil)
	})
	return out, w, err
}

// GetAlert returns the alert with this id, or ErrNotFound.
func (s *Store) GetAlert(id string) (Alert, error) {
	var a Alert
	err := s.view(func(tx *bolt.Tx) error {
		var err error
		a, err = getRecord[Alert](tx.Bucket(bucketAlerts), []byte(id))
		return err
	})
	return a, err
}

// alertCursorV1 prefixes ListAlerts cursors: the version byte, then the
// order key of the last alert handed out (exclusive).
const alertCursorV1 = 1

func encodeAlertCursor(k []byte) string {
	return base64.RawURLEncoding.EncodeToString(append([]byte{alertCursorV1}, k...))
}

func decodeAlertCursor(c string) ([]byte, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || len(b) < 9 || b[0] != alertCursorV1 {
		return nil, ErrBadCursor
	}
	return b[1:], nil
}

// ListAlerts returns up to limit alerts matching f, newest last_seen first,
// starting after cursor. At most maxAlertScan alerts are read per call; a
// page cut short by that bound carries a cursor to continue from.
func (s *Store) ListAlerts(f AlertFilter, limit int, cursor string) (AlertPage, error) {
	if limit <= 0 || limit > MaxPageSize {
		return AlertPage{}, fmt.Errorf("limit must be between 1 and %d", MaxPageSize)
	}
	var after []byte
	if cursor != "" {
		var err error
		if after, err = decodeAlertCursor(cursor); err != nil {
			return AlertPage{}, err
		}
	}
	var page AlertPage
	err := s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAlerts)
		c := tx.Bucket(bucketAlertsByTime).Cursor()
		var k []byte
		switch {
		case after != nil:
			// Seek lands on the cursor key or the next greater one; step
			// back to the first key strictly older.
			k, _ = c.Seek(after)
			if k == nil {
				k, _ = c.Last()
			}
			for k != nil && bytes.Compare(k, after) >= 0 {
				k, _ = c.Prev()
			}
		case !f.To.IsZero():
			k, _ = c.Seek(alertTimeKey(f.To, ""))
			if k == nil {
				k, _ = c.Last()
			} else {
				k, _ = c.Prev()
			}
		default:
			k, _ = c.Last()
		}
		var from int64
		if !f.From.IsZero() {
			from = timeNS(f.From)
		}
		to := int64(math.MaxInt64)
		if !f.To.IsZero() {
			to = timeNS(f.To)
		}
		for scanned := 0; k != nil; k, _ = c.Prev() {
			if len(k) < 8 {
				return fmt.Errorf("alert index: %w: short key", ErrCorrupt)
			}
			t := int64(binary.BigEndian.Uint64(k[:8]))
			if t < from {
				return nil
			}
			if scanned == maxAlertScan || len(page.Alerts) == limit {
				page.NextCursor = encodeAlertCursor(justAbove(k))
				return nil
			}
			scanned++
			if t >= to {
				continue
			}
			val := b.Get(k[8:])
			if val == nil {
				continue // an index entry left behind is harmless
			}
			var a Alert
			if err := json.Unmarshal(val, &a); err != nil {
				return fmt.Errorf("alert %s: %w: %v", k[8:], ErrCorrupt, err)
			}
			if f.match(&a) {
				page.Alerts = append(page.Alerts, a)
			}
		}
		return nil
	})
	return page, err
}

// justAbove is the cursor for a page that stops before key next (not yet
// read; every key between it and the last alert handed out was read and
// did not match). The next call starts strictly below the cursor, so the
// cursor is next with one more byte: it sorts after next and before every
// key greater than next.
func justAbove(next []byte) []byte {
	return append(append([]byte(nil), next...), 0)
}

// SetAlertStatus moves an alert to status to, as ValidTransition allows,
// and records who did it, when, and the optional comment in the alert's
// history. It fails with ErrNotFound or ErrInvalidTransition (wrapped, with
// the current status in the message).
func (s *Store) SetAlertStatus(id, to, by, comment string, at time.Time) (Alert, error) {
	return s.changeAlert(id, func(a *Alert) error {
		if !ValidTransition(a.Status, to) {
			return fmt.Errorf("%w: alert %s is %s and cannot become %s", ErrInvalidTransition, id, a.Status, to)
		}
		from := a.Status
		a.Status, a.StatusBy, a.StatusAt = to, by, at.UTC()
		appendHistory(a, AlertChange{At: at.UTC(), By: by, From: from, To: to, Comment: comment})
		return nil
	})
}

// AddAlertComment appends an analyst's comment to the alert's history.
func (s *Store) AddAlertComment(id, by, comment string, at time.Time) (Alert, error) {
	if comment == "" {
		return Alert{}, errors.New("empty comment")
	}
	return s.changeAlert(id, func(a *Alert) error {
		appendHistory(a, AlertChange{At: at.UTC(), By: by, Comment: comment})
		return nil
	})
}

func appendHistory(a *Alert, c AlertChange) {
	if len(c.Comment) > MaxCommentLength {
		c.Comment = c.Comment[:MaxCommentLength]
	}
	a.History = append(a.History, c)
	if n := len(a.History) - MaxAlertHistory; n > 0 {
		a.History = append([]AlertChange(nil), a.History[n:]...)
		a.HistoryDropped += n
	}
}

func (s *Store) changeAlert(id string, fn func(*Alert) error) (Alert, error) {
	var a Alert
	err := s.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAlerts)
		val := b.Get([]byte(id))
		if val == nil {
			return ErrNotFound
		}
		if err := json.Unmarshal(val, &a); err != nil {
			return fmt.Errorf("alert %s: %w: %v", id, ErrCorrupt, err)
		}
		if err := fn(&a); err != nil {
			return err
		}
		return putRecord(b, []byte(id), a)
	})
	return a, err
}

// CountAlerts counts the stored alerts by detector and severity, and the
// ones not yet closed by severity. It reads every alert (alerts are few
// next to events: the engine suppresses repeats into one alert).
func (s *Store) CountAlerts() (AlertCounts, error) {
	c := AlertCounts{ByDetectorSeverity: make(map[string]map[string]int), OpenBySeverity: make(map[string]int)}
	err := s.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketAlerts).ForEach(func(k, val []byte) error {
			var a struct {
				Detector string `json:"detector"`
				Severity string `json:"severity"`
				Status   string `json:"status"`
			}
			if err := json.Unmarshal(val, &a); err != nil {
				return fmt.Errorf("alert %s: %w: %v", k, ErrCorrupt, err)
			}
			m := c.ByDetectorSeverity[a.Detector]
			if m == nil {
				m = make(map[string]int)
				c.ByDetectorSeverity[a.Detector] = m
			}
			m[a.Severity]++
			if a.Status == StatusOpen || a.Status == StatusAcknowledged {
				c.OpenBySeverity[a.Severity]++
			}
			c.Total++
			return nil
		})
	})
	return c, err
}

// DetectorSeq returns the last event seq the detector worker recorded as
// judged (0 if none).
func (s *Store) DetectorSeq() (uint64, error) {
	var seq uint64
	err := s.view(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketMeta).Get(keyDetectorSeq); len(v) == 8 {
			seq = binary.BigEndian.Uint64(v)
		}
		return nil
	})
	return seq, err
}

// SetDetectorSeq records the last event seq the detector worker judged.
func (s *Store) SetDetectorSeq(seq uint64) error {
	return s.update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keyDetectorSeq, u64(seq))
	})
}

// LastSeq returns the highest event seq assigned so far (0 when no event
// was ever stored).
func (s *Store) LastSeq() (uint64, error) {
	var seq uint64
	err := s.view(func(tx *bolt.Tx) error {
		seq = tx.Bucket(bucketEvents).Sequence()
		return nil
	})
	return seq, err
}

// EventsAfter returns up to limit stored events with a seq greater than
// after, in seq order (the order they were committed). Purged events are
// simply absent.
func (s *Store) EventsAfter(after uint64, limit int) ([]Event, error) {
	if limit <= 0 {
		return nil, nil
	}
	var out []Event
	err := s.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketEvents).Cursor()
		for k, v := c.Seek(u64(after + 1)); k != nil && len(out) < limit; k, v = c.Next() {
			var ev Event
			if err := decodeEvent(v, &ev); err != nil {
				return fmt.Errorf("decoding event seq %d: %w", binary.BigEndian.Uint64(k), err)
			}
			out = append(out, ev)
		}
		return nil
	})
	return out, err
}

// SeqAtTime returns the seq of a stored event at or shortly after t, found
// by binary search over the sequence: exact when event times grow with seq
// (live traffic), an approximation otherwise. It returns the next seq to be
// assigned when every event is older than t.
func (s *Store) SeqAtTime(t time.Time) (uint64, error) {
	var seq uint64
	err := s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketEvents)
		c := b.Cursor()
		lo, hi := uint64(1), b.Sequence()+1 // answer in [lo, hi]
		for lo < hi {
			mid := lo + (hi-lo)/2
			k, v := c.Seek(u64(mid))
			if k == nil {
				hi = mid
				continue
			}
			var ev Event
			if err := decodeEvent(v, &ev); err != nil {
				return fmt.Errorf("decoding event seq %d: %w", binary.BigEndian.Uint64(k), err)
			}
			if ev.Time.Before(t) {
				lo = binary.BigEndian.Uint64(k) + 1
			} else {
				hi = mid
			}
		}
		seq = lo
		return nil
	})
	return seq, err
}
