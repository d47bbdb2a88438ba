#!/usr/bin/env bash
# Builds the libFuzzer targets with clang, ASan and UBSan, and runs each for a while.
#   scripts/fuzz.sh [options] [SECONDS] [FUZZER...]
#     SECONDS      how long each fuzzer runs (default 60); 0 only replays the corpora
#     FUZZER       e.g. mqtt_decode_fuzzer, sql_fuzzer (default: every fuzzer)
#   --build-dir DIR  the clang build (default build-fuzz)
#   --build-only     configure and build, run nothing
#   --no-build       run what DIR already holds
#   --jobs N         parallel compile jobs (default: number of cores)
# FUZZ_ARGS adds libFuzzer flags to every run, e.g. FUZZ_ARGS='-max_len=65536'.
# A crash, sanitizer report, leak, timeout (one input over 10 s) or out-of-memory fails the run;
# the input is kept in DIR/crashes/<fuzzer>/ and the last lines of the log are printed. Inputs
# that reach new code accumulate in DIR/corpus/<fuzzer>/; the committed seeds
# (<module>/fuzz/corpus/<fuzzer>/) are only read. See docs/fuzzing.md.
set -euo pipefail
cd "$(dirname "$0")/.."

build_dir="build-fuzz"
build=1
run=1
jobs=$(nproc)
seconds=60
fuzzers=()
while (($#)); do
  case "$1" in
    --build-dir) build_dir=$2; shift 2 ;;
    --build-only) run=0; shift ;;
    --no-build) build=0; shift ;;
    --jobs) jobs=$2; shift 2 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    -*) echo "fuzz: unknown option $1 (see --help)" >&2; exit 2 ;;
    *)
      if [[ ${#fuzzers[@]} -eq 0 && "$1" =~ ^[0-9]+$ ]]; then seconds=$1; else fuzzers+=("$1"); fi
      shift ;;
  esac
done

find_clang() {
  local cxx
  for cxx in clang++-14 clang++; do
    if command -v "$cxx" >/dev/null; then
      echo "$cxx"
      return
    fi
  done
  echo "fuzz: clang++ not found; scripts/install-deps.sh installs it (clang-14)" >&2
  exit 1
}

configure_and_build() {
  local cxx runtime
  cxx=$(find_clang)
  runtime="$("$cxx" -print-resource-dir)/lib/linux/libclang_rt.fuzzer-$(uname -m).a"
  if [[ ! -f "$runtime" ]]; then
    echo "fuzz: libFuzzer's runtime $runtime is missing; scripts/install-deps.sh installs it" \
         "(libclang-rt-14-dev)" >&2
    exit 1
  fi
  if [[ ! -f "$build_dir/CMakeCache.txt" ]]; then
    cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER="$cxx" \
      -DBAETYL_FUZZ=ON -DBAETYL_BUILD_TESTS=OFF >"$build_dir.configure.log" 2>&1 || {
      cat "$build_dir.configure.log" >&2
      exit 1
    }
    rm -f "$build_dir.configure.log"
  fi
  cmake --build "$build_dir" -j "$jobs" --target fuzz
}

# One fuzzer: returns non-zero when it found something.
run_fuzzer() {
  local name=$1 binary corpus dict
  local manifest="$build_dir/fuzzers/$name"
  if [[ ! -f "$manifest" ]]; then
    echo "fuzz: no fuzzer '$name' in $build_dir (have: $(cd "$build_dir/fuzzers" && echo *))" >&2
    return 2
  fi
  binary=$(sed -n 's/^binary=//p' "$manifest")
  corpus=$(sed -n 's/^corpus=//p' "$manifest")
  dict=$(sed -n 's/^dict=//p' "$manifest")
  local work="$build_dir/corpus/$name" crashes="$build_dir/crashes/$name"
  local log="$build_dir/logs/$name.log"
  mkdir -p "$work" "$crashes" "$(dirname "$log")"

  local args=(-timeout=10 -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$crashes/")
  [[ -n "$dict" ]] && args+=(-dict="$dict")
  # shellcheck disable=SC2206 # FUZZ_ARGS is a list of flags
  args+=(${FUZZ_ARGS:-})
  if ((seconds == 0)); then
    args+=(-runs=0)
  else
    args+=(-max_total_time="$seconds")
  fi
  if ((seconds == 0)); then
    echo "fuzz: $name replays its corpora (log $log)"
  else
    echo "fuzz: $name for ${seconds}s (log $log)"
  fi
  local status=0
  UBSAN_OPTIONS=print_stacktrace=1 "$binary" "${args[@]}" "$work" "$corpus" >"$log" 2>&1 ||
    status=$?
  local runs
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  if ((status != 0)); then
    echo "fuzz: $name FAILED (exit $status) after ${runs:-?} runs; last lines of $log:"
    tail -n 60 "$log"
    echo "fuzz: inputs kept in $crashes:"
    ls -l "$crashes"
    echo "fuzz: replay one with: $binary $crashes/<file>"
    return 1
  fi
  echo "fuzz: $name ok: ${runs:-?} runs, $(find "$work" -type f | wc -l) inputs in $work"
}

if ((build)); then configure_and_build; fi
if ((!run)); then exit 0; fi
if ((${#fuzzers[@]} == 0)); then
  if [[ ! -d "$build_dir/fuzzers" ]]; then
    echo "fuzz: $build_dir holds no fuzzers; build them first (without --no-build)" >&2
    exit 1
  fi
  mapfile -t fuzzers < <(ls "$build_dir/fuzzers")
fi
failed=()
for name in "${fuzzers[@]}"; do
  run_fuzzer "$name" || failed+=("$name")
done
if ((${#failed[@]})); then
  echo "fuzz: failed: ${failed[*]}" >&2
  exit 1
fi
