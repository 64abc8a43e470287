package storage

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"
)

// eraseBatch bounds the events one erasure transaction rewrites, so the
// writer never waits long and the erasure record stays small.
const eraseBatch = 128

// eraseScan bounds the records one read transaction scans for them (a
// variable so that tests can cross scan boundaries with a few events).
var eraseScan = 1 << 16

// EraseSubject pseudonymizes every stored event of user, for a data
// subject's erasure request (GDPR Art. 17), and returns how many it
// rewrote. For each personal field (see personalFields) with a value it
// calls pseudonym(field, value) and stores the result instead; "" or a nil
// pseudonym deletes the value. Header values are passed with field
// "request_headers.<Name>" or "response_headers.<Name>", the forwarded
// chain one element at a time, and the port as decimal text (a result
// that is not a port number deletes it).
//
// The chain stays verifiable: it holds only a salted commitment of the
// personal fields, and EraseSubject deletes the salt, so the old values
// can no longer be confirmed from the commitment. Each small transaction
// also appends a chained subject_erased lifecycle event listing the seqs it
// rewrote with a hash of their new personal fields (never the user), so
// marking an event erased cannot be used to hide a change to it. Events are
// found by their user field only; other events that mention the subject
// (in paths or in an admin's query details) are not touched. Events
// appended after the call started are not either. Alerts about the user
// (subject and observed values) are pseudonymized the same way.
func (s *Store) EraseSubject(user string, pseudonym func(field, value string) string) (int, error) {
	if user == "" {
		return 0, errors.New("erasing a data subject needs a user")
	}
	q, err := json.Marshal(user)
	if err != nil {
		return 0, err
	}
	// The personal JSON starts with the user field, as encoding/json wrote it.
	needle := append([]byte(`{"user":`), q...)
	var bound uint64
	if err := s.view(func(tx *bolt.Tx) error {
		if k, _ := tx.Bucket(bucketEvents).Cursor().Last(); len(k) == 8 {
			bound = min(binary.BigEndian.Uint64(k), maxSeq-1) // larger is damage; seq+1 must not wrap
		}
		return nil
	}); err != nil {
		return 0, err
	}
	total := 0
	for next := uint64(1); next <= bound; {
		var batch []uint64
		if err := s.view(func(tx *bolt.Tx) error {
			c := tx.Bucket(bucketEvents).Cursor()
			scanned := 0
			k, v := c.Seek(u64(next))
			for ; k != nil && scanned < eraseScan && len(batch) < eraseBatch; k, v = c.Next() {
				if len(k) != 8 {
					continue // damage, for Verify to report
				}
				scanned++
				seq := binary.BigEndian.Uint64(k)
				if seq > bound {
					break
				}
				if subjectMatch(v, needle) {
					batch = append(batch, seq)
				}
				next = seq + 1
			}
			if k == nil || len(k) == 8 && binary.BigEndian.Uint64(k) > bound {
				next = bound + 1 // nothing left to scan
			}
			return nil
		}); err != nil {
			return total, err
		}
		if len(batch) == 0 {
			continue
		}
		n, err := s.eraseEvents(batch, needle, pseudonym)
		total += n
		if err != nil {
			return total, fmt.Errorf("erasing data subject: %w", err)
		}
	}
	if err := s.eraseAlertSubject(user, pseudonym); err != nil {
		return total, fmt.Errorf("erasing data subject from alerts: %w", err)
	}
	return total, nil
}

// eraseAlertSubject pseudonymizes the user in the alerts about them (the
// subject value, and observations equal to it), with pseudonym("user",
// user). Alerts are not chained, so they are simply rewritten.
func (s *Store) eraseAlertSubject(user string, pseudonym func(field, value string) string) error {
	repl := ""
	if pseudonym != nil {
		repl = pseudonym("user", user)
	}
	return s.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAlerts)
		type rewrite struct {
			key, val []byte
		}
		var rewrites []rewrite
		err := b.ForEach(func(k, v []byte) error {
			if !bytes.Contains(v, []byte(user)) {
				return nil // cheap pre-filter; the JSON decides below
			}
			var a Alert
			if err := json.Unmarshal(v, &a); err != nil {
				return fmt.Errorf("alert %s: %w: %v", k, ErrCorrupt, err)
			}
			changed := false
			if a.Subject.Kind == SubjectUser && a.Subject.Value == user {
				a.Subject.Value, changed = repl, true
			}
			for key, obs := range a.Evidence.Observed {
				if obs == user {
					a.Evidence.Observed[key], changed = repl, true
				}
			}
			if !changed {
				return nil
			}
			val, err := json.Marshal(a)
			if err != nil {
				return err
			}
			rewrites = append(rewrites, rewrite{append([]byte(nil), k...), val})
			return nil
		})
		if err != nil {
			return err
		}
		for _, r := range rewrites {
			if err := b.Put(r.key, r.val); err != nil {
				return err
			}
		}
		return nil
	})
}

// subjectMatch reports whether val is a record of the subject not yet erased.
func subjectMatch(val, needle []byte) bool {
	e, err := parseEnvelope(val)
	return err == nil && e.subjectMatch(needle)
}

