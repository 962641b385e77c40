#!/usr/bin/env bash
# libFuzzer targets for the Swift decoders (Fuzz/README.md).
#
#   scripts/fuzz.sh build                  build Fuzz/ (libFuzzer + ASan) into Fuzz/.build
#   scripts/fuzz.sh short [TARGET...]      each target FUZZ_TIME seconds (20); fails on a crash
#   scripts/fuzz.sh long SECONDS [TARGET...]
#                                          each target SECONDS (or FUZZ_RUNS inputs, if sooner), one
#                                          at a time; prints a table of execs, exec/s, corpus and
#                                          crashes (saved under Fuzz/.build/work; crashing inputs
#                                          are copied into Fuzz/crashes/)
#   scripts/fuzz.sh seeds                  rewrite the seed corpora Fuzz/corpus/<target> (written
#                                          by the targets themselves, with the real encoders)
#   scripts/fuzz.sh repro [FILE...]        replay the reproducers in Fuzz/crashes/ (default: all)
#                                          with the known-bug guards off; fails while one crashes
#   scripts/fuzz.sh list                   the targets
#
# Environment: SWIFT (swift), FUZZ_TIME (short: seconds per target, 20),
# FUZZ_RUNS (long: stop a target after this many inputs, e.g. 1000000),
# FUZZ_TARGETS (the targets to run, all by default), FUZZ_WORK (the corpora
# the runs grow, crashes and logs: Fuzz/.build/work), FUZZ_ARGS (more
# libFuzzer flags), LOCKSTEP_FUZZ_KNOWN_BUGS=hit (turn the guards around
# the known crashes off, see Fuzz/crashes/README.md).
set -uo pipefail
shopt -s nullglob
cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD
SWIFT=${SWIFT:-swift}
ALL_TARGETS="log logfile wire heartbeat arbiter status rings hypercall clone"
TARGETS=${FUZZ_TARGETS:-$ALL_TARGETS}
FUZZ_TIME=${FUZZ_TIME:-20}
WORK=${FUZZ_WORK:-$ROOT/Fuzz/.build/work}
BIN=$ROOT/Fuzz/.build/release
# Swift's own crash reporter would hold a crashing fuzzer for its backtrace;
# libFuzzer prints the stack itself.
export SWIFT_BACKTRACE=enable=no
export LOCKSTEP_FUZZ_GUEST=${LOCKSTEP_FUZZ_GUEST:-$ROOT/Guest/build/callcheck.elf}

# The seed corpus of a target (logfile reads the log target's).
seed_dir() {
  case $1 in
  logfile) echo "$ROOT/Fuzz/corpus/log" ;;
  *) echo "$ROOT/Fuzz/corpus/$1" ;;
  esac
}

build() {
  local start=$SECONDS
  # The fuzz package pins what the root package pins.
  [ -f Fuzz/Package.resolved ] || { [ -f Package.resolved ] && cp Package.resolved Fuzz/Package.resolved; }
  echo "== fuzz build: $SWIFT build -c release --package-path Fuzz --scratch-path Fuzz/.build --disable-dead-strip --sanitize=fuzzer -Xswiftc -sanitize=fuzzer,address"
  # --disable-dead-strip: --gc-sections would drop libFuzzer's coverage
  # sections; -Xswiftc -sanitize=fuzzer,address: SwiftPM passes two
  # --sanitize options to swiftc as two flags, of which only the last counts.
  if ! "$SWIFT" build -c release --package-path Fuzz --scratch-path Fuzz/.build --disable-dead-strip \
    --sanitize=fuzzer -Xswiftc -sanitize=fuzzer,address; then
    echo "fuzz build: FAILED"
    return 1
  fi
  echo "fuzz build: $((SECONDS - start)) s"
}

check_target() {
  case " $ALL_TARGETS " in
  *" $1 "*) return 0 ;;
  *)
    echo "unknown fuzz target '$1' (targets: $ALL_TARGETS)" >&2
    exit 2
    ;;
  esac
}

# run TARGET SECONDS: one libFuzzer run; sets rc, log, stats.
run_target() {
  local target=$1 seconds=$2
  local corpus=$WORK/corpus-$target
  mkdir -p "$corpus" "$WORK/artifacts"
  rm -f "$WORK/artifacts/$target"-*
  log=$WORK/$target.log
  # shellcheck disable=SC2086
  "$BIN/fuzz-$target" -max_total_time="$seconds" -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$WORK/artifacts/$target-" \
    ${FUZZ_ARGS:-} "$corpus" "$(seed_dir "$target")" >"$log" 2>&1 &
  local pid=$!
  wait $pid
  rc=$?
  # A crash skips the harness's own cleanup.
  rm -rf /dev/shm/lockstep-fuzz-"$pid"-* /tmp/lockstep-fuzz-"$pid"-*
}

stat_of() { grep -E "^stat::$1:" "$log" | tail -1 | awk '{print $2}'; }

# The corpus a run ended with: units and bytes (libFuzzer's last status line).
corpus_of() {
  grep -Eo 'corp: [0-9]+/[0-9]+[KM]?b' "$log" | tail -1 | sed 's/corp: //'
}

