package store

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/vgrid/vgrid/failure"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/vgrid/vgrid/benchmark"
	"github.com/vgrid/vgrid/internal/diskwait"
	"github.com/vgrid/vgrid/internal/lockfile"
	"github.com/vgrid/vgrid/orchestrator"
)

// SchemaVersion is the version this code writes.
const SchemaVersion = 4

var (
	bRoot    = []byte("vgrid")
	bMeta    = []byte("meta")
	bRuns    = []byte("runs")
	bTrials  = []byte("trials")
	bReports = []byte("reports")
	bEvents  = []byte("events")
	bHelp    = []byte("help")  // schema 4: vLLM --help outputs by image
	bLocks   = []byte("locks") // schema 1 only: target locks are lock files since schema 2
	kSchema  = []byte("schema")
)

// ErrNoStore says the store file does not exist yet.
var ErrNoStore = errors.New("no store yet")

// ErrNotFound is returned for an unknown run; it is also fs.ErrNotExist
// for callers that do not import the store (the dashboard).
var ErrNotFound error = notFound{}

type notFound struct{}

func (notFound) Error() string        { return "not found" }
func (notFound) Is(target error) bool { return target == fs.ErrNotExist }

// Store is a bbolt file. A writer (vgrid run, vgrid serve) holds the
// store's owner lock (FILE.lock) for its life, so a second writer fails at
// once; the bbolt file itself is opened only for the length of each
// operation, so readers (runs, report) work while a run writes.
type Store struct {
	path     string
	readOnly bool
	owner    *lockfile.Lock // writers only
	lockDir  string         // host-wide target locks

	mu   sync.Mutex
	db   *bolt.DB
	refs int

	// A write the file system refuses (disk full, read-only) is retried
	// every second for up to FullWait (default an hour), until Close:
	// OnWait is told the first refusal, OnBack how long it waited.
	FullWait time.Duration
	OnWait   func(err error)
	OnBack   func(waited time.Duration)
	// OnBackupFailed is told why Close could not keep a backup (a
	// damaged store, a directory it cannot write); the last good copy
	// stays.
	OnBackupFailed func(err error)
	closing        context.Context
	close          context.CancelFunc
}

// openTimeout bounds the wait for the bbolt file lock held by another
// process's operation (milliseconds, normally).
const openTimeout = 10 * time.Second

// Open opens or creates the store for writing: it takes the store's owner
// lock, then creates the file or migrates it to SchemaVersion.
func Open(path string) (*Store, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("store directory: %w", err)
	}
	owner, err := lockOwner(path)
	if err != nil {
		return nil, err
	}
	s := &Store{path: path, owner: owner, lockDir: DefaultLockDir(), FullWait: time.Hour}
	s.closing, s.close = context.WithCancel(context.Background())
	if err := s.migrate(); err != nil {
		owner.Release()
		return nil, err
	}
	return s, nil
}

// lockOwner takes the store's owner lock (FILE.lock) for this process.
func lockOwner(path string) (*lockfile.Lock, error) {
	exe, _ := os.Executable()
	holder := fmt.Sprintf("pid %d (%s %s)", os.Getpid(), filepath.Base(exe), strings.Join(os.Args[1:min(len(os.Args), 3)], " "))
	owner, err := lockfile.TryLock(path+".lock", holder)
	if err != nil {
		var held *lockfile.HeldError
		if errors.As(err, &held) {
			return nil, fmt.Errorf("store %s is held by another vgrid process (%s); read it with vgrid runs or vgrid report, which work during a run, talk to a daemon with --server, or use another --store", path, held.Holder)
		}
		return nil, err
	}
	return owner, nil
}

