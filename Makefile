# Lockstep — fault-tolerant virtual machines on Linux KVM.
#
#   make build   install missing Debian packages, build the release binaries
#                into .build/release and the guest images into Guest/build
#   make demo    run the demo (see README.md)
#   make test    build and run every test (what CI runs)

SWIFT ?= swift
SWIFT_TEST_FLAGS ?=
# Debian packages the build and the tests need (headers for KVM and the C shims).
DEBIAN_PACKAGES := make linux-libc-dev libc6-dev libssl-dev python3 iproute2 redis-tools redis-server bc \
	nftables iputils-arping iputils-ping curl

.PHONY: all build deps guests release test unit-test lint format demo bench clean fuzz-short fuzz-long chaos

all: build

deps:
	@bash scripts/install-deps.sh $(DEBIAN_PACKAGES)

guests:
	$(MAKE) -C Guest all

# Static Swift standard library: the binaries need only libc and libssl3 on
# a host or in a container image (docs/bare-metal.md, Compose/).
release:
	$(SWIFT) build -c release --static-swift-stdlib

build: deps guests release

# Integration test scripts run after the unit tests (each prints
# "N passed, M failed" and exits non-zero on failure). The compose test
# installs docker.io, docker-compose and debootstrap itself, starts its own
# dockerd (scripts/dockerd.sh) and builds the static release binaries.
INTEGRATION_TESTS := Tests/Integration/kvstore/run.sh Tests/Integration/replication/run.sh \
	Tests/Integration/failover/run.sh Tests/Integration/partition/run.sh Tests/Integration/harness/run.sh \
	Tests/Integration/clone/run.sh Tests/Integration/security/run.sh \
	Tests/Integration/chaos/stale-backup.sh Tests/Integration/chaos/phantom-grant.sh \
	Tests/Integration/chaos/run.sh Tests/Integration/compose/run.sh

# The debug build is what the tests run against (they spawn
# .build/debug/primary-vmm too).
unit-test: deps guests
	SWIFT=$(SWIFT) bash scripts/run-tests.sh $(INTEGRATION_TESTS)

# The style every Swift file follows (.swift-format); warnings fail.
lint:
	$(SWIFT) format lint --strict -r Sources Tests Package.swift

format:
	$(SWIFT) format format -i -r Sources Tests Package.swift

test: lint unit-test

demo: build
	bash scripts/demo.sh

bench: build
	bash bench/monitor.sh
	bash bench/kvstore.sh
	bash bench/replication.sh
	bash bench/failover.sh
	bash bench/clone.sh

# libFuzzer runs of the Swift decoders (scripts/fuzz.sh; RELIABILITY.md).
fuzz-short:
	bash scripts/fuzz.sh short

fuzz-long:
	bash scripts/fuzz.sh long $${FUZZ_SECONDS:-600}

# A long chaos run (RELIABILITY.md): CHAOS_ROUNDS rounds of random faults.
chaos:
	python3 scripts/chaos --rounds $${CHAOS_ROUNDS:-100} --report bench-results/chaos.md

clean:
	$(MAKE) -C Guest clean
	rm -rf .build
