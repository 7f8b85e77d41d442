//go:build !linux

package testutil

import "os/exec"

// dieWithParent: only Linux has a parent-death signal; elsewhere the test's
// cleanup alone stops the process.
func dieWithParent(*exec.Cmd) {}
