//go:build wine

package vllm

import _ "github.com/vgrid/vgrid/internal/wine" // Go's RemoveAll under Wine 8: see the package
