package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime/debug"

	bolt "go.etcd.io/bbolt"
)

// CheckResult is what `vgrid store check` found.
type CheckResult struct {
	Path     string
	Size     int64
	Schema   uint64
	Runs     int
	Records  int      // keys read, in every bucket
	Problems []string // empty: the store is healthy
}

// Check reads a store without changing it: every record is read and
// decoded as vgrid reads it (a damaged page that would crash bbolt is
// reported, not followed), then bbolt's own consistency check (reachable
// pages, freelist, key order) runs over the whole file.
func Check(path string) (*CheckResult, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("store %s: %w", path, err)
	}
	res := &CheckResult{Path: path, Size: info.Size()}
	db, err := openBolt(path, true)
	if err != nil {
		var d *DamagedError
		if errors.As(err, &d) {
			res.Problems = append(res.Problems, "the file's header (meta pages): "+d.Cause)
			return res, nil
		}
		return nil, err
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error { checkTx(tx, res); return nil })
	return res, err
}

// checkTx reads every record in tx, then runs bbolt's consistency check
// when the walk could read the whole file.
func checkTx(tx *bolt.Tx, res *CheckResult) {
	if !walk(tx, res) {
		return // bbolt's check would follow the same damaged page
	}
	for cerr := range tx.Check() {
		res.Problems = append(res.Problems, "bbolt: "+cerr.Error())
	}
}

// walk reads every bucket and record; it reports false when the walk had
// to stop at damage it could not read past.
func walk(tx *bolt.Tx, res *CheckResult) (complete bool) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	where := "the root"
	defer func() {
		if r := recover(); r != nil {
			res.Problems = append(res.Problems, fmt.Sprintf("reading %s: %v (a damaged page; the records behind it cannot be read)", where, r))
			complete = false
		}
	}()
	root := tx.Bucket(bRoot)
	if root == nil {
		res.Problems = append(res.Problems, fmt.Sprintf("no %q bucket: not a vgrid store", bRoot))
		return true
	}
	res.Schema = schemaOf(root)
	for _, name := range [][]byte{bMeta, bRuns, bTrials, bReports, bEvents} {
		if root.Bucket(name) == nil {
			res.Problems = append(res.Problems, fmt.Sprintf("bucket %s/ is missing", name))
		}
	}
	var visit func(b *bolt.Bucket, path string, jsonValues bool)
	visit = func(b *bolt.Bucket, path string, jsonValues bool) {
		where = path
		b.ForEach(func(k, v []byte) error {
			res.Records++
			if v == nil { // a nested bucket
				visit(b.Bucket(k), path+keyName(k)+"/", jsonValues)
				where = path
				return nil
			}
			if jsonValues && !json.Valid(v) {
				res.Problems = append(res.Problems, fmt.Sprintf("%s%s: the value is not valid JSON (%d bytes)", path, keyName(k), len(v)))
			}
			return nil
		})
	}
	if runs := root.Bucket(bRuns); runs != nil {
		res.Runs = runs.Stats().KeyN
	}
	for _, name := range [][]byte{bRuns, bTrials, bReports, bEvents} {
		if b := root.Bucket(name); b != nil {
			visit(b, string(name)+"/", true)
		}
	}
	if b := root.Bucket(bMeta); b != nil {
		visit(b, "meta/", false)
	}
	return true
}

// keyName shows a key as text when it is printable, else as a number or hex.
func keyName(k []byte) string {
	printable := len(k) > 0
	for _, c := range k {
		printable = printable && c >= 0x20 && c < 0x7f
	}
	if printable {
		return string(k)
	}
	if len(k) == 8 {
		var n uint64
		for _, c := range k {
			n = n<<8 | uint64(c)
		}
		return fmt.Sprint(n)
	}
	return fmt.Sprintf("%x", k)
}
