# otelcol-oomkill — see README.md.
# cgo is required: the journal reader links libsystemd (Debian: libsystemd-dev).
export CGO_ENABLED := 1

GO        ?= go
FUZZTIME  ?= 15s
PKGS      := ./...

.PHONY: test unit fuzz vet build run bench generate

## test: everything CI runs (the README's test command, and all .ci/run does). First installs
## what the tests need (scripts/install-deps.sh: Debian packages with apt-get, as root; elsewhere
## it stops and lists them). The collector-level tests (test/collector) run the distribution, so it
## is built first; the k8smeta tests run a real kube-apiserver and etcd, built once from the Go
## module proxy and cached; chart checks the Helm chart; kmsg-test reads this machine's /dev/kmsg;
## e2e-image builds the container image (cached) and runs it as the DaemonSet does; e2e-node runs
## the DaemonSet on a real single-node cluster, installed with kubectl and with helm; e2e-node-v2
## runs the seed's story on a cgroup v2 node in the kernel lab. Around the suites, cgroup-leftovers
## checks that no test left a cgroup behind.
test: deps-test cgroup-snapshot build k8s-binaries chart lint vet cross rules unit kmsg-test kernel-lab fuzz e2e-image e2e-node e2e-node-v2 cgroup-leftovers

## deps-run, deps-test: what make run / make test need from the machine (scripts/install-deps.sh).
.PHONY: deps-run deps-test
deps-run:
	@scripts/install-deps.sh run
deps-test:
	@scripts/install-deps.sh test

## cgroup-snapshot, cgroup-leftovers: around the suites, the check that no test left a cgroup behind
## (tests make kubelet-shaped cgroups only below a prefix of their own, never in the kubelet's tree).
.PHONY: cgroup-snapshot cgroup-leftovers
CGROUPS_BEFORE  = $(OCB_OUT)/cgroups-before.txt
cgroup-snapshot:
	@mkdir -p $(OCB_OUT)
	test/cgroup-leftovers.sh snapshot $(CGROUPS_BEFORE)

cgroup-leftovers:
	test/cgroup-leftovers.sh check $(CGROUPS_BEFORE)

# kube-apiserver + etcd for tests: ≈16 min the first time on 2 cores, then cached under
# $${XDG_CACHE_HOME:-~/.cache}/otelcol-oomkill/k8s/, where test/harness/kubeapitest finds them
# (or set KUBE_TEST_BINARIES).
.PHONY: k8s-binaries
k8s-binaries:
	test/k8sbin/build.sh

## chart: charts/otelcol-oomkill with a real helm v4 (test/helmbin/build.sh builds it from the Go
## module proxy: 4 min of CPU cold, then cached under
## $${XDG_CACHE_HOME:-~/.cache}/otelcol-oomkill/helm/): helm lint --strict and helm template of the
## defaults, then test/chart: the defaults equal `kubectl kustomize examples/kubernetes` object by
## object, wrong values fail at helm template, every rendered configuration passes the built
## collector's validate and every rendered object a real kube-apiserver's dry run.
.PHONY: helm chart
helm:
	@test/helmbin/build.sh >/dev/null

chart: helm build k8s-binaries
	test/k8sbin/build.sh kubectl >/dev/null
	h=$$(test/helmbin/build.sh 2>/dev/null) && "$$h" lint --strict charts/otelcol-oomkill && \
	  "$$h" template otelcol-oomkill charts/otelcol-oomkill --namespace otelcol-oomkill >/dev/null
	$(GO) test -count=1 ./test/chart/

# The side-by-side harness and the node tests are behind build tags (not part of `go test ./...`);
# vet still compiles them.
vet:
	$(GO) vet $(PKGS)
	CGO_ENABLED=0 $(GO) vet $(PKGS)
	$(GO) vet -tags sidebyside ./test/bench/
	$(GO) vet -tags e2enode,e2ecluster ./test/node/ ./test/harness/kubenode/ ./test/manifests/
	$(GO) vet -tags realkernel ./receiver/oomkillreceiver/internal/kmsg/

