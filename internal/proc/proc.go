// Package proc answers questions about other processes that differ by
// platform: is a process alive. One small file per platform.
//
// May import: the standard library and golang.org/x/sys.
package proc
