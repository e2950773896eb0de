// Package soak is vgrid's night soak: a night of a user's tuning, time
// scaled, run through `vgrid serve` on the simulator's image while a
// seeded schedule injects the faults a real night meets (engine death,
// decode stall, OOM kill, a container restarted by its restart policy,
// the Docker engine restarted, the daemon killed or stopped, the store's
// disk full, the profile's directory read-only), with invariants checked
// all along and at the end. The harness is TestNight (Linux, root, Docker);
// this package holds its pure parts: the fault schedule and the figures.
//
// May import: the standard library. (Its Linux test, the harness, also
// reads vgrid's stored runs and profile backups and drives a Docker
// engine.)
//
//	go test ./soak -run Night -v                                   # the short form (CI): every fault once, seed 1
//	go test ./soak -run Night -v -timeout 0 -soak.duration=2h -soak.seed=7   # the long form
//
// docs/soak.md says what is injected, what is checked and how to read
// the figures.
package soak