## image: the collector image from the Dockerfile, built with buildah and no registry: base images
## from Debian packages (debootstrap) and the host's Go, cached with the image store under
## $${XDG_CACHE_HOME:-~/.cache}/otelcol-oomkill/image; prints the OCI archive's path
## (docker.io/library/otelcol-oomkill:0.1.0). Root; Debian: buildah podman debootstrap.
.PHONY: image e2e-image e2e-node e2e-node-v2
image:
	test/image/build.sh

## e2e-image: the image run as examples/kubernetes/03-daemonset.yaml runs it (podman: uid/gid
## 10001 plus the journal's group, no capabilities, no new privileges, read-only root; the journal
## and /etc/machine-id read-only) on this machine's journal: a wrong journal group fails at start
## naming the gid to add; with the journal's group a real kernel OOM kill is counted, and a
## replacement container resumes from the checkpoint (root; starts a systemd-journald if none
## runs). First run ≈10 min on 2 cores (base images and the collector build), then seconds.
e2e-image:
	$(GO) test -tags e2enode -count=1 -timeout 40m -run '^TestImageAsDaemonSet$$' -v ./test/node/

## e2e-node: the seed's story on a real single-node cluster (test/harness/kubenode: etcd, kube-apiserver,
## kube-controller-manager, kube-scheduler and kubelet v1.37.2 from test/k8sbin, Debian's containerd
## 1.6 with runc and the CNI bridge plugin): examples/kubernetes applied with kubectl as its README
## says, a php-fpm-like Deployment whose worker and then main process the kernel OOM-kills, the
## DaemonSet's collector counting both with names, a real Prometheus firing the shipped alert, the
## collector pod replaced mid-test; then an init container OOM-killed at every start (CrashLoopBackOff)
## and a crash-looping pod deleted mid-loop, the collector replaced mid-loop with k8smeta's
## deleted_pod_grace and the receiver's refresh shortened: each killed container ID in one named series
## past the grace period, the sums and the Event's count equal to the kernel's kills; then the chart
## installed with helm install instead, counting a kill with names; then the node's teardown is
## checked to leave nothing behind.
## Root; one run at a time per machine (fixed names, so a crashed run is cleaned up by the next).
## First run: kubelet & co. (≈6 min cold on 2 cores after k8s-binaries) and the images, then cached.
e2e-node: k8s-binaries helm
	test/k8sbin/build.sh node >/dev/null
	$(GO) test -tags e2enode -count=1 -run '^TestKmsgOverlay$$' -v ./test/manifests/
	$(GO) test -tags e2enode,e2ecluster -count=1 -timeout 30m -run '^TestNodeStory$$' -v ./test/node/
	$(GO) test -tags e2ecluster -count=1 -timeout 10m -v ./test/harness/kubenode/

## e2e-node-v2: the seed's story on the node most clusters run today, both ways: kubelet v1.37.2,
## Debian's containerd 1.6 and runc on Debian's 6.12 kernel with cgroup v2 only, in a kernel-lab guest
## (qemu TCG, 2 vCPUs, 3 GiB; test/harness/kubenode StartInGuest) whose tap device sits on a bridge of
## the test's own; the control plane on this machine. The default kubelet (memory.oom.group=1): a
## worker's allocation kills the whole container, every process counted once, outcome exited, the
## kubelet's OOMKilled and restart, one Event counting them all; singleProcessOOMKill: true: only the
## worker dies, outcome survived, no restart, ContainerOOMKilledSilently fires in a real Prometheus.
## Root; needs what e2e-node and kernel-lab need. Leaves nothing on the host (checked).
## Measured on 2 shared cores: 284 s warm (106 s of it importing the three images in the guest,
## under TCG); 346 s with an empty kernel-lab cache (it fetches and keeps 147 MB). The kube
## binaries and the images are e2e-node's, cached; make test runs e2e-node first.
e2e-node-v2: k8s-binaries
	test/k8sbin/build.sh node >/dev/null
	$(GO) test -tags e2enode,e2ecluster -count=1 -timeout 50m -run '^TestNodeStoryCgroupV2$$' -v ./test/node/

