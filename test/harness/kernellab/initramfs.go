package kernellab

import (
	"bufio"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// File is one file the guest gets in its initramfs.
type File struct {
	// Path is where the guest sees it (absolute).
	Path string
	// Data is the content; when nil, Source (a host path) is read.
	Data   []byte
	Source string
	// Mode is the permission bits (default 0755 for Source, 0644 for Data).
	Mode os.FileMode
	// Link makes the entry a symbolic link to this target instead.
	Link string
}

// newcWriter writes the "new" (SVR4, no checksum) cpio format that the
// kernel unpacks as an initramfs. Parent directories are added as needed.
type newcWriter struct {
	w    *bufio.Writer
	ino  uint32
	dirs map[string]bool
	err  error
}

func newNewc(w io.Writer) *newcWriter {
	return &newcWriter{w: bufio.NewWriterSize(w, 1<<20), ino: 1, dirs: map[string]bool{"": true, ".": true, "/": true}}
}

func (c *newcWriter) header(name string, mode uint32, size int) {
	if c.err != nil {
		return
	}
	c.ino++
	_, c.err = fmt.Fprintf(c.w, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		c.ino, mode, 0, 0, 1, 0, size, 0, 0, 0, 0, len(name)+1, 0)
	if c.err != nil {
		return
	}
	c.write([]byte(name))
	c.write([]byte{0})
	c.pad(110 + len(name) + 1)
}

func (c *newcWriter) write(b []byte) {
	if c.err == nil {
		_, c.err = c.w.Write(b)
	}
}

func (c *newcWriter) pad(n int) {
	if r := n % 4; r != 0 {
		c.write(make([]byte, 4-r))
	}
}

// rel turns a guest path into an archive name ("usr/bin/x").
func rel(p string) string { return strings.TrimPrefix(path.Clean("/"+p), "/") }

func (c *newcWriter) mkdirAll(dir string) {
	dir = rel(dir)
	if c.dirs[dir] {
		return
	}
	c.mkdirAll(path.Dir(dir))
	c.header(dir, 0o040755, 0)
	c.dirs[dir] = true
}

func (c *newcWriter) add(f File) {
	name := rel(f.Path)
	c.mkdirAll(path.Dir(name))
	if f.Link != "" {
		c.header(name, 0o120777, len(f.Link))
		c.write([]byte(f.Link))
		c.pad(len(f.Link))
		return
	}
	data := f.Data
	mode := f.Mode
	if data == nil && f.Source != "" {
		b, err := os.ReadFile(f.Source)
		if err != nil {
			if c.err == nil {
				c.err = fmt.Errorf("kernellab: initramfs file %s: %w", f.Path, err)
			}
			return
		}
		data = b
		if mode == 0 {
			mode = 0o755
		}
	}
	if mode == 0 {
		mode = 0o644
	}
	c.header(name, 0o100000|uint32(mode.Perm()), len(data))
	c.write(data)
	c.pad(len(data))
}

func (c *newcWriter) close() error {
	c.header("TRAILER!!!", 0, 0)
	if c.err == nil {
		c.err = c.w.Flush()
	}
	return c.err
}

// writeArchive writes files, later entries of one path replacing earlier
// ones, as one newc archive.
func writeArchive(w io.Writer, files []File) error {
	last := map[string]int{}
	for i, f := range files {
		last[rel(f.Path)] = i
	}
	c := newNewc(w)
	for i, f := range files {
		if last[rel(f.Path)] == i {
			c.add(f)
		}
	}
	return c.close()
}

// libDirs are where the dynamic loader looks without an ld.so.cache.
var libDirs = []string{"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/lib", "/usr/lib"}

// trees is a set of unpacked Debian packages that together form a root
// file system; lookups search them in order.
type trees []string

func (ts trees) lstat(p string) (string, os.FileInfo) {
	for _, t := range ts {
		if fi, err := os.Lstat(filepath.Join(t, p)); err == nil {
			return t, fi
		}
	}
	return "", nil
}

// closure returns the guest files for the programs at paths (as the
// packages lay them out), plus every shared library they need, found by
// reading their ELF headers (DT_NEEDED, DT_RUNPATH) and following symlinks.
func (ts trees) closure(paths ...string) ([]File, error) {
	var out []File
	seen := map[string]bool{}
	var addPath func(p string, depth int) (string, error)
	// addPath adds p (following symlinks) and returns the regular file it
	// ends at.
	addPath = func(p string, depth int) (string, error) {
		if depth > 16 {
			return "", fmt.Errorf("kernellab: symlink loop at %s", p)
		}
		t, fi := ts.lstat(p)
		if fi == nil {
			return "", fmt.Errorf("kernellab: %s is in none of the unpacked packages %v", p, ts)
		}
		host := filepath.Join(t, p)
		if fi.Mode()&os.ModeSymlink != 0 {
			target, err := os.Readlink(host)
			if err != nil {
				return "", err
			}
			if !seen[p] {
				seen[p] = true
				out = append(out, File{Path: p, Link: target})
			}
			if !path.IsAbs(target) {
				target = path.Join(path.Dir(p), target)
			}
			return addPath(target, depth+1)
		}
		if !seen[p] {
			seen[p] = true
			out = append(out, File{Path: p, Source: host, Mode: fi.Mode().Perm()})
		}
		return p, nil
	}
	queue := append([]string(nil), paths...)
	done := map[string]bool{}
	// A library the loader already loaded through one object's run path
	// satisfies every later object's need of it (systemd's libraries need
	// each other and have no run path of their own).
	var runpaths []string
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		file, err := addPath(p, 0)
		if err != nil {
			return nil, err
		}
		if done[file] {
			continue
		}
		done[file] = true
		t, _ := ts.lstat(file)
		needed, search, interp, err := elfDeps(filepath.Join(t, file), path.Dir(file))
		if err != nil {
			return nil, err
		}
		if interp != "" {
			queue = append(queue, interp)
		}
		runpaths = append(runpaths, search...)
		for _, lib := range needed {
			found := ""
			for _, d := range append(append(search, libDirs...), runpaths...) {
				if _, fi := ts.lstat(path.Join(d, lib)); fi != nil {
					found = path.Join(d, lib)
					break
				}
			}
			if found == "" {
				return nil, fmt.Errorf("kernellab: %s needs %s, which none of the unpacked packages has: add its Debian package (dpkg -S %s on a machine that has it)", file, lib, lib)
			}
			queue = append(queue, found)
		}
	}
	return out, nil
}

