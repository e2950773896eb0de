// Package archtest holds the tests that keep the architecture's drawing
// and the code together: each package's "May import" line in its doc
// comment against what it imports (go list). It has no code of its own.
//
// May import: the standard library.
package archtest
