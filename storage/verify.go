package storage

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"maps"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// VerifyReport is the outcome of Verify or VerifyNDJSON. Its JSON is what the
// admin API and the CLI print.
type VerifyReport struct {
	// OK is true when no problem was found and, if a checkpoint was given
	// or found, it verified and matched the chain.
	OK bool `json:"ok"`
	// Events is the number of events checked; Tombstones the number of
	// seqs purged by retention whose links were kept; Erased the number of
	// events whose personal fields were pseudonymized.
	Events     int64 `json:"events"`
	Tombstones int64 `json:"tombstones"`
	Erased     int64 `json:"erased"`
	// FirstSeq and LastSeq bound the seqs walked; HeadLink is the hex link
	// at LastSeq.
	FirstSeq uint64 `json:"first_seq"`
	LastSeq  uint64 `json:"last_seq"`
	HeadLink string `json:"head_link"`
	// CheckpointSeq is the seq of the checkpoint checked against (0 if
	// none); CheckpointVerified is true when its signature verified and the
	// chain had the checkpoint's link at that seq.
	CheckpointSeq      uint64 `json:"checkpoint_seq"`
	CheckpointVerified bool   `json:"checkpoint_verified"`
	// CheckpointNote says what the checkpoint check could not prove, such
	// as "no checkpoint".
	CheckpointNote string `json:"checkpoint_note,omitempty"`
	// Problems lists the first problems found (at most 100), in seq order;
	// ProblemCount counts them all.
	Problems     []Problem `json:"problems"`
	ProblemCount int64     `json:"problem_count"`
	// DurationMS is how long the verification took.
	DurationMS int64 `json:"duration_ms"`
}

// Problem is one thing verification found wrong.
type Problem struct {
	// Seq is the event concerned; 0 when it is unknown (an unreadable line).
	Seq uint64 `json:"seq"`
	// Line is the 1-based line of an NDJSON export, for offline checks.
	Line int64 `json:"line,omitempty"`
	// Kind is one of:
	//   - altered: the event's non-personal fields, its commitment or its
	//     stored link changed (the event no longer hashes to its link);
	//   - personal_altered: its personal fields or salt changed (they no
	//     longer match the commitment, or for an erased event the erasure
	//     record);
	//   - deleted: the seq is gone without a retention tombstone;
	//   - reordered: a record sits at another seq than the one it was
	//     linked at (swapped records, shuffled lines);
	//   - truncated: the chain ends before seqs the store assigned or the
	//     checkpoint covers;
	//   - rollback: the database is older than the checkpoint;
	//   - checkpoint_mismatch: the chain's link at the checkpoint's seq is
	//     not the checkpoint's (history was rewritten or replaced);
	//   - checkpoint_signature: the checkpoint does not verify;
	//   - erasure_unproven: an event is marked erased but no chained
	//     erasure record covers it;
	//   - unchained: an event has no link;
	//   - malformed: a record or line cannot be read;
	//   - empty: an export holds no line, so nothing was verified.
	Kind string `json:"kind"`
	// Detail says what was seen, for a human.
	Detail string `json:"detail"`
}

const maxProblems = 100

// actionSubjectErased is the action of the lifecycle event EraseSubject
// chains to vouch for the events it pseudonymized.
const actionSubjectErased = "subject_erased"

// erasureEntry is one pseudonymized event in a subject_erased record: the
// SHA-256 of its new personal part, so the pseudonyms are tamper-evident
// as well.
type erasureEntry struct {
	Seq            uint64 `json:"seq"`
	PersonalSHA256 string `json:"personal_sha256"`
}

// erasureRecord is the part of a subject_erased record verification reads.
type erasureRecord struct {
	Kind    string `json:"kind"`
	Action  string `json:"action"`
	Details struct {
		Erased []erasureEntry `json:"erased"`
	} `json:"details"`
}

type erasedRef struct {
	seq uint64
	sum [hashSize]byte
}

// record is one event as the verifier sees it, from the store or a line.
type record struct {
	link     []byte // stored link; nil when there is none
	commit   []byte
	chained  []byte
	personal []byte
	salt     []byte
	erased   bool
	erasedBy uint64
}

