package oomparse

import "strings"

// This file reads what an OOM report says about the memory that ran out,
// beyond the victim line: the OOM'd memory cgroup's counters and
// statistics, the task table's summary and, for a system OOM, the node's
// free memory. Every value is one the kernel printed (converted to bytes);
// nothing is estimated, and a report without these lines (rate-limited,
// vm.oom_dump_tasks=0) leaves them invalid.
//
// What the kernel prints, from mm/memcontrol.c, mm/oom_kill.c,
// mm/show_mem.c (mm/page_alloc.c before 6.x) and mm/swap_state.c:
//   - the counters, "<name>: usage %llukB, limit %llukB, failcnt %lu":
//     memory always; memory+swap and kmem on cgroup v1 (and on v2 before
//     5.0); swap on cgroup v2 from 5.0;
//   - "Memory cgroup stats for <path>:" and the statistics:
//     before 5.0 one line per cgroup of the OOM'd subtree,
//     "Memory cgroup stats for <path>: cache:%ldKB rss:%ldKB …", each with
//     that cgroup's own pages (3.10 prints "Memory cgroup stats:" when the
//     path cannot be had);
//     5.0 to 6.x, memory.stat's cgroup v2 keys for both versions
//     ("anon %llu", "file %llu", …, bytes, recursive), one message of many
//     lines (printk cuts it near 1 KiB; the keys read here come first);
//     later kernels print each line as its own message, and cgroup v1 gets
//     its own memory.stat keys ("cache", "rss", …, "total_cache",
//     "total_rss", …, bytes);
//   - the task table, one row per process of the OOM domain:
//     "[%7d] %5d %5d %8lu %8lu … %5hd %s" (pid, uid, tgid, total_vm, rss
//     in pages, version-dependent columns, oom_score_adj, name);
//   - for an OOM that is not a cgroup's, "Mem-Info:", the node's counters
//     (one message of many lines, " free:%lu" in pages among them), "Free
//     swap  = %ldkB", "Total swap = %lukB" and "%lu pages RAM".

// MemoryContext is what one OOM report printed about the memory that ran
// out. Its zero value means the kernel printed none of it.
type MemoryContext struct {
	// Memory is the OOM'd cgroup's "memory: usage …, limit …, failcnt …".
	Memory Counter
	// Swap is cgroup v2's "swap: usage …" line (5.0+).
	Swap Counter
	// MemSwap is cgroup v1's "memory+swap: usage …" line: memory and swap
	// together.
	MemSwap Counter
	// Kmem is cgroup v1's "kmem: usage …" line: kernel memory charged to
	// the cgroup.
	Kmem Counter
	// Stats is the "Memory cgroup stats for …" block.
	Stats MemcgStats
	// Tasks is the task table's summary.
	Tasks TaskTable
	// System is the node's memory at a system OOM ("Mem-Info:").
	System SystemMemory
}

// Counter is one "<name>: usage %llukB, limit %llukB, failcnt %lu" line.
type Counter struct {
	UsageBytes OptInt
	LimitBytes OptInt
	Failcnt    OptInt
}

// MemcgStats is the OOM'd cgroup's memory by kind, in bytes, with its
// whole subtree counted: memory.stat's recursive values (5.0+), the
// total_* values of cgroup v1's memory.stat (later kernels), or the sum of
// the per-cgroup lines of the subtree (before 5.0).
type MemcgStats struct {
	// Path is the cgroup the kernel printed the block for.
	Path string
	// Anon is anonymous memory ("anon"; v1 "rss").
	Anon OptInt
	// File is the page cache, shmem included ("file"; v1 "cache").
	File OptInt
	// Shmem is shmem and tmpfs ("shmem"; v1 "shmem", 4.x+).
	Shmem OptInt
	// Kernel is all kernel memory ("kernel", 5.18+ memory.stat).
	Kernel      OptInt
	KernelStack OptInt // "kernel_stack"
	Pagetables  OptInt // "pagetables"
	Slab        OptInt // "slab"
	Sock        OptInt // "sock": network buffers
}

// TaskTable summarises the report's task table ("[  pid  ]   uid  tgid …").
type TaskTable struct {
	// Printed is true when the table's header was seen.
	Printed bool
	// Count is how many processes the table listed.
	Count int64
	// Largest is the process with the most resident memory.
	Largest Task
	// PIDs are the listed processes' ids (tgid), in the kernel's order,
	// up to Options.MaxTaskPIDs; PIDsComplete says none was left out.
	PIDs         []int64
	PIDsComplete bool
}

// Task is one row of the task table.
type Task struct {
	Valid    bool
	PID      int64 // the process (tgid)
	Name     string
	RSSBytes int64 // the rss column (pages) times the page size
}

