package storage

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// An NDJSON export has one JSON object per line, in seq order. An event line
// is flat, with every Event field under its usual name (so a SIEM ingests it
// as is) plus what offline verification needs:
//
//	{"seq":7,"link":"<hex>","commit":"<hex>","id":...,"user":...,"salt":"<hex>"}
//	{"seq":8,"link":"<hex>","commit":"<hex>","id":...,"erased":true,"erased_by":12}
//	{"seq":9,"link":"<hex>","tombstone":true}
//
// The event's fields are the stored chained and personal JSON spliced in
// verbatim, so export never decodes an event, and VerifyNDJSON rebuilds
// the exact hashed bytes by putting the members back in canonical order
// (chainedFields, then personalFields). A tombstone line stands for an event
// purged by retention.

// ExportResult describes a finished export.
type ExportResult struct {
	// Rows is the number of lines written, tombstones included.
	Rows int64 `json:"rows"`
	// SHA256 is the hex SHA-256 of the bytes written, to record next to
	// the file.
	SHA256 string `json:"sha256"`
	// LastSeq is the seq of the last line.
	LastSeq uint64 `json:"last_seq"`
	// HeadLink is the link at LastSeq (full exports only).
	HeadLink string `json:"head_link,omitempty"`
	// Verifiable is true for a full export, which VerifyNDJSON can check
	// against a checkpoint. A filtered export leaves events out, so its
	// chain cannot be checked; its lines still carry their links.
	Verifiable bool `json:"verifiable"`
}

// exportFlush is how much one read transaction writes into memory before
// it ends and the bytes go to the writer: memory stays flat, and a slow
// client never holds a transaction open.
var exportFlush = 1 << 20 // a variable for tests, like verifyChunk

// ExportNDJSON streams events as NDJSON to w, in seq order. With a nil
// filter it writes every event and a tombstone line for each purged one:
// that full export plus a checkpoint verifies offline (VerifyNDJSON). A
// non-nil filter selects events as Query does (From <= time < To plus the
// other fields); such an export is not verifiable and says so. Events
// appended after the export started are not included, except erasure
// records that events in the export name.
func (s *Store) ExportNDJSON(ctx context.Context, w io.Writer, f *Filter) (ExportResult, error) {
	res := ExportResult{Verifiable: f == nil}
	var bound uint64
	if err := s.view(func(tx *bolt.Tx) error {
		bound = walkBound(tx)
		return nil
	}); err != nil {
		return res, err
	}
	x := exporter{f: f, res: &res, next: 1, buf: make([]byte, 0, exportFlush+64<<10)}
	h := sha256.New()
	for {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		limit := max(bound, x.maxErasedBy)
		var stop bool
		err := s.view(func(tx *bolt.Tx) error {
			var err error
			stop, err = x.chunk(tx, limit)
			return err
		})
		if err != nil {
			return res, err
		}
		if len(x.buf) > 0 {
			h.Write(x.buf)
			if _, err := w.Write(x.buf); err != nil {
				return res, fmt.Errorf("writing export: %w", err)
			}
			x.buf = x.buf[:0]
		}
		if stop && x.maxErasedBy <= limit {
			break
		}
	}
	res.SHA256 = hex.EncodeToString(h.Sum(nil))
	return res, nil
}

type exporter struct {
	f           *Filter
	res         *ExportResult
	next        uint64
	maxErasedBy uint64
	buf         []byte
}

