package storage

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/caddy-audit/caddy-audit/internal/securefile"
)

// ErrCheckpointsDisabled means the store was opened without
// Options.CheckpointKeyPath, so it cannot sign checkpoints.
var ErrCheckpointsDisabled = errors.New("checkpoints are disabled: no checkpoint key configured")

// Checkpoint is a signed statement that the integrity chain had head Link at
// Seq. Kept off the host (it is small JSON), it lets Verify and VerifyNDJSON
// detect a truncated tail or a database rolled back to an older copy, which
// the chain alone cannot: whoever rewrites the file can rewrite the chain.
// Verify it with the public key alone (Checkpoint.Verify).
type Checkpoint struct {
	// Version is the format of the signed statement; this code writes 1.
	Version int `json:"version"`
	// Seq is the sequence number of the chain head (0 for an empty store).
	Seq uint64 `json:"seq"`
	// Link is the chain link at Seq, hex.
	Link string `json:"link"`
	// Count is how many events were stored (purged ones excluded) when the
	// checkpoint was made. It is informational: retention changes it later.
	Count uint64 `json:"count"`
	// Time is when the checkpoint was made, UTC.
	Time time.Time `json:"time"`
	// KeyID names the signing key: hex of the first 8 bytes of the SHA-256
	// of the public key.
	KeyID string `json:"key_id"`
	// PublicKey is the signing key, so a checkpoint file is
	// self-describing. It proves nothing by itself: pin the key from a copy
	// kept elsewhere (Store.CheckpointPublicKey) and pass it to Verify.
	PublicKey []byte `json:"public_key"`
	// Prev is the hex SHA-256 of the previous checkpoint's signed statement,
	// empty for the first: checkpoints form a chain of their own.
	Prev string `json:"prev,omitempty"`
	// Signature is the Ed25519 signature of the statement.
	Signature []byte `json:"signature"`
}

// statement is the exact text that is signed. Text rather than JSON: it
// must be rebuilt byte for byte from a parsed checkpoint, and a fixed
// line format leaves no room for encoder differences.
func (c *Checkpoint) statement() []byte {
	prev := c.Prev
	if prev == "" {
		prev = "-"
	}
	return []byte("caddy-audit checkpoint v" + strconv.Itoa(c.Version) +
		"\nseq: " + strconv.FormatUint(c.Seq, 10) +
		"\nlink: " + c.Link +
		"\ncount: " + strconv.FormatUint(c.Count, 10) +
		"\ntime: " + c.Time.UTC().Format(time.RFC3339Nano) +
		"\nkey_id: " + c.KeyID +
		"\nprev: " + prev + "\n")
}

// Verify checks the signature with pub. A nil pub uses the key embedded in
// the checkpoint, which only shows the checkpoint is intact, not who made
// it.
func (c *Checkpoint) Verify(pub ed25519.PublicKey) error {
	if c.Version != 1 {
		return fmt.Errorf("checkpoint version %d is not supported", c.Version)
	}
	if pub == nil {
		pub = c.PublicKey
	}
	if len(pub) != ed25519.PublicKeySize {
		return errors.New("checkpoint: no valid Ed25519 public key")
	}
	if id := keyID(pub); id != c.KeyID {
		return fmt.Errorf("checkpoint names key %q, but the public key given is %q", c.KeyID, id)
	}
	if len(c.PublicKey) != 0 && !pub.Equal(ed25519.PublicKey(c.PublicKey)) {
		return errors.New("checkpoint embeds a different public key than the one given")
	}
	if l, err := hex.DecodeString(c.Link); err != nil || len(l) != hashSize {
		return errors.New("checkpoint link is not a hex SHA-256")
	}
	if !ed25519.Verify(pub, c.statement(), c.Signature) {
		return errors.New("checkpoint signature does not verify")
	}
	return nil
}

func (c *Checkpoint) link() [hashSize]byte {
	var l [hashSize]byte
	_, _ = hex.Decode(l[:], []byte(c.Link)) // checked by Verify; a bad link only fails to match
	return l
}

// keyID is a short, stable name for a public key.
func keyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// checkpointer is the store's signing state.
type checkpointer struct {
	mu  sync.Mutex // serializes Checkpoint, so Prev is always the latest
	key ed25519.PrivateKey
	pub ed25519.PublicKey
	id  string
}

// openChain prepares the integrity chain when the store opens: loads (or
// creates) the checkpoint key. (Schema-1 events are linked by the
// migration to schema 2, see migrate.go.)
func (s *Store) openChain(opts Options) error {
	if opts.CheckpointKeyPath != "" {
		key, err := loadOrCreateCheckpointKey(opts.CheckpointKeyPath)
		if err != nil {
			return err
		}
		s.cp.key = key
		s.cp.pub = key.Public().(ed25519.PublicKey)
		s.cp.id = keyID(s.cp.pub)
	}
	return nil
}

// CheckpointPublicKey returns the key that verifies this store's
// checkpoints. Copy it off the host: a checkpoint is only as good as the
// key it is checked with.
func (s *Store) CheckpointPublicKey() (ed25519.PublicKey, error) {
	if s.cp.key == nil {
		return nil, ErrCheckpointsDisabled
	}
	return s.cp.pub, nil
}

