// Package oomkillreceiver reads the kernel's OOM-killer reports from the
// kernel's log (the systemd journal or /dev/kmsg) and emits one log record and one counter increment per
// killed process, carrying k8s.pod.uid and container.id.
//
// The receiver's loop (receiver.go) runs the same stages in every round,
// each a unit of its own, with nothing below using anything above it:
//
//	receiver.go    lifecycle and the loop: read, check, observe, account, deliver, checkpoint, sleep
//	follower.go    reads the kernel log through a kernlog.Source, drops forged lines, feeds the parser
//	source.go      opens the configured kernel log (the journal, /dev/kmsg, or auto's choice)
//	witness.go     checks the kills read against the kernel's OOM-kill counters (internal/oomcounter
//	               reads them, internal/reconcile matches them); adds the kills only they saw
//	outcome.go     what became of each victim's container, as soon as the kernel shows it; holds the
//	               kills it cannot decide yet (internal/outcomewatch, cgroupstate, hostproc)
//	delivery.go    hands records and counters to the next consumers, retrying; the refresh
//	checkpoint.go  the kernel log position, the series totals and the held kills, in the storage extension
//	killlog.go     the receiver's own log lines about kills, bounded
//	emit.go        kills and series as pdata (memory.go: the report's memory context)
//	groupkill.go   oom.group.id and oom.group.size of memory.oom.group kills
//	series.go      the bounded counter series
//	kill.go        the kill record and its oom.kill.id
//	telemetry.go   the receiver's own counters, exported from 0
//
// internal/kernlog is the seam between where kernel lines come from and
// what is done with them; internal/journal implements it (the only cgo),
// internal/oomparse parses the lines (pure Go, no I/O).
//
//go:generate go tool -modfile=../../internal/tools/go.mod mdatagen metadata.yaml
package oomkillreceiver
