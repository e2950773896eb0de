//go:build !unix

package sim

import "os"

// faultSignals: Windows has no user signals; faults come from the
// environment only (VLLM_SIM_DIE_AFTER_*, VLLM_SIM_STALL_AFTER_REQUESTS).
func faultSignals() (sigs <-chan os.Signal, stop func()) { return nil, func() {} }

func isDieSignal(os.Signal) bool { return false }