// chunk appends lines from x.next until the buffer is full; it reports
// true when there is nothing more up to limit.
func (x *exporter) chunk(tx *bolt.Tx, limit uint64) (bool, error) {
	if x.f != nil {
		return x.filteredChunk(tx, limit)
	}
	c := newChainCursor(tx, x.next)
	// Bounded by bytes and by keys: a long run of links without events
	// writes nothing but must not hold the transaction either.
	for n := 0; len(x.buf) < exportFlush && n < verifyChunk; n++ {
		it, ok := c.next()
		if !ok || it.seq > limit || it.seq >= maxSeq {
			return true, nil
		}
		if it.badKey {
			continue // not a seq: Verify reports it
		}
		x.next = it.seq + 1
		var link []byte
		if len(it.link) == hashSize || isTombstone(it.link) {
			link = it.link[:hashSize]
		}
		switch {
		case it.event != nil:
			x.event(it.seq, link, it.event)
		case link != nil && isTombstone(it.link):
			x.buf = appendTombstoneLine(x.buf, it.seq, link)
			x.wrote(it.seq, link)
		}
		// A link without event or tombstone is a deleted event: nothing to
		// write, and VerifyNDJSON will report the gap.
	}
	return false, nil
}

func (x *exporter) event(seq uint64, link, val []byte) {
	if len(val) > 0 && val[0] == '{' {
		// A schema-1 record that was never linked: export it as it is;
		// offline verification will report it unchained.
		x.buf = append(append(x.buf, bytes.TrimSpace(val)...), '\n')
		x.wrote(seq, nil)
		return
	}
	e, err := parseEnvelope(val)
	if err == nil && isObject(e.chained) && isObject(e.personal) {
		if e.erased() {
			x.maxErasedBy = max(x.maxErasedBy, e.erasedBy)
		}
		x.buf = appendEventLine(x.buf, seq, link, &e)
		x.wrote(seq, link)
		return
	}
	// Damage must show in the export rather than vanish from it, as valid
	// JSON that offline verification reports.
	x.buf = append(x.buf, `{"seq":`...)
	x.buf = strconv.AppendUint(x.buf, seq, 10)
	x.buf = append(x.buf, `,"malformed_record":"`...)
	x.buf = base64.StdEncoding.AppendEncode(x.buf, val)
	x.buf = append(x.buf, "\"}\n"...)
	x.wrote(seq, nil)
}

func (x *exporter) wrote(seq uint64, link []byte) {
	x.res.Rows++
	x.res.LastSeq = seq
	if x.f == nil {
		x.res.HeadLink = hex.EncodeToString(link)
	}
}

func (x *exporter) filteredChunk(tx *bolt.Tx, limit uint64) (bool, error) {
	links := tx.Bucket(bucketChainLinks)
	c := tx.Bucket(bucketEvents).Cursor()
	var ev Event
	scanned := 0
	for k, val := c.Seek(u64(x.next)); ; k, val = c.Next() {
		if k == nil {
			return true, nil
		}
		if len(k) != 8 {
			continue
		}
		seq := binary.BigEndian.Uint64(k)
		if seq > limit || seq >= maxSeq {
			return true, nil
		}
		x.next = seq + 1
		if decodeEvent(val, &ev) == nil && x.f.matchExport(&ev) {
			link := links.Get(k)
			if len(link) >= hashSize {
				link = link[:hashSize]
			} else {
				link = nil
			}
			x.event(seq, link, val)
		}
		// A selective filter decodes many events per line written: bound
		// the keys too, so the transaction stays short.
		if scanned++; len(x.buf) >= exportFlush || scanned >= verifyChunk {
			return false, nil
		}
	}
}

// matchExport is Query's filter plus its time bounds.
func (f *Filter) matchExport(ev *Event) bool {
	return (f.From.IsZero() || !ev.Time.Before(f.From)) &&
		(f.To.IsZero() || ev.Time.Before(f.To)) && f.match(ev)
}

func isObject(b []byte) bool { return len(b) >= 2 && b[0] == '{' && b[len(b)-1] == '}' }

