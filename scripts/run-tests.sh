#!/usr/bin/env bash
# Runs every test stage of `make test`, each with its own log, and ends with
# one line that counts them all: "N passed, M failed".
set -uo pipefail
cd "$(dirname "$0")/.."
SWIFT=${SWIFT:-swift}
logs=$(mktemp -d /tmp/lockstep-tests.XXXXXX)
passed=0
failed=0
status=0

stage() {
  local name=$1
  shift
  echo "== $name: $*"
  if "$@" 2>&1 | tee "$logs/$name.log"; then
    return 0
  fi
  echo "== $name FAILED"
  status=1
  return 1
}

# A stage that prints "N passed, M failed" adds its counts.
count_plain() {
  local line
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$logs/$1.log" | tail -1)
  if [ -n "$line" ]; then
    passed=$((passed + $(echo "$line" | awk '{print $1}')))
    failed=$((failed + $(echo "$line" | awk '{print $3}')))
  fi
}

stage guest-sdk make -C Guest host-test && count_plain guest-sdk

# Short fuzz runs of the guest's RESP parser, command layer and snapshot
# loader (libFuzzer + ASan/UBSan); a crash fails the stage.
if stage guest-fuzz make -C Guest fuzz-short; then
  passed=$((passed + 1))
else
  failed=$((failed + 1))
fi

# Short libFuzzer runs of the Swift decoders (Fuzz/, built with libFuzzer
# and ASan); a crash fails the stage.
if stage swift-fuzz bash scripts/fuzz.sh short; then
  passed=$((passed + 1))
else
  failed=$((failed + 1))
fi

if stage swift-build $SWIFT build --build-tests; then
  stage xctest $SWIFT test --skip-build --disable-swift-testing ${SWIFT_TEST_FLAGS:-}
  line=$(grep -E "Test Suite 'All tests' (passed|failed)" -A1 "$logs/xctest.log" | grep -E 'Executed [0-9]+ tests' | tail -1)
  if [ -n "$line" ]; then
    total=$(echo "$line" | sed -E 's/.*Executed ([0-9]+) tests?, with ([0-9]+) failures?.*/\1/')
    bad=$(echo "$line" | sed -E 's/.*Executed ([0-9]+) tests?, with ([0-9]+) failures?.*/\2/')
    passed=$((passed + total - bad))
    failed=$((failed + bad))
  else
    failed=$((failed + 1))
  fi
fi

# The XCTest suite again under ThreadSanitizer and AddressSanitizer (each
# in its own build folder); a sanitizer report fails the stage.
for kind in thread address; do
  stage "sanitize-$kind" bash scripts/sanitize.sh "$kind" && true
  count_plain "sanitize-$kind"
done

for extra in "${@}"; do
  name=$(basename "$extra" .sh)
  stage "$name" bash "$extra" && true
  count_plain "$name"
done

[ "$status" -ne 0 ] && [ "$failed" -eq 0 ] && failed=1
echo
echo "test logs: $logs"
echo "$passed passed, $failed failed"
exit $status
