// Package store persists vgrid's runs in one bbolt file: runs, trials, the
// raw benchmark reports every number is computed from, events and target
// locks. It implements orchestrator.Store; the orchestrator never imports
// bbolt.
//
// Schema (version 1), all under one versioned root bucket:
//
//	vgrid/
//	  meta/            "schema" -> uint64 BE schema version
//	  runs/            run id -> Run JSON
//	  trials/          run id/ -> trial seq (uint64 BE) -> Trial JSON
//	  reports/         run id/ -> trial seq (uint64 BE)/ -> repetition (uint64 BE) -> benchmark.Report JSON
//	  events/          run id/ -> NextSequence (uint64 BE) -> Event JSON
//	  locks/           target key -> Lock JSON (run id, pid, host, since)
//
// Run ids sort by creation time (20261122-184700-ab12cd). Secrets are
// never stored: rendered flags are redacted by the drivers, and the
// benchmark client never records its API key.
//
// The file is opened with a 1 s timeout, so a second process on the same
// store fails fast instead of hanging. Migrations run in one transaction
// at open; each is tested.
//
// May import: bbolt, orchestrator and benchmark types.
package store