// appendEventLine writes one event line; e's parts must be JSON objects.
func appendEventLine(dst []byte, seq uint64, link []byte, e *envelope) []byte {
	dst = append(dst, `{"seq":`...)
	dst = strconv.AppendUint(dst, seq, 10)
	if link != nil {
		dst = append(dst, `,"link":"`...)
		dst = hex.AppendEncode(dst, link)
		dst = append(dst, '"')
	}
	dst = append(dst, `,"commit":"`...)
	dst = hex.AppendEncode(dst, e.commit)
	dst = append(dst, '"')
	for _, part := range [][]byte{e.chained, e.personal} {
		if inner := part[1 : len(part)-1]; len(inner) > 0 {
			dst = append(append(dst, ','), inner...)
		}
	}
	if e.erased() {
		dst = append(dst, `,"erased":true,"erased_by":`...)
		dst = strconv.AppendUint(dst, e.erasedBy, 10)
	} else {
		dst = append(dst, `,"salt":"`...)
		dst = hex.AppendEncode(dst, e.salt)
		dst = append(dst, '"')
	}
	return append(dst, "}\n"...)
}

func appendTombstoneLine(dst []byte, seq uint64, link []byte) []byte {
	dst = append(dst, `{"seq":`...)
	dst = strconv.AppendUint(dst, seq, 10)
	dst = append(dst, `,"link":"`...)
	dst = hex.AppendEncode(dst, link)
	return append(dst, `","tombstone":true}`+"\n"...)
}

// chainCursor walks chain_links and events together, in seq order.
type chainCursor struct {
	lc, ec         *bolt.Cursor
	lk, lv, ek, ev []byte
}

// chainItem is one seq: its link value and its event value, either nil
// when absent. badKey marks a key that is not a seq (it is skipped).
type chainItem struct {
	seq         uint64
	link, event []byte
	badKey      bool
}

func newChainCursor(tx *bolt.Tx, from uint64) *chainCursor {
	c := &chainCursor{lc: tx.Bucket(bucketChainLinks).Cursor(), ec: tx.Bucket(bucketEvents).Cursor()}
	c.lk, c.lv = c.lc.Seek(u64(from))
	c.ek, c.ev = c.ec.Seek(u64(from))
	return c
}

func (c *chainCursor) next() (chainItem, bool) {
	if c.lk != nil && len(c.lk) != 8 {
		c.lk, c.lv = c.lc.Next()
		return chainItem{badKey: true}, true
	}
	if c.ek != nil && len(c.ek) != 8 {
		c.ek, c.ev = c.ec.Next()
		return chainItem{badKey: true}, true
	}
	if c.lk == nil && c.ek == nil {
		return chainItem{}, false
	}
	it := chainItem{seq: 1<<64 - 1}
	if c.lk != nil {
		it.seq = binary.BigEndian.Uint64(c.lk)
	}
	if c.ek != nil {
		it.seq = min(it.seq, binary.BigEndian.Uint64(c.ek))
	}
	if c.lk != nil && binary.BigEndian.Uint64(c.lk) == it.seq {
		it.link = c.lv
		if it.link == nil {
			it.link = []byte{} // present but empty: still not absent
		}
		c.lk, c.lv = c.lc.Next()
	}
	if c.ek != nil && binary.BigEndian.Uint64(c.ek) == it.seq {
		it.event = c.ev
		if it.event == nil {
			it.event = []byte{}
		}
		c.ek, c.ev = c.ec.Next()
	}
	return it, true
}

// Line fields: the chained fields, then the personal ones, then the
// verification metadata, each with an index into lineParser.vals.
var (
	chainedOrder  = jsonNames(reflect.TypeFor[chainedFields]())
	personalOrder = jsonNames(reflect.TypeFor[personalFields]())
	metaOrder     = []string{"seq", "link", "commit", "salt", "erased", "erased_by", "tombstone"}
	lineFields    = lineFieldIndex()
)

const (
	metaSeq = iota
	metaLink
	metaCommit
	metaSalt
	metaErased
	metaErasedBy
	metaTombstone
)

func jsonNames(t reflect.Type) []string {
	var names []string
	for i := range t.NumField() {
		f := t.Field(i)
		if name, _, _ := strings.Cut(f.Tag.Get("json"), ","); f.IsExported() && name != "" && name != "-" {
			names = append(names, name)
		}
	}
	return names
}

func lineFieldIndex() map[string]int {
	m := make(map[string]int)
	for i, n := range append(append(append([]string(nil), chainedOrder...), personalOrder...), metaOrder...) {
		m[n] = i
	}
	return m
}