// SystemMemory is the node-wide summary a system OOM report prints.
type SystemMemory struct {
	FreeBytes      OptInt // " free:%lu" pages of the node's counters
	RAMBytes       OptInt // "%lu pages RAM"
	SwapFreeBytes  OptInt // "Free swap  = %ldkB"
	SwapTotalBytes OptInt // "Total swap = %lukB"
}

// KernelBytes is the kernel memory charged to the OOM'd cgroup: memory.stat's
// "kernel" where printed, else cgroup v1's kmem counter.
func (m *MemoryContext) KernelBytes() OptInt {
	if m.Stats.Kernel.Valid {
		return m.Stats.Kernel
	}
	return m.Kmem.UsageBytes
}

// VictimShare is the victim's resident memory (the victim line's anon, file
// and shmem rss) as a fraction of the OOM'd cgroup's usage. It can exceed 1:
// a process's rss counts file pages charged to other cgroups.
func (k *Kill) VictimShare() (float64, bool) {
	rss, ok := k.RSSBytes()
	if !ok || k.Memory == nil {
		return 0, false
	}
	u := k.Memory.Memory.UsageBytes
	if !u.Valid || u.Value <= 0 {
		return 0, false
	}
	return float64(rss) / float64(u.Value), true
}

// RSSBytes is the victim's resident memory as its victim line printed it.
func (k *Kill) RSSBytes() (int64, bool) {
	if !k.AnonRSSKB.Valid || !k.FileRSSKB.Valid {
		return 0, false
	}
	kb := k.AnonRSSKB.Value + k.FileRSSKB.Value
	if k.ShmemRSSKB.Valid {
		kb += k.ShmemRSSKB.Value
	}
	return kb << 10, true
}

// block is the multi-line part of a report being read: lines in it carry
// no OOM word, so they are recognised by where they come.
type block uint8

const (
	blockNone    block = iota
	blockMemcg         // after "memory: usage": the other counters
	blockStats         // after "Memory cgroup stats for <path>:"
	blockMemInfo       // after "Mem-Info:"
)

// statsFormat tells the memory.stat key sets apart: "shmem" is in both.
type statsFormat uint8

const (
	statsUnknown statsFormat = iota
	statsV2                  // anon, file, kernel, … (5.0+, both versions until cgroup v1 got its own)
	statsV1                  // cache, rss, …, total_cache, total_rss, …
)

// memState is the memory context of the report being read.
type memState struct {
	ctx    MemoryContext
	format statsFormat
	// table columns: numbers after "]" and which of them is rss (0: the
	// header was not understood, rows give only pid and tgid).
	tableCols, rssCol int
	largestRSS        int64
}

// parseCounter reads "<name>: usage %llukB, limit %llukB, failcnt %lu".
func parseCounter(t string) (name string, c Counter, ok bool) {
	name, rest, found := strings.Cut(t, ": usage ")
	if !found {
		return "", Counter{}, false
	}
	sc := scanner{s: rest, ok: true}
	usage := sc.kb()
	sc.lit(", limit ")
	limit := sc.kb()
	sc.lit(", failcnt ")
	failcnt := sc.num()
	if !sc.ok || sc.s != "" {
		return "", Counter{}, false
	}
	return name, Counter{UsageBytes: kbToBytes(usage), LimitBytes: kbToBytes(limit), Failcnt: failcnt}, true
}

func kbToBytes(v OptInt) OptInt {
	if !v.Valid || v.Value > 1<<53 || v.Value < -(1<<53) {
		return OptInt{}
	}
	return OptInt{Value: v.Value << 10, Valid: true}
}

func pagesToBytes(v OptInt, pageSize int64) OptInt {
	if !v.Valid || v.Value < 0 || v.Value > (1<<62)/pageSize {
		return OptInt{}
	}
	return OptInt{Value: v.Value * pageSize, Valid: true}
}

// counterLine takes a counter line of the report in progress.
func (s *memState) counterLine(t string) bool {
	name, c, ok := parseCounter(t)
	if !ok {
		return false
	}
	switch name {
	case "memory":
		s.ctx.Memory = c
	case "swap":
		s.ctx.Swap = c
	case "memory+swap":
		s.ctx.MemSwap = c
	case "kmem":
		s.ctx.Kmem = c
	default:
		return false
	}
	return true
}

const statsHead = "Memory cgroup stats"

