// Package kernellab boots Debian's own kernels in a qemu guest (TCG) with a
// small initramfs (busybox, a real systemd-journald, cgroup v2 only) and
// runs a test's shell script there as root, so tests can cause real OOM
// kills in kubelet-shaped cgroups on kernels the host does not run. The
// guest's journal, console and any files the script writes come back.
//
// Packages are fetched with `apt-get download`, unpacked with `dpkg-deb
// -x` into a cache (see CacheDir), never installed. qemu-system-x86_64
// (Debian package qemu-system-x86) must be installed.
package kernellab

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Kernel is a Debian kernel image package.
type Kernel struct {
	// Package is the Debian package, e.g. linux-image-6.1.0-57-cloud-amd64.
	Package string
}

// Release is the kernel release the package installs (uname -r).
func (k Kernel) Release() string { return strings.TrimPrefix(k.Package, "linux-image-") }

func (k Kernel) String() string { return k.Release() }

// The kernels tests boot: Debian bookworm's 6.1 and its 6.12 backport
// (+deb12), cloud flavour (boots from an initramfs with a serial console,
// needs no modules). The ABI is in the package name, so a kernel never
// changes under a fixture named after it.
var (
	Debian61  = Kernel{Package: "linux-image-6.1.0-57-cloud-amd64"}
	Debian612 = Kernel{Package: "linux-image-6.12.117+deb12-cloud-amd64"}
)

// Kernels are the kernels the lab tests run on.
func Kernels() []Kernel { return []Kernel{Debian61, Debian612} }

// userland are the packages of the guest's userland: busybox for the
// shell, systemd-journald and journalctl with the libraries they link.
var userland = []string{
	"busybox-static", "systemd", "libsystemd-shared", "libsystemd0",
	"libacl1", "libapparmor1", "libaudit1", "libblkid1", "libc6", "libcap-ng0", "libcap2", "libcrypt1",
	"libgcrypt20", "libgpg-error0", "libip4tc2", "libkmod2", "liblz4-1", "liblzma5",
	"libmount1", "libpam0g", "libpcre2-8-0", "libseccomp2", "libselinux1", "libssl3", "libzstd1",
}

//go:embed init.sh
var initScript []byte

// LibScript is /lab/lib.sh in the guest: shell helpers for scripts
// (kl_mkcg, kl_cgpath, kl_hog, kl_mark, kl_wait_empty, kl_event).
//
//go:embed lib.sh
var LibScript []byte

// Config is one guest run.
type Config struct {
	Kernel Kernel
	// Script is run by sh as root in /lab after journald started (unless
	// NoJournald). Files
	// it writes into $OUT (/out, not in subdirectories) come back in
	// Result.Outputs; its stdout and stderr as Outputs["script.log"].
	Script string
	// Files are added to the initramfs (e.g. HostBinary's).
	Files []File
	// MemoryMB is the guest's memory (default 512). The initramfs stays in
	// it, so large Files need more.
	MemoryMB int
	// Timeout bounds the whole boot (default 3 min).
	Timeout time.Duration
	// Cmdline is appended to the kernel command line.
	Cmdline string
	// CPUs is the guest's number of vCPUs (qemu -smp; default 1). Each is
	// a host thread under TCG.
	CPUs int
	// Net are qemu arguments for the guest's network (e.g. a -netdev tap
	// and a virtio-net-pci -device); none when empty.
	Net []string
	// Modules are kernel modules of Kernel's package loaded (with the
	// modules they depend on) before the script, e.g. virtio_net, bridge,
	// veth, overlay: the cloud kernels build them as modules.
	Modules []string
	// TmpfsRoot moves the guest's root to a tmpfs before anything starts:
	// pivot_root(2), which runc uses, refuses the initramfs's rootfs.
	TmpfsRoot bool
	// Systemd runs Debian's systemd as PID 1 (it mounts cgroup2 and the
	// API filesystems; kubelet's and runc's systemd cgroup driver talk to
	// it), with the lab's /init as its one service. Implies TmpfsRoot.
	Systemd bool
	// Control opens a command channel (ttyS3) for Guest.Exec while the
	// script runs; the script then usually ends with kl_wait_stop.
	Control bool
	// NoJournald: the guest runs no journald, as a node whose kernel log
	// is only /dev/kmsg (Talos, Alpine, minimal images). Result has no
	// JournalExport then.
	NoJournald bool
}

