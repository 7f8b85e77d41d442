package oomparse

import "strings"

// This file recognises single kernel lines of an OOM report. Every parser is
// pure and allocation-free: results are substrings of the input line.
//
// A process chooses its own name (comm, ≤15 bytes, may hold ',', '=', ')' and
// spaces), so no parser may let the name move a field boundary: names are
// always delimited from the side the kernel controls (the fixed trailer
// after the name), never by searching forward through the name.

// invokerLine is "%s invoked oom-killer: gfp_mask=…, order=%d, oom_score_adj=%hd".
type invokerLine struct {
	comm        string
	gfpMask     string // "0xcc0" or "0xcc0(GFP_KERNEL)"
	nodemask    string // 4.14–4.20 only
	order       OptInt
	oomScoreAdj OptInt
}

const invokedMarker = " invoked oom-killer: "

func parseInvoker(t string) (invokerLine, bool) {
	// The comm comes first and is the only uncontrolled part: the last
	// marker is the kernel's, since nothing after it is chosen by a process.
	i := strings.LastIndex(t, invokedMarker)
	if i < 0 {
		return invokerLine{}, false
	}
	inv := invokerLine{comm: t[:i]}
	rest := t[i+len(invokedMarker):]
	if !strings.HasPrefix(rest, "gfp_mask=") {
		return invokerLine{}, false
	}
	rest = rest[len("gfp_mask="):]
	end := strings.IndexByte(rest, ',')
	if end < 0 {
		return invokerLine{}, false
	}
	inv.gfpMask = rest[:end]
	rest = rest[end:]
	if v, ok := valueAfter(rest, "nodemask=", ",  order=", ", order="); ok {
		inv.nodemask = v
	}
	inv.order = intAfter(rest, "order=")
	inv.oomScoreAdj = intAfter(rest, "oom_score_adj=")
	if !inv.order.Valid || !inv.oomScoreAdj.Valid {
		return invokerLine{}, false
	}
	return inv, true
}

// cpusetLine is the pre-5.0 "%s cpuset=%s mems_allowed=%s" line.
type cpusetLine struct {
	cpuset      string
	memsAllowed string
}

func parseCpuset(t string) (cpusetLine, bool) {
	m := strings.LastIndex(t, " mems_allowed=")
	if m < 0 {
		return cpusetLine{}, false
	}
	c := strings.LastIndex(t[:m], " cpuset=")
	if c < 0 {
		return cpusetLine{}, false
	}
	return cpusetLine{cpuset: t[c+len(" cpuset=") : m], memsAllowed: t[m+len(" mems_allowed="):]}, true
}

// taskInLine is the pre-5.0 cgroup v1 context:
// "Task in <task memcg> killed as a result of limit of <oom memcg>".
type taskInLine struct {
	taskMemcg string
	oomMemcg  string
}

const taskInMid = " killed as a result of limit of "

func parseTaskIn(t string) (taskInLine, bool) {
	if !strings.HasPrefix(t, "Task in ") {
		return taskInLine{}, false
	}
	body := t[len("Task in "):]
	// Both halves are cgroup paths; the limit's cgroup is the task's or an
	// ancestor, which picks the right split if a path repeats the phrase.
	first := -1
	for off := 0; ; {
		j := strings.Index(body[off:], taskInMid)
		if j < 0 {
			break
		}
		j += off
		if first < 0 {
			first = j
		}
		task, limit := body[:j], body[j+len(taskInMid):]
		if isAncestorOrSelf(limit, task) {
			return taskInLine{taskMemcg: task, oomMemcg: limit}, true
		}
		off = j + 1
	}
	if first < 0 {
		return taskInLine{}, false
	}
	return taskInLine{taskMemcg: body[:first], oomMemcg: body[first+len(taskInMid):]}, true
}

// summaryLine is the 5.0+ one-line summary:
// "oom-kill:constraint=C,nodemask=N,cpuset=S,mems_allowed=M,(oom_memcg=P|global_oom),task_memcg=T,task=COMM,pid=%d,uid=%d".
type summaryLine struct {
	constraint  string
	nodemask    string
	cpuset      string
	memsAllowed string
	oomMemcg    string
	globalOOM   bool
	// taskTail is "T,task=COMM": where T ends depends on COMM, which the
	// victim line knows for certain (see splitTaskTail).
	taskTail string
	pid      int64
	uid      int64
}

