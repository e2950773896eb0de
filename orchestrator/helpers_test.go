package orchestrator

import "github.com/vgrid/vgrid/profiles"

func settingOf(name, value string) profiles.Setting {
	return profiles.Setting{Name: name, Value: value}
}