// Result is what came back from the guest.
type Result struct {
	// Console is the serial console (ttyS0): kernel messages of level 0-3
	// and the lab's progress lines.
	Console []byte
	// JournalExport is `journalctl -o export` of the guest's journald at
	// the end of the run.
	JournalExport []byte
	// Outputs are the files the script left in $OUT, by name.
	Outputs map[string][]byte
	// ExitCode is the script's exit status.
	ExitCode int
	// Boot is how long qemu ran.
	Boot time.Duration
}

// Error is a failed guest run; it carries the console.
type Error struct {
	Msg     string
	Console []byte
	Log     []byte // the script's output, when it came back
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("kernellab: " + e.Msg)
	if len(e.Log) > 0 {
		b.WriteString("\n--- script output (tail) ---\n" + tail(e.Log, 60))
	}
	b.WriteString("\n--- guest console (tail) ---\n" + tail(e.Console, 80))
	return b.String()
}

func tail(b []byte, lines int) string {
	s := strings.ReplaceAll(string(b), "\r", "")
	ls := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(ls) > lines {
		ls = append([]string{fmt.Sprintf("[... %d lines]", len(ls)-lines)}, ls[len(ls)-lines:]...)
	}
	return strings.Join(ls, "\n")
}

// QEMU is the emulator the lab runs.
const QEMU = "qemu-system-x86_64"

// Check says what is missing to run the lab on this machine, or nil.
func Check() error {
	if _, err := exec.LookPath(QEMU); err != nil {
		return errors.New("kernellab: " + QEMU + " is missing: apt-get install qemu-system-x86 (.ci/run does)")
	}
	for _, p := range []string{"apt-get", "dpkg-deb"} {
		if _, err := exec.LookPath(p); err != nil {
			return fmt.Errorf("kernellab: %s is missing (a Debian machine is needed to fetch the guest's packages)", p)
		}
	}
	return nil
}

// Prepare downloads and unpacks what a run of k needs, and builds the
// initramfs's base (busybox, journald): the first call on a machine takes
// a while (downloads), later ones find everything in the cache. It
// returns the kernel image and the base archive.
func Prepare(k Kernel) (vmlinuz, base string, err error) {
	cache, err := CacheDir()
	if err != nil {
		return "", "", err
	}
	unlock, err := lockCache(cache)
	if err != nil {
		return "", "", fmt.Errorf("kernellab: cache %s: %w", cache, err)
	}
	defer unlock()
	kdir, err := unpacked(cache, k.Package)
	if err != nil {
		return "", "", err
	}
	vmlinuz = filepath.Join(kdir, "boot", "vmlinuz-"+k.Release())
	if _, serr := os.Stat(vmlinuz); serr != nil {
		return "", "", fmt.Errorf("kernellab: %s has no boot/vmlinuz-%s", k.Package, k.Release())
	}
	base, err = baseArchive(cache)
	return vmlinuz, base, err
}