// lineParser reads export lines; it is reused across lines so that offline
// verification does not allocate per line.
type lineParser struct {
	vals     [][]byte
	chained  []byte
	personal []byte
	link     [hashSize]byte
	commit   [hashSize]byte
	salt     [saltSize]byte
}

// parsedLine is one line's content; its slices alias the parser.
type parsedLine struct {
	seq       uint64
	tombstone bool
	hasLink   bool
	hasCommit bool
	rec       record
}

func metaIndex(i int) int { return len(chainedOrder) + len(personalOrder) + i }

func (p *lineParser) meta(i int) []byte { return p.vals[metaIndex(i)] }

// parse reads one line. It fails, never panics, on any input.
func (p *lineParser) parse(line []byte) (parsedLine, error) {
	var out parsedLine
	if !json.Valid(line) {
		return out, errors.New("not valid JSON")
	}
	if p.vals == nil {
		p.vals = make([][]byte, len(lineFields))
	}
	clear(p.vals)
	err := scanMembers(line, func(key, val []byte) error {
		name := key[1 : len(key)-1]
		if bytes.IndexByte(name, '\\') >= 0 {
			var s string
			if err := json.Unmarshal(key, &s); err != nil {
				return err
			}
			name = []byte(s)
		}
		i, ok := lineFields[string(name)]
		switch {
		case !ok:
			return fmt.Errorf("unknown field %q", name)
		case p.vals[i] != nil:
			return fmt.Errorf("field %q appears twice", name)
		}
		p.vals[i] = val
		return nil
	})
	if err != nil {
		return out, err
	}
	raw := p.meta(metaSeq)
	if raw == nil {
		return out, errors.New("no seq")
	}
	if out.seq, err = strconv.ParseUint(string(raw), 10, 64); err != nil || out.seq == 0 || out.seq >= maxSeq {
		return out, fmt.Errorf("seq %s is not a valid sequence number", raw)
	}
	if raw := p.meta(metaLink); raw != nil {
		if !parseHexString(raw, p.link[:]) {
			return out, errors.New("link is not a hex SHA-256")
		}
		out.hasLink = true
		out.rec.link = p.link[:]
	}
	if raw := p.meta(metaTombstone); raw != nil {
		if string(raw) != "true" || !out.hasLink {
			return out, errors.New(`a tombstone line needs "tombstone":true and a link`)
		}
		for i, v := range p.vals {
			if v != nil && i != metaIndex(metaSeq) && i != metaIndex(metaLink) && i != metaIndex(metaTombstone) {
				return out, errors.New("a tombstone line carries event fields")
			}
		}
		out.tombstone = true
		return out, nil
	}
	if raw := p.meta(metaCommit); raw != nil {
		if !parseHexString(raw, p.commit[:]) {
			return out, errors.New("commit is not a hex SHA-256")
		}
		out.hasCommit = true
		out.rec.commit = p.commit[:]
	}
	erased, erasedBy, salt := p.meta(metaErased), p.meta(metaErasedBy), p.meta(metaSalt)
	switch {
	case erased != nil:
		if string(erased) != "true" || erasedBy == nil || salt != nil {
			return out, errors.New(`an erased event needs "erased":true and "erased_by", and has no salt`)
		}
		if out.rec.erasedBy, err = strconv.ParseUint(string(erasedBy), 10, 64); err != nil {
			return out, errors.New("erased_by is not a sequence number")
		}
		out.rec.erased = true
	case erasedBy != nil:
		return out, errors.New(`"erased_by" without "erased"`)
	case salt != nil:
		if !parseHexString(salt, p.salt[:]) {
			return out, errors.New("salt is not 16 hex bytes")
		}
		out.rec.salt = p.salt[:]
	case out.hasCommit:
		return out, errors.New("an event that is not erased needs its salt")
	}
	p.chained = appendMembers(p.chained[:0], chainedOrder, p.vals)
	p.personal = appendMembers(p.personal[:0], personalOrder, p.vals[len(chainedOrder):])
	out.rec.chained, out.rec.personal = p.chained, p.personal
	return out, nil
}