## lint: golangci-lint v2 with .golangci.yml (linters and gofumpt/goimports formatting), pinned in
## the tools module like mdatagen and built by `go tool` from the Go module proxy (a few minutes the
## first time, then cached). `make lint-fix` applies the fixes and formatting it can.
TOOLS_MOD := $(CURDIR)/internal/tools/go.mod
LINT      := $(GO) tool -modfile=$(TOOLS_MOD) golangci-lint
.PHONY: lint lint-fix
lint:
	$(LINT) run --allow-parallel-runners ./...

lint-fix:
	$(LINT) fmt ./...
	$(LINT) run --fix ./...

## cross: the pure-Go packages build on any OS. Only the journal reader needs cgo and Linux; elsewhere
## (and with CGO_ENABLED=0) a stub makes `source: journal` fail at start, which the tests run. The
## collector built with CGO_ENABLED=0 (build-nocgo) runs source kmsg: test/kmsg starts it on this
## machine's /dev/kmsg (reading only) and sees source journal fail with that message.
.PHONY: cross build-nocgo
cross: build-nocgo
	CGO_ENABLED=0 GOOS=darwin $(GO) vet $(PKGS)
	CGO_ENABLED=0 $(GO) test -count=1 -run '^(TestStartWithoutJournalReader|TestUnsupported|TestKmsgWithoutCgo)$$' \
	  ./receiver/oomkillreceiver/ ./receiver/oomkillreceiver/internal/journal/
	$(GO) test -count=1 -run '^TestCollectorWithoutCgo$$' -v ./test/kmsg/

## build-nocgo: bin/otelcol-oomkill-nocgo, the same distribution built with CGO_ENABLED=0 from the
## sources ocb generated in _build/: one static binary with no library, whose receiver reads
## /dev/kmsg only (the kernel lab runs it in a guest without journald or libraries).
build-nocgo: build
	cd $(OCB_OUT) && CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -o ../$(DIST_BIN)-nocgo.tmp .
	mv -f $(DIST_BIN)-nocgo.tmp $(DIST_BIN)-nocgo
	@echo "built $(DIST_BIN)-nocgo ($$($(DIST_BIN)-nocgo --version))"

## generate: regenerate each component's internal/metadata and generated tests from its metadata.yaml
## (mdatagen, pinned in internal/tools/go.mod; see the //go:generate line in each doc.go).
generate:
	$(GO) generate ./receiver/... ./processor/... ./exporter/...

# The kernel lab, the chart tests and the /dev/kmsg tests run on their own (kernel-lab, chart,
# kmsg-test), not twice.
unit:
	$(GO) test -count=1 $$($(GO) list $(PKGS) | grep -v -e '/test/kernellab$$' -e '/test/chart$$' -e '/test/kmsg$$')

## kmsg-test: the receiver on this machine's own /dev/kmsg (test/kmsg): real OOM kills in
## kubelet-shaped cgroups under a prefix of its own counted once with pod and container by the built
## collector, a forged kill written to /dev/kmsg ignored, SIGKILL restarts while kills land, ring
## buffer overruns reported with their size, the same kill read from /dev/kmsg and from a real
## journald's journal, `source: auto` on a machine whose journald stopped; and the device's records
## compared with what journald stores for them. Root; writes into the kernel log and makes OOM kills:
## machine-wide, one run at a time.
.PHONY: kmsg-test
kmsg-test: build
	$(GO) test -tags realkernel -count=1 -run '^TestRecordsAsJournaldStoresThem$$' -v ./receiver/oomkillreceiver/internal/kmsg/
	$(GO) test -count=1 -timeout 20m -v ./test/kmsg/

## kernel-lab: real cgroup v2 OOM kills on Debian's 6.1 and 6.12 kernels in a qemu guest (TCG),
## read back by the built collector (test/kernellab; needs qemu-system-x86). The first run on a
## machine downloads the kernel, busybox and systemd packages into
## $${XDG_CACHE_HOME:-~/.cache}/otelcol-oomkill/kernellab/ (apt-get download, never installed).
.PHONY: kernel-lab kernel-lab-fixtures
kernel-lab: build build-nocgo
	$(GO) test -count=1 -timeout 30m -v -run '^(TestKernelLab|TestCollectorInGuest|TestContainerOutcomeLiveInGuest|TestCollectorOnKmsgWithoutJournald|TestWitnessInGuest)$$' ./test/kernellab/