// baseArchive builds (once) the userland part of the initramfs.
func baseArchive(cache string) (string, error) {
	var ts trees
	var ids []string
	for _, p := range userland {
		d, err := unpacked(cache, p)
		if err != nil {
			return "", err
		}
		ts = append(ts, d)
		id, _ := os.ReadFile(filepath.Join(d, ".unpacked"))
		ids = append(ids, strings.TrimSpace(string(id)))
	}
	sum := sha256.Sum256([]byte(strings.Join(ids, "\n") + "\n" + baseVersion))
	out := filepath.Join(cache, "initramfs", "base-"+hex.EncodeToString(sum[:8])+".cpio")
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	files, err := baseFiles(ts)
	if err != nil {
		return "", err
	}
	if err = os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return "", err
	}
	f, err := os.CreateTemp(filepath.Dir(out), "base-*.tmp")
	if err != nil {
		return "", err
	}
	defer os.Remove(f.Name())
	if err := writeArchive(f, files); err != nil {
		f.Close()
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	return out, os.Rename(f.Name(), out)
}

// baseVersion changes when baseFiles changes what it puts in.
const baseVersion = "base-2"

// systemdUnit is the lab's one service under systemd (Config.Systemd): the
// rest of /init, from journald to the results and the power-off.
const systemdUnit = `[Unit]
Description=kernel lab
DefaultDependencies=no

[Service]
Type=simple
ExecStart=/init
StandardInput=null
StandardOutput=null
StandardError=null
`

func baseFiles(ts trees) ([]File, error) {
	files, err := ts.closure("/lib/systemd/systemd-journald", "/bin/journalctl", "/lib/systemd/systemd")
	if err != nil {
		return nil, err
	}
	bb, fi := ts.lstat("/bin/busybox")
	if fi == nil {
		return nil, errors.New("kernellab: busybox-static has no /bin/busybox")
	}
	files = append(files,
		File{Path: "/bin/busybox", Source: filepath.Join(bb, "bin/busybox"), Mode: 0o755},
		File{Path: "/bin/sh", Link: "busybox"},
		// journald wants a machine ID; a fixed one keeps fixtures stable.
		File{Path: "/etc/machine-id", Data: []byte("6b6c61622d6f6f6d6b696c6c2d6c6162\n")},
		File{Path: "/etc/passwd", Data: []byte("root:x:0:0:root:/root:/bin/sh\n")},
		File{Path: "/etc/group", Data: []byte("root:x:0:\nsystemd-journal:x:101:\n")},
	)
	return files, nil
}

