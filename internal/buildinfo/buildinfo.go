// Package buildinfo says which vgrid this is: the module version and the
// VCS revision Go stamped into the binary (debug.ReadBuildInfo). The CLI's
// `vgrid version`, the daemon's /healthz and every stored run use it.
//
// May import: the standard library.
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Info describes a build.
type Info struct {
	Version  string `json:"version"`            // module version: v0.3.1, or (devel) for a build from a checkout
	Revision string `json:"revision,omitempty"` // VCS revision
	Time     string `json:"time,omitempty"`     // commit time
	Modified bool   `json:"modified,omitempty"` // built from a tree with uncommitted changes
	Go       string `json:"go"`
}

// override is set with -ldflags "-X github.com/vgrid/vgrid/internal/buildinfo.override=v1.2.3".
var override string

// Read returns this binary's build information.
func Read() Info {
	i := Info{Version: "(devel)", Go: runtime.Version()}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v := bi.Main.Version; v != "" {
			i.Version = v
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				i.Revision = s.Value
			case "vcs.time":
				i.Time = s.Value
			case "vcs.modified":
				i.Modified = s.Value == "true"
			}
		}
	}
	if override != "" {
		i.Version = override
	}
	return i
}

// String is the one-line form: "(devel) 45ca3145c0de+modified 2026-11-22T18:54:01Z go1.26.8".
func (i Info) String() string {
	s := i.Version
	if i.Revision != "" {
		rev := i.Revision
		if len(rev) > 12 {
			rev = rev[:12]
		}
		s += " " + rev
		if i.Modified {
			s += "+modified"
		}
	}
	if i.Time != "" {
		s += " " + i.Time
	}
	return fmt.Sprintf("%s %s", s, i.Go)
}
