// Package proc answers questions about other processes that differ by
// platform: is a process alive. One small file per platform.
//
// May import: the standard library and golang.org/x/sys.
package proc

// descendants is pid and every process below it, given each process's
// children.
func descendants(pid int, children map[int][]int) []int {
	out := []int{pid}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out
}