// Run boots cfg.Kernel with cfg's script and files and returns what came
// back. A guest that does not finish (panic, timeout, no result) is an
// *Error carrying the console; so is a script that exits non-zero (the
// Result is returned too).
func Run(ctx context.Context, cfg Config) (*Result, error) {
	g, err := Start(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return g.Wait()
}

// Guest is a running guest (Start): commands can be run in it while its
// script runs (Config.Control), and Wait returns what came back.
type Guest struct {
	cfg     Config
	dir     string
	console string
	ctlPath string
	cancel  context.CancelFunc
	done    chan struct{}
	res     *Result
	err     error
	ctl     control
}

// Start boots cfg.Kernel like Run but returns once qemu runs.
func Start(ctx context.Context, cfg Config) (*Guest, error) {
	if err := Check(); err != nil {
		return nil, err
	}
	vmlinuz, base, err := Prepare(cfg.Kernel)
	if err != nil {
		return nil, err
	}
	if cfg.MemoryMB == 0 {
		cfg.MemoryMB = 512
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 3 * time.Minute
	}
	if cfg.CPUs == 0 {
		cfg.CPUs = 1
	}
	dir, err := os.MkdirTemp("", "kernellab-")
	if err != nil {
		return nil, err
	}
	g := &Guest{cfg: cfg, dir: dir, console: filepath.Join(dir, "console.log"), done: make(chan struct{})}
	var mods []File
	if len(cfg.Modules) > 0 {
		if mods, err = moduleFiles(cfg.Kernel, cfg.Modules); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	initrd, err := runInitrd(dir, base, cfg, mods)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	journal := filepath.Join(dir, "journal.export")
	outputs := filepath.Join(dir, "outputs")
	cmdline := "console=ttyS0 loglevel=4 panic=-1 edd=off rdinit=/init"
	if cfg.TmpfsRoot || cfg.Systemd {
		cmdline += " kernellab.tmpfsroot=1"
	}
	if cfg.Systemd {
		cmdline += " kernellab.systemd=1"
	}
	args := []string{
		"-accel", "tcg", "-cpu", "max", "-smp", strconv.Itoa(cfg.CPUs), "-m", strconv.Itoa(cfg.MemoryMB),
		"-nographic", "-no-reboot", "-monitor", "none", "-display", "none", "-vga", "none",
		"-kernel", vmlinuz, "-initrd", initrd,
		"-serial", "file:" + g.console, "-serial", "file:" + journal, "-serial", "file:" + outputs,
	}
	if len(cfg.Net) == 0 {
		args = append(args, "-nic", "none")
	}
	args = append(args, cfg.Net...)
	if cfg.Control {
		g.ctlPath = filepath.Join(dir, "control.sock")
		args = append(args, "-chardev", "socket,id=klctl,path="+g.ctlPath+",server=on,wait=off", "-serial", "chardev:klctl")
		cmdline += " kernellab.control=1"
	}
	args = append(args, "-append", strings.TrimSpace(cmdline+" "+cfg.Cmdline))
	rctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	g.cancel = cancel
	cmd := exec.CommandContext(rctx, QEMU, args...)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	// A test that dies takes its guest with it (and frees its devices).
	dieWithParent(cmd)
	start := time.Now()
	if err := cmd.Start(); err != nil {
		cancel()
		os.RemoveAll(dir)
		return nil, fmt.Errorf("kernellab: %s: %w", QEMU, err)
	}
	go func() {
		defer close(g.done)
		defer os.RemoveAll(dir)
		defer cancel()
		runErr := cmd.Wait()
		g.ctl.close()
		g.res, g.err = collect(rctx, cfg, runErr, stderr.String(), time.Since(start), g.console, journal, outputs)
	}()
	return g, nil
}

// Wait waits until the guest has powered off and returns what came back
// (see Run).
func (g *Guest) Wait() (*Result, error) {
	<-g.done
	return g.res, g.err
}

// Done is closed when the guest has stopped.
func (g *Guest) Done() <-chan struct{} { return g.done }

// Kill stops the guest at once (its results are lost).
func (g *Guest) Kill() {
	g.cancel()
	<-g.done
}

// Console is the serial console so far.
func (g *Guest) Console() []byte {
	b, _ := os.ReadFile(g.console)
	return b
}

// Stop asks a script waiting in kl_wait_stop to end, then waits for the
// guest like Wait.
func (g *Guest) Stop(ctx context.Context) (*Result, error) {
	if _, _, err := g.Exec(ctx, "mkdir -p /run/kernellab && touch /run/kernellab/stop"); err != nil {
		g.Kill()
		return g.res, err
	}
	select {
	case <-g.done:
	case <-ctx.Done():
		g.Kill()
	}
	return g.res, g.err
}

// collect reads what a finished guest sent back.
func collect(rctx context.Context, cfg Config, runErr error, stderr string, took time.Duration, console, journal, outputs string) (*Result, error) {
	res := &Result{Boot: took}
	res.Console, _ = os.ReadFile(console)
	jz, _ := os.ReadFile(journal)
	out, _ := os.ReadFile(outputs)
	if runErr != nil {
		msg := fmt.Sprintf("%s %s: %v", QEMU, cfg.Kernel, runErr)
		if rctx.Err() != nil {
			msg = fmt.Sprintf("%s: the guest did not finish within %s (or was stopped)", cfg.Kernel, cfg.Timeout)
		}
		if s := strings.TrimSpace(stderr); s != "" {
			msg += "\nqemu: " + s
		}
		return res, &Error{Msg: msg, Console: res.Console}
	}
	if len(jz) > 0 {
		zr, err := gzip.NewReader(bytes.NewReader(jz))
		if err == nil {
			res.JournalExport, err = io.ReadAll(zr)
		}
		if err != nil {
			return res, &Error{Msg: fmt.Sprintf("%s: the journal from ttyS1 is not readable gzip: %v", cfg.Kernel, err), Console: res.Console}
		}
	}
	outs, rc, perr := parseOutputs(out)
	res.Outputs, res.ExitCode = outs, rc
	if perr != nil {
		return res, &Error{Msg: fmt.Sprintf("%s: %v", cfg.Kernel, perr), Console: res.Console, Log: outs["script.log"]}
	}
	if rc != 0 {
		return res, &Error{Msg: fmt.Sprintf("%s: the script exited %d", cfg.Kernel, rc), Console: res.Console, Log: outs["script.log"]}
	}
	return res, nil
}

// runInitrd writes the run's initramfs: the cached base archive followed
// by an archive with /init, the script and cfg.Files (the kernel unpacks
// concatenated archives in order, later files replacing earlier ones).
func runInitrd(dir, base string, cfg Config, modules []File) (string, error) {
	files := []File{
		{Path: "/init", Data: initScript, Mode: 0o755},
		{Path: "/lab/lib.sh", Data: LibScript},
		{Path: "/lab/script.sh", Data: []byte(cfg.Script), Mode: 0o755},
	}
	files = append(files, modules...)
	if cfg.Systemd {
		files = append(files, File{Path: "/etc/systemd/system/kernellab.service", Data: []byte(systemdUnit)})
	}
	if cfg.NoJournald {
		files = append(files, File{Path: "/lab/no-journald", Data: []byte("set by kernellab.Config.NoJournald\n")})
	}
	files = append(files, cfg.Files...)
	p := filepath.Join(dir, "initrd.cpio")
	f, err := os.Create(p)
	if err != nil {
		return "", err
	}
	b, err := os.Open(base)
	if err != nil {
		f.Close()
		return "", err
	}
	_, err = io.Copy(f, b)
	b.Close()
	if err == nil {
		err = writeArchive(f, files)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return p, err
}

// parseOutputs reads the framed files of ttyS2 ("@@KERNELLAB FILE name
// size", the bytes, ...) up to "@@KERNELLAB DONE rc".
func parseOutputs(b []byte) (map[string][]byte, int, error) {
	outs := map[string][]byte{}
	const file, done = "\n@@KERNELLAB FILE ", "\n@@KERNELLAB DONE "
	for {
		if bytes.HasPrefix(b, []byte(done)) {
			line, _, _ := bytes.Cut(b[len(done):], []byte("\n"))
			rc, err := strconv.Atoi(strings.TrimSpace(string(line)))
			if err != nil {
				return outs, -1, fmt.Errorf("bad DONE line %q", line)
			}
			return outs, rc, nil
		}
		if !bytes.HasPrefix(b, []byte(file)) {
			if len(b) == 0 {
				return outs, -1, errors.New("the guest stopped before sending its results (no DONE line on ttyS2)")
			}
			return outs, -1, fmt.Errorf("garbled results on ttyS2 at %q", head(b))
		}
		line, rest, ok := bytes.Cut(b[len(file):], []byte("\n"))
		if !ok {
			return outs, -1, errors.New("truncated results on ttyS2")
		}
		name, size, _ := strings.Cut(string(line), " ")
		n, err := strconv.Atoi(size)
		if err != nil || n < 0 || n > len(rest) {
			return outs, -1, fmt.Errorf("results on ttyS2: file %q of size %q cut short", name, size)
		}
		outs[name] = rest[:n]
		b = rest[n:]
	}
}

func head(b []byte) string {
	if len(b) > 80 {
		b = b[:80]
	}
	return string(b)
}

// OutputNames lists r's outputs, sorted.
func (r *Result) OutputNames() []string {
	var ns []string
	for n := range r.Outputs {
		ns = append(ns, n)
	}
	sort.Strings(ns)
	return ns
}