short() {
  build || return 1
  local failed=() target line
  for target in $TARGETS; do
    check_target "$target"
    echo "== fuzz $target: $FUZZ_TIME s"
    run_target "$target" "$FUZZ_TIME"
    if grep -q "skipped:" "$log"; then
      echo "  $target: $(grep -m1 'skipped:' "$log")"
    fi
    line="  $target: $(stat_of number_of_executed_units) execs, $(stat_of average_exec_per_sec) exec/s, corpus $(corpus_of), peak $(stat_of peak_rss_mb) MB"
    echo "$line"
    if [ "$rc" -ne 0 ]; then
      grep -E "Fatal error|fuzz property|ERROR: |SUMMARY|Swift runtime failure|^    #[0-9]+ .*(Sources|Fuzz)/" "$log" | head -20
      echo "  $target: FAILED (exit $rc; log $log; inputs in $WORK/artifacts/$target-*)"
      failed+=("$target")
    fi
  done
  if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz-short: FAILED: ${failed[*]}"
    return 1
  fi
  echo "fuzz-short: ok"
}

long() {
  local seconds=${1:?usage: scripts/fuzz.sh long SECONDS [TARGET...]}
  build || return 1
  local table target crashes status=0 saved artifacts
  table=$WORK/long-$(date -u +%Y%m%dT%H%M%SZ).md
  mkdir -p "$WORK"
  {
    echo "Fuzzing, $seconds s per target${FUZZ_RUNS:+ or $FUZZ_RUNS inputs}, $(date -u +%Y-%m-%d) ($(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(nproc) cores, libFuzzer + ASan, known-bug guards ${LOCKSTEP_FUZZ_KNOWN_BUGS:-avoid}):"
    echo
    echo "| target | seconds | execs | exec/s | corpus (units/bytes) | new units | peak RSS MB | crashes |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|"
  } >"$table"
  for target in $TARGETS; do
    check_target "$target"
    echo "== fuzz $target: $seconds s" >&2
    artifacts=$WORK/artifacts
    local start=$SECONDS
    FUZZ_ARGS="${FUZZ_ARGS:-}${FUZZ_RUNS:+ -runs=$FUZZ_RUNS}" run_target "$target" "$seconds"
    local found=("$artifacts/$target"-*)
    crashes=${#found[@]}
    saved=""
    if [ "$rc" -ne 0 ]; then
      [ "$crashes" -eq 0 ] && crashes=1
      status=1
      mkdir -p Fuzz/crashes
      for file in "${found[@]}"; do
        cp "$file" "Fuzz/crashes/$target--${file##*/"$target"-}"
        saved="$saved Fuzz/crashes/$target--${file##*/"$target"-}"
      done
      cp "$log" "Fuzz/crashes/$target--$(date -u +%Y%m%dT%H%M%SZ).log"
    fi
    grep -q "skipped:" "$log" && crashes="skipped"
    echo "| $target | $((SECONDS - start)) | $(stat_of number_of_executed_units) | $(stat_of average_exec_per_sec) | $(corpus_of) | $(stat_of new_units_added) | $(stat_of peak_rss_mb) | $crashes |" >>"$table"
    [ -n "$saved" ] && echo "  $target crashed: saved$saved" >&2
  done
  echo
  cat "$table"
  echo
  echo "(table saved in $table)"
  return $status
}

seeds() {
  build || return 1
  local target
  for target in $ALL_TARGETS; do
    [ "$target" = logfile ] && continue
    rm -rf "Fuzz/corpus/$target"
    mkdir -p "Fuzz/corpus/$target"
    LOCKSTEP_FUZZ_WRITE_SEEDS="Fuzz/corpus/$target" "$BIN/fuzz-$target" || return 1
  done
}

# A reproducer is Fuzz/crashes/<target>--<name>.
repro() {
  build || return 1
  local files=("$@") file target crashed=0 total=0
  [ "${#files[@]}" -eq 0 ] && files=(Fuzz/crashes/*--*)
  for file in "${files[@]}"; do
    [[ $file == *.log ]] && continue
    target=$(basename "$file")
    target=${target%%--*}
    check_target "$target"
    total=$((total + 1))
    if LOCKSTEP_FUZZ_KNOWN_BUGS=hit "$BIN/fuzz-$target" -runs=1 "$file" >"$WORK/repro.log" 2>&1; then
      echo "fixed:   $file"
    else
      crashed=$((crashed + 1))
      echo "crashes: $file"
      grep -E "Fatal error|Swift runtime failure|ERROR: " "$WORK/repro.log" | head -2 | sed 's/^/    /'
      grep -E "^    #[0-9]+ .*Sources/Shared/" "$WORK/repro.log" | head -3 | sed 's/^/    /'
    fi
  done
  echo "$total reproducers, $crashed still crash"
  [ "$crashed" -eq 0 ]
}

mkdir -p "$WORK"
command=${1:-short}
shift || true
case $command in
build) build ;;
short)
  [ "$#" -gt 0 ] && TARGETS="$*"
  short
  ;;
long)
  seconds=${1:-}
  shift || true
  [ "$#" -gt 0 ] && TARGETS="$*"
  long "$seconds"
  ;;
seeds) seeds ;;
repro) repro "$@" ;;
list) echo "$ALL_TARGETS" ;;
*)
  sed -n '2,20p' "$0"
  exit 2
  ;;
esac
