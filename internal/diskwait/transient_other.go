//go:build !unix && !windows

package diskwait

func transient(error) bool { return false }