// appendMembers rebuilds a part exactly as encoding/json wrote it: the
// present members in struct order, no whitespace.
func appendMembers(dst []byte, names []string, vals [][]byte) []byte {
	dst = append(dst, '{')
	for i, name := range names {
		if vals[i] == nil {
			continue
		}
		if len(dst) > 1 {
			dst = append(dst, ',')
		}
		dst = append(dst, '"')
		dst = append(dst, name...)
		dst = append(dst, `":`...)
		dst = append(dst, vals[i]...)
	}
	return append(dst, '}')
}

func parseHexString(raw, dst []byte) bool {
	if len(raw) != 2+2*len(dst) || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return false
	}
	_, err := hex.Decode(dst, raw[1:len(raw)-1])
	return err == nil
}

// scanMembers calls fn with the raw key (quotes included) and raw value of
// each member of the object b, which json.Valid accepted. It still checks
// every index, so that it cannot panic whatever it is given.
func scanMembers(b []byte, fn func(key, val []byte) error) error {
	bad := errors.New("not a JSON object")
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return bad
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return nil
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return bad
		}
		end := skipString(b, i)
		if end < 0 {
			return bad
		}
		key := b[i:end]
		i = skipSpace(b, end)
		if i >= len(b) || b[i] != ':' {
			return bad
		}
		i = skipSpace(b, i+1)
		end = skipValue(b, i)
		if end < 0 {
			return bad
		}
		if err := fn(key, b[i:end]); err != nil {
			return err
		}
		i = skipSpace(b, end)
		if i >= len(b) {
			return bad
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case '}':
			return nil
		default:
			return bad
		}
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the string starting at b[i], or -1.
func skipString(b []byte, i int) int {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return -1
}

// skipValue returns the index after the value starting at b[i], or -1.
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				if j = skipString(b, j); j < 0 {
					return -1
				}
				j--
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return j + 1
				}
			}
		}
		return -1
	}
	j := i
	for j < len(b) && !strings.ContainsRune(",}] \t\r\n", rune(b[j])) {
		j++
	}
	if j == i {
		return -1
	}
	return j
}

// maxLine bounds one NDJSON line; longer ones are reported, not buffered.
const maxLine = 64 << 20

// VerifyNDJSON verifies an export written by ExportNDJSON (a full one),
// offline: every line's commitment and link, the seq order, tombstones and
// erasures, as Store.Verify does. With a checkpoint it also detects a
// truncated file and a rollback; pub is the checkpoint key kept off the
// host (nil uses the key embedded in the checkpoint, and the report says
// that proves less). Without a checkpoint, a file cut at a line boundary
// cannot be told from a shorter store. Problems are in the report; the
// error is only for reading r.
func VerifyNDJSON(r io.Reader, cp *Checkpoint, pub ed25519.PublicKey) (VerifyReport, error) {
	start := time.Now()
	v := newVerifier()
	switch {
	case cp == nil:
		v.rep.CheckpointNote = "no checkpoint: a file truncated at a line boundary cannot be detected"
	case pub == nil:
		v.rep.CheckpointNote = "no public key given: the checkpoint's embedded key was used, which does not prove who signed it"
	}
	if cp != nil {
		v.setCheckpoint(cp, pub)
	}
	br := bufio.NewReaderSize(r, 64<<10)
	var p lineParser
	var buf []byte
	var gaps gapList
	for lineNo := int64(1); ; lineNo++ {
		line, tooLong, err := readLine(br, &buf)
		if err != nil && err != io.EOF {
			return v.rep, fmt.Errorf("reading line %d: %w", lineNo, err)
		}
		if err == io.EOF && len(line) == 0 {
			break
		}
		v.line = lineNo
		v.verifyLine(line, tooLong, &p, &gaps)
		if err == io.EOF {
			break
		}
	}
	v.line = 0
	for _, g := range gaps.ranges {
		v.reportGap(g.from, g.to)
	}
	if v.rep.Events+v.rep.Tombstones == 0 && cp == nil {
		v.problem(0, "empty", "the export holds no events: nothing was verified")
	}
	return v.finish(start, func(cpSeq uint64) (string, string) {
		return "truncated", fmt.Sprintf("the checkpoint covers seq %d, but the export ends at seq %d", cpSeq, v.rep.LastSeq)
	}), nil
}