// OpenReadOnly opens an existing store for reading: it neither creates
// nor changes the file, and works while a writer runs.
func OpenReadOnly(path string) (*Store, error) {
	info, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("no store at %s: nothing has been run with it yet (vgrid looks at --store, then $VGRID_STORE, then %s): %w", path, DefaultPath(func(string) string { return "" }), ErrNoStore)
		}
		return nil, fmt.Errorf("store %s: %w", path, err)
	}
	if info.IsDir() {
		return nil, fmt.Errorf("store %s is a directory; --store takes the bbolt file", path)
	}
	s := &Store{path: path, readOnly: true, lockDir: DefaultLockDir()}
	return s, s.view(func(tx *bolt.Tx) error {
		root := tx.Bucket(bRoot)
		if root == nil {
			return fmt.Errorf("%s is a bbolt file but not a vgrid store (no %q bucket)", path, bRoot)
		}
		v := schemaOf(root)
		if v > SchemaVersion {
			return fmt.Errorf("store %s has schema %d, newer than this vgrid (%d): upgrade vgrid", path, v, SchemaVersion)
		}
		if v < SchemaVersion {
			return fmt.Errorf("store %s has schema %d; a writing command (vgrid run or vgrid serve) migrates it to %d", path, v, SchemaVersion)
		}
		return nil
	})
}

// Close releases the owner lock (writers), after keeping a backup of the
// store when it is healthy (Backup). Operations after Close fail.
func (s *Store) Close() error {
	if s.owner != nil && s.path != "" {
		if _, err := s.Backup(); err != nil && s.OnBackupFailed != nil {
			s.OnBackupFailed(err)
		}
	}
	if s.close != nil {
		s.close() // a write waiting for the file system gives up
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var err error
	if s.db != nil {
		err = s.db.Close()
		s.db = nil
	}
	if s.owner != nil {
		if rerr := s.owner.Release(); err == nil {
			err = rerr
		}
		s.owner = nil
	}
	s.path = ""
	return err
}

// Path is the store's file.
func (s *Store) Path() string { return s.path }

// RunDir is where a run's files live besides the store (the process
// driver's server logs): DIR/runs/RUN next to the store file. vgrid runs
// delete removes it with the run.
func (s *Store) RunDir(runID string) string {
	return filepath.Join(filepath.Dir(s.path), "runs", runID)
}

// DamagedError says the store file is damaged. Nothing was written.
type DamagedError struct {
	Path  string
	Cause string
}

func (e *DamagedError) Error() string {
	return fmt.Sprintf("store %s is damaged (%s); the file was not changed. `vgrid store check --store %s` lists what is damaged; %s", e.Path, e.Cause, e.Path, Remedy(e.Path))
}

// acquire opens the bbolt file, or shares the handle another operation of
// this process has open (bbolt's lock is per open file, so two opens in one
// process would block each other).
func (s *Store) acquire() (*bolt.DB, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.path == "" {
		return nil, errors.New("store is closed")
	}
	if s.db == nil {
		db, err := openBolt(s.path, s.readOnly)
		if err != nil {
			return nil, err
		}
		s.db = db
	}
	s.refs++
	return s.db, nil
}

func (s *Store) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.refs--; s.refs == 0 && s.db != nil {
		s.db.Close()
		s.db = nil
	}
}

func openBolt(path string, readOnly bool) (db *bolt.DB, err error) {
	// bbolt panics on some damaged pages while it opens the file, after it
	// has mapped and locked it; the mapping keeps the lock, and bbolt does
	// not hand it back. The file is closed, and the damage remembered for
	// this file (by device and inode): a later open in this process (the
	// daemon's) says it is damaged at once instead of waiting for the lock.
	info, _ := os.Stat(path)
	if info != nil {
		if cause, ok := damagedFiles.Load(fileKey(info)); ok {
			return nil, &DamagedError{Path: path, Cause: cause.(string)}
		}
	}
	var file *os.File
	defer func() {
		if r := recover(); r != nil {
			if file != nil {
				file.Close()
			}
			if info != nil {
				damagedFiles.Store(fileKey(info), fmt.Sprint(r))
			}
			db, err = nil, &DamagedError{Path: path, Cause: fmt.Sprint(r)}
		}
	}()
	opts := &bolt.Options{Timeout: openTimeout, ReadOnly: readOnly, OpenFile: func(name string, flag int, perm os.FileMode) (*os.File, error) {
		f, err := os.OpenFile(name, flag, perm)
		file = f
		return f, err
	}}
	db, err = bolt.Open(path, 0o600, opts)
	switch {
	case err == nil:
		return db, nil
	case errors.Is(err, berrors.ErrTimeout):
		return nil, fmt.Errorf("store %s stayed locked by another process for %s", path, openTimeout)
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrChecksum), errors.Is(err, berrors.ErrVersionMismatch), errors.Is(err, berrors.ErrInvalidMapping):
		return nil, &DamagedError{Path: path, Cause: err.Error()}
	}
	return nil, fmt.Errorf("open store %s: %w", path, err)
}