// verifier walks a chain in seq order. The store and NDJSON walks feed it
// the same way, so both report the same problems for the same damage.
type verifier struct {
	rep    VerifyReport
	h      hash.Hash
	next   uint64 // the seq expected next
	prev   [hashSize]byte
	prevOK bool // prev is trusted: the next event can be checked against it
	// alt is what the last event hashed to when that did not match its
	// stored link, so that a changed link is reported once, not twice.
	alt   [hashSize]byte
	altOK bool
	line  int64

	cp        *Checkpoint
	cpLink    [hashSize]byte
	cpSigOK   bool
	cpReached bool
	cpMatch   bool

	// pending maps an erasure record's seq to the erased events that name
	// it; the record always comes later in the chain.
	pending    map[uint64][]erasedRef
	maxPending uint64
}

func newVerifier() *verifier {
	return &verifier{
		h:       sha256.New(),
		next:    1,
		prevOK:  true,
		pending: make(map[uint64][]erasedRef),
		rep:     VerifyReport{Problems: []Problem{}},
	}
}

// maxSeq bounds seqs: larger ones are damage, and next = seq+1 must not wrap.
const maxSeq = 1 << 62

func (v *verifier) problem(seq uint64, kind, detail string) {
	v.rep.ProblemCount++
	if len(v.rep.Problems) < maxProblems {
		v.rep.Problems = append(v.rep.Problems, Problem{Seq: seq, Line: v.line, Kind: kind, Detail: detail})
	}
}

// setCheckpoint checks cp's signature with pub (nil: the embedded key).
func (v *verifier) setCheckpoint(cp *Checkpoint, pub ed25519.PublicKey) {
	v.cp = cp
	v.cpLink = cp.link()
	v.rep.CheckpointSeq = cp.Seq
	if err := cp.Verify(pub); err != nil {
		v.problem(cp.Seq, "checkpoint_signature", err.Error())
	} else {
		v.cpSigOK = true
	}
	if cp.Seq == 0 {
		v.cpReached = true
		v.cpMatch = v.cpLink == [hashSize]byte{}
		if !v.cpMatch {
			v.problem(0, "checkpoint_mismatch", "a checkpoint of an empty chain must have the zero link")
		}
	}
}

// settle moves the walk past seq, whose link is link; ok says whether link
// can be trusted for checking the next event.
func (v *verifier) settle(seq uint64, link [hashSize]byte, ok bool) {
	if v.rep.FirstSeq == 0 {
		v.rep.FirstSeq = seq
	}
	v.rep.LastSeq = seq
	v.prev, v.prevOK, v.next = link, ok, seq+1
	v.altOK = false
	if v.cp != nil && seq == v.cp.Seq {
		v.cpReached = true
		v.cpMatch = link == v.cpLink
		if !v.cpMatch {
			v.problem(seq, "checkpoint_mismatch", fmt.Sprintf("the chain's link at seq %d is %x, the checkpoint's is %s: history up to the checkpoint was rewritten or replaced", seq, link, v.cp.Link))
		}
	}
}

// gap reports seqs from..to as absent altogether (no event, no link).
func (v *verifier) gap(from, to uint64) {
	if from == to {
		v.problem(from, "deleted", fmt.Sprintf("seq %d is missing (no event, no link, no tombstone); seq %d cannot be checked against its predecessor", from, to+1))
	} else {
		v.problem(from, "deleted", fmt.Sprintf("seqs %d..%d are missing (no events, no links, no tombstones); seq %d cannot be checked against its predecessor", from, to, to+1))
	}
	v.prevOK = false
}

// tombstone accepts a seq purged by retention: its link continues the chain.
func (v *verifier) tombstone(seq uint64, link [hashSize]byte) {
	v.rep.Tombstones++
	// An erasure record purged by retention vouched for its events when it
	// was written; its tombstone is all that is left of it.
	delete(v.pending, seq)
	v.settle(seq, link, true)
}

