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

- **Call path** (modules/function-manager/README.md): asynchronous gRPC calls (callback API, one
  channel per instance), up to \`instance.calls\` (16) in flight per instance, started on the
  thread that has the event (the hub client's thread for a new message, the gRPC thread of the
  call that ended), with a reorder buffer keeping the input order at \`instance.max: 1\`. Before
  it, each rule had \`instance.max\` threads each blocked in one synchronous call; that design
  measured (2026-11-25, same machine, load average about 3.5): SQL 6,147 / 4,589 msg/s
  (instance.max 1, QoS 0 / 1) and 6,663 / 4,465 (instance.max 4), at 286–406 µs of CPU per
  output, QoS 0 losing 29,157 of 40,000; Python 2,952 / 2,188 and 3,223 / 2,395.
- **What is left per message** (the last column sums the CPU of every process per output; with 2
  cores, 20,000 msg/s needs ≤ 100 µs in all): at QoS 0 the SQL rows now spend about 80–100 µs,
  roughly 40–50 µs in the manager (hub client receive and publish, a gRPC call), 30–45 µs in the
  SQL runtime (gRPC's callback server; evaluating the query is under 1 µs) and a few µs in the
  hub and the bench. \`perf record -g\` on both shows no single hot spot left: about a quarter of
  the samples are the kernel switching threads and doing loopback TCP (gRPC's and the MQTT
  client's threads waking each other), a quarter gRPC's core (call setup, metadata, HTTP/2
  framing), then malloc. Abseil's mutex deadlock detection (on in Debian's build, several percent
  in both processes) is now turned off, gRPC's retry layer is off on the manager's channels, and
  the SQL runtime stops within 500 ms instead of 5 s when a client keeps an idle channel.
- **The SQL target (≥ 20,000 msg/s) is missed in every run made** after the change: 7,900–14,400
  msg/s at QoS 0 and 5,000–7,200 at QoS 1, against 4,500–6,700 before. These runs share the 2
  cores with other builds (load average 5–10), so the bench's processes get part of the machine;
  the CPU per output at QoS 0 (80–100 µs) would allow about 20,000–25,000 msg/s on 2 idle cores,
  an estimate, not a measurement. At QoS 1 the CPU per output is 165–220 µs, so 20,000 msg/s is
  out of reach on 2 cores until it drops: the hub's CPU per message is still several times that
  of the hub-alone QoS 1 row (its cost per acknowledgement while a subscriber holds many
  unacknowledged messages, being fixed in modules/hub), and the manager spends 20–30 µs more
  than at QoS 0 (the input's and the output's PUBACKs through the MQTT client).
- **QoS 0 loses nothing** in these rows: the manager no longer drops at 10,000 queued messages but
  stops reading from the hub while 1,000 wait (modules/function-manager/README.md), so TCP pushes
  back on the hub. The hub itself drops QoS 0 for a subscriber whose egress buffer (10,000) is
  full, which a publisher that outruns the functions for long enough still reaches: QoS 0 is at
  most once. QoS 1 loses nothing.
- **Python**: the runtime's CPU per call (the interpreter, grpcio's thread pool, 400–500 µs here)
  bounds one instance below the target; with \`instance.max: 4\` the calls spread over several
  processes: 3,000 msg/s is met at QoS 0, and at QoS 1 only in quieter runs (3,856 msg/s at a
  load average of about 4.5; about 2,000 under heavier load). \`instance.calls: 1\` (one call at a
  time per instance, as before) was not faster for one instance.
- **Latency** at 500 msg/s: the median is 1–3 ms for all three runtimes; p99 varies from run to
  run on this shared 2-core VM (spikes of tens of ms when another process takes a core: the
  whole path is five processes). Before the change, at a load average of about 3.5, p99 was
  2–4 ms; the runs after it were all made at a load average of 5–10 and missed 5 ms (SQL 16–65
  ms), so whether the new call path meets p99 ≤ 5 ms on a quiet machine is not shown here.
- **Cold start** of Python and Node (600–1,400 ms in this run) is the instances' start-up path,
  outside this change; under this load it is well over its target.
- **Cold start** includes the manager's start request to the master, the exec, the runtime's own
  start (the interpreter importing grpc and protobuf for Python, Node loading @grpc/grpc-js), the
  manager's readiness wait (\`WaitForConnected\`, 20 ms reconnect backoff) and the first call.
- Numbers of one run on a shared virtual machine vary by ±20 % or more; compare rows within a run.
REPORT
echo "run-function.sh: wrote docs/benchmarks-function.md" >&2
exit $status
