//go:build !linux

package kernellab

import "os/exec"

// dieWithParent: only Linux has a parent-death signal; the lab runs only
// there, this lets the package build (make cross vets it on darwin).
func dieWithParent(*exec.Cmd) {}
