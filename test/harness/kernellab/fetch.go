package kernellab

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
)

// CacheDir is where downloaded packages, unpacked trees and initramfs
// pieces are kept: $XDG_CACHE_HOME/otelcol-oomkill/kernellab (or
// ~/.cache/...). KERNELLAB_CACHE overrides it.
func CacheDir() (string, error) {
	if d := os.Getenv("KERNELLAB_CACHE"); d != "" {
		return d, nil
	}
	c, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("kernellab: no cache directory: %w", err)
	}
	return filepath.Join(c, "otelcol-oomkill", "kernellab"), nil
}

// lockCache serialises cache updates between test processes (go test runs
// packages in parallel); the returned func releases the lock.
func lockCache(dir string) (func(), error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
}

// aptUpdated makes a failed download run `apt-get update` once per process.
var aptUpdated sync.Once

// unpacked returns the directory holding package pkg unpacked with
// `dpkg-deb -x`, downloading it with `apt-get download` first when the
// cache does not have it. The caller holds the cache lock.
func unpacked(cache, pkg string) (string, error) {
	dir := filepath.Join(cache, "pkgs", pkg)
	if _, err := os.Stat(filepath.Join(dir, ".unpacked")); err == nil {
		return dir, nil
	}
	deb, err := download(cache, pkg)
	if err != nil {
		return "", err
	}
	if _, err := exec.LookPath("dpkg-deb"); err != nil {
		return "", errors.New("kernellab: dpkg-deb is missing (Debian package dpkg)")
	}
	tmp := dir + ".tmp"
	_ = os.RemoveAll(tmp)
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return "", err
	}
	if out, err := exec.Command("dpkg-deb", "-x", deb, tmp).CombinedOutput(); err != nil {
		return "", fmt.Errorf("kernellab: dpkg-deb -x %s: %w\n%s", deb, err, out)
	}
	if err := os.WriteFile(filepath.Join(tmp, ".unpacked"), []byte(filepath.Base(deb)+"\n"), 0o644); err != nil {
		return "", err
	}
	_ = os.RemoveAll(dir)
	if err := os.Rename(tmp, dir); err != nil {
		return "", err
	}
	return dir, nil
}

// download fetches pkg's .deb into the cache (never installing it) and
// returns its path.
func download(cache, pkg string) (string, error) {
	debs := filepath.Join(cache, "debs")
	if err := os.MkdirAll(debs, 0o755); err != nil {
		return "", err
	}
	if p := findDeb(debs, pkg); p != "" {
		return p, nil
	}
	if _, err := exec.LookPath("apt-get"); err != nil {
		return "", fmt.Errorf("kernellab: apt-get is missing; cannot download the Debian package %s", pkg)
	}
	try := func() ([]byte, error) {
		// The sandbox user cannot write into a root-owned cache; the
		// download is a plain file fetch either way.
		cmd := exec.Command("apt-get", "download", "-q", "-o", "APT::Sandbox::User=root", pkg)
		cmd.Dir = debs
		return cmd.CombinedOutput()
	}
	out, err := try()
	if err != nil {
		var upd []byte
		var uerr error
		ran := false
		aptUpdated.Do(func() {
			ran = true
			upd, uerr = exec.Command("apt-get", "update", "-q").CombinedOutput()
		})
		if ran && uerr == nil {
			out, err = try()
		} else if ran {
			out = append(out, append([]byte("\napt-get update failed:\n"), upd...)...)
		}
	}
	if err != nil {
		return "", fmt.Errorf("kernellab: apt-get download %s failed (is it served by this machine's apt sources? `apt-cache policy %s`): %w\n%s",
			pkg, pkg, err, bytes.TrimSpace(out))
	}
	p := findDeb(debs, pkg)
	if p == "" {
		return "", fmt.Errorf("kernellab: apt-get download %s wrote no %s_*.deb in %s", pkg, pkg, debs)
	}
	return p, nil
}

func findDeb(dir, pkg string) string {
	// apt names files <package>_<version>_<arch>.deb.
	m, _ := filepath.Glob(filepath.Join(dir, pkg+"_*.deb"))
	if len(m) == 0 {
		return ""
	}
	return m[len(m)-1]
}
