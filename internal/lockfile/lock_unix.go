//go:build unix

package lockfile

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"strconv"

	"golang.org/x/sys/unix"
)

// lock takes a flock(2) on the file: one per open file description, so two
// Locks of the same file in one process exclude each other too.
func lock(f *os.File) error {
	err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	if errors.Is(err, unix.EWOULDBLOCK) {
		return ErrLocked
	}
	return err
}

func unlock(f *os.File) error { return unix.Flock(int(f.Fd()), unix.LOCK_UN) }

// trusted: root's, or this user's.
func trusted(uid uint32) bool { return uid == 0 || int(uid) == os.Geteuid() }

func owner(uid uint32) string {
	if u, err := user.LookupId(strconv.Itoa(int(uid))); err == nil {
		return fmt.Sprintf("user %s (uid %d)", u.Username, uid)
	}
	return fmt.Sprintf("uid %d", uid)
}

// checkDir refuses a lock folder that another user could change under
// this one: it must belong to root or to this user, and a folder that
// others may write must have the sticky bit. A folder reached through a
// symbolic link is judged by the link's owner too.
func checkDir(dir string) error {
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		return fmt.Errorf("lock directory: %w", err)
	}
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		if !trusted(st.Uid) {
			return &UntrustedError{Path: dir, Why: "the folder is a symbolic link that belongs to " + owner(st.Uid), Do: "remove the link, or have root create the folder"}
		}
		if err := unix.Stat(dir, &st); err != nil {
			return fmt.Errorf("lock directory: %w", err)
		}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return &UntrustedError{Path: dir, Why: "it is not a folder", Do: "remove it"}
	}
	if !trusted(st.Uid) {
		return &UntrustedError{Path: dir, Why: "the folder belongs to " + owner(st.Uid) + ", who could remove or replace the locks in it", Do: "use a folder of root's or your own"}
	}
	if st.Mode&0o022 != 0 && st.Mode&unix.S_ISVTX == 0 {
		return &UntrustedError{Path: dir, Why: fmt.Sprintf("the folder is writable by others (mode %o) without the sticky bit, so anyone could remove a lock", st.Mode&0o7777), Do: "chmod +t it (as /tmp is), or use a private folder"}
	}
	return nil
}

// open opens the lock file without following a symbolic link, creating it
// when absent, and checks that it is a plain file with one link that
// belongs to root or to this user; own says it is this user's (its holder
// line may be written). Another user's file is never used: its owner
// could remove it while a lock is held on it.
func open(path string) (f *os.File, own bool, err error) {
	const base = unix.O_NOFOLLOW | unix.O_CLOEXEC | unix.O_NONBLOCK // NONBLOCK: a planted FIFO must not hang the open
	fd, err := unix.Open(path, base|unix.O_RDWR|unix.O_CREAT|unix.O_EXCL, 0o644)
	if errors.Is(err, unix.EEXIST) {
		fd, err = unix.Open(path, base|unix.O_RDWR, 0)
		if errors.Is(err, unix.EACCES) { // root's file, opened by another user: flock needs no write access
			fd, err = unix.Open(path, base|unix.O_RDONLY, 0)
		}
	}
	switch {
	case errors.Is(err, unix.ELOOP):
		return nil, false, &UntrustedError{Path: path, Why: "it is a symbolic link (planted by someone: vgrid never creates one)", Do: "remove it"}
	case err != nil:
		return nil, false, fmt.Errorf("open lock file %s: %w", path, err)
	}
	f = os.NewFile(uintptr(fd), path)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		f.Close()
		return nil, false, fmt.Errorf("lock file %s: %w", path, err)
	}
	var why string
	switch {
	case st.Mode&unix.S_IFMT != unix.S_IFREG:
		why = fmt.Sprintf("it is not a plain file (mode %o)", st.Mode)
	case st.Nlink != 1:
		why = fmt.Sprintf("it has %d hard links (one may be another file of the system)", st.Nlink)
	case !trusted(st.Uid):
		why = "it belongs to " + owner(st.Uid) + ", who could remove it while vgrid holds it"
		if lock(f) == ErrLocked {
			defer f.Close()
			return nil, false, &HeldError{Path: path, Holder: readHolder(f) + " (a lock file of " + owner(st.Uid) + ")"}
		}
	}
	if why != "" {
		f.Close()
		return nil, false, &UntrustedError{Path: path, Why: why, Do: "remove it (no vgrid holds it), then try again"}
	}
	// Back to blocking mode for reads and writes.
	if err := unix.SetNonblock(fd, false); err != nil {
		f.Close()
		return nil, false, err
	}
	return f, int(st.Uid) == os.Geteuid(), nil
}
