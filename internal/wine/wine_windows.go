//go:build wine

// Package wine lets Windows test binaries run under Wine 8 (Debian 12's),
// which CI uses to run the tests of the packages that need no Docker as
// Windows programs. Wine 8 does not implement FileDispositionInformationEx,
// and answers "not implemented" where Windows 10 before 1607 answers
// "invalid info class", so Go's os.RemoveAll fails there instead of falling
// back to the older call; every t.TempDir cleanup would then fail. Linked
// in only with the wine build tag, and only into test binaries
// (.ci/wine-tests builds them with -ldflags=-checklinkname=0).
package wine

import _ "unsafe" // for go:linkname

//go:linkname deleteatFallback internal/syscall/windows.TestDeleteatFallback
var deleteatFallback bool

func init() { deleteatFallback = true }
