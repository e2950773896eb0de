package profiles

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/vgrid/vgrid/internal/atomicfile"
)

// TimeLayout is the timestamp of backup names, as the user's scripts wrote it.
const TimeLayout = "20060102_150405"

// Backup is a saved copy of a profile.
type Backup struct {
	Path  string    `json:"path"`
	Label string    `json:"label,omitempty"`
	Time  time.Time `json:"time"`
	Size  int64     `json:"size"`
	mod   time.Time // tie-break between backups of the same second
}

var labelRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// ValidLabel reports whether a backup label is usable in a file name.
func ValidLabel(l string) error {
	if !labelRe.MatchString(l) {
		return fmt.Errorf("backup label %q: use letters, digits, '.', '_' and '-' only", l)
	}
	return nil
}

// Backups lists the backups of a profile, oldest first: vgrid's and the
// user's own "medium.yml.backup_<label>_<YYYYMMDD_HHMMSS>" next to it, and
// "backups/medium_<YYYYMMDD_HHMMSS>.yml".
func Backups(profile string) ([]Backup, error) {
	dir, base := filepath.Dir(profile), filepath.Base(profile)
	ext := filepath.Ext(base)
	stem := strings.TrimSuffix(base, ext)
	next := regexp.MustCompile(`^` + regexp.QuoteMeta(base) + `\.backup_(?:(.+)_)?(\d{8}_\d{6})(?:_(\d+))?$`)
	sub := regexp.MustCompile(`^` + regexp.QuoteMeta(stem) + `_(\d{8}_\d{6})(?:_(\d+))?` + regexp.QuoteMeta(ext) + `$`)
	var out []Backup
	scan := func(d string, re *regexp.Regexp, labelIdx, timeIdx int) error {
		entries, err := os.ReadDir(d)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("list backups: %w", err)
		}
		for _, e := range entries {
			m := re.FindStringSubmatch(e.Name())
			if m == nil || !e.Type().IsRegular() {
				continue
			}
			t, err := time.ParseInLocation(TimeLayout, m[timeIdx], time.Local)
			if err != nil {
				continue
			}
			info, err := e.Info()
			if err != nil {
				continue
			}
			b := Backup{Path: filepath.Join(d, e.Name()), Time: t, Size: info.Size(), mod: info.ModTime()}
			if labelIdx > 0 {
				b.Label = m[labelIdx]
			}
			out = append(out, b)
		}
		return nil
	}
	if err := scan(dir, next, 1, 2); err != nil {
		return nil, err
	}
	if err := scan(filepath.Join(dir, "backups"), sub, 0, 1); err != nil {
		return nil, err
	}
	slices.SortStableFunc(out, func(a, b Backup) int {
		if c := a.Time.Compare(b.Time); c != 0 {
			return c
		}
		if c := a.mod.Compare(b.mod); c != 0 {
			return c
		}
		return strings.Compare(a.Path, b.Path)
	})
	return out, nil
}

// FindBackup resolves "latest", a path, or a backup's file name.
func FindBackup(profile, ref string) (Backup, error) {
	all, err := Backups(profile)
	if err != nil {
		return Backup{}, err
	}
	if len(all) == 0 {
		return Backup{}, fmt.Errorf("%s has no backups (looked for %s.backup_* and backups/)", profile, filepath.Base(profile))
	}
	if ref == "" || ref == "latest" {
		return all[len(all)-1], nil
	}
	for _, b := range all {
		if b.Path == ref || filepath.Base(b.Path) == filepath.Base(ref) {
			return b, nil
		}
	}
	return Backup{}, fmt.Errorf("no backup %q of %s; `vgrid profile backups -f %s` lists them", ref, profile, profile)
}

// WriteBackup copies the profile's current bytes to a new backup next to it
// and returns its path. The copy is written atomically.
func WriteBackup(profile, label string, now time.Time) (string, error) {
	if label == "" {
		label = "vgrid"
	}
	if err := ValidLabel(label); err != nil {
		return "", err
	}
	src, err := os.ReadFile(profile)
	if err != nil {
		return "", fmt.Errorf("back up %s: %w", profile, err)
	}
	info, err := os.Stat(profile)
	if err != nil {
		return "", err
	}
	base := fmt.Sprintf("%s.backup_%s_%s", profile, label, now.Format(TimeLayout))
	path := base
	for n := 2; ; n++ {
		if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
			break
		}
		path = fmt.Sprintf("%s_%d", base, n)
	}
	if err := WriteFileAtomic(path, src, info.Mode().Perm()); err != nil {
		return "", fmt.Errorf("back up %s: %w", profile, err)
	}
	return path, nil
}

// WriteFileAtomic replaces path with data (atomicfile.Replace): on any
// error path is left as it was and no temporary file is left.
func WriteFileAtomic(path string, data []byte, perm fs.FileMode) error {
	// A profile that is a symbolic link is written where it points: the
	// link stays a link (a rename over it would replace it with a file).
	if target, err := filepath.EvalSymlinks(path); err == nil {
		path = target
	}
	return atomicfile.Replace(path, perm, func(f *os.File) error {
		if _, err := f.Write(data); err != nil {
			return fmt.Errorf("write %s: %w", f.Name(), err)
		}
		return nil
	})
}

// Write backs up the profile and writes the plan's bytes atomically, unless
// the file changed on disk since the plan was made. It returns the backup path.
func (p *Plan) Write(label string, now time.Time) (string, error) {
	cur, err := os.ReadFile(p.File)
	if err != nil {
		return "", fmt.Errorf("re-read %s before writing: %w", p.File, err)
	}
	if string(cur) != string(p.Before) {
		return "", fmt.Errorf("%s changed on disk since it was read; nothing was written, run the command again", p.File)
	}
	info, err := os.Stat(p.File)
	if err != nil {
		return "", err
	}
	backup, err := WriteBackup(p.File, label, now)
	if err != nil {
		return "", err
	}
	if err := WriteFileAtomic(p.File, p.After, info.Mode().Perm()); err != nil {
		return backup, fmt.Errorf("write %s: %w; the file is unchanged", p.File, err)
	}
	return backup, nil
}

// Rollback restores a backup (ref: path, file name or "latest") over the
// profile, after backing up the current content with label "pre-rollback"
// so the rollback itself can be undone. It returns the restored backup and
// ErrConflict says a rollback changed nothing: the profile is not what the
// caller reviewed, or another rollback is under way.
var ErrConflict = errors.New("the profile changed or is being rolled back")

// the new backup of what was replaced.
func Rollback(profile, ref string, now time.Time) (restored Backup, saved string, err error) {
	b, err := FindBackup(profile, ref)
	if err != nil {
		return Backup{}, "", err
	}
	data, err := os.ReadFile(b.Path)
	if err != nil {
		return Backup{}, "", fmt.Errorf("read backup: %w", err)
	}
	info, err := os.Stat(profile)
	if err != nil {
		return Backup{}, "", fmt.Errorf("rollback %s: %w", profile, err)
	}
	saved, err = WriteBackup(profile, "pre-rollback", now)
	if err != nil {
		return Backup{}, "", err
	}
	if err := WriteFileAtomic(profile, data, info.Mode().Perm()); err != nil {
		return Backup{}, saved, fmt.Errorf("rollback %s: %w; the file is unchanged", profile, err)
	}
	return b, saved, nil
}
