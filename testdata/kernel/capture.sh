#!/usr/bin/env bash
# capture.sh - capture REAL Linux kernel OOM-kill reports as text fixtures.
#
# For every scenario this script
#   1. creates a memory cgroup (cgroup v1, /sys/fs/cgroup/memory) whose path is
#      shaped like the ones kubelet / container runtimes create,
#   2. sets a 64 MiB limit and runs a python3 process in it that allocates
#      200 MiB (bytearray, which touches every page), so the memcg OOM killer
#      fires,
#   3. brackets the event with marker lines written to /dev/kmsg and copies the
#      kernel lines between the markers (`dmesg --notime`, markers excluded,
#      text unmodified) to captured/<scenario>.txt, after a few "# " header
#      lines describing what happened,
#   4. removes the cgroups it created (innermost first).
#
# Some scenarios are also exported from a real systemd-journald in journal
# EXPORT format (`journalctl -o export _TRANSPORT=kernel`) to
# ../journal/captured/<scenario>.export. If no journald is running, a
# standalone one is started for the duration of the run and stopped (by PID)
# afterwards; the journal files it created are deleted.
#
# The pod UIDs and container IDs are fixed (hard-coded below), so re-running
# produces the same cgroup paths. PIDs, addresses, counters and timestamps of
# course differ from run to run.
#
# Requirements: root, cgroup v1 memory controller at /sys/fs/cgroup/memory,
# no swap (otherwise the allocation may be swapped instead of OOM-killed),
# python3, dmesg (util-linux), optionally systemd-journald + journalctl.
#
# Usage: sudo testdata/kernel/capture.sh
# Environment knobs:
#   PY=/usr/bin/python3   python interpreter (a real binary, not a pyenv shim,
#                         so that the victim's comm is "python3")
#   SETTLE=6              seconds to wait before each scenario so the kernel's
#                         OOM-report rate limit (5 s interval, burst 10) has
#                         reset and every scenario gets a full report
#   JOURNAL=1             set to 0 to skip the journald export part
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OUT_KERNEL=$HERE/captured
OUT_JOURNAL=$(cd "$HERE/.." && pwd)/journal/captured
MEMCG=/sys/fs/cgroup/memory
PY=${PY:-/usr/bin/python3}
SETTLE=${SETTLE:-6}
JOURNAL=${JOURNAL:-1}
LIMIT=$((64 << 20))      # 64 MiB
ALLOC='b = bytearray(200 << 20)'   # 200 MiB, pages are touched (zeroed)
KVER=$(uname -r)
RUN_ID="$$.$(date +%s%N)"          # makes this run's markers unique in dmesg

# Scenarios whose journal export is wanted (kernel fixture name = export name).
JOURNAL_SCENARIOS=(
  cgroupfs_burstable_containerd_child
  systemd_burstable_containerd_child
  hostile_comm_pid_uid hostile_comm_total_vm hostile_comm_task_evil
  hostile_comm_oom_kill hostile_comm_invoked hostile_comm_killed_process
  rate_limited
)

# ---------------------------------------------------------------------------
# Sanity checks
# ---------------------------------------------------------------------------
die() { echo "capture.sh: $*" >&2; exit 1; }
[[ $(id -u) == 0 ]] || die "must run as root"
[[ -f $MEMCG/memory.limit_in_bytes ]] || die "no cgroup v1 memory controller at $MEMCG"
[[ -x $PY ]] || die "python interpreter $PY not found (set PY=...)"
if awk 'NR > 1 { found = 1 } END { exit !found }' /proc/swaps; then
  echo "capture.sh: warning: swap is enabled; OOM kills may not happen" >&2
fi
mkdir -p "$OUT_KERNEL" "$OUT_JOURNAL"

# ---------------------------------------------------------------------------
# Cgroup bookkeeping and cleanup
# ---------------------------------------------------------------------------
CREATED=()   # cgroup dirs created by us, outermost first