// damagedFiles are the store files (fileKey) whose opening panicked in
// this process.
var damagedFiles sync.Map

// fileKey names a file by what survives a rename: its size and
// modification time with its name on every platform; device and inode
// where the platform has them (fileid_*.go).
func fileKey(fi os.FileInfo) string {
	if id := fileID(fi); id != "" {
		return id
	}
	return fmt.Sprintf("%s/%d/%d", fi.Name(), fi.Size(), fi.ModTime().UnixNano())
}

// guard turns a panic or a memory fault inside bbolt (a damaged page) into
// a DamagedError. Deferred directly by every function that touches the
// file, in the goroutine that touches it.
func guard(path string, err *error) {
	if r := recover(); r != nil {
		*err = &DamagedError{Path: path, Cause: fmt.Sprint(r)}
	}
}

// with runs fn on the open handle; a damaged page that makes bbolt fault
// or panic is returned as a DamagedError instead of crashing the process.
func (s *Store) with(fn func(db *bolt.DB) error) (err error) {
	db, err := s.acquire()
	if err != nil {
		return err
	}
	defer s.release()
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer guard(s.path, &err)
	return fn(db)
}

func (s *Store) view(fn func(*bolt.Tx) error) error {
	return s.with(func(db *bolt.DB) error { return db.View(fn) })
}

// hold runs fn in a write transaction that it rolls back: fn sees a
// snapshot no writer changes until it returns, and nothing is written.
func (s *Store) hold(fn func(*bolt.Tx) error) error {
	if s.readOnly {
		return fmt.Errorf("store %s is open read-only", s.path)
	}
	return s.with(func(db *bolt.DB) error {
		tx, err := db.Begin(true)
		if err != nil {
			return err
		}
		defer tx.Rollback()
		return fn(tx)
	})
}

// update runs fn in a write transaction. A commit the file system refuses
// for a while (disk full, read-only: nothing is written, bbolt rolls the
// transaction back) is tried again until it goes through; see FullWait.
func (s *Store) update(fn func(*bolt.Tx) error) error {
	if s.readOnly {
		return fmt.Errorf("store %s is open read-only", s.path)
	}
	return diskwait.Retry(s.closing, s.FullWait, s.OnWait, s.OnBack, func() error {
		return s.with(func(db *bolt.DB) error { return db.Update(fn) })
	})
}