// deletedWithLink reports an event removed without a tombstone; its link
// survived, so the walk continues from it.
func (v *verifier) deletedWithLink(seq uint64, link [hashSize]byte) {
	v.problem(seq, "deleted", fmt.Sprintf("event seq %d is missing, but its link remains and no tombstone marks a retention purge", seq))
	v.unproven(seq, "was deleted")
	v.settle(seq, link, true)
}

func (v *verifier) unproven(recSeq uint64, why string) {
	for _, r := range v.pending[recSeq] {
		v.problem(r.seq, "erasure_unproven", fmt.Sprintf("event seq %d is marked erased by seq %d, which %s", r.seq, recSeq, why))
	}
	delete(v.pending, recSeq)
}

// event checks one event against its commitment and the chain.
func (v *verifier) event(seq uint64, r *record) {
	v.rep.Events++
	if r.erased {
		v.rep.Erased++
		ref := erasedRef{seq: seq, sum: sha256.Sum256(r.personal)}
		if r.erasedBy <= seq || r.erasedBy >= maxSeq {
			v.problem(seq, "erasure_unproven", fmt.Sprintf("event seq %d is marked erased by seq %d, which cannot be its erasure record", seq, r.erasedBy))
		} else {
			v.pending[r.erasedBy] = append(v.pending[r.erasedBy], ref)
			v.maxPending = max(v.maxPending, r.erasedBy)
		}
	} else if c := commitment(sha256.New(), r.salt, r.personal); !bytes.Equal(c[:], r.commit) {
		v.problem(seq, "personal_altered", fmt.Sprintf("the personal fields or salt of seq %d do not match its commitment", seq))
	}
	computed := chainLink(v.h, v.prev[:], seq, r.commit, r.chained)
	link, ok := computed, v.prevOK
	alt, altOK := v.alt, v.altOK
	mismatch := false
	switch {
	case r.link == nil:
		v.problem(seq, "unchained", fmt.Sprintf("event seq %d has no link", seq))
	case !v.prevOK:
		copy(link[:], r.link) // after a gap: nothing to check it against
		ok = true
	case bytes.Equal(computed[:], r.link):
	case altOK && chainLink(v.h, alt[:], seq, r.commit, r.chained) == [hashSize]byte(r.link):
		// The previous event was reported altered, and it was its stored
		// link that changed: this event chains from what it hashes to.
		copy(link[:], r.link)
	default:
		v.problem(seq, "altered", fmt.Sprintf("event seq %d does not hash to its link: a non-personal field, its commitment or its link changed", seq))
		copy(link[:], r.link)
		mismatch = true
	}
	if refs, found := v.pending[seq]; found {
		v.checkErasure(seq, r.chained, refs)
	}
	v.settle(seq, link, ok)
	if mismatch {
		v.alt, v.altOK = computed, true
	}
}

// checkErasure matches the erased events that name seq against the record
// stored there.
func (v *verifier) checkErasure(seq uint64, chained []byte, refs []erasedRef) {
	var rec erasureRecord
	if err := json.Unmarshal(chained, &rec); err != nil || rec.Kind != KindLifecycle || rec.Action != actionSubjectErased {
		v.unproven(seq, "is not an erasure record")
		return
	}
	sums := make(map[uint64]string, len(rec.Details.Erased))
	for _, e := range rec.Details.Erased {
		sums[e.Seq] = e.PersonalSHA256
	}
	for _, r := range refs {
		want, found := sums[r.seq]
		switch {
		case !found:
			v.problem(r.seq, "erasure_unproven", fmt.Sprintf("event seq %d is marked erased by seq %d, which does not list it", r.seq, seq))
		case want != hex.EncodeToString(r.sum[:]):
			v.problem(r.seq, "personal_altered", fmt.Sprintf("the pseudonymized fields of seq %d do not match erasure record seq %d", r.seq, seq))
		}
	}
	delete(v.pending, seq)
}