// Checkpoint signs and stores a checkpoint of the current chain head and
// returns it. When nothing was appended since the latest checkpoint, that
// one is returned instead of a duplicate. It refuses to sign a head behind
// the latest checkpoint, or one whose link at the latest checkpoint's seq
// changed: that database was truncated or replaced, and signing would
// legitimize it. Call it periodically and ship the result off the host.
func (s *Store) Checkpoint() (Checkpoint, error) {
	if s.cp.key == nil {
		return Checkpoint{}, ErrCheckpointsDisabled
	}
	s.cp.mu.Lock()
	defer s.cp.mu.Unlock()
	cp := Checkpoint{Version: 1, KeyID: s.cp.id, PublicKey: s.cp.pub}
	var latest *Checkpoint
	err := s.view(func(tx *bolt.Tx) error {
		links := tx.Bucket(bucketChainLinks)
		seq, link := chainHead(links)
		var err error
		if latest, err = latestCheckpoint(tx); err != nil {
			return err
		}
		if latest != nil {
			if seq < latest.Seq {
				return fmt.Errorf("chain head seq %d is behind the latest checkpoint (seq %d): the database was truncated or rolled back; run a verification", seq, latest.Seq)
			}
			if latest.Seq > 0 {
				v := links.Get(u64(latest.Seq))
				if len(v) < hashSize || hex.EncodeToString(v[:hashSize]) != latest.Link {
					return fmt.Errorf("the chain link at seq %d no longer matches the latest checkpoint: the database was rewritten or replaced; run a verification", latest.Seq)
				}
			}
			if seq == latest.Seq {
				return nil
			}
			sum := sha256.Sum256(latest.statement())
			cp.Prev = hex.EncodeToString(sum[:])
		}
		cp.Seq, cp.Link = seq, hex.EncodeToString(link[:])
		cp.Count = eventCount(tx)
		return nil
	})
	if err != nil {
		return Checkpoint{}, err
	}
	if latest != nil && cp.Link == "" {
		return *latest, nil
	}
	cp.Time = time.Now().UTC()
	cp.Signature = ed25519.Sign(s.cp.key, cp.statement())
	val, err := json.Marshal(&cp)
	if err != nil {
		return Checkpoint{}, err
	}
	err = s.update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketCheckpoints).Put(u64(cp.Seq), val)
	})
	if err != nil {
		return Checkpoint{}, fmt.Errorf("storing checkpoint: %w", err)
	}
	return cp, nil
}

// LatestCheckpoint returns the most recent stored checkpoint, or
// ErrNotFound. It works with checkpoints disabled: old ones stay readable.
func (s *Store) LatestCheckpoint() (Checkpoint, error) {
	var cp *Checkpoint
	err := s.view(func(tx *bolt.Tx) error {
		var err error
		cp, err = latestCheckpoint(tx)
		return err
	})
	if err != nil {
		return Checkpoint{}, err
	}
	if cp == nil {
		return Checkpoint{}, ErrNotFound
	}
	return *cp, nil
}

// latestCheckpoint returns nil when none is stored.
func latestCheckpoint(tx *bolt.Tx) (*Checkpoint, error) {
	k, v := tx.Bucket(bucketCheckpoints).Cursor().Last()
	if k == nil {
		return nil, nil
	}
	var cp Checkpoint
	if err := json.Unmarshal(v, &cp); err != nil {
		return nil, fmt.Errorf("decoding stored checkpoint: %w", err)
	}
	return &cp, nil
}

const checkpointKeyPEM = "PRIVATE KEY"

// loadOrCreateCheckpointKey reads the PKCS#8 PEM Ed25519 key at path,
// creating it (0600, directory 0700) when it does not exist. A key readable
// by group or others is refused: whoever holds it can sign a checkpoint for
// a rewritten trail.
func loadOrCreateCheckpointKey(path string) (ed25519.PrivateKey, error) {
	data, err := securefile.Read(path)
	if errors.Is(err, fs.ErrNotExist) {
		return createCheckpointKey(path)
	}
	if err != nil {
		return nil, fmt.Errorf("reading checkpoint key: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != checkpointKeyPEM {
		return nil, fmt.Errorf("checkpoint key %s: not a PEM %q block", path, checkpointKeyPEM)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("checkpoint key %s: %w", path, err)
	}
	key, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("checkpoint key %s: %T is not an Ed25519 key", path, k)
	}
	return key, nil
}

func createCheckpointKey(path string) (ed25519.PrivateKey, error) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	data := pem.EncodeToMemory(&pem.Block{Type: checkpointKeyPEM, Bytes: der})
	err = securefile.Create(path, data)
	if errors.Is(err, fs.ErrExist) {
		// Another process created it meanwhile: use theirs.
		return loadOrCreateCheckpointKey(path)
	}
	if err != nil {
		return nil, fmt.Errorf("writing checkpoint key: %w", err)
	}
	return key, nil
}
