package storage

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
	"sync"

	bolt "go.etcd.io/bbolt"
)

// The integrity chain. Every event is linked to the one before it:
//
//	link_0 = 32 zero bytes
//	link_i = SHA-256(link_{i-1} || seq_i as 8 bytes big endian || commit_i || chained_i)
//	commit_i = SHA-256(salt_i || personal_i)
//
// chained_i is the JSON of the event's non-personal fields and personal_i
// the JSON of its personal fields, both stored verbatim in the envelope
// (codec.go). Links are kept per seq in chain_links, so a purged event
// leaves its link behind as a tombstone and the chain stays checkable
// across the gap; the last entry of chain_links is the chain head.
var (
	bucketChainLinks  = []byte("chain_links")
	bucketCheckpoints = []byte("checkpoints")
)

// chainBuckets hold the integrity chain.
var chainBuckets = [][]byte{bucketChainLinks, bucketCheckpoints}

// tombstoneMark follows the link of a purged event in chain_links.
const tombstoneMark = 'T'

// linkedParts is what chainEvent computed and encodeEvent stores.
type linkedParts struct {
	commit   [hashSize]byte
	salt     [saltSize]byte
	chained  []byte
	personal []byte
	scratch  *chainScratch // owns chained and personal; see release
}

// chainScratch is the per-event working memory of chainEvent: the encoded
// parts and a hasher. encodeEvent copies the parts into the stored
// envelope, after which putEvent hands the scratch back for the next
// event, which spares the ingest path two allocations and a buffer growth
// per event.
type chainScratch struct {
	buf []byte
	h   hash.Hash
}

var chainScratchPool = sync.Pool{New: func() any {
	return &chainScratch{buf: make([]byte, 0, 2048), h: sha256.New()}
}}

// release returns the scratch memory once the parts were copied out.
func (l *linkedParts) release() {
	if sc := l.scratch; sc != nil {
		l.scratch, l.chained, l.personal = nil, nil, nil
		chainScratchPool.Put(sc)
	}
}

// chainEvent links ev, whose Seq is assigned, into the integrity chain: it
// encodes the two parts, commits to the personal one, and records the new
// link. The head is the last entry of chain_links: a cursor descent over
// pages the batch has in memory already (about 150 ns), cheaper than
// rewriting a separate head record for every event, and never stale.
func chainEvent(tx *bolt.Tx, ev *Event) error {
	links := tx.Bucket(bucketChainLinks)
	headSeq, head := chainHead(links)
	if ev.Seq <= headSeq {
		return fmt.Errorf("linking seq %d: the chain head is already at seq %d", ev.Seq, headSeq)
	}
	l := &linkedParts{scratch: chainScratchPool.Get().(*chainScratch)}
	buf, err := appendChained(l.scratch.buf[:0], ev)
	if err != nil {
		l.release()
		return fmt.Errorf("encoding event %s: %w", ev.ID, err)
	}
	// Both parts share one allocation; personal starts where chained ends.
	l.chained = buf[:len(buf):len(buf)]
	l.personal = appendPersonal(buf[len(buf):], ev)
	// Keep whichever backing array grew, for the next event.
	if cap(l.personal) > cap(buf) {
		l.scratch.buf = l.personal[:0]
	} else {
		l.scratch.buf = buf[:0]
	}
	// crypto/rand, not a faster PRNG: once erasure deletes the salt, its
	// unpredictability is all that keeps a guessable personal part (an IP
	// address, a user name) from being confirmed against the commitment.
	if _, err := rand.Read(l.salt[:]); err != nil {
		return fmt.Errorf("reading a salt: %w", err)
	}
	l.commit = commitment(l.scratch.h, l.salt[:], l.personal)
	link := chainLink(l.scratch.h, head[:], ev.Seq, l.commit[:], l.chained)
	// Links are appended in key order, so packed pages cost nothing later.
	links.FillPercent = 1
	// bbolt keeps the value until the commit: carve it from the batch.
	ib, _ := batchFor(tx)
	val := ib.carve(hashSize)
	copy(val, link[:])
	if err := links.Put(u64(ev.Seq), val); err != nil {
		return err
	}
	ev.linked = l
	return nil
}

// chainHead returns the seq and link of the last linked event (0 and the
// zero link for an empty chain).
func chainHead(links *bolt.Bucket) (uint64, [hashSize]byte) {
	var link [hashSize]byte
	k, v := links.Cursor().Last()
	if len(k) != 8 || len(v) < hashSize {
		return 0, link
	}
	copy(link[:], v)
	return binary.BigEndian.Uint64(k), link
}

// walkBound is the last seq a walk over the chain must reach: the chain
// head, or a later stored event (one that escaped the chain is damage the
// walk must see).
func walkBound(tx *bolt.Tx) uint64 {
	bound, _ := chainHead(tx.Bucket(bucketChainLinks))
	if k, _ := tx.Bucket(bucketEvents).Cursor().Last(); len(k) == 8 {
		bound = max(bound, binary.BigEndian.Uint64(k))
	}
	return bound
}

// chainTombstone records that retention purged ev: its link stays in
// chain_links, marked, so verification continues across the gap and tells
// a purge from a deletion. Call it in the transaction that deletes the
// event, before or after the delete. It is idempotent.
func chainTombstone(tx *bolt.Tx, ev *Event) error {
	links := tx.Bucket(bucketChainLinks)
	k := u64(ev.Seq)
	v := links.Get(k)
	switch {
	case v == nil:
		return fmt.Errorf("tombstoning seq %d: it has no chain link (run a verification)", ev.Seq)
	case isTombstone(v):
		return nil
	}
	nv := make([]byte, hashSize+1)
	copy(nv, v[:hashSize])
	nv[hashSize] = tombstoneMark
	return links.Put(k, nv)
}

func isTombstone(linkVal []byte) bool {
	return len(linkVal) == hashSize+1 && linkVal[hashSize] == tombstoneMark
}

// commitment is the salted hash of an event's personal part.
func commitment(h hash.Hash, salt, personal []byte) [hashSize]byte {
	h.Reset()
	h.Write(salt)
	h.Write(personal)
	var sum [hashSize]byte
	h.Sum(sum[:0])
	return sum
}

// chainLink computes link_i from link_{i-1}. h is reset first, so callers
// hashing many events reuse one.
func chainLink(h hash.Hash, prev []byte, seq uint64, commit, chained []byte) [hashSize]byte {
	h.Reset()
	var s [8]byte
	binary.BigEndian.PutUint64(s[:], seq)
	h.Write(prev)
	h.Write(s[:])
	h.Write(commit)
	h.Write(chained)
	var sum [hashSize]byte
	h.Sum(sum[:0])
	return sum
}
