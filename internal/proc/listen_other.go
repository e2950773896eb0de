//go:build !linux && !windows

package proc

// OwnsListener cannot tell on this platform: known is false.
func OwnsListener(pid, port int) (owns, known bool) { return false, false }
