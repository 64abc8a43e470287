// Package securefile writes secrets to disk: the HMAC key, the checkpoint
// signing key and the bootstrap admin key all go through it, so they are
// all created the same careful way.
package securefile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
)

// Create creates path with mode 0600 (its directory 0700) and
// durably writes data to it. It fails with an error matching fs.ErrExist
// if path exists: the caller decides whether an existing secret wins.
func Create(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	// O_EXCL refuses to follow a symlink planted at path, so the secret
	// cannot be redirected into a file someone else can read.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if err := writeSync(f, data); err != nil {
		_ = os.Remove(path)
		return err
	}
	return syncDir(dir)
}

// Write is Create, except that an existing file is
// replaced atomically rather than truncated: a reader sees the old secret
// or the new one, never half of one.
func Write(path string, data []byte) error {
	err := Create(path, data)
	if errors.Is(err, fs.ErrExist) {
		return replaceSecretFile(filepath.Dir(path), path, data)
	}
	return err
}

func replaceSecretFile(dir, path string, data []byte) error {
	// CreateTemp opens with O_EXCL and mode 0600; rename replaces a symlink
	// at path itself, never its target.
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	if err := writeSync(f, data); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return syncDir(dir)
}

// writeSync writes data, flushes it to disk and closes f.
func writeSync(f *os.File, data []byte) error {
	_, err := f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// syncDir makes a new or renamed directory entry durable; without it the
// file could vanish in a power loss that the committed key survives.
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil // directories cannot be synced there; NTFS journals names
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// Read reads a secret written by Create or Write. A file that group or
// others can access is refused (whoever reads it holds the secret); the
// mode is checked on the open file, so it is the file that was read. A
// missing file is an error matching fs.ErrNotExist.
func Read(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if runtime.GOOS != "windows" && info.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s is accessible by group or others (mode %v); chmod 600 it", path, info.Mode().Perm())
	}
	return io.ReadAll(f)
}