func parseSummary(t string) (summaryLine, bool) {
	if !strings.HasPrefix(t, "oom-kill:constraint=") {
		return summaryLine{}, false
	}
	var s summaryLine
	// The end is kernel-controlled digits: read pid and uid from the right.
	u := strings.LastIndex(t, ",uid=")
	if u < 0 {
		return summaryLine{}, false
	}
	uid, ok := parseUint(t[u+len(",uid="):])
	if !ok {
		return summaryLine{}, false
	}
	p := strings.LastIndex(t[:u], ",pid=")
	if p < 0 {
		return summaryLine{}, false
	}
	pid, ok := parseUint(t[p+len(",pid=") : u])
	if !ok {
		return summaryLine{}, false
	}
	s.pid, s.uid = pid, uid
	head := t[len("oom-kill:constraint="):p]

	var rest string
	s.constraint, rest, ok = strings.Cut(head, ",nodemask=")
	if !ok {
		return summaryLine{}, false
	}
	s.nodemask, rest, ok = strings.Cut(rest, ",cpuset=")
	if !ok {
		return summaryLine{}, false
	}
	s.cpuset, rest, ok = strings.Cut(rest, ",mems_allowed=")
	if !ok {
		return summaryLine{}, false
	}
	if mems, after, found := strings.Cut(rest, ",global_oom,task_memcg="); found && !strings.Contains(mems, ",oom_memcg=") {
		s.memsAllowed, s.globalOOM, s.taskTail = mems, true, after
	} else {
		var memcgs string
		s.memsAllowed, memcgs, ok = strings.Cut(rest, ",oom_memcg=")
		if !ok {
			return summaryLine{}, false
		}
		s.oomMemcg, s.taskTail, ok = splitOOMAndTask(memcgs)
		if !ok {
			return summaryLine{}, false
		}
	}
	if !strings.Contains(s.taskTail, ",task=") {
		return summaryLine{}, false
	}
	return s, true
}

// splitOOMAndTask splits "P,task_memcg=T,task=COMM" into P and the task
// tail. The victim's memcg is P or below it, which resolves paths that
// happen to contain ",task_memcg=".
func splitOOMAndTask(s string) (oomMemcg, taskTail string, ok bool) {
	const sep = ",task_memcg="
	first := -1
	for off := 0; ; {
		j := strings.Index(s[off:], sep)
		if j < 0 {
			break
		}
		j += off
		if first < 0 {
			first = j
		}
		if isAncestorOrSelf(s[:j], s[j+len(sep):]) {
			return s[:j], s[j+len(sep):], true
		}
		off = j + 1
	}
	if first < 0 {
		return "", "", false
	}
	return s[:first], s[first+len(sep):], true
}

// splitTaskTail returns the task_memcg path from "T,task=COMM". With the
// victim's comm known (from its "Killed process" line, where the name is
// delimited unambiguously) the split is exact; without it the first
// ",task=" is taken, since a name can hold ",task=" but the kernel wrote
// the path first.
func splitTaskTail(tail, comm string, commKnown bool) string {
	const sep = ",task="
	if commKnown && len(tail) >= len(sep)+len(comm) && strings.HasSuffix(tail, comm) {
		head := tail[:len(tail)-len(comm)]
		if strings.HasSuffix(head, sep) {
			return head[:len(head)-len(sep)]
		}
	}
	if i := strings.Index(tail, sep); i >= 0 {
		return tail[:i]
	}
	return tail
}

// selectionLine is the pre-5.1 "<prefix>: Kill process %d (%s) score %u or sacrifice child".
type selectionLine struct {
	prefix string
	pid    int64
}

func parseSelection(t string) (selectionLine, bool) {
	const marker = ": Kill process "
	i := strings.Index(t, marker)
	if i < 0 || !strings.HasSuffix(t, " or sacrifice child") {
		return selectionLine{}, false
	}
	sel := selectionLine{prefix: t[:i]}
	rest := t[i+len(marker):]
	pid, n := leadingUint(rest)
	if n == 0 || !strings.HasPrefix(rest[n:], " (") {
		return selectionLine{}, false
	}
	sel.pid = pid
	rest = rest[n+2:]
	// The name ends at the kernel's ") score " (unused: the victim line
	// names the killed process).
	if !strings.Contains(rest, ") score ") {
		return selectionLine{}, false
	}
	return sel, true
}

// victimLine is the line printed once per killed process (never
// rate-limited): "[<prefix>: ]Killed process %d (%s) <trailer>". The trailer
// has changed many times; see ../../../../shared/kernel-oom-formats.md and
// the fixtures.
type victimLine struct {
	prefix      string
	pid         int64
	comm        string
	uid         OptInt
	totalVMKB   OptInt
	anonRSSKB   OptInt
	fileRSSKB   OptInt
	shmemRSSKB  OptInt
	pgtablesKB  OptInt
	oomScoreAdj OptInt
	// drift is true when the trailer carried text this parser does not
	// know; the kill still counts, the drift is reported.
	drift bool
}

const victimMarker = "Killed process "

