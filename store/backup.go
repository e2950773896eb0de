package store

import (
	"errors"
	"fmt"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/vgrid/vgrid/internal/atomicfile"
)

// BackupPath is where a writer keeps a copy of the store as it was when it
// last found it healthy: FILE.backup beside it.
func BackupPath(path string) string { return path + ".backup" }

// Backup copies the store to BackupPath after checking it (every record
// read, bbolt's consistency check): a damaged store never replaces the
// last good copy. The copy is a consistent snapshot (one read
// transaction), written to a temporary file, synced and renamed. Writers
// call it when they close, and the daemon after each run.
func (s *Store) Backup() (string, error) {
	if s.readOnly {
		return "", errors.New("a read-only store keeps no backup")
	}
	dst := BackupPath(s.path)
	// One transaction on the store's own handle checks and copies the same
	// snapshot; a damaged store is not copied. It is a write transaction,
	// rolled back: bbolt's check reads the freelist, which another
	// writer's commit changes under a read transaction (a false "reachable
	// freed", or a crash), so no commit may run meanwhile.
	err := atomicfile.Replace(dst, 0o600, func(f *os.File) error {
		return s.hold(func(tx *bolt.Tx) error {
			res := &CheckResult{Path: s.path}
			checkTx(tx, res)
			if len(res.Problems) > 0 {
				return &DamagedError{Path: s.path, Cause: res.Problems[0]}
			}
			_, err := tx.WriteTo(f)
			return err
		})
	})
	if err != nil {
		return "", fmt.Errorf("back up store %s: %w", s.path, err)
	}
	return dst, nil
}

// Remedy says what to do about a damaged store at path: restore the
// backup vgrid keeps (when there is one), or start a new store.
func Remedy(path string) string {
	fi, err := os.Stat(BackupPath(path))
	if err != nil {
		return fmt.Sprintf("there is no backup of it (%s); start a new store with --store NEW.db, keeping this file for what still reads", BackupPath(path))
	}
	return fmt.Sprintf("vgrid keeps a copy from the last time it found the store healthy, %s (%s): `vgrid store restore --store %s` puts it back (the damaged file is kept beside it), or start a new store with --store NEW.db",
		BackupPath(path), fi.ModTime().Format(time.DateTime), path)
}

// Restore replaces a store with its backup; the file it replaces is kept
// as FILE.damaged-YYYYMMDD-HHMMSS. It takes the store's owner lock, so no
// writer runs meanwhile, and refuses a backup that is itself damaged.
func Restore(path string, now time.Time) (kept string, err error) {
	backup := BackupPath(path)
	res, err := Check(backup)
	if err != nil {
		return "", fmt.Errorf("no backup to restore: %w", err)
	}
	if len(res.Problems) > 0 {
		return "", fmt.Errorf("the backup %s is damaged too (%s); start a new store with --store NEW.db", backup, res.Problems[0])
	}
	s, err := lockOwner(path)
	if err != nil {
		return "", err
	}
	defer s.Release()
	kept = fmt.Sprintf("%s.damaged-%s", path, now.Format("20060102-150405"))
	if err := os.Rename(path, kept); err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("keep the damaged store: %w", err)
	}
	if err := copyFile(backup, path); err != nil {
		os.Rename(kept, path)
		return "", fmt.Errorf("restore %s: %w; the damaged store is back in place", backup, err)
	}
	return kept, nil
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return atomicfile.Replace(dst, 0o600, func(f *os.File) error { _, err := f.Write(b); return err })
}