// finish reports what only the end of the walk shows. beyond classifies a
// checkpoint whose seq the chain never reached.
func (v *verifier) finish(start time.Time, beyond func(cpSeq uint64) (kind, detail string)) VerifyReport {
	for _, recSeq := range slices.Sorted(maps.Keys(v.pending)) {
		v.unproven(recSeq, "the chain does not contain")
	}
	v.line = 0
	if v.cp != nil && !v.cpReached {
		if v.cp.Seq > v.rep.LastSeq {
			kind, detail := beyond(v.cp.Seq)
			v.problem(v.rep.LastSeq+1, kind, detail)
		} else {
			v.problem(v.cp.Seq, "checkpoint_mismatch", fmt.Sprintf("seq %d, which the checkpoint covers, is missing", v.cp.Seq))
		}
	}
	if v.rep.LastSeq > 0 {
		v.rep.HeadLink = hex.EncodeToString(v.prev[:])
	}
	v.rep.CheckpointVerified = v.cp != nil && v.cpSigOK && v.cpReached && v.cpMatch
	v.rep.OK = v.rep.ProblemCount == 0 && (v.cp == nil || v.rep.CheckpointVerified)
	slices.SortStableFunc(v.rep.Problems, func(a, b Problem) int {
		switch {
		case a.Seq < b.Seq:
			return -1
		case a.Seq > b.Seq:
			return 1
		}
		return 0
	})
	v.rep.DurationMS = time.Since(start).Milliseconds()
	return v.rep
}

// verifyChunk bounds the keys one read transaction walks: a long read
// transaction would stall a writer that needs to grow the file. (A
// variable so that tests can cross chunk boundaries with a few events.)
var verifyChunk = 1 << 16

// Verify walks the whole integrity chain and reports every problem it
// finds, by seq and kind. against is a checkpoint kept off the host: with
// it, Verify also detects a truncated tail and a rollback to an older
// copy of the database. With nil, the store's latest checkpoint is used,
// which catches accidents but not an attacker who replaced the file along
// with its checkpoints. A checkpoint must be signed by this store's key
// (with checkpoints disabled, the key embedded in it is used, and the
// report says so).
//
// It reads in chunks of short transactions, so writes go on meanwhile; events
// appended after Verify started are not checked. A problem in the data is in
// the report, not the error, which is only for I/O failure or ctx.
func (s *Store) Verify(ctx context.Context, against *Checkpoint) (VerifyReport, error) {
	start := time.Now()
	v := newVerifier()
	var bound, assigned uint64
	var own *Checkpoint
	err := s.view(func(tx *bolt.Tx) error {
		bound = walkBound(tx)
		assigned = tx.Bucket(bucketEvents).Sequence()
		var err error
		own, err = latestCheckpoint(tx)
		return err
	})
	if err != nil {
		return v.rep, err
	}
	cp := against
	switch {
	case cp != nil:
	case own != nil:
		cp = own
		v.rep.CheckpointNote = "checked against the store's own latest checkpoint; to detect a rollback, verify against one kept off the host"
	case s.cp.key == nil:
		v.rep.CheckpointNote = "no checkpoint: checkpoints are disabled, so a truncated tail or a rollback cannot be detected"
	default:
		v.rep.CheckpointNote = "no checkpoint yet: a truncated tail or a rollback cannot be detected"
	}
	if cp != nil {
		var pub ed25519.PublicKey
		if s.cp.key != nil {
			pub = s.cp.pub
		} else {
			v.rep.CheckpointNote = "this store has no checkpoint key: the checkpoint's embedded key was used, which does not prove who signed it"
		}
		v.setCheckpoint(cp, pub)
	}
	for {
		if err := ctx.Err(); err != nil {
			return v.rep, err
		}
		limit := max(bound, v.maxPending)
		var stop bool
		if err := s.view(func(tx *bolt.Tx) error {
			stop = v.walkStore(tx, limit)
			return nil
		}); err != nil {
			return v.rep, err
		}
		// Erasures committed while walking may name records past the
		// bound; walk on to them.
		if stop && v.maxPending <= limit {
			break
		}
	}
	if assigned > v.rep.LastSeq && assigned < maxSeq {
		v.problem(v.rep.LastSeq+1, "truncated", fmt.Sprintf("the store assigned seqs up to %d, but the chain ends at seq %d", assigned, v.rep.LastSeq))
	}
	rep := v.finish(start, func(cpSeq uint64) (string, string) {
		if assigned >= cpSeq || own != nil && own.Seq >= cpSeq {
			return "truncated", fmt.Sprintf("the checkpoint covers seq %d, but the chain ends at seq %d: the tail was removed", cpSeq, v.rep.LastSeq)
		}
		return "rollback", fmt.Sprintf("the checkpoint covers seq %d, but this database ends at seq %d and never assigned a later one: it is an older copy", cpSeq, v.rep.LastSeq)
	})
	return rep, nil
}

