package kernellab

import (
	"os/exec"
	"syscall"
)

// dieWithParent has the kernel kill the guest when the test binary dies,
// which frees its devices.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