func (v *verifier) reportGap(from, to uint64) {
	if from == to {
		v.problem(from, "deleted", fmt.Sprintf("seq %d is missing (no line, no tombstone)", from))
	} else {
		v.problem(from, "deleted", fmt.Sprintf("seqs %d..%d are missing (no lines, no tombstones)", from, to))
	}
}

func (v *verifier) verifyLine(line []byte, tooLong bool, p *lineParser, gaps *gapList) {
	if tooLong {
		v.problem(0, "malformed", fmt.Sprintf("line %d is longer than %d bytes", v.line, maxLine))
		return
	}
	pl, err := p.parse(line)
	if err != nil {
		v.problem(pl.seq, "malformed", fmt.Sprintf("line %d: %v", v.line, err))
		return
	}
	seq := pl.seq
	if seq < v.next {
		if gaps.remove(seq) {
			v.problem(seq, "reordered", fmt.Sprintf("seq %d comes after seq %d", seq, v.next-1))
		} else {
			v.problem(seq, "reordered", fmt.Sprintf("seq %d appears again after seq %d", seq, v.next-1))
		}
		return
	}
	if seq > v.next {
		if !gaps.add(v.next, seq-1) {
			v.reportGap(v.next, seq-1)
		}
		v.prevOK = false
	}
	switch {
	case pl.tombstone:
		v.tombstone(seq, p.link)
	case !pl.hasCommit:
		v.rep.Events++
		v.problem(seq, "unchained", fmt.Sprintf("seq %d has no commitment", seq))
		v.unproven(seq, "is unchained")
		if pl.hasLink {
			v.settle(seq, p.link, true)
		} else {
			v.settle(seq, v.prev, false)
		}
	default:
		v.event(seq, &pl.rec)
	}
}

// readLine returns the next line without its newline. Lines longer than
// maxLine are consumed and flagged rather than buffered.
func readLine(br *bufio.Reader, buf *[]byte) (line []byte, tooLong bool, err error) {
	frag, err := br.ReadSlice('\n')
	if err != bufio.ErrBufferFull {
		return bytes.TrimSuffix(frag, []byte("\n")), false, err
	}
	*buf = append((*buf)[:0], frag...)
	for err == bufio.ErrBufferFull {
		frag, err = br.ReadSlice('\n')
		if len(*buf)+len(frag) > maxLine {
			tooLong = true
			*buf = (*buf)[:0]
		}
		if !tooLong {
			*buf = append(*buf, frag...)
		}
	}
	return bytes.TrimSuffix(*buf, []byte("\n")), tooLong, err
}

type seqRange struct{ from, to uint64 }

// gapList remembers missing seqs while reading an export, so that a line
// showing up later is reported as reordered rather than the gap as a
// deletion. It is bounded; past the bound gaps are reported at once.
type gapList struct{ ranges []seqRange }

const maxGaps = 4096

func (g *gapList) add(from, to uint64) bool {
	if len(g.ranges) >= maxGaps {
		return false
	}
	g.ranges = append(g.ranges, seqRange{from, to})
	return true
}

func (g *gapList) remove(seq uint64) bool {
	for i, r := range g.ranges {
		if seq < r.from || seq > r.to {
			continue
		}
		switch {
		case r.from == r.to:
			g.ranges = append(g.ranges[:i], g.ranges[i+1:]...)
		case seq == r.from:
			g.ranges[i].from++
		case seq == r.to:
			g.ranges[i].to--
		default:
			g.ranges[i].to = seq - 1
			g.ranges = append(g.ranges, seqRange{seq + 1, r.to})
		}
		return true
	}
	return false
}