// migrations[v] upgrades a store from version v to v+1.
var migrations = map[uint64]func(root *bolt.Bucket) error{
	0: func(root *bolt.Bucket) error { // an empty file: create the layout
		for _, b := range [][]byte{bMeta, bRuns, bTrials, bReports, bEvents, bHelp} {
			if _, err := root.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	},
	1: func(root *bolt.Bucket) error { // target locks moved to host-wide lock files
		if root.Bucket(bLocks) == nil {
			return nil
		}
		return root.DeleteBucket(bLocks)
	},
	2: migrateTrials3,
	3: func(root *bolt.Bucket) error { // the cache of vLLM's --help, per image
		_, err := root.CreateBucketIfNotExists(bHelp)
		return err
	},
}

// migrateTrials3 brings stored trials to schema 3: the rendering's hash is
// render_hash (config_hash meant two things), and a failure reason is one
// of failure.Reason's names: a name it does not know becomes "error",
// the old name kept at the start of the detail.
func migrateTrials3(root *bolt.Bucket) error {
	trials := root.Bucket(bTrials)
	if trials == nil {
		return nil
	}
	return trials.ForEachBucket(func(run []byte) error {
		b := trials.Bucket(run)
		type kv struct{ k, v []byte }
		var changed []kv
		err := b.ForEach(func(k, v []byte) error {
			var t map[string]json.RawMessage
			if err := json.Unmarshal(v, &t); err != nil {
				return fmt.Errorf("trial %s/%x: %w", run, k, err)
			}
			dirty := false
			if h, ok := t["config_hash"]; ok {
				t["render_hash"] = h
				delete(t, "config_hash")
				dirty = true
			}
			if raw, ok := t["failure"]; ok && string(raw) != "null" {
				var f map[string]json.RawMessage
				if err := json.Unmarshal(raw, &f); err != nil {
					return fmt.Errorf("trial %s/%x failure: %w", run, k, err)
				}
				var reason, detail string
				json.Unmarshal(f["reason"], &reason)
				json.Unmarshal(f["detail"], &detail)
				if _, known := failure.ParseReason(reason); !known {
					f["reason"], _ = json.Marshal(failure.ReasonError.String())
					f["detail"], _ = json.Marshal(strings.TrimSpace(reason + ": " + detail))
					t["failure"], _ = json.Marshal(f)
					dirty = true
				}
			}
			if dirty {
				nv, err := json.Marshal(t)
				if err != nil {
					return err
				}
				changed = append(changed, kv{append([]byte(nil), k...), nv})
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, c := range changed {
			if err := b.Put(c.k, c.v); err != nil {
				return err
			}
		}
		return nil
	})
}

func schemaOf(root *bolt.Bucket) uint64 {
	if m := root.Bucket(bMeta); m != nil {
		if b := m.Get(kSchema); len(b) == 8 {
			return binary.BigEndian.Uint64(b)
		}
	}
	return 0
}

// migrate upgrades the file when its schema is older; a current file is
// not written to.
func (s *Store) migrate() error {
	current := false
	err := s.view(func(tx *bolt.Tx) error {
		root := tx.Bucket(bRoot)
		if root == nil {
			return nil
		}
		v := schemaOf(root)
		if v > SchemaVersion {
			return fmt.Errorf("store %s has schema %d, newer than this vgrid (%d): upgrade vgrid", s.path, v, SchemaVersion)
		}
		current = v == SchemaVersion
		return nil
	})
	if err != nil || current {
		return err
	}
	return s.update(func(tx *bolt.Tx) error {
		root, err := tx.CreateBucketIfNotExists(bRoot)
		if err != nil {
			return err
		}
		for v := schemaOf(root); v < SchemaVersion; v++ {
			if err := migrations[v](root); err != nil {
				return fmt.Errorf("migrate store from schema %d: %w", v, err)
			}
		}
		return root.Bucket(bMeta).Put(kSchema, u64(SchemaVersion))
	})
}

func u64(n uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, n)
	return b
}

func bucket(tx *bolt.Tx, name []byte) *bolt.Bucket {
	root := tx.Bucket(bRoot)
	if root == nil {
		panic(fmt.Sprintf("no %q root bucket", bRoot))
	}
	b := root.Bucket(name)
	if b == nil {
		panic(fmt.Sprintf("no %q bucket", name))
	}
	return b
}

func put(b *bolt.Bucket, k []byte, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put(k, data)
}

// PutRun saves a run. In the same transaction it reads the stored run and
// refuses a save that would undo the user's cancel (orchestrator.CheckSave):
// a cancel recorded by another process (the daemon's API) is final, and r
// carries it from then on.
func (s *Store) PutRun(r *orchestrator.Run) error {
	return s.update(func(tx *bolt.Tx) error {
		b := bucket(tx, bRuns)
		prev, err := runState(b.Get([]byte(r.ID)))
		if err != nil {
			return err
		}
		if err := orchestrator.CheckSave(prev, r); err != nil {
			return err
		}
		return put(b, []byte(r.ID), r)
	})
}

// runState decodes what CheckSave needs of a stored run (nil for none),
// without parsing its grid.
func runState(v []byte) (*orchestrator.Run, error) {
	if v == nil {
		return nil, nil
	}
	var st struct {
		ID              string                `json:"id"`
		State           orchestrator.RunState `json:"state"`
		CancelRequested time.Time             `json:"cancel_requested"`
	}
	if err := json.Unmarshal(v, &st); err != nil {
		return nil, fmt.Errorf("stored run: %w", err)
	}
	return &orchestrator.Run{ID: st.ID, State: st.State, CancelRequested: st.CancelRequested}, nil
}

// RequestCancel records the user's cancel of a run in one transaction
// (orchestrator.RequestCancel): a queued run is cancelled; a running or
// interrupted one is marked, and nothing starts it again. It returns the
// run as stored and whether this call changed it.
func (s *Store) RequestCancel(id string, now time.Time) (*orchestrator.Run, bool, error) {
	var data []byte
	var changed bool
	err := s.update(func(tx *bolt.Tx) error {
		b := bucket(tx, bRuns)
		v := b.Get([]byte(id))
		if v == nil {
			return fmt.Errorf("run %q: %w in %s (vgrid runs list shows the runs)", id, ErrNotFound, s.path)
		}
		var r orchestrator.Run
		if err := json.Unmarshal(v, &r); err != nil {
			return fmt.Errorf("run %s in %s: %w", id, s.path, err)
		}
		var err error
		if changed, err = orchestrator.RequestCancel(&r, now); err != nil || !changed {
			data = append([]byte(nil), v...)
			return err
		}
		if data, err = json.Marshal(&r); err != nil {
			return err
		}
		return b.Put([]byte(id), data)
	})
	if err != nil {
		return nil, false, err
	}
	var r orchestrator.Run
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, false, err
	}
	return &r, changed, nil
}

// GetRun loads a run; "latest" is the most recent one.
func (s *Store) GetRun(id string) (*orchestrator.Run, error) {
	var data []byte
	err := s.view(func(tx *bolt.Tx) error {
		b := bucket(tx, bRuns)
		var v []byte
		if id == "latest" {
			_, v = b.Cursor().Last()
		} else {
			v = b.Get([]byte(id))
		}
		if v == nil {
			return fmt.Errorf("run %q: %w in %s (vgrid runs list shows the runs)", id, ErrNotFound, s.path)
		}
		data = append([]byte(nil), v...)
		return nil
	})
	if err != nil {
		return nil, err
	}
	var r orchestrator.Run
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("run %s in %s: %w", id, s.path, err)
	}
	return &r, nil
}

// Runs lists runs, newest first.
func (s *Store) Runs() ([]*orchestrator.Run, error) {
	var raw [][]byte
	err := s.view(func(tx *bolt.Tx) error {
		c := bucket(tx, bRuns).Cursor()
		for k, v := c.Last(); k != nil; k, v = c.Prev() {
			raw = append(raw, append([]byte(nil), v...))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]*orchestrator.Run, 0, len(raw))
	for _, v := range raw {
		var r orchestrator.Run
		if err := json.Unmarshal(v, &r); err != nil {
			return nil, fmt.Errorf("a run in %s: %w", s.path, err)
		}
		out = append(out, &r)
	}
	return out, nil
}

// PutTrial saves a trial.
func (s *Store) PutTrial(t *orchestrator.Trial) error {
	return s.update(func(tx *bolt.Tx) error {
		b, err := bucket(tx, bTrials).CreateBucketIfNotExists([]byte(t.RunID))
		if err != nil {
			return err
		}
		return put(b, u64(uint64(t.Seq)), t)
	})
}

// Trials lists a run's trials in order.
func (s *Store) Trials(runID string) ([]*orchestrator.Trial, error) {
	var out []*orchestrator.Trial
	err := s.view(func(tx *bolt.Tx) error {
		b := bucket(tx, bTrials).Bucket([]byte(runID))
		if b == nil {
			return nil
		}
		return b.ForEach(func(_, v []byte) error {
			var t orchestrator.Trial
			if err := json.Unmarshal(v, &t); err != nil {
				return err
			}
			out = append(out, &t)
			return nil
		})
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Seq < out[j].Seq })
	return out, err
}

// PutReport saves one repetition's benchmark report (raw samples included),
// replacing one stored under the same repetition.
func (s *Store) PutReport(runID string, seq, rep int, r *benchmark.Report) error {
	data, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode report: %w", err)
	}
	return s.update(func(tx *bolt.Tx) error {
		rb, err := bucket(tx, bReports).CreateBucketIfNotExists([]byte(runID))
		if err != nil {
			return err
		}
		tb, err := rb.CreateBucketIfNotExists(u64(uint64(seq)))
		if err != nil {
			return err
		}
		return tb.Put(u64(uint64(rep)), data)
	})
}

// DeleteReports drops a trial's reports (a redone trial is measured anew:
// no sample counts twice).
func (s *Store) DeleteReports(runID string, seq int) error {
	return s.update(func(tx *bolt.Tx) error {
		rb := bucket(tx, bReports).Bucket([]byte(runID))
		if rb == nil || rb.Bucket(u64(uint64(seq))) == nil {
			return nil
		}
		return rb.DeleteBucket(u64(uint64(seq)))
	})
}

// Reports loads a trial's reports in repetition order.
func (s *Store) Reports(runID string, seq int) ([]*benchmark.Report, error) {
	var out []*benchmark.Report
	err := s.view(func(tx *bolt.Tx) error {
		rb := bucket(tx, bReports).Bucket([]byte(runID))
		if rb == nil {
			return nil
		}
		tb := rb.Bucket(u64(uint64(seq)))
		if tb == nil {
			return nil
		}
		return tb.ForEach(func(_, v []byte) error {
			var r benchmark.Report
			if err := json.Unmarshal(v, &r); err != nil {
				return err
			}
			out = append(out, &r)
			return nil
		})
	})
	return out, err
}

// AddEvent appends to a run's history.
func (s *Store) AddEvent(runID string, e orchestrator.Event) error {
	return s.update(func(tx *bolt.Tx) error {
		b, err := bucket(tx, bEvents).CreateBucketIfNotExists([]byte(runID))
		if err != nil {
			return err
		}
		n, err := b.NextSequence()
		if err != nil {
			return err
		}
		return put(b, u64(n), e)
	})
}

// Events lists a run's history after sequence number since (0: all), with
// each event's sequence number.
func (s *Store) Events(runID string, since uint64) ([]uint64, []orchestrator.Event, error) {
	var seqs []uint64
	var out []orchestrator.Event
	err := s.view(func(tx *bolt.Tx) error {
		b := bucket(tx, bEvents).Bucket([]byte(runID))
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, v := c.Seek(u64(since + 1)); k != nil; k, v = c.Next() {
			var e orchestrator.Event
			if err := json.Unmarshal(v, &e); err != nil {
				return err
			}
			seqs = append(seqs, binary.BigEndian.Uint64(k))
			out = append(out, e)
		}
		return nil
	})
	return seqs, out, err
}

// DeleteRun removes a run, its trials, reports and events, and its run
// directory (process logs). A run that a live process drives is refused.
func (s *Store) DeleteRun(id string) error {
	run, err := s.GetRun(id)
	if err != nil {
		return err
	}
	if run.State == orchestrator.RunRunning || run.State == orchestrator.RunQueued {
		if unlock, err := s.Lock(run.Target, run.ID); err != nil {
			return fmt.Errorf("run %s is %s and its target is held: %w; cancel or finish it first", run.ID, run.State, err)
		} else {
			unlock()
		}
		if run.State == orchestrator.RunQueued {
			return fmt.Errorf("run %s is queued; cancel it first (vgrid runs cancel %s)", run.ID, run.ID)
		}
	}
	err = s.update(func(tx *bolt.Tx) error {
		key := []byte(run.ID)
		if err := bucket(tx, bRuns).Delete(key); err != nil {
			return err
		}
		for _, name := range [][]byte{bTrials, bReports, bEvents} {
			if b := bucket(tx, name); b.Bucket(key) != nil {
				if err := b.DeleteBucket(key); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := os.RemoveAll(s.RunDir(run.ID)); err != nil {
		return fmt.Errorf("run %s was deleted from the store, but its files were not: %w", run.ID, err)
	}
	return nil
}

// DefaultLockDir is the host-wide directory of target locks: every vgrid
// on this host, whatever its store and its user, takes a target's lock
// there. It is the temporary folder itself (root's, sticky, like /tmp), so
// no user owns a folder of locks that others rely on; lockfile refuses a
// folder or a file that another user could have planted or could remove.
func DefaultLockDir() string { return os.TempDir() }

// lockPrefix names the target locks in DefaultLockDir.
const lockPrefix = "vgrid-target-"

// Lock takes a target for a run, host-wide: a lock file in DefaultLockDir,
// held by this process until unlock or exit (kill -9 included), whichever
// store the other vgrid uses.
func (s *Store) Lock(target, runID string) (func() error, error) {
	host, _ := os.Hostname()
	holder := fmt.Sprintf("run %s (pid %d on %s, store %s, since %s)", runID, os.Getpid(), host, s.path, time.Now().Format(time.RFC3339))
	l, err := lockfile.TryLock(filepath.Join(s.lockDir, lockPrefix+lockfile.Name(target)), holder)
	if err != nil {
		var held *lockfile.HeldError
		if errors.As(err, &held) {
			return nil, fmt.Errorf("target %s is driven by %s; wait for it, or stop that process", target, held.Holder)
		}
		return nil, fmt.Errorf("target %s: %w", target, err)
	}
	return l.Release, nil
}

// Held says whether a live process holds a target's lock, and who
// wrote that it does; it takes nothing (a free lock is released at once).
func (s *Store) Held(target string) (holder string, held bool) {
	l, err := lockfile.TryLock(filepath.Join(s.lockDir, lockPrefix+lockfile.Name(target)), "checking who holds it")
	if err == nil {
		l.Release()
		return "", false
	}
	var h *lockfile.HeldError
	if errors.As(err, &h) {
		return h.Holder, true
	}
	return "", false // cannot tell (an untrusted lock folder): not claimed
}

// Size is the store file's size in bytes.
func (s *Store) Size() int64 {
	var n int64
	s.view(func(tx *bolt.Tx) error { n = tx.Size(); return nil })
	return n
}

var _ orchestrator.Store = (*Store)(nil)

// HelpEntry is what one vLLM build printed for --help, as vgrid asked it.
type HelpEntry struct {
	Text string    `json:"text"` // the output, verbatim
	Args []string  `json:"args"` // what was run: [vllm serve --help=all]
	At   time.Time `json:"at"`
}

// Help returns the cached help of a vLLM build (key: the image ID and
// entry point, or an executable's identity); ok is false when none is.
func (s *Store) Help(key string) (e HelpEntry, ok bool, err error) {
	err = s.view(func(tx *bolt.Tx) error {
		root := tx.Bucket(bRoot)
		if root == nil || root.Bucket(bHelp) == nil {
			return nil // a store older than schema 4, opened read-only
		}
		v := root.Bucket(bHelp).Get([]byte(key))
		if v == nil {
			return nil
		}
		ok = true
		return json.Unmarshal(v, &e)
	})
	return e, ok, err
}

// PutHelp caches the help of a vLLM build.
func (s *Store) PutHelp(key string, e HelpEntry) error {
	return s.update(func(tx *bolt.Tx) error { return put(bucket(tx, bHelp), []byte(key), e) })
}
