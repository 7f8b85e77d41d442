package oomparse

import "strings"

// mayBeReportLine is the cheap first look at every kernel message: almost
// all of them are not about OOM, and one pass of a few substring searches
// tells so.
func mayBeReportLine(t string) bool {
	// Task table rows ("[  4242]     0  4242 …") name no OOM word.
	return strings.HasPrefix(t, "[") || strings.Contains(t, "oom") || strings.Contains(t, "OOM") ||
		strings.Contains(t, "ill") || strings.Contains(t, "emory") ||
		strings.Contains(t, " cpuset=")
}

// memInfoHead starts a system OOM's node summary; it names no OOM word.
// (Checked apart from mayBeReportLine, which must stay small enough to
// inline: it runs on every kernel message.)
const memInfoHead = "Mem-Info:"

// oomIndicators are words only the OOM killer's own messages use. A line
// holding one that no parser understood is format drift.
var oomIndicators = []string{
	"oom-kill", "oom_kill", "Killed process", "Kill process", "out of memory",
	"Out of memory", "oom_reaper", "OOM victim", "oom.group", "oom_memcg",
	"task_memcg", "killed as a result of limit",
}

// noisePrefixes start the lines of an OOM report that carry no fact we use
// (stack dump, memory statistics, task table) but may quote a task name or
// a kernel symbol that contains an indicator.
var noisePrefixes = []string{
	"[", "CPU: ", "Hardware name:", "Call Trace:", "Mem-Info:", "Memory cgroup stats for ",
	"Tasks state", "memory: usage", "memory+swap: usage", "kmem: usage", "swap: usage",
	"Node ", "active_anon:", "Free swap", "Total swap", "RIP:", "Code:", "RSP:", "<TASK>", "</TASK>",
}

// looksOOM reports whether t, which no parser understood, reads like an OOM
// killer message rather than report noise.
func looksOOM(t string) bool {
	for _, p := range noisePrefixes {
		if strings.HasPrefix(t, p) {
			return false
		}
	}
	// Stack frames: " out_of_memory+0x2c5/0x5b0", " ? oom_kill_process+0x…".
	if strings.Contains(t, "+0x") {
		return false
	}
	for _, w := range oomIndicators {
		if strings.Contains(t, w) {
			return true
		}
	}
	return false
}
