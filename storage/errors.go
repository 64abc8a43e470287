package storage

import (
	"errors"
	"fmt"
	"io/fs"
	"syscall"

	berrors "go.etcd.io/bbolt/errors"
)

// minFileSize is the smallest valid bbolt file: four pages of the smallest
// page size bbolt writes (two meta pages, a freelist and a leaf).
const minFileSize = 4 * 1024

// Error kinds reported by ErrorKind, for metrics and for operators.
const (
	KindOK         = ""
	KindLocked     = "locked"
	KindFull       = "disk_full"
	KindPermission = "permission"
	KindCorrupt    = "corrupt"
	KindClosed     = "closed"
	KindIO         = "io"
)

// ErrorKind names the class of a storage error, so that a metric can count
// them with a bounded label and an operator knows what to fix.
func ErrorKind(err error) string {
	switch {
	case err == nil:
		return KindOK
	case errors.Is(err, ErrLocked):
		return KindLocked
	case errors.Is(err, ErrFull):
		return KindFull
	case errors.Is(err, fs.ErrPermission):
		return KindPermission
	case errors.Is(err, ErrCorrupt):
		return KindCorrupt
	case errors.Is(err, ErrClosed):
		return KindClosed
	}
	return KindIO
}

// classify maps bbolt and OS errors onto this package's errors.
func classify(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, berrors.ErrMaxSizeReached):
		return fmt.Errorf("%w: the configured max_db_size is reached: %v", ErrFull, err)
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return fmt.Errorf("%w: no space left on the device: %v", ErrFull, err)
	case errors.Is(err, berrors.ErrDatabaseNotOpen):
		return ErrClosed
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrChecksum), errors.Is(err, berrors.ErrVersionMismatch):
		return fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return err
}

// openError explains a failure to open the file.
func openError(path string, err error) error {
	err = classify(err)
	switch ErrorKind(err) {
	case KindPermission:
		return fmt.Errorf("opening audit database %s: %w (check that the user running Caddy owns data_dir)", path, err)
	case KindCorrupt:
		return fmt.Errorf("opening audit database %s: %w; restore it from a backup or move it away (see README, Backup and restore)", path, err)
	}
	return fmt.Errorf("opening audit database %s: %w", path, err)
}

// recoverCorruption turns a panic inside a bbolt transaction into an
// ErrCorrupt error. bbolt panics when it meets a damaged page (it assumes
// the file is sound once the meta pages check out); bbolt rolls the
// transaction back on the way out, so carrying on is safe, and one bad page
// must not take the proxy down with it.
func recoverCorruption(path string, err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("audit database %s: %w: %v", path, ErrCorrupt, r)
	}
}
