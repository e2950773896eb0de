package orchestrator

import (
	"github.com/vgrid/vgrid/vllm"
)

func settingOf(name, value string) vllm.Setting {
	return vllm.Setting{Name: name, Value: value}
}
