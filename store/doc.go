// Package store persists vgrid's runs in one bbolt file: runs, trials, the
// raw benchmark reports every number is computed from, events and target
// locks. It implements orchestrator.Store; the orchestrator never imports
// bbolt.
//
// Schema (version 4: SchemaVersion, which TestDocSchemaVersion keeps this
// line true to), all under one versioned root bucket:
//
//	vgrid/
//	  meta/            "schema" -> uint64 BE schema version
//	  runs/            run id -> Run JSON (with the grid file as written)
//	  trials/          run id/ -> trial seq (uint64 BE) -> Trial JSON
//	  reports/         run id/ -> trial seq (uint64 BE)/ -> repetition (uint64 BE) -> benchmark.Report JSON
//	  events/          run id/ -> NextSequence (uint64 BE) -> Event JSON
//	  help/            vLLM build key -> HelpEntry JSON (its --help, as vgrid asked it)
//
// Beside the file: FILE.lock (the writer's lock) and FILE.backup (a checked
// copy kept by writers, see Backup).
//
// Run ids sort by creation time, to the millisecond
// (20261122-184700.123-ab12). Secrets are
// never stored: rendered flags are redacted by the drivers, and the
// benchmark client never records its API key.
//
// Writers hold FILE.lock for their life (a second writer fails at once);
// readers open the file read-only and work during a run. The bbolt file is
// opened for the length of each operation. A panic or memory fault inside
// bbolt on a damaged page becomes a DamagedError; Check says what is
// damaged. Target locks are host-wide lock files (DefaultLockDir), so two
// vgrids with different stores cannot drive one target. Migrations run in
// one transaction when a writer opens an older store; each is tested.
//
// May import: bbolt, orchestrator, failure and benchmark types,
// internal/lockfile, internal/diskwait, internal/atomicfile.
package store
