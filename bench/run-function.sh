#!/usr/bin/env bash
# Builds the function compute benchmark in Release (build-fbench/), runs it and writes
# docs/benchmarks-function.md.
#
#   bench/run-function.sh [--jobs N]    (default 2)
#
# Starts the real `baetyl` in native mode with the hub, the function manager and the SQL, Python
# and Node runtimes on a temporary work directory; takes about two minutes. Needs the build
# packages (scripts/install-deps.sh --build) and the runtimes' (python3-grpcio, nodejs).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=build-fbench
jobs=2
while (($#)); do
  case $1 in
    --jobs) jobs=${2:?--jobs needs a number}; shift 2 ;;
    -h|--help) sed -n '2,9p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "run-function.sh: unknown argument: $1" >&2; exit 2 ;;
  esac
done

cd "$root"
configure_cmd="cmake -S . -B $build_dir -DCMAKE_BUILD_TYPE=Release -DBAETYL_BUILD_BENCH=ON \
-DBAETYL_BUILD_TESTS=OFF"
build_cmd="cmake --build $build_dir -j$jobs --target baetyl-function-bench"
bench_cmd="$build_dir/bin/baetyl-function-bench --sql-messages 40000 --py-messages 10000 \
--node-messages 10000 --window 100 --max 4 --rate 500 --seconds 5 --cold-runs 5"

echo "run-function.sh: configuring and building ($build_dir, Release)" >&2
$configure_cmd >/dev/null
$build_cmd >/dev/null
load=$(cut -d' ' -f1-3 /proc/loadavg)
echo "run-function.sh: $bench_cmd" >&2
status=0
results=$($bench_cmd) || status=$?
echo "$results" >&2

compiler=$(sed -n 's/^CMAKE_CXX_COMPILER:[A-Z]*=//p' "$build_dir/CMakeCache.txt")
cat > docs/benchmarks-function.md <<REPORT
# Function compute benchmark

The real \`baetyl\` master in native mode on a temporary work directory with the hub
(\`baetyl-hub\`, 127.0.0.1 on a free port), the function manager and one runtime service per
language, measured by \`bench/function_bench.cpp\` from outside with the SDK MQTT client
(\`baetyl::mqtt::Client\`, one publisher and one subscriber on \`o/#\` at QoS 1):

- functions \`sql*\` (\`select * where id < 1000000\`), \`py*\` (Python, \`return event\`) and
  \`node*\` (Node, \`callback(null, event)\`); rules \`t/<function>\` → \`o/<function>\`, subscribe
  and publish QoS 1 (the output QoS is that of the input);
- **throughput**: the publisher pushes N messages (about 60 bytes of JSON) as fast as the hub
  accepts them, at most 100 in flight (\`buffersize\`), at QoS 0 or QoS 1; the subscriber counts
  distinct outputs. msg/s = outputs / (first publish → last output). Each function is warmed up
  first (a burst of up to 2000 QoS 1 messages), so instance start is not in these figures.
  \`instance.max\` 1 and 4 are two functions on the same runtime service;
- **latency**: QoS 1 at a fixed 500 msg/s for 5 s to the \`instance.max: 1\` function, from
  handing the message to the client to the output's arrival at the subscriber;
- **cold start**: a function with \`instance.min: 0\`, \`idletime: 300ms\`, \`evicttime: 100ms\`;
  once inspect shows its instance gone, one QoS 1 message, timed from publish to output. This
  includes the manager's API call to the master, the exec of the runtime, its start-up (the
  interpreter and its imports), the manager's gRPC readiness wait and the first call.

Targets of the function issue: SQL ≥ 20,000 msg/s and Python ≥ 3,000 msg/s end to end, p99 ≤ 5 ms
at 500 msg/s, cold start ≤ 300 ms. A throughput row passes only with nothing lost.

## Machine

| | |
|---|---|
| date | $(date -u '+%Y-%m-%d %H:%M') UTC |
| CPU | $(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) cores |
| memory | $(awk '/^MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo) |
| kernel | $(uname -sr) |
| compiler | $("${compiler:-c++}" --version | head -1) |
| Python | $(/usr/bin/python3 --version 2>&1) |
| Node | $(node --version 2>&1) |
| load average before the run | $load |

## Commands

\`\`\`sh
$configure_cmd
$build_cmd
$bench_cmd
\`\`\`

Exit status of the bench: $status (non-zero when a QoS 1 message was lost or a cold start had no
output).

## Results

$results

## Notes

- **The SQL throughput target (≥ 20,000 msg/s) is missed by a wide margin** (2,000–7,000 msg/s
  across runs); Python reaches about 3,000 msg/s at QoS 0 at best and stays around 1,400–2,400
  at QoS 1, below its target. The end-to-end rate is bounded by CPU per message, not by the runtimes. The last column sums
  the CPU of every process (hub, manager, runtime instances, master, the bench's clients) per
  output; with 2 cores, 20,000 msg/s needs ≤ 100 µs in all, while the hub alone (first table)
  spends about a tenth of that on a routed message. Where it goes:
  - the manager calls the runtime with one blocking unary gRPC call per message per worker, and
    has \`instance.max\` workers (modules/function-manager/src/rule.cpp, \`RuleRunner::work\` and
    \`invoke\`, workers created at line ~122): each message costs a loopback HTTP/2 round trip
    with two thread hand-offs on each side, and a larger \`instance.max\` adds workers that
    compete for the same 2 cores instead of pipelining; a batch or streaming call (or several calls
    in flight per instance) would be the way to the SQL target;
  - at QoS 1 the hub's CPU per message is many times that of the hub-alone QoS 1 row: the manager
    receives with manual ack and acknowledges an input only once its output is acknowledged, so the
    hub holds thousands of unacknowledged messages for the rule's session and pays for it on each
    ack and redelivery check. This looked worth a profile of the hub's session queue
    (modules/hub) under a slow consumer; it was not profiled here.
- **QoS 0 loses messages** when the publisher outruns the functions: the manager keeps at most
  10,000 QoS 0 messages queued per rule and drops the rest with a warning (documented in
  modules/function-manager/README.md); the SQL rows show it (received ≈ 10,000 plus those
  processed during the burst). The Python and Node rows use fewer messages and lose none. QoS 1
  loses nothing (the hub's in-flight window is the backpressure).
- **Latency** at 500 msg/s: the median is about 1 ms for all three runtimes; p99 varies from run to
  run on this shared 2-core VM (spikes of tens of ms when another process takes a core: the
  whole path is five processes). SQL usually meets p99 ≤ 5 ms; Python and Node come out between
  3 and 60 ms, so meet it in some runs only.
- **Cold start** includes the manager's start request to the master, the exec, the runtime's own
  start (the interpreter importing grpc and protobuf for Python, Node loading @grpc/grpc-js), the
  manager's readiness wait (\`WaitForConnected\`, 20 ms reconnect backoff) and the first call. The
  SQL runtime (a C++ binary) takes about 110 ms. Python (about 250–300 ms) and Node (270–650 ms
  across runs) sit at the edge of the 300 ms target or over it, and a busier machine pushes both
  to 500–850 ms: starting the interpreter and loading grpc is most of it.
- Numbers of one run on a shared virtual machine vary by ±20 % or more; compare rows within a run.
REPORT
echo "run-function.sh: wrote docs/benchmarks-function.md" >&2
exit $status