func parseVictim(t string) (victimLine, bool) {
	i := strings.Index(t, victimMarker)
	if i < 0 {
		return victimLine{}, false
	}
	var v victimLine
	if i > 0 {
		if i < 2 || t[i-2:i] != ": " {
			return victimLine{}, false
		}
		v.prefix = t[:i-2]
	}
	rest := t[i+len(victimMarker):]
	pid, n := leadingUint(rest)
	if n == 0 || !strings.HasPrefix(rest[n:], " (") {
		return victimLine{}, false
	}
	v.pid = pid
	rest = rest[n+2:]

	// The last anchor is the kernel's: after it come only numbers and
	// fixed words, so a name containing an anchor can only be earlier.
	std := strings.LastIndex(rest, ") total-vm:")
	rhel := strings.LastIndex(rest, "), UID ")
	sc := scanner{ok: true}
	switch {
	case std < 0 && rhel < 0:
		return victimLine{}, false
	case rhel > std:
		// RHEL 7: "(%s), UID %d, total-vm:%lukB, anon-rss:…, file-rss:…, shmem-rss:%lukB"
		v.comm = rest[:rhel]
		sc.s = rest[rhel+len("), UID "):]
		v.uid = sc.num()
		sc.lit(", ")
	default:
		v.comm = rest[:std]
		sc.s = rest[std+len(") "):]
	}
	sc.lit("total-vm:")
	v.totalVMKB = sc.kb()
	sc.lit(", anon-rss:")
	v.anonRSSKB = sc.kb()
	sc.lit(", file-rss:")
	v.fileRSSKB = sc.kb()
	if !sc.ok {
		return victimLine{}, false
	}
	if sc.try(", shmem-rss:") {
		v.shmemRSSKB = sc.kb()
	}
	if sc.try(", UID:") {
		v.uid = sc.num()
		if sc.try(" pgtables:") {
			v.pgtablesKB = sc.kb()
		}
		if sc.try(" oom_score_adj:") {
			v.oomScoreAdj = sc.num()
		}
	}
	v.drift = !sc.ok || sc.s != ""
	return v, true
}

// groupLine is "Tasks in %s are going to be killed due to memory.oom.group set".
func parseGroup(t string) (string, bool) {
	const head, tail = "Tasks in ", " are going to be killed due to memory.oom.group set"
	if !strings.HasPrefix(t, head) || !strings.HasSuffix(t, tail) || len(t) < len(head)+len(tail) {
		return "", false
	}
	return t[len(head) : len(t)-len(tail)], true
}

// parseTableRow reads the pid and tgid columns of a task table row:
// "[%7d] %5d %5d %8lu …" (pid, uid, tgid, …; 3.10 to today, wider pid
// column since 4.19).
func parseTableRow(t string) (pid, tgid int64, ok bool) {
	sc := scanner{s: t, ok: true}
	sc.lit("[")
	sc.spaces()
	p := sc.num()
	sc.lit("]")
	sc.spaces()
	sc.num() // uid
	sc.spaces()
	g := sc.num()
	if !sc.ok || !strings.HasPrefix(sc.s, " ") || p.Value < 0 || g.Value < 0 {
		return 0, 0, false
	}
	return p.Value, g.Value, true
}

// exitingPID reads the pid of "<prefix>: OOM victim %d (%s) is already exiting. …".
func exitingPID(t string) (int64, bool) {
	const marker = ": OOM victim "
	i := strings.Index(t, marker)
	if i < 0 {
		return 0, false
	}
	pid, n := leadingUint(t[i+len(marker):])
	return pid, n > 0
}

// isNotAKill matches report lines that end an OOM without killing anything.
func isNotAKill(t string) bool {
	return (strings.Contains(t, ": OOM victim ") && strings.HasSuffix(t, " is already exiting. Skip killing the task")) ||
		strings.HasPrefix(t, "Out of memory and no killable processes")
}

// isEcho matches lines that only repeat what other lines say: the
// asynchronous oom_reaper lines (4.14+) about a kill already counted, and
// printk's "oom_kill_process: 6 callbacks suppressed" about reports the
// rate limit dropped (their victim lines are still printed and counted).
func isEcho(t string) bool {
	return strings.HasPrefix(t, "oom_reaper: ") || strings.HasSuffix(t, " callbacks suppressed")
}

// isAncestorOrSelf reports whether cgroup path a is b or one of b's ancestors.
func isAncestorOrSelf(a, b string) bool {
	if a == b || a == "/" {
		return true
	}
	return strings.HasPrefix(b, a) && b[len(a)] == '/'
}

// valueAfter returns the text between key and the first of the ends.
func valueAfter(s, key string, ends ...string) (string, bool) {
	i := strings.Index(s, key)
	if i < 0 {
		return "", false
	}
	v := s[i+len(key):]
	for _, e := range ends {
		if j := strings.Index(v, e); j >= 0 {
			return v[:j], true
		}
	}
	return "", false
}

// intAfter parses the signed decimal right after the first key in s.
func intAfter(s, key string) OptInt {
	i := strings.Index(s, key)
	if i < 0 {
		return OptInt{}
	}
	sc := scanner{s: s[i+len(key):], ok: true}
	v := sc.num()
	return v
}