## kernel-lab-fixtures: the same run, rewriting the captured reports under
## testdata/journal/kernellab/<kernel>/ and testdata/kernel/kernellab/<kernel>/.
kernel-lab-fixtures: build
	KERNELLAB_UPDATE=1 $(GO) test -count=1 -timeout 30m -v -run '^TestKernelLab$$' ./test/kernellab/

# Bounded fuzzing of the kernel-report parser; the seed corpus is testdata/kernel.
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzAssembler$$' -fuzztime $(FUZZTIME) ./receiver/oomkillreceiver/internal/oomparse
	$(GO) test -run '^$$' -fuzz '^FuzzHostileComm$$' -fuzztime $(FUZZTIME) ./receiver/oomkillreceiver/internal/oomparse
	$(GO) test -run '^$$' -fuzz '^FuzzTaskRow$$' -fuzztime $(FUZZTIME) ./receiver/oomkillreceiver/internal/oomparse

## bench: the numbers in BENCHMARKS.md. First the micro-benchmarks (parser messages/s and
## allocations per message, cgroup path parsing, journal catch-up entries/s, k8smeta lookups,
## k8sevents kills/s in a storm and events/s against a real kube-apiserver), then
## the side-by-side run against journalctl, node-problem-detector and contrib's journald receiver
## on a generated 1M-entry journal (root; about 10 min, plus about 15 min the first time on a machine
## to build node-problem-detector and the journald-receiver collector into ~/.cache/otelcol-oomkill/bench).
## Results: _build/bench-results.md. A quicker, smaller run: make bench BENCH_ENTRIES=200000 BENCH_RUNS=1
.PHONY: bench-micro bench-sidebyside bench-bounded bench-kmsg
bench: bench-micro bench-sidebyside bench-kmsg

bench-micro:
	$(GO) test -run '^$$' -bench . -benchmem ./receiver/... ./processor/... ./exporter/...

bench-sidebyside: build k8s-binaries
	@mkdir -p $(OCB_OUT)
	cd test/bench && BENCH_OUT=$(CURDIR)/$(OCB_OUT)/bench-results.md \
	  $(GO) test -tags sidebyside -count=1 -run '^TestSideBySide$$' -timeout 90m -v .

## bench-kmsg: BENCHMARKS.md's "/dev/kmsg": the same real OOM kills read from /dev/kmsg, from a real
## journald's journal and by node-problem-detector's kmsg monitor (its default configuration):
## catch-up and follow latency (root; makes OOM kills and runs its own journald, so none may run;
## about 3 min). Results: _build/bench-kmsg.md.
bench-kmsg: build
	@mkdir -p $(OCB_OUT)
	cd test/bench && BENCH_OUT=$(CURDIR)/$(OCB_OUT)/bench-kmsg.md \
	  $(GO) test -tags sidebyside -count=1 -run '^TestKmsgSideBySide$$' -timeout 30m -v .

## bench-bounded: BENCHMARKS.md's "Bounded state": the built collector's catch-up time, peak and idle
## RSS and checkpoint size on journals with 20,000 and 100,000 kills in as many containers, against
## the same-size journal with 500 kills; 10,000 live series at steady state; the 1M-entry journal
## against journalctl (root; about 5 min). Results: _build/bench-bounded.md.
bench-bounded: build
	@mkdir -p $(OCB_OUT)
	cd test/bench && BENCH_OUT=$(CURDIR)/$(OCB_OUT)/bench-bounded.md \
	  $(GO) test -tags sidebyside -count=1 -run '^TestBoundedState$$' -timeout 60m -v .

