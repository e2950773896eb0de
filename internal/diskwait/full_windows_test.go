//go:build windows

package diskwait

var full = errorDiskFull
