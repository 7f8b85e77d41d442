package kernellab

import (
	"bytes"
	"debug/elf"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// moduleDir is where the guest finds the modules /init loads, in the
// order of /lab/modules.
const moduleDir = "/lib/modules/kernellab"

// moduleFiles returns the initramfs files that load names (and what they
// depend on, first) from k's package: each module uncompressed (the cloud
// kernels ship .ko.xz; busybox's xz, which the lab fetches anyway, unpacks
// them into the cache) and /lab/modules listing them in load order.
func moduleFiles(k Kernel, names []string) ([]File, error) {
	cache, err := CacheDir()
	if err != nil {
		return nil, err
	}
	unlock, err := lockCache(cache)
	if err != nil {
		return nil, err
	}
	defer unlock()
	kdir, err := unpacked(cache, k.Package)
	if err != nil {
		return nil, err
	}
	bb, err := unpacked(cache, "busybox-static")
	if err != nil {
		return nil, err
	}
	tree := filepath.Join(kdir, "lib", "modules", k.Release(), "kernel")
	index := map[string]string{} // module name -> file in tree
	err = filepath.WalkDir(tree, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		base := d.Name()
		for _, ext := range []string{".ko.xz", ".ko"} {
			if strings.HasSuffix(base, ext) {
				index[modName(strings.TrimSuffix(base, ext))] = p
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("kernellab: modules of %s: %w", k, err)
	}
	out := filepath.Join(cache, "modules", k.Release())
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, err
	}
	var order []string
	var files []File
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(name string) error
	visit = func(name string) error {
		name = modName(name)
		switch state[name] {
		case 1:
			return fmt.Errorf("kernellab: module dependency loop at %s", name)
		case 2:
			return nil
		}
		state[name] = 1
		src, ok := index[name]
		if !ok {
			return fmt.Errorf("kernellab: %s has no module %s (built in, or misspelt? see boot/config-%s)", k.Package, name, k.Release())
		}
		ko := filepath.Join(out, name+".ko")
		if _, err := os.Stat(ko); err != nil {
			if err := unpackModule(filepath.Join(bb, "bin", "busybox"), src, ko); err != nil {
				return err
			}
		}
		deps, err := moduleDepends(ko)
		if err != nil {
			return err
		}
		for _, d := range deps {
			if err := visit(d); err != nil {
				return err
			}
		}
		state[name] = 2
		order = append(order, name)
		files = append(files, File{Path: moduleDir + "/" + name + ".ko", Source: ko, Mode: 0o644})
		return nil
	}
	for _, n := range names {
		if err := visit(n); err != nil {
			return nil, err
		}
	}
	return append(files, File{Path: "/lab/modules", Data: []byte(strings.Join(order, "\n") + "\n")}), nil
}

// modName is a module's canonical name: the kernel treats - and _ alike.
func modName(s string) string { return strings.ReplaceAll(s, "-", "_") }

func unpackModule(busybox, src, dst string) error {
	tmp := dst + ".tmp"
	if !strings.HasSuffix(src, ".xz") {
		b, err := os.ReadFile(src)
		if err != nil {
			return err
		}
		if err := os.WriteFile(tmp, b, 0o644); err != nil {
			return err
		}
		return os.Rename(tmp, dst)
	}
	cmd := exec.Command(busybox, "xz", "-dc", src)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	b, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("kernellab: unpack %s: %w: %s", src, err, stderr.Bytes())
	}
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, dst)
}

// moduleDepends reads the depends= field of a module's .modinfo.
func moduleDepends(ko string) ([]string, error) {
	f, err := elf.Open(ko)
	if err != nil {
		return nil, fmt.Errorf("kernellab: module %s: %w", ko, err)
	}
	defer f.Close()
	sec := f.Section(".modinfo")
	if sec == nil {
		return nil, nil
	}
	b, err := sec.Data()
	if err != nil {
		return nil, err
	}
	for _, kv := range bytes.Split(b, []byte{0}) {
		if v, ok := bytes.CutPrefix(kv, []byte("depends=")); ok {
			if len(v) == 0 {
				return nil, nil
			}
			return strings.Split(string(v), ","), nil
		}
	}
	return nil, nil
}
