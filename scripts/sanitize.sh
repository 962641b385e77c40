#!/usr/bin/env bash
# scripts/sanitize.sh thread|address — builds the library and its XCTest
# suite with ThreadSanitizer or AddressSanitizer (a scratch path of its own:
# .build-tsan, .build-asan) and runs the suite; fails on a test failure or
# on any sanitizer report. Prints "N passed, M failed" like the other stages.
#  - thread: built with -D LOCKSTEP_TSAN_LOCKS, which swaps the library's
#    locks for pthread mutexes ThreadSanitizer can see
#    (Sources/Shared/Support/Mutex+ThreadSanitizer.swift); TSAN_OPTIONS with
#    Tests/Sanitizers/tsan.supp (each entry a documented false positive).
#  - address: ASan with UBSan-style checks; LeakSanitizer is off, because
#    XCTest on Linux never frees its test cases (and what they capture):
#    every run reports those as leaks, none of them in Lockstep's code.
set -uo pipefail
cd "$(dirname "$0")/.."
SWIFT=${SWIFT:-swift}
kind=${1:-}
case "$kind" in
  thread) scratch=.build-tsan extra=(-Xswiftc -DLOCKSTEP_TSAN_LOCKS)
    export TSAN_OPTIONS="suppressions=$PWD/Tests/Sanitizers/tsan.supp:halt_on_error=0:second_deadlock_stack=1" ;;
  address) scratch=.build-asan extra=()
    export ASAN_OPTIONS="detect_leaks=0:abort_on_error=0:strict_string_checks=1:detect_stack_use_after_return=1" ;;
  *) echo "usage: scripts/sanitize.sh thread|address" >&2; exit 2 ;;
esac
log=$(mktemp /tmp/lockstep-sanitize-$kind.XXXXXX)
echo "building the tests with --sanitize=$kind into $scratch"
if ! $SWIFT build --build-tests --sanitize="$kind" --scratch-path "$scratch" "${extra[@]}" >"$log" 2>&1; then
  tail -30 "$log"; echo "0 passed, 1 failed"; exit 1
fi
# The integration parts of the suite start the debug binaries (.build/debug).
$SWIFT test --skip-build --sanitize="$kind" --scratch-path "$scratch" "${extra[@]}" --disable-swift-testing \
  ${SWIFT_TEST_FLAGS:-} >"$log" 2>&1
status=$?
line=$(grep -E "Test Suite 'All tests' (passed|failed)" -A1 "$log" | grep -E 'Executed [0-9]+ tests' | tail -1)
total=$(echo "$line" | sed -E 's/.*Executed ([0-9]+) tests?, with ([0-9]+) failures?.*/\1/')
bad=$(echo "$line" | sed -E 's/.*Executed ([0-9]+) tests?, with ([0-9]+) failures?.*/\2/')
reports=$(grep -cE "WARNING: ThreadSanitizer|ERROR: AddressSanitizer|runtime error:" "$log")
grep -E "error:|WARNING: ThreadSanitizer|ERROR: AddressSanitizer|runtime error:|SUMMARY" "$log" | head -40
echo "$kind sanitizer: ${total:-0} tests, ${bad:-?} failed, $reports sanitizer report(s), exit $status (log: $log)"
if [ -z "$line" ] || [ "$status" -ne 0 ] || [ "$reports" -ne 0 ]; then
  grep -E "WARNING: ThreadSanitizer|ERROR: AddressSanitizer" -A30 "$log" | head -120
  echo "$(( ${total:-0} - ${bad:-0} )) passed, $(( ${bad:-0} + (reports > 0 ? reports : 1) )) failed"
  exit 1
fi
echo "$total passed, 0 failed"