// statsHeader takes "Memory cgroup stats for <path>:" (5.0+) and the
// older one-line-per-cgroup form; it returns whether a block of key-value
// lines follows.
func (s *memState) statsHeader(t string) (opensBlock, ok bool) {
	rest, found := strings.CutPrefix(t, statsHead)
	if !found {
		return false, false
	}
	// Before 5.0 the values follow on the line; the path is whatever
	// comes before the kernel's first field, so the last ": cache:" is
	// the kernel's.
	if i := strings.LastIndex(rest, ": cache:"); i >= 0 {
		path := strings.TrimPrefix(rest[:i], " for ")
		if !s.oldStatsLine(rest[i+2:]) {
			return false, false
		}
		if s.ctx.Stats.Path == "" {
			s.ctx.Stats.Path = path
		}
		return false, true
	}
	path, found := strings.CutPrefix(rest, " for ")
	if !found || !strings.HasSuffix(path, ":") {
		return false, false
	}
	s.ctx.Stats.Path = path[:len(path)-1]
	return true, true
}

// oldStatsLine adds one cgroup's " cache:%ldKB rss:%ldKB …" (before 5.0)
// to the subtree's sums. A line that does not parse whole adds nothing.
func (s *memState) oldStatsLine(fields string) bool {
	var anon, file, shmem OptInt
	for f := range strings.SplitSeq(fields, " ") {
		k, v, found := strings.Cut(f, ":")
		if !found || !strings.HasSuffix(v, "KB") {
			return false
		}
		n, ok := parseSigned(v[:len(v)-2])
		if !ok {
			return false
		}
		switch k {
		case "cache":
			file = kbToBytes(OptInt{n, true})
		case "rss":
			anon = kbToBytes(OptInt{n, true})
		case "shmem":
			shmem = kbToBytes(OptInt{n, true})
		}
	}
	st := &s.ctx.Stats
	st.Anon = addOpt(st.Anon, anon)
	st.File = addOpt(st.File, file)
	st.Shmem = addOpt(st.Shmem, shmem)
	return true
}

func addOpt(sum, v OptInt) OptInt {
	if !v.Valid {
		return sum
	}
	return OptInt{Value: sum.Value + v.Value, Valid: true}
}

// statsLines takes one message of the stats block: one "key value" line,
// or (5.0 to 6.1-era kernels) many in one message. It reports false when
// the message is not part of the block.
func (s *memState) statsLines(t string) bool {
	first := true
	for line := range strings.SplitSeq(t, "\n") {
		k, v, ok := statLine(line)
		if !ok {
			if first {
				return false
			}
			break // a cut-off message: take what came whole
		}
		first = false
		s.stat(k, v)
	}
	return true
}

// statLine splits "key %llu" with a lower-case key.
func statLine(line string) (string, int64, bool) {
	sp := strings.IndexByte(line, ' ')
	if sp <= 0 {
		return "", 0, false
	}
	for i := 0; i < sp; i++ {
		if c := line[i]; (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' {
			return "", 0, false
		}
	}
	v, ok := parseSigned(line[sp+1:])
	return line[:sp], v, ok
}

func (s *memState) stat(k string, v int64) {
	if s.format == statsUnknown {
		switch k {
		case "anon":
			s.format = statsV2
		case "cache":
			s.format = statsV1
		}
	}
	st := &s.ctx.Stats
	val := OptInt{Value: v, Valid: true}
	if s.format == statsV1 {
		// Only the hierarchical values: the cgroup's own ("rss" and so on)
		// leave out its children, which hold everything at a pod's limit.
		switch k {
		case "total_cache":
			st.File = val
		case "total_rss":
			st.Anon = val
		case "total_shmem":
			st.Shmem = val
		}
		return
	}
	switch k {
	case "anon":
		st.Anon = val
	case "file":
		st.File = val
	case "shmem":
		st.Shmem = val
	case "kernel":
		st.Kernel = val
	case "kernel_stack":
		st.KernelStack = val
	case "pagetables":
		st.Pagetables = val
	case "slab":
		st.Slab = val
	case "sock":
		st.Sock = val
	}
}

// memInfoLines takes the lines of a system OOM's "Mem-Info:" dump that
// carry the node's summary; it reports false for the others.
func (s *memState) memInfoLines(t string, pageSize int64) bool {
	sys := &s.ctx.System
	switch {
	case strings.HasPrefix(t, "Free swap  = "):
		sys.SwapFreeBytes = kbValue(t[len("Free swap  = "):])
		return true
	case strings.HasPrefix(t, "Total swap = "):
		sys.SwapTotalBytes = kbValue(t[len("Total swap = "):])
		return true
	case strings.HasSuffix(t, " pages RAM"):
		n, ok := parseUint(t[:len(t)-len(" pages RAM")])
		if !ok {
			return false
		}
		sys.RAMBytes = pagesToBytes(OptInt{n, true}, pageSize)
		return true
	}
	// The node's counters: "active_anon:%lu …\n … free:%lu free_pcp:…",
	// one message (or, as dmesg shows it, one line each).
	for line := range strings.SplitSeq(t, "\n") {
		line = strings.TrimLeft(line, " ")
		v, found := strings.CutPrefix(line, "free:")
		if !found {
			continue
		}
		if sp := strings.IndexByte(v, ' '); sp >= 0 {
			v = v[:sp]
		}
		n, ok := parseUint(v)
		if !ok {
			return false
		}
		sys.FreeBytes = pagesToBytes(OptInt{n, true}, pageSize)
		return true
	}
	return false
}