## bench-witness: BENCHMARKS.md's "The kernel-counter witness": two built collectors idle side by side
## on 500 pods' real kubelet-shaped cgroups (1,500 containers), with and without the witness, then one
## real kill (root; about 6 min). Results: _build/bench-witness.md.
.PHONY: bench-witness
bench-witness: build
	@mkdir -p $(OCB_OUT)
	cd test/bench && BENCH_OUT=$(CURDIR)/$(OCB_OUT)/bench-witness.md \
	  $(GO) test -tags sidebyside -count=1 -run '^TestWitnessIdle$$' -timeout 30m -v .

## rules: the shipped Prometheus alert rules are valid and behave as their unit tests say.
.PHONY: rules
rules:
	promtool check rules examples/prometheus/alerts.yaml
	promtool test rules examples/prometheus/alerts_test.yaml

## build: the collector distribution bin/otelcol-oomkill, built by ocb from builder-config.yaml.
# ocb regenerates _build/ (sources, go.mod) every time; the Go build cache keeps a warm build at
# about 1-2 min (the first one takes about 6 min on 2 cores).
OCB_VERSION  := v0.165.0
OCB_BINDIR    = $(or $(shell $(GO) env GOBIN),$(shell $(GO) env GOPATH)/bin)
OCB          ?= $(OCB_BINDIR)/builder
OCB_CONFIG   ?= builder-config.yaml
OCB_OUT      := _build
DIST         := otelcol-oomkill
DIST_BIN     := bin/$(DIST)
CC           ?= cc
# make run: the collector config, and the directory its file_storage keeps state in.
RUN_CONFIG   ?= examples/local/config.yaml
RUN_STATE    := $(OCB_OUT)/run-state

.PHONY: ocb check-libsystemd

ocb:
	@if [ -x "$(OCB)" ] && "$(OCB)" version 2>&1 | grep -q ' $(OCB_VERSION)$$'; then :; else \
	  echo "Installing ocb $(OCB_VERSION) into $(OCB_BINDIR)"; \
	  GOBIN="$(OCB_BINDIR)" $(GO) install go.opentelemetry.io/collector/cmd/builder@$(OCB_VERSION) || exit 1; \
	fi

# The journal reader is cgo against libsystemd's headers: fail before a long build, not in it.
check-libsystemd:
	@command -v $(CC) >/dev/null 2>&1 || { \
	  echo "make build: no C compiler ($(CC)); cgo is required. Install it: apt-get install build-essential" >&2; exit 1; }
	@printf '#include <systemd/sd-journal.h>\n' | $(CC) -E -x c - >/dev/null 2>&1 || { \
	  echo "make build: libsystemd headers are missing (systemd/sd-journal.h); the oomkill receiver links libsystemd via cgo." >&2; \
	  echo "            Install them: apt-get install libsystemd-dev" >&2; exit 1; }

build: ocb check-libsystemd
	@mkdir -p bin
	"$(OCB)" --config $(OCB_CONFIG)
	cp -f $(OCB_OUT)/$(DIST) $(DIST_BIN).tmp && mv -f $(DIST_BIN).tmp $(DIST_BIN)
	@echo "built $(DIST_BIN) ($$($(DIST_BIN) --version))"

## run: installs what the build and a first run need (scripts/install-deps.sh run: Debian packages,
## as root; elsewhere it stops and lists them), builds, then runs the collector on this machine with
## examples/local/config.yaml (kills print on the console; Prometheus metrics on
## http://127.0.0.1:9464/metrics). Its `source: auto` reads the journal while a journald writes it
## and /dev/kmsg otherwise, and logs which and why: a machine without journald needs nothing more.
## Reading either as non-root: the collector's start error names what to add (the journal's group;
## CAP_SYSLOG where kernel.dmesg_restrict=1). Another config: make run RUN_CONFIG=my.yaml
run: deps-run build
	@mkdir -p $(RUN_STATE)
	exec $(DIST_BIN) --config $(RUN_CONFIG)

## demo: the seed story on this machine in about a minute (root): a master process survives, the
## kernel OOM-kills its worker, and the log record and metric name pod, namespace and container.
.PHONY: demo
demo: build k8s-binaries
	scripts/demo.sh
