// Package store will persist runs, trials, samples and events in bbolt.
//
// May import: bbolt and the core types. Not implemented yet (issue 5).
package store
