package daemon

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"

	"github.com/vgrid/vgrid/profiles"
)

// maxPath bounds a path a request names.
const maxPath = 4096

// ErrRollbackConflict says a rollback changed nothing because the profile
// is not what the caller reviewed, or another rollback is under way.
var ErrRollbackConflict = profiles.ErrConflict

// ProfileFiles lists the profiles the store's runs drove (absolute paths)
// that exist: the only files the daemon shows or rolls back.
func (d *Daemon) ProfileFiles() ([]string, error) {
	runs, err := d.cfg.Store.Runs()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, r := range runs {
		for _, f := range r.Grid.Target.Files {
			if !filepath.IsAbs(f) && r.GridDir != "" {
				f = filepath.Join(r.GridDir, f)
			}
			f = filepath.Clean(f)
			if _, err := os.Stat(f); err == nil && !slices.Contains(out, f) {
				out = append(out, f)
			}
		}
	}
	sort.Strings(out)
	return out, nil
}

// Profile returns a profile's content, its digest (what a rollback must
// be told it replaces) and its backups. Only a profile a stored run
// drove is read.
func (d *Daemon) Profile(file string) (cur []byte, digest string, bs []profiles.Backup, err error) {
	if err := d.knownProfile(file); err != nil {
		return nil, "", nil, err
	}
	if cur, err = os.ReadFile(file); err != nil {
		return nil, "", nil, fmt.Errorf("%s cannot be read: %w", file, err)
	}
	if bs, err = profiles.Backups(file); err != nil {
		return nil, "", nil, err
	}
	return cur, Digest(cur), bs, nil
}

// Rollback restores a backup of a profile a stored run drove: backup is a
// backup's path or "latest", expect the digest of the content the caller
// reviewed (Profile's). It changes nothing when the file changed since
// (ErrRollbackConflict) or another rollback is under way; the current
// content is saved first as a pre-rollback backup. The API and the
// dashboard both roll back through it.
func (d *Daemon) Rollback(file, backup, expect string) (restored profiles.Backup, saved string, err error) {
	if len(backup) > maxPath || len(expect) > 128 {
		return profiles.Backup{}, "", fmt.Errorf("the backup's name (%d bytes) or the digest (%d bytes) is too long; nothing was changed", len(backup), len(expect))
	}
	if expect == "" {
		return profiles.Backup{}, "", errors.New(`say which content you reviewed: "expect" is the profile's sha256, as GET /v1/profiles/backups?file= returns it; nothing was changed`)
	}
	if err := d.knownProfile(file); err != nil {
		return profiles.Backup{}, "", err
	}
	b, err := profiles.FindBackup(file, backup)
	if err != nil {
		return profiles.Backup{}, "", err
	}
	if !d.rollbackMu.TryLock() {
		return profiles.Backup{}, "", fmt.Errorf("another rollback is in progress; nothing was changed: look at the profile again once it has finished: %w", ErrRollbackConflict)
	}
	defer d.rollbackMu.Unlock()
	if cur, err := os.ReadFile(file); err != nil || Digest(cur) != expect {
		return profiles.Backup{}, "", fmt.Errorf("%s changed since you reviewed it (another rollback or a run wrote it); nothing was changed: review the difference again: %w", file, ErrRollbackConflict)
	}
	_, saved, err = profiles.Rollback(file, b.Path, d.cfg.Now())
	return b, saved, err
}

// knownProfile refuses a path that no stored run drove: the daemon's
// token or session does not open arbitrary files.
func (d *Daemon) knownProfile(file string) error {
	if file == "" || len(file) > maxPath {
		return fmt.Errorf("a profile path of %d bytes: give the path of a profile a run of this daemon drove", len(file))
	}
	files, err := d.ProfileFiles()
	if err != nil {
		return err
	}
	if !slices.Contains(files, filepath.Clean(file)) {
		return fmt.Errorf("%q is not a profile that a run of this daemon drove (GET /v1/profiles lists them); nothing was read or changed", excerpt(file, 200))
	}
	return nil
}

// Digest is the sha256 of a profile's content, in hex.
func Digest(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
