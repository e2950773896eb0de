package store

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/vgrid/vgrid/benchmark"
	"github.com/vgrid/vgrid/orchestrator"
)

// SchemaVersion is the version this code writes.
const SchemaVersion = 1

var (
	bRoot    = []byte("vgrid")
	bMeta    = []byte("meta")
	bRuns    = []byte("runs")
	bTrials  = []byte("trials")
	bReports = []byte("reports")
	bEvents  = []byte("events")
	bLocks   = []byte("locks")
	kSchema  = []byte("schema")
)

// ErrNotFound is returned for an unknown run.
var ErrNotFound = errors.New("not found")

// Store is a bbolt file.
type Store struct {
	db   *bolt.DB
	path string
	host string
	pid  int
}

// DefaultPath is $VGRID_STORE, else ~/.local/share/vgrid/vgrid.db (XDG).
func DefaultPath(getenv func(string) string) string {
	if p := getenv("VGRID_STORE"); p != "" {
		return p
	}
	base := getenv("XDG_DATA_HOME")
	if base == "" {
		home := getenv("HOME")
		if home == "" {
			home, _ = os.UserHomeDir()
		}
		base = filepath.Join(home, ".local", "share")
	}
	return filepath.Join(base, "vgrid", "vgrid.db")
}

// Open opens or creates the store and migrates it to SchemaVersion.
func Open(path string) (*Store, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("store directory: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("store %s is held by another vgrid process (a daemon?); use --server to talk to it, or another --store", path)
		}
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	host, _ := os.Hostname()
	s := &Store{db: db, path: path, host: host, pid: os.Getpid()}
	if err := s.migrate(); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// Close closes the file.
func (s *Store) Close() error { return s.db.Close() }

// Path is the store's file.
func (s *Store) Path() string { return s.path }

// migrations[v] upgrades a store from version v to v+1.
var migrations = map[uint64]func(root *bolt.Bucket) error{
	0: func(root *bolt.Bucket) error { // an empty file: create the layout
		for _, b := range [][]byte{bMeta, bRuns, bTrials, bReports, bEvents, bLocks} {
			if _, err := root.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	},
}

func (s *Store) migrate() error {
	return s.db.Update(func(tx *bolt.Tx) error {
		root, err := tx.CreateBucketIfNotExists(bRoot)
		if err != nil {
			return err
		}
		v := uint64(0)
		if m := root.Bucket(bMeta); m != nil {
			if b := m.Get(kSchema); len(b) == 8 {
				v = binary.BigEndian.Uint64(b)
			}
		}
		if v > SchemaVersion {
			return fmt.Errorf("store %s has schema %d, newer than this vgrid (%d): upgrade vgrid", s.path, v, SchemaVersion)
		}
		for ; v < SchemaVersion; v++ {
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

func bucket(tx *bolt.Tx, name []byte) *bolt.Bucket { return tx.Bucket(bRoot).Bucket(name) }

func put(b *bolt.Bucket, k []byte, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put(k, data)
}

// PutRun saves a run.
func (s *Store) PutRun(r *orchestrator.Run) error {
	return s.db.Update(func(tx *bolt.Tx) error { return put(bucket(tx, bRuns), []byte(r.ID), r) })
}

// GetRun loads a run; "latest" is the most recent one.
func (s *Store) GetRun(id string) (*orchestrator.Run, error) {
	var r orchestrator.Run
	err := s.db.View(func(tx *bolt.Tx) error {
		b := bucket(tx, bRuns)
		var data []byte
		if id == "latest" {
			_, data = b.Cursor().Last()
		} else {
			data = b.Get([]byte(id))
		}
		if data == nil {
			return fmt.Errorf("run %q: %w in %s (vgrid runs list shows the runs)", id, ErrNotFound, s.path)
		}
		return json.Unmarshal(data, &r)
	})
	if err != nil {
		return nil, err
	}
	return &r, nil
}

// Runs lists runs, newest first.
func (s *Store) Runs() ([]*orchestrator.Run, error) {
	var out []*orchestrator.Run
	err := s.db.View(func(tx *bolt.Tx) error {
		c := bucket(tx, bRuns).Cursor()
		for k, v := c.Last(); k != nil; k, v = c.Prev() {
			var r orchestrator.Run
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("run %s: %w", k, err)
			}
			out = append(out, &r)
		}
		return nil
	})
	return out, err
}

// PutTrial saves a trial.
func (s *Store) PutTrial(t *orchestrator.Trial) error {
	return s.db.Update(func(tx *bolt.Tx) error {
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
	err := s.db.View(func(tx *bolt.Tx) error {
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
	return s.db.Update(func(tx *bolt.Tx) error {
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
	return s.db.Update(func(tx *bolt.Tx) error {
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
	err := s.db.View(func(tx *bolt.Tx) error {
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
	return s.db.Update(func(tx *bolt.Tx) error {
		b, err := bucket(tx, bEvents).CreateBucketIfNotExists([]byte(runID))
		if err != nil {
			return err
		}
		n, _ := b.NextSequence()
		return put(b, u64(n), e)
	})
}

// Events lists a run's history after sequence number since (0: all), with
// each event's sequence number.
func (s *Store) Events(runID string, since uint64) ([]uint64, []orchestrator.Event, error) {
	var seqs []uint64
	var out []orchestrator.Event
	err := s.db.View(func(tx *bolt.Tx) error {
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

// lock is who drives a target.
type lock struct {
	RunID string    `json:"run_id"`
	PID   int       `json:"pid"`
	Host  string    `json:"host"`
	Since time.Time `json:"since"`
}

// alive reports whether the lock's holder still runs. Only a process on
// this host can be checked; a lock from another host is taken as alive.
func (s *Store) alive(l lock) bool {
	if l.Host != s.host {
		return true
	}
	if l.PID == s.pid {
		return true
	}
	err := syscall.Kill(l.PID, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// Lock takes a target for a run. A lock held by a live process of another
// run is refused; a lock left by a dead process (kill -9) is taken over.
func (s *Store) Lock(target, runID string) (func() error, error) {
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := bucket(tx, bLocks)
		if data := b.Get([]byte(target)); data != nil {
			var l lock
			if json.Unmarshal(data, &l) == nil && s.alive(l) && !(l.RunID == runID && l.PID == s.pid) {
				return fmt.Errorf("target %s is driven by run %s (pid %d on %s since %s); wait for it, or stop that process",
					target, l.RunID, l.PID, l.Host, l.Since.Format(time.RFC3339))
			}
		}
		return put(b, []byte(target), lock{RunID: runID, PID: s.pid, Host: s.host, Since: time.Now()})
	})
	if err != nil {
		return nil, err
	}
	return func() error {
		return s.db.Update(func(tx *bolt.Tx) error {
			b := bucket(tx, bLocks)
			var l lock
			if data := b.Get([]byte(target)); data != nil && json.Unmarshal(data, &l) == nil && l.RunID == runID && l.PID == s.pid {
				return b.Delete([]byte(target))
			}
			return nil
		})
	}, nil
}

// Size is the store file's size in bytes.
func (s *Store) Size() int64 {
	var n int64
	s.db.View(func(tx *bolt.Tx) error { n = tx.Size(); return nil })
	return n
}

var _ orchestrator.Store = (*Store)(nil)