# mkcg <path relative to the memcg root>: create every missing component and
# remember it for cleanup. Sets CG_DIR to the absolute directory. (Not used
# in $(...): the bookkeeping must happen in this shell.)
mkcg() {
  local rel=${1#/} dir=$MEMCG part
  local IFS=/
  for part in $rel; do
    dir=$dir/$part
    if [[ ! -d $dir ]]; then
      mkdir "$dir"
      CREATED+=("$dir")
    fi
  done
  CG_DIR=$dir
}

# Remove the cgroups we created, innermost first. Any process still inside
# (only processes this script started can be there) is SIGKILLed by PID and
# waited for first.
cleanup_cgroups() {
  local i dir pid tries
  for ((i = ${#CREATED[@]} - 1; i >= 0; i--)); do
    dir=${CREATED[i]}
    [[ -d $dir ]] || continue
    for tries in 1 2 3 4 5 6 7 8 9 10; do
      [[ -s $dir/cgroup.procs ]] || break
      while read -r pid; do kill -KILL "$pid" 2>/dev/null || true; done < "$dir/cgroup.procs"
      sleep 0.2
    done
    rmdir "$dir" 2>/dev/null || { sleep 0.5; rmdir "$dir" || echo "capture.sh: could not remove $dir" >&2; }
  done
  CREATED=()
}

# journald bookkeeping (filled in by start_journald)
JOURNALD_PID=
JOURNAL_DIR_ARGS=()
CREATED_PATHS=()   # /run paths created for our standalone journald

stop_journald() {
  if [[ -n $JOURNALD_PID ]]; then
    kill -TERM "$JOURNALD_PID" 2>/dev/null || true
    wait "$JOURNALD_PID" 2>/dev/null || true
    JOURNALD_PID=
  fi
  local i
  for ((i = ${#CREATED_PATHS[@]} - 1; i >= 0; i--)); do
    rm -rf -- "${CREATED_PATHS[i]}"
  done
  CREATED_PATHS=()
}

on_exit() {
  local rc=$?
  set +e
  cleanup_cgroups
  stop_journald
  exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------------------
# journald: use the running one, or start a standalone one
# ---------------------------------------------------------------------------
start_journald() {
  # NB: the process comm is truncated to 15 bytes ("systemd-journal"), so
  # `pgrep -x systemd-journald` never matches.
  if pgrep -x systemd-journal >/dev/null; then
    echo "using the already running systemd-journald"
    return
  fi
  local jd=/lib/systemd/systemd-journald p
  [[ -x $jd ]] || { echo "no systemd-journald, skipping journal export" >&2; JOURNAL=0; return; }
  # Remember which /run paths we create so we delete exactly those.
  for p in /run/systemd/journal /run/log /run/log/journal; do
    [[ -e $p ]] || CREATED_PATHS+=("$p")
  done
  local mid
  mid=$(cat /etc/machine-id)
  [[ -e /run/log/journal/$mid ]] || CREATED_PATHS+=("/run/log/journal/$mid")
  mkdir -p /run/systemd/journal
  "$jd" </dev/null >/dev/null 2>&1 &
  JOURNALD_PID=$!
  # Without a flush request it keeps its journal in /run/log/journal/<machine-id>.
  JOURNAL_DIR_ARGS=(-D /run/log/journal)
  local t
  for t in $(seq 50); do
    [[ -S /run/systemd/journal/socket ]] && break
    sleep 0.1
  done
  echo "started standalone systemd-journald, PID $JOURNALD_PID, machine-id $mid"
}

# ---------------------------------------------------------------------------
# Markers and extraction
# ---------------------------------------------------------------------------
marker() { echo "OOMCAPTURE $1 $2 $RUN_ID" > /dev/kmsg; }

begin() {
  sleep "$SETTLE"          # let the OOM report rate limit window expire
  marker begin "$1"
}

finish() {
  sleep 1                  # give the oom_reaper etc. time to log
  marker end "$1"
}

# extract <name> <header-file>: header + kernel lines between the markers.
extract() {
  local name=$1 header=$2 out=$OUT_KERNEL/$1.txt body
  local b="OOMCAPTURE begin $name $RUN_ID" e="OOMCAPTURE end $name $RUN_ID"
  body=$(mktemp)
  dmesg --notime > "$body.all"
  grep -qxF -- "$b" "$body.all" || die "$name: begin marker not in dmesg (ring buffer overrun?)"
  grep -qxF -- "$e" "$body.all" || die "$name: end marker not in dmesg"
  awk -v b="$b" -v e="$e" '$0 == e { exit } f { print } $0 == b { f = 1 }' "$body.all" > "$body"
  cat "$header" "$body" > "$out"
  rm -f "$body" "$body.all" "$header"
  echo "wrote $out ($(grep -c ': Killed process [0-9]' "$out" || true) 'Killed process' lines)"
}

# header <file> <scenario> <cgroup path> <what was killed> <parent survived> [extra...]
header() {
  local f=$1 name=$2 cg=$3 killed=$4 parent=$5
  shift 5
  {
    echo "# scenario: $name"
    echo "# cgroup: $cg"
    echo "# kernel: $KVER"
    echo "# killed: $killed"
    echo "# parent survived: $parent"
    local x
    for x in "$@"; do echo "# $x"; done
    echo "# raw kernel lines follow (dmesg --notime between markers); made by testdata/kernel/capture.sh"
  } > "$f"
}

# describe_status <exit status>: human-readable wait status
describe_status() {
  if [[ $1 == 137 ]]; then echo "exit status 137 = SIGKILL"; else echo "exit status $1 (NOT SIGKILL)"; fi
}

# ---------------------------------------------------------------------------
# Runners
# ---------------------------------------------------------------------------

# run_child <abs cgroup dir> <python code> [args...]
# A bash "parent" joins the cgroup and forks python3 as its child, waits for it
# and reports. Sets PARENT_PID CHILD_PID CHILD_STATUS PARENT_ALIVE.
run_child() {
  local dir=$1 code=$2 out st=0
  shift 2
  out=$(bash -c '
      echo $$ > "$1/cgroup.procs"; shift
      "$@" & c=$!
      wait $c; s=$?
      echo "$$ $c $s"' parent "$dir" "$PY" -c "$code" "$@") || st=$?
  if [[ $st == 0 && -n $out ]]; then
    read -r PARENT_PID CHILD_PID CHILD_STATUS <<< "$out"
    PARENT_ALIVE="yes (bash parent pid $PARENT_PID printed the child's status and exited 0)"
  else
    PARENT_PID=? CHILD_PID=? CHILD_STATUS=?
    PARENT_ALIVE="NO (bash parent exit status $st)"
  fi
}

# child_scenario <name> <cgroup rel path> [limit rel path]
# Standard "bash parent survives, python3 child killed" scenario. The limit is
# set on the cgroup itself unless a (parent) limit path is given.
child_scenario() {
  local name=$1 rel=$2 limrel=${3:-$2} dir limdir hdr
  mkcg "$rel"; dir=$CG_DIR
  limdir=$MEMCG/${limrel#/}
  echo "$LIMIT" > "$limdir/memory.limit_in_bytes"
  begin "$name"
  run_child "$dir" "$ALLOC"
  finish "$name"
  cleanup_cgroups
  hdr=$(mktemp)
  header "$hdr" "$name" "$rel" \
    "python3 child pid $CHILD_PID allocating 200 MiB ($(describe_status "$CHILD_STATUS"))" \
    "$PARENT_ALIVE" \
    "memory limit: 64 MiB on $limrel" \
    "processes in the cgroup: bash parent + python3 child"
  extract "$name" "$hdr"
}

# ---------------------------------------------------------------------------
# Scenarios (fixed pod UIDs / container IDs)
# ---------------------------------------------------------------------------
main() {
  [[ $JOURNAL == 1 ]] && start_journald

  # 1. cgroupfs driver, burstable pod, containerd container id
  child_scenario cgroupfs_burstable_containerd_child \
    /kubepods/burstable/pod9ebd2433-1942-4ba8-90cd-b72b18948548/e7831b56831a3c461b886f4db7354a0704862a0424627fd35683c2fc57897c6e

  # 2. cgroupfs, guaranteed pod; python3 is the only process in the cgroup
  #    (bash joins the cgroup and execs python3, so nothing survives inside).
  local name=cgroupfs_guaranteed_main
  local rel=/kubepods/podd66a2e3a-c2bd-4b30-9822-59ad7b76ebd6/5e3a15257ccea8338daa79994b7f4c24e1c532f134d37f065e58a968e395b405
  local dir st hdr
  mkcg "$rel"; dir=$CG_DIR
  echo "$LIMIT" > "$dir/memory.limit_in_bytes"
  begin "$name"
  bash -c 'echo $$ > "$1/cgroup.procs"; exec "$2" -c "$3"' main "$dir" "$PY" "$ALLOC" &
  local mpid=$!
  st=0; wait "$mpid" || st=$?
  finish "$name"
  cleanup_cgroups
  hdr=$(mktemp)
  header "$hdr" "$name" "$rel" \
    "python3 pid $mpid, the only process in the cgroup ($(describe_status "$st"))" \
    "n/a (no parent inside the cgroup; bash joined the cgroup and exec'd python3)" \
    "memory limit: 64 MiB on $rel"
  extract "$name" "$hdr"

  # 3. cgroupfs, besteffort pod, CRI-O container cgroup name
  child_scenario cgroupfs_besteffort_crio_child \
    /kubepods/besteffort/podc3f58a2f-1762-4085-963a-2f95f3f75899/crio-8ceb7442449a887dbfc9ac395ded9007d83a5d3ca2c0106926bac15a751da49e

  # 4. systemd driver, burstable, containerd
  child_scenario systemd_burstable_containerd_child \
    /kubepods.slice/kubepods-burstable.slice/kubepods-burstable-podf7935365_b478_41fe_8ad7_8d79328a4a16.slice/cri-containerd-21f39a37bedacc259b250d62a97945c7e06d98fd04e7672736c95113e41658cb.scope

  # 5. systemd driver, besteffort, CRI-O
  child_scenario systemd_besteffort_crio_child \
    /kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1a7ab7e3_ef29_4cc4_8cb2_5140d32820a9.slice/crio-85c9be50982876b836e690cd35d8ba7bc06d93892d81f572ecf5a69a0871dd9a.scope

  # 6. systemd driver, guaranteed, docker (cri-dockerd)
  child_scenario systemd_guaranteed_docker_child \
    /kubepods.slice/kubepods-pod23d0d51b_b8fa_41d0_a306_0cc0bd0e066d.slice/docker-9c5ba396c9a52294bc3df3887249ee6785519d77dddc66b1527c32d5debed844.scope

  # 7. limit on the POD cgroup, victim in the (unlimited) container cgroup:
  #    oom_memcg = pod, task_memcg = container.
  child_scenario pod_limit \
    /kubepods/burstable/pod121bc481-6186-4d27-ac69-1c26ae2abfed/0e8b74b52f2f298f46154fe55b31e7cf7eb91c2f50643abe14ce4d9d7a70a0be \
    /kubepods/burstable/pod121bc481-6186-4d27-ac69-1c26ae2abfed

  # 8. processes directly in the pod cgroup (no container level)
  child_scenario task_in_pod_cgroup \
    /kubepods/burstable/pod8cbf670e-2f6d-479c-b949-fb5c130fd500

  # 9. kubelet --cgroup-root=/kubelet prefix
  child_scenario cgroup_root_prefix \
    /kubelet/kubepods/burstable/podfb736407-a3be-4327-95c4-dd3efa4459c6/0fa5b13fc443e572b4aa88f0ff9e731c8cd3847929b73fb6355ed755b78154ac

  # 10. plain docker (cgroupfs driver), not Kubernetes
  child_scenario plain_docker \
    /docker/7ed259af0b3c0568d6f63bc007198861e5a394378d41c09eec5ff8dee24bb596

  # 11. a systemd service, not a container
  child_scenario system_service /system.slice/oomtest.service

  # 12. hostile comm: the python3 child renames itself (write to
  #     /proc/self/comm, max 15 bytes) before allocating. One file per name.
  hostile hostile_comm_pid_uid         'a,pid=1,uid=0'  65cac9df-1f55-494b-a837-98cf6e38dab1 4bc8c04e53344f521e8a20233ac26829eaf7345629081fe10ea3503c42b67a3a
  hostile hostile_comm_total_vm        ') total-vm:1kB' 07ef12a4-ef17-4afa-84b2-2b15a55cc7c0 194a244d6e9710f37b7c81042c1634db7349dd37391ed0f0e8d8f56e14d363a8
  hostile hostile_comm_task_evil       'x,task=evil'    3ac081fb-1bf3-4c11-804f-f5b3ad92afdc 940549fea423b220fd55b64e171492e1c82f0cbdbf7f7bf64d7d14d55d9d3e07
  hostile hostile_comm_oom_kill        'evil oom-kill:' 70a5b11a-f35d-4cd3-ad92-544b2f529302 3ea56acfd6c018c88b5e16a869c05a318f2ce937ba0e1b1ee47a10e43f560c30
  hostile hostile_comm_invoked         ' invoked oom-k' ff87d0d3-7fd3-4d1f-a863-c50a46f9f5c5 82b04cdb8f3be7d059e7d5ab7124ca2402c560670e1eb001fd7431b87bc00c27
  hostile hostile_comm_killed_process  'Killed process' 0071c552-cebd-4f6b-b112-0203924477d8 edac56a24f68b8356c9e0d336a4c37aed3b7ab89064851bce2f0f8a5d931a95b

  # 14. several allocators at once in one cgroup
  multi_kill

  # 15. anonymous memory, shmem and page cache in the OOM'd cgroup
  memory_context

  # 13. rate limiting (last: it leaves the rate limiter in a suppressed state)
  rate_limited

  if [[ $JOURNAL == 1 ]]; then
    export_journal
  fi
}

# hostile <name> <comm> <pod uid> <container id>
hostile() {
  local name=$1 comm=$2 uid=$3 cid=$4
  local rel=/kubepods/burstable/pod$uid/$cid dir hdr actual
  mkcg "$rel"; dir=$CG_DIR
  echo "$LIMIT" > "$dir/memory.limit_in_bytes"
  begin "$name"
  run_child "$dir" '
import sys
with open("/proc/self/comm", "w") as f:
    f.write(sys.argv[1])
b = bytearray(200 << 20)' "$comm"
  finish "$name"
  cleanup_cgroups
  hdr=$(mktemp)
  header "$hdr" "$name" "$rel" \
    "python3 child pid $CHILD_PID renamed via /proc/self/comm to '$comm' (${#comm} bytes) before allocating 200 MiB ($(describe_status "$CHILD_STATUS"))" \
    "$PARENT_ALIVE" \
    "memory limit: 64 MiB on $rel" \
    "one kill per file (one file per hostile name)"
  extract "$name" "$hdr"
}

# 15. The bash parent writes 16 MiB into a /dev/shm file (shmem charged to
#     the cgroup) and 8 MiB into a file on disk (page cache) before its
#     python3 child allocates: the report's stats then show each kind.
memory_context() {
  local name=memory_context
  local rel=/kubepods/burstable/pod5e1f0c2a-7b3d-4c8e-9f10-23456789abcd/6d1c2b3a4f5e6d7c8b9a0f1e2d3c4b5a69788796a5b4c3d2e1f0a9b8c7d6e5f4
  local dir hdr shm=/dev/shm/oomcapture.$RUN_ID file=/var/tmp/oomcapture.$RUN_ID
  mkcg "$rel"; dir=$CG_DIR
  echo "$LIMIT" > "$dir/memory.limit_in_bytes"
  begin "$name"
  run_child "$dir" 'import os, sys
with open(sys.argv[1], "wb") as f: f.write(b"s" * (16 << 20))
with open(sys.argv[2], "wb") as f: f.write(os.urandom(8 << 20))
b = bytearray(200 << 20)' "$shm" "$file"
  finish "$name"
  rm -f "$shm" "$file"
  cleanup_cgroups
  hdr=$(mktemp)
  header "$hdr" "$name" "$rel" \
    "python3 child pid $CHILD_PID writing 16 MiB to /dev/shm and 8 MiB to disk, then allocating 200 MiB ($(describe_status "$CHILD_STATUS"))" \
    "$PARENT_ALIVE" \
    "memory limit: 64 MiB on $rel"
  extract "$name" "$hdr"
}

# 14. A bash parent in the cgroup forks three python3 allocators at once, each
#     allocating 30 MiB and holding it for 3 s (3 x 30 MiB + interpreter
#     overhead > 64 MiB).
multi_kill() {
  local name=multi_kill_same_report
  local rel=/kubepods/burstable/pod1a871734-ef54-4ec9-a3b6-76c49414c09b/0288d992a9e9f9a8e97a0bb47abffd515acd11e7556903e1626989132b3a9656
  local dir out st=0 hdr
  mkcg "$rel"; dir=$CG_DIR
  echo "$LIMIT" > "$dir/memory.limit_in_bytes"
  begin "$name"
  out=$(bash -c '
      echo $$ > "$1/cgroup.procs"
      pids=()
      for i in 1 2 3; do
        "$2" -c "import time; b = bytearray(30 << 20); time.sleep(3)" & pids+=($!)
      done
      res=""
      for p in "${pids[@]}"; do wait $p; res="$res pid $p: status $?;"; done
      echo "bash parent pid $$ alive;$res"' parent "$dir" "$PY") || st=$?
  finish "$name"
  cleanup_cgroups
  hdr=$(mktemp)
  header "$hdr" "$name" "$rel" \
    "three concurrent python3 children of one bash parent, each allocating 30 MiB; results (137 = SIGKILL):${out#*;}" \
    "$( [[ $st == 0 ]] && echo "yes (${out%%;*})" || echo "NO (parent exit status $st)")" \
    "memory limit: 64 MiB on $rel"
  extract "$name" "$hdr"
}

# 13. 16 python3 children run back to back in a tight loop by one bash parent
#     (each allocating 200 MiB under 64 MiB), so the kernel's OOM report rate
#     limit (oom_rs: 10 reports per 5 s) suppresses the full dump for some of
#     them. After a 6 s pause one more child is killed: this is the first OOM
#     after the rate limit window, so the kernel prints its
#     "oom_kill_process: N callbacks suppressed" line.
rate_limited() {
  local name=rate_limited n=16
  local rel=/kubepods/burstable/pod0efd39fa-bb72-476e-b44a-d2b964c7c202/1ced05f130cb28cad590c80d6d5754f45230ab0fe3351ec8abbeae7b98b10e33
  local dir out st=0 hdr kills ms extra
  mkcg "$rel"; dir=$CG_DIR
  echo "$LIMIT" > "$dir/memory.limit_in_bytes"
  begin "$name"
  out=$(bash -c '
      echo $$ > "$1/cgroup.procs"
      n=$2 py=$3 code=$4 k=0
      t0=$(date +%s%N)
      for ((i = 0; i < n; i++)); do
        "$py" -c "$code" & c=$!
        wait $c && s=0 || s=$?
        [[ $s == 137 ]] && k=$((k + 1))
      done
      t1=$(date +%s%N)
      sleep 6
      "$py" -c "$code" & c=$!
      wait $c && s=0 || s=$?
      [[ $s == 137 ]] && x=1 || x=0
      echo "$k $(( (t1 - t0) / 1000000 )) $x $$"' parent "$dir" "$n" "$PY" "$ALLOC") || st=$?
  finish "$name"
  cleanup_cgroups
  read -r kills ms extra ppid <<< "$out"
  hdr=$(mktemp)
  local total=$((kills + extra))
  header "$hdr" "$name" "$rel" \
    "$n python3 children run sequentially in a tight loop, $kills of them SIGKILLed within ${ms} ms; then after a 6 s pause 1 more child ($([[ $extra == 1 ]] && echo SIGKILLed || echo NOT killed)); $total OOM kills triggered in total" \
    "$([[ $st == 0 ]] && echo "yes (bash parent pid $ppid)" || echo "NO (parent exit status $st)")" \
    "memory limit: 64 MiB on $rel" \
    "KILLED_PROCESS_LINES_PLACEHOLDER"
  extract "$name" "$hdr"
  local f=$OUT_KERNEL/$name.txt c full
  c=$(grep -c ': Killed process [0-9]' "$f" || true)
  full=$(grep -c 'invoked oom-killer' "$f" || true)
  sed -i "s|^# KILLED_PROCESS_LINES_PLACEHOLDER\$|# \"Killed process\" lines in this file: $c; full reports (\"invoked oom-killer\" headers): $full|" "$f"
}

# ---------------------------------------------------------------------------
# Journal export
# ---------------------------------------------------------------------------
# Writes, for each scenario in JOURNAL_SCENARIOS, the _TRANSPORT=kernel entries
# strictly between that scenario's begin/end marker entries (the markers are
# written to /dev/kmsg, so journald also records them with _TRANSPORT=kernel,
# but SYSLOG_FACILITY=1). Entries are copied byte for byte, so binary
# (length-prefixed) fields would be preserved.
export_journal() {
  local last="OOMCAPTURE end rate_limited $RUN_ID" t
  # wait until journald has read everything from /dev/kmsg
  for t in $(seq 100); do
    if journalctl "${JOURNAL_DIR_ARGS[@]}" -q -o cat _TRANSPORT=kernel MESSAGE="$last" 2>/dev/null | grep -qxF "$last"; then
      break
    fi
    sleep 0.2
  done
  local exp
  exp=$(mktemp)
  journalctl "${JOURNAL_DIR_ARGS[@]}" -o export _TRANSPORT=kernel > "$exp"
  "$PY" - "$exp" "$OUT_JOURNAL" "$RUN_ID" "${JOURNAL_SCENARIOS[@]}" <<'EOF'
import sys

path, outdir, run_id, names = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
data = open(path, "rb").read()

# Parse the journal export format: "FIELD=value\n" text fields, or
# "FIELD\n" + 64-bit LE length + raw bytes + "\n" for binary fields;
# entries end with an empty line. Keep each entry's raw bytes.
entries, pos, start, msg = [], 0, 0, None
while pos < len(data):
    nl = data.index(b"\n", pos)
    line = data[pos:nl]
    if line == b"":
        entries.append((msg, data[start:nl + 1]))
        pos = start = nl + 1
        msg = None
        continue
    if b"=" in line:
        name, _, value = line.partition(b"=")
        pos = nl + 1
    else:
        name = line
        size = int.from_bytes(data[nl + 1:nl + 9], "little")
        value = data[nl + 9:nl + 9 + size]
        assert data[nl + 9 + size:nl + 10 + size] == b"\n"
        pos = nl + 10 + size
    if name == b"MESSAGE":
        msg = value

for n in names:
    b = ("OOMCAPTURE begin %s %s" % (n, run_id)).encode()
    e = ("OOMCAPTURE end %s %s" % (n, run_id)).encode()
    msgs = [m for m, _ in entries]
    i, j = msgs.index(b), msgs.index(e)
    with open("%s/%s.export" % (outdir, n), "wb") as f:
        for _, raw in entries[i + 1:j]:
            f.write(raw)
    print("wrote %s/%s.export (%d entries)" % (outdir, n, j - i - 1))
EOF
  rm -f "$exp"
}

main "$@"