// elfDeps reads a program's or library's needed libraries, run path and
// interpreter. A file that is not ELF (a script) has none.
func elfDeps(file, origin string) (needed, search []string, interp string, err error) {
	f, err := elf.Open(file)
	if err != nil {
		var ferr *elf.FormatError
		if errors.As(err, &ferr) {
			return nil, nil, "", nil
		}
		return nil, nil, "", fmt.Errorf("kernellab: %s: %w", file, err)
	}
	defer f.Close()
	needed, _ = f.ImportedLibraries()
	for _, tag := range []elf.DynTag{elf.DT_RUNPATH, elf.DT_RPATH} {
		vals, _ := f.DynString(tag)
		for _, v := range vals {
			for _, d := range strings.Split(v, ":") {
				search = append(search, strings.ReplaceAll(d, "$ORIGIN", origin))
			}
		}
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			b := make([]byte, p.Filesz)
			if _, err := p.ReadAt(b, 0); err == nil {
				interp = strings.TrimRight(string(b), "\x00")
			}
		}
	}
	return needed, search, interp, nil
}

// HostBinary returns the files that put the host program at hostPath into
// the guest at guestPath, with every shared library `ldd` lists for it, at
// the paths ldd printed (so the guest's loader finds them as the host's
// does). dlopened names libraries the program loads at run time, which ldd
// cannot see (the collector dlopens libsystemd.so.0); they come with their
// own libraries. Use it to run a program built on this machine, e.g. the
// collector, inside the guest.
func HostBinary(hostPath, guestPath string, dlopened ...string) ([]File, error) {
	files := []File{{Path: guestPath, Source: hostPath, Mode: 0o755}}
	seen := map[string]bool{}
	add := func(p string) error {
		libs, err := lddLibs(p)
		if err != nil {
			return err
		}
		for _, l := range libs {
			if seen[l] {
				continue
			}
			seen[l] = true
			target, err := filepath.EvalSymlinks(l)
			if err != nil {
				return err
			}
			files = append(files, File{Path: l, Source: target, Mode: 0o755})
		}
		return nil
	}
	if err := add(hostPath); err != nil {
		return nil, err
	}
	for _, name := range dlopened {
		found := ""
		for _, d := range libDirs {
			if _, err := os.Stat(filepath.Join(d, name)); err == nil {
				found = filepath.Join(d, name)
				break
			}
		}
		if found == "" {
			return nil, fmt.Errorf("kernellab: %s (loaded by %s at run time) is not in %v on this machine", name, hostPath, libDirs)
		}
		if !seen[found] {
			seen[found] = true
			target, err := filepath.EvalSymlinks(found)
			if err != nil {
				return nil, err
			}
			files = append(files, File{Path: found, Source: target, Mode: 0o755})
		}
		if err := add(found); err != nil {
			return nil, err
		}
	}
	return files, nil
}

// lddLibs lists the libraries ldd resolves for p, the loader included.
func lddLibs(p string) ([]string, error) {
	out, err := exec.Command("ldd", p).CombinedOutput()
	if err != nil {
		if strings.Contains(string(out), "not a dynamic executable") {
			return nil, nil
		}
		return nil, fmt.Errorf("kernellab: ldd %s: %w\n%s", p, err, out)
	}
	var libs []string
	for _, line := range strings.Split(string(out), "\n") {
		fields := strings.Fields(line)
		switch {
		case strings.Contains(line, "not found"):
			return nil, fmt.Errorf("kernellab: %s: %s", p, strings.TrimSpace(line))
		case len(fields) >= 3 && fields[1] == "=>" && strings.HasPrefix(fields[2], "/"):
			libs = append(libs, fields[2])
		case len(fields) >= 1 && strings.HasPrefix(fields[0], "/"):
			libs = append(libs, fields[0]) // the loader itself
		}
	}
	sort.Strings(libs)
	return libs, nil
}