func kbValue(s string) OptInt {
	v, found := strings.CutSuffix(s, "kB")
	if !found {
		return OptInt{}
	}
	n, ok := parseSigned(v)
	if !ok {
		return OptInt{}
	}
	return kbToBytes(OptInt{n, true})
}

// tableHeader learns the task table's columns from its header: the
// numbers after "]" are the header's words after "]" but the name, and
// rss follows total_vm in every version.
func (s *memState) tableHeader(t string) {
	// A fresh pid list: kills already returned may share the last one.
	s.ctx.Tasks = TaskTable{Printed: true, PIDsComplete: true}
	s.tableCols, s.rssCol, s.largestRSS = 0, 0, -1
	_, cols, ok := strings.Cut(t, "]")
	if !ok {
		return
	}
	want := [...]string{"uid", "tgid", "total_vm", "rss"}
	n, last := 0, ""
	for f := range strings.FieldsSeq(cols) {
		if n < len(want) && f != want[n] {
			return
		}
		n, last = n+1, f
	}
	if n <= len(want) || last != "name" {
		return
	}
	s.tableCols, s.rssCol = n-1, 3
}

// parseTaskRow reads a row "[%7d] %5d %5d %8lu %8lu … %5hd %s": cols
// numbers after the pid, then one space and the name, which may hold
// anything (spaces, brackets, digits), so it is never split.
func parseTaskRow(t string, cols, rssCol int) (pid, tgid, rss int64, name string, ok bool) {
	sc := scanner{s: t, ok: true}
	sc.lit("[")
	sc.spaces()
	p := sc.num()
	sc.lit("]")
	var g OptInt
	for i := 0; i < cols && sc.ok; i++ {
		if !strings.HasPrefix(sc.s, " ") {
			return 0, 0, 0, "", false
		}
		sc.spaces()
		v := sc.num()
		switch i {
		case 1:
			g = v
		case rssCol:
			rss = v.Value
		}
	}
	if !sc.ok || p.Value < 0 || g.Value < 0 {
		return 0, 0, 0, "", false
	}
	if sc.s == "" {
		// An empty (or all-blank) name: the line's trailing blanks were
		// trimmed with it.
		return p.Value, g.Value, rss, "", true
	}
	if sc.s[0] != ' ' {
		return 0, 0, 0, "", false
	}
	return p.Value, g.Value, rss, sc.s[1:], true
}

// taskRow counts one row of the table; maxPIDs bounds the pid list.
func (s *memState) taskRow(tgid, rss int64, name string, maxPIDs int) {
	tt := &s.ctx.Tasks
	tt.Count++
	if len(tt.PIDs) < maxPIDs {
		tt.PIDs = append(tt.PIDs, tgid)
	} else {
		tt.PIDsComplete = false
	}
	if s.tableCols > 0 && rss > s.largestRSS {
		s.largestRSS = rss
		tt.Largest = Task{Valid: true, PID: tgid, Name: name}
	}
}

// printed says whether the report printed any of the context.
func (s *memState) printed() bool {
	c := &s.ctx
	return c.Memory.UsageBytes.Valid || c.Swap.UsageBytes.Valid || c.MemSwap.UsageBytes.Valid || c.Kmem.UsageBytes.Valid ||
		c.Stats != (MemcgStats{}) || c.Tasks.Printed || c.System != (SystemMemory{})
}

// finish gives the context as a Kill carries it.
func (s *memState) finish(pageSize int64) MemoryContext {
	c := s.ctx
	if c.Tasks.Largest.Valid {
		b := pagesToBytes(OptInt{s.largestRSS, true}, pageSize)
		c.Tasks.Largest.RSSBytes, c.Tasks.Largest.Valid = b.Value, b.Valid
	}
	return c
}

// parseSigned parses s as a whole, optionally negative, decimal.
func parseSigned(s string) (int64, bool) {
	if rest, neg := strings.CutPrefix(s, "-"); neg {
		v, ok := parseUint(rest)
		return -v, ok
	}
	return parseUint(s)
}
