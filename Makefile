# otelcol-oomkill — see README.md.
# cgo is required: the journal reader links libsystemd (Debian: libsystemd-dev).
export CGO_ENABLED := 1

GO        ?= go
FUZZTIME  ?= 15s
PKGS      := ./...

.PHONY: test unit fuzz vet build run bench generate

## test: everything CI runs (the README's test command).
test: vet unit fuzz

vet:
	$(GO) vet $(PKGS)

unit:
	$(GO) test -count=1 $(PKGS)

# Bounded fuzzing of the kernel-report parser; the seed corpus is testdata/kernel.
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzAssembler$$' -fuzztime $(FUZZTIME) ./receiver/oomkillreceiver/internal/oomparse
	$(GO) test -run '^$$' -fuzz '^FuzzHostileComm$$' -fuzztime $(FUZZTIME) ./receiver/oomkillreceiver/internal/oomparse

## bench: parser micro-benchmarks (messages/s, allocations per message).
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./receiver/oomkillreceiver/internal/...

## build: the collector distribution (lands with the receiver, issue 3).
build:
	@echo "make build: the otelcol-oomkill distribution lands with the oomkill receiver (issue 3); nothing to build yet." >&2; exit 1

## run: the collector on this machine's journal (lands with the receiver, issue 3).
run:
	@echo "make run: needs the oomkill receiver (issue 3); nothing to run yet." >&2; exit 1