// subjectMatch is subjectMatch on an envelope already parsed.
func (e *envelope) subjectMatch(needle []byte) bool {
	if e.erased() {
		return false
	}
	p := e.personal
	return len(p) > len(needle) && bytes.HasPrefix(p, needle) && (p[len(needle)] == ',' || p[len(needle)] == '}')
}

// eraseEvents rewrites the subject's events among seqs, and chains the
// record that vouches for them, in one transaction.
func (s *Store) eraseEvents(seqs []uint64, needle []byte, pseudonym func(field, value string) string) (int, error) {
	type rewrite struct {
		env      envelope
		old, new Event
	}
	n := 0
	err := s.updateIndexed(func(tx *bolt.Tx) error {
		events := tx.Bucket(bucketEvents)
		var rws []rewrite
		var entries []erasureEntry
		for _, seq := range seqs {
			e, err := parseEnvelope(events.Get(u64(seq)))
			if err != nil || !e.subjectMatch(needle) {
				continue // changed since the scan
			}
			rw := rewrite{env: envelope{
				flags: e.flags | flagErased, seq: e.seq,
				// Copies: val belongs to bbolt, and the chained bytes must
				// survive byte for byte.
				commit: bytes.Clone(e.commit), chained: bytes.Clone(e.chained),
			}}
			if err := decodeEnvelope(&e, &rw.old); err != nil {
				return fmt.Errorf("decoding event seq %d: %w", seq, err)
			}
			rw.new = pseudonymize(rw.old, pseudonym)
			pf := personalOf(&rw.new)
			if rw.env.personal, err = json.Marshal(&pf); err != nil {
				return err
			}
			sum := sha256.Sum256(rw.env.personal)
			entries = append(entries, erasureEntry{Seq: seq, PersonalSHA256: hex.EncodeToString(sum[:])})
			rws = append(rws, rw)
		}
		if len(rws) == 0 {
			return nil // no seq taken: an unused one would look like a deletion
		}
		recSeq, err := events.NextSequence()
		if err != nil {
			return err
		}
		now := time.Now().UTC()
		rec := &Event{
			ID: NewID(now), Seq: recSeq, Time: now, Kind: KindLifecycle, Action: actionSubjectErased,
			Details: map[string]any{"erased_events": len(entries), "erased": entries},
		}
		if err := putEvent(tx, rec); err != nil {
			return fmt.Errorf("recording the erasure: %w", err)
		}
		if err := addEventCount(tx, 1); err != nil {
			return err
		}
		for i := range rws {
			rw := &rws[i]
			rw.env.erasedBy = recSeq
			if err := unindexEvent(tx, &rw.old); err != nil {
				return err
			}
			if err := events.Put(u64(rw.env.seq), appendEnvelope(make([]byte, 0, rw.env.size()), &rw.env)); err != nil {
				return err
			}
			if err := indexEvent(tx, &rw.new); err != nil {
				return err
			}
		}
		n = len(rws)
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// pseudonymize returns ev with its personal fields replaced; maps and
// slices are new, so ev's are untouched.
func pseudonymize(ev Event, fn func(field, value string) string) Event {
	p := func(field, v string) string {
		if v == "" || fn == nil {
			return ""
		}
		return fn(field, v)
	}
	ev.User = p("user", ev.User)
	ev.ClientIP = p("client_ip", ev.ClientIP)
	if ev.ClientPort != 0 {
		port, err := strconv.Atoi(p("client_port", strconv.Itoa(ev.ClientPort)))
		if err != nil || port < 0 || port > 65535 {
			port = 0
		}
		ev.ClientPort = port
	}
	var ff []string
	for _, v := range ev.ForwardedFor {
		if nv := p("forwarded_for_untrusted", v); nv != "" {
			ff = append(ff, nv)
		}
	}
	ev.ForwardedFor = ff
	ev.UserAgent = p("user_agent", ev.UserAgent)
	ev.Referer = p("referer", ev.Referer)
	ev.Query = p("query", ev.Query)
	headers := func(prefix string, h map[string][]string) map[string][]string {
		var out map[string][]string
		for name, vals := range h {
			var nvs []string
			for _, v := range vals {
				if nv := p(prefix+name, v); nv != "" {
					nvs = append(nvs, nv)
				}
			}
			if len(nvs) > 0 {
				if out == nil {
					out = make(map[string][]string, len(h))
				}
				out[name] = nvs
			}
		}
		return out
	}
	ev.RequestHeaders = headers("request_headers.", ev.RequestHeaders)
	ev.ResponseHeaders = headers("response_headers.", ev.ResponseHeaders)
	// A body's text cannot be pseudonymized field by field: it goes, and
	// its size and type stay.
	body := func(b *Body) *Body {
		if b == nil || b.Text == "" {
			return b
		}
		c := *b
		c.Text, c.Omitted = "", "erased"
		return &c
	}
	ev.RequestBody, ev.ResponseBody = body(ev.RequestBody), body(ev.ResponseBody)
	ev.Erased = true
	return ev
}