// walkStore checks up to verifyChunk seqs from v.next, merging the links
// and the events in seq order. It reports true when there is nothing more
// up to limit.
func (v *verifier) walkStore(tx *bolt.Tx, limit uint64) bool {
	lc := tx.Bucket(bucketChainLinks).Cursor()
	ec := tx.Bucket(bucketEvents).Cursor()
	from := u64(v.next)
	lk, lv := lc.Seek(from)
	ek, ev := ec.Seek(from)
	for n := 0; n < verifyChunk; n++ {
		// Keys are 8-byte seqs; anything else is damage to step over.
		if lk != nil && len(lk) != 8 {
			v.problem(0, "malformed", fmt.Sprintf("chain link key %x is not a seq", lk))
			lk, lv = lc.Next()
			continue
		}
		if ek != nil && len(ek) != 8 {
			v.problem(0, "malformed", fmt.Sprintf("event key %x is not a seq", ek))
			ek, ev = ec.Next()
			continue
		}
		if lk == nil && ek == nil {
			return true
		}
		seq := uint64(1<<64 - 1)
		if lk != nil {
			seq = binary.BigEndian.Uint64(lk)
		}
		if ek != nil {
			seq = min(seq, binary.BigEndian.Uint64(ek))
		}
		if seq > limit || seq >= maxSeq {
			return true
		}
		hasLink := lk != nil && binary.BigEndian.Uint64(lk) == seq
		hasEvent := ek != nil && binary.BigEndian.Uint64(ek) == seq
		if seq > v.next {
			v.gap(v.next, seq-1)
		}
		var link []byte
		if hasLink {
			if len(lv) == hashSize || isTombstone(lv) {
				link = lv[:hashSize]
			} else {
				v.problem(seq, "malformed", fmt.Sprintf("the link of seq %d is %d bytes long", seq, len(lv)))
			}
		}
		switch {
		case hasEvent:
			v.storedEvent(seq, link, ev)
		case link != nil && isTombstone(lv):
			v.tombstone(seq, [hashSize]byte(link))
		case link != nil:
			v.deletedWithLink(seq, [hashSize]byte(link))
		default:
			v.unproven(seq, "was deleted")
			v.settle(seq, v.prev, false)
		}
		if hasLink {
			lk, lv = lc.Next()
		}
		if hasEvent {
			ek, ev = ec.Next()
		}
	}
	return false
}

// storedEvent checks the record stored under seq.
func (v *verifier) storedEvent(seq uint64, link, val []byte) {
	// When the record cannot be checked, its stored link (if any) still
	// lets the walk check the next one.
	skip := func(kind, detail string) {
		v.rep.Events++
		v.problem(seq, kind, detail)
		v.unproven(seq, "cannot be read")
		if link != nil {
			v.settle(seq, [hashSize]byte(link), true)
		} else {
			v.settle(seq, v.prev, false)
		}
	}
	if len(val) > 0 && val[0] == '{' {
		skip("unchained", fmt.Sprintf("event seq %d is a schema-1 record that was never linked", seq))
		return
	}
	e, err := parseEnvelope(val)
	switch {
	case err != nil:
		skip("malformed", fmt.Sprintf("the record stored at seq %d cannot be parsed", seq))
		return
	case e.seq != seq:
		skip("reordered", fmt.Sprintf("the record stored at seq %d is the one linked at seq %d", seq, e.seq))
		return
	}
	v.event(seq, &record{link: link, commit: e.commit, chained: e.chained, personal: e.personal,
		salt: e.salt, erased: e.erased(), erasedBy: e.erasedBy})
}
