#!/usr/bin/env bash
# Builds baetyl-hub and hub_bench in Release (build-bench/), runs every case of the hub's
# performance targets against baetyl-hub and Debian's mosquitto side by side, the throughput,
# latency and persistent-session cases with MQTT 3.1.1 and MQTT 5 clients (the QoS 1 cases also at
# mosquitto's Receive Maximum, the window of the MQTT 5 comparison with mosquitto), and writes
# docs/benchmarks-hub.md.
#
#   modules/hub/bench/run.sh [--connections N] [--quick] [--output FILE]
#
# --connections: idle connections (default 10000, 1000 with --quick). --quick: a tenth of every
# message count, 1 s latency runs and holds, to check the script and the report in a few
# minutes (not figures to publish). --output: the report's file (default docs/benchmarks-hub.md).
# Both brokers listen on free 127.0.0.1 ports only, one after the other, with a temporary work
# directory (the hub's storage.dir, mosquitto's configuration and logs); everything started is
# stopped at the end, also when the run is interrupted (SIGINT, SIGTERM, SIGHUP). Needs the build
# packages, mosquitto and python3; takes about twelve minutes.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
build_dir=build-bench
connections=
quick=0
output=docs/benchmarks-hub.md
while (($#)); do
  case $1 in
    --connections) connections=${2:?--connections needs a number}; shift 2 ;;
    --quick) quick=1; shift ;;
    --output) output=${2:?--output needs a file}; shift 2 ;;
    -h|--help) sed -n '2,15p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "run.sh: unknown argument: $1" >&2; exit 2 ;;
  esac
done
[[ $output == /* ]] || output=$PWD/$output
# Message counts are divided by $div; $seconds is a latency run's length, $hold a hold's.
if ((quick)); then div=10 seconds=1 hold=1 store_seconds=1; else div=1 seconds=5 hold=3 store_seconds=5; fi
connections=${connections:-$((10000 / div))}
n() { echo $(($1 / div)); }
# k N: 500000 as "500k", 3000000 as "3M", 12500 as "12,500".
k() { awk -v v="$1" 'BEGIN { if (v >= 1e6 && v % 1e6 == 0) { printf "%dM", v / 1e6; exit }
  if (v >= 1e4 && v % 1e3 == 0) { printf "%dk", v / 1e3; exit }
  s = sprintf("%d", v); r = ""
  while (length(s) > 3) { r = "," substr(s, length(s) - 2) r; s = substr(s, 1, length(s) - 3) }
  print s r }'; }
for tool in cmake python3 mosquitto taskset; do
  command -v "$tool" >/dev/null || { echo "run.sh: $tool not found" >&2; exit 1; }
done

cd "$root"
. bench/machine_facts.sh
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
work=$(mktemp -d)
broker_pid=
stop_broker() {
  if [[ -n $broker_pid ]]; then
    kill "$broker_pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$broker_pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$broker_pid" 2>/dev/null || true
    wait "$broker_pid" 2>/dev/null || true
    broker_pid=
  fi
}
trap 'stop_broker; rm -rf "$work"' EXIT
log() { echo "run.sh: $*" >&2; }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_port() {
  for _ in $(seq 200); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    kill -0 "$broker_pid" 2>/dev/null || { log "broker exited"; return 1; }
    sleep 0.05
  done
  log "port $1 never opened"; return 1
}

configure_cmd=$(release_configure_cmd "$build_dir")
build_cmd="cmake --build $build_dir -j2 --target baetyl-hub hub_bench store_bench"
log "configuring and building ($build_dir, Release)"
$configure_cmd >/dev/null
$build_cmd >/dev/null
hub_bin=$root/$build_dir/bin/baetyl-hub
bench=$root/$build_dir/bin/hub_bench
store_bench=$root/$build_dir/bin/store_bench

# start_hub CPUS: baetyl-hub with persistence on a fresh storage.dir, pinned to CPUS.
start_hub() {
  port=$(free_port)
  local dir=$work/hub-$port
  mkdir -p "$dir"
  cat > "$dir/service.yml" <<YML
listen:
  - tcp://127.0.0.1:$port
principals:
  - username: test
    password: hahaha
    permissions:
      - action: pub
        permit: ['#']
      - action: sub
        permit: ['#']
storage:
  dir: $dir/data
logger:
  level: warn
YML
  (cd "$dir" && exec taskset -c "$1" "$hub_bin" -c "$dir/service.yml" 2>"$dir/stderr.log") &
  broker_pid=$!
  wait_port "$port"
  sleep 0.5
}
# start_mosquitto: Debian's /etc/mosquitto/mosquitto.conf (persistence true: a periodic snapshot,
# not a write per message) with its paths moved to the work directory, plus one listener.
start_mosquitto() {
  port=$(free_port)
  local dir=$work/mosquitto-$port
  mkdir -p "$dir"
  {
    grep -v -E '^(pid_file|persistence_location|log_dest|include_dir)' /etc/mosquitto/mosquitto.conf
    echo "persistence_location $dir/"
    echo "log_dest file $dir/mosquitto.log"
    echo "listener $port 127.0.0.1"
    echo "allow_anonymous true"
    [[ $(id -u) == 0 ]] && echo "user root"
  } > "$dir/mosquitto.conf"
  mosquitto -c "$dir/mosquitto.conf" 2>"$dir/stderr.log" &
  broker_pid=$!
  wait_port "$port"
  sleep 0.5
}

declare -A R   # R[broker.case] = output line of hub_bench
rate() { sed -nE 's/.* ([0-9]+) msg\/s .*/\1/p' <<<"$1"; }
client_cpus=""  # set: the bench client runs pinned to these CPUs
run() {  # run KEY ARGS...: hub_bench against the running broker
  local key=$1; shift
  local out pin=()
  [[ -n $client_cpus ]] && pin=(taskset -c "$client_cpus")
  out=$("${pin[@]}" "$bench" --port "$port" --username test --password hahaha "$@") || true
  log "$key: ${out:-failed}"
  R[$key]=$out
}
# median_rate KEY: R[KEY] becomes the run of KEY.1, KEY.2, KEY.3 with the median rate.
median_rate() {
  R[$1]=$(for i in 1 2 3; do echo "$(rate "${R[$1.$i]}") $i"; done |
    sort -n | sed -n 2p | cut -d' ' -f2 | { read -r i; echo "${R[$1.$i]}"; })
}
# QoS 1 runs of the hub last about a second at 300,000 messages (100,000 took 0.3-0.5 s, where one
# scheduling hiccup moved a median by 20 %).
q0_11_n=$(n 500000) q0_4_n=$(n 125000) q1_n=$(n 300000)
# mosquitto announces its max_inflight_messages (20 in Debian's configuration) to an MQTT 5
# client as Receive Maximum, so its v5 publisher keeps at most that many unacknowledged whatever
# --window says. The QoS 1 cases run once more with that window for every client, both brokers
# and both protocols: the load on which the MQTT 5 multiple over mosquitto is judged.
eq_window=20
thr=(
  "q0_11 --qos 0 --publishers 1 --subscribers 1 --messages $q0_11_n"
  "q0_41 --qos 0 --publishers 4 --subscribers 1 --messages $q0_4_n"
  "q0_14 --qos 0 --publishers 1 --subscribers 4 --messages $q0_4_n"
  "q1_11 --qos 1 --publishers 1 --subscribers 1 --messages $q1_n --window 100"
  "q1_11_w$eq_window --qos 1 --publishers 1 --subscribers 1 --messages $q1_n --window $eq_window \
--receive-maximum 100"
)
# Run after the latency cases: the subscriber's session stays (with its subscription) when it
# leaves, and would be sent the latency runs' messages.
persistent=(
  "q1p_11 --qos 1 --publishers 1 --subscribers 1 --messages $q1_n --window 100 --persistent 1"
  "q1p_11_w$eq_window --qos 1 --publishers 1 --subscribers 1 --messages $q1_n --window $eq_window \
--receive-maximum 100 --persistent 1"
)
# thr_runs BROKER CASE...: each case three times with MQTT 3.1.1 and three times with MQTT 5,
# alternating; R[BROKER.KEY] and R[BROKER.KEY.v5] are the runs with the median rate.
thr_runs() {
  local broker=$1 t key i; shift
  for t in "$@"; do
    set -- $t; key=$1; shift
    for i in 1 2 3; do
      run "$broker.$key.$i" "$@" --broker-pid "$broker_pid"
      run "$broker.$key.v5.$i" "$@" --broker-pid "$broker_pid" --protocol 5
    done
    median_rate "$broker.$key"; median_rate "$broker.$key.v5"
    [[ $broker == hub ]] && commands+=("hub_bench --port PORT --username test --password hahaha $* \
--broker-pid PID [--protocol 5]   # three times each")
  done
  return 0
}
commands=()
load=$(load_average)
for broker in hub mosquitto; do
  if [[ $broker == hub ]]; then start_hub "0-$(($(nproc) - 1))"; else start_mosquitto; fi
  R[$broker.threads]=$(ls "/proc/$broker_pid/task" | wc -l)
  log "$broker: pid $broker_pid port $port, ${R[$broker.threads]} threads"
  run "$broker.idle" --mode idle --connections "$connections" --broker-pid "$broker_pid" --hold $hold
  stop_broker
  # Again with keep alive 60 (most devices): the broker watches every connection's deadline.
  if [[ $broker == hub ]]; then start_hub "0-$(($(nproc) - 1))"; else start_mosquitto; fi
  run "$broker.idle60" --mode idle --connections "$connections" --broker-pid "$broker_pid" --hold $hold \
    --keep-alive 60
  stop_broker
  if [[ $broker == hub ]]; then start_hub "0-$(($(nproc) - 1))"; else start_mosquitto; fi
  thr_runs "$broker" "${thr[@]}"
  for i in 1 2 3; do  # latency tails are noisy: three runs, the report takes the median p99
    for v in "" v5; do
      protocol=(); [[ $v == v5 ]] && protocol=(--protocol 5)
      run "$broker.lat0$v.$i" --mode latency --qos 0 --rate 5000 --seconds $seconds "${protocol[@]}"
      run "$broker.lat1$v.$i" --mode latency --qos 1 --rate 2000 --seconds $seconds "${protocol[@]}"
    done
  done
  thr_runs "$broker" "${persistent[@]}"
  stop_broker
done
# A subscriber that stops reading while 30,000 x 32 KB messages are published: the broker's peak
# memory (VmHWM of a fresh broker) and what it keeps once the subscriber left.
flood_n=$(n 30000)
for broker in hub mosquitto; do
  for f in "flood1:--qos 1" "flood1p:--qos 1 --persistent 1" "flood0:--qos 0"; do
    key=${f%%:*}
    if [[ $broker == hub ]]; then start_hub "0-$(($(nproc) - 1))"; else start_mosquitto; fi
    run "$broker.$key" --mode flood ${f#*:} --messages $flood_n --payload 32768 --window 100 \
      --broker-pid "$broker_pid" --hold $hold
    stop_broker
  done
done
# One subscriber that never reads among ten that do: the live ones' rate with and without it,
# three runs each, alternating.
dead_n=$(n 3000000)
start_hub "0-$(($(nproc) - 1))"
for i in 1 2 3; do
  run "hub.live10.$i" --qos 0 --publishers 1 --subscribers 10 --messages $dead_n
  run "hub.dead10.$i" --qos 0 --publishers 1 --subscribers 10 --messages $dead_n --dead 1
done
stop_broker
median_rate hub.live10; median_rate hub.dead10
commands+=("hub_bench --port PORT --mode idle --connections $connections --broker-pid PID --hold $hold [--keep-alive 60]"
           "hub_bench --port PORT ... --mode flood --qos 1 [--persistent 1] | --qos 0 --messages $flood_n --payload 32768 --broker-pid PID --hold $hold"
           "hub_bench --port PORT ... --qos 0 --publishers 1 --subscribers 10 --messages $dead_n [--dead 1]   # three times each"
           "hub_bench --port PORT ... --mode latency --qos 0 --rate 5000 --seconds $seconds [--protocol 5]"
           "hub_bench --port PORT ... --mode latency --qos 1 --rate 2000 --seconds $seconds [--protocol 5]")
# Worker threads: the hub starts one per core it may use, so it is started pinned to one core and
# to two.
# --broker-pid: the hub's CPU time per message and how many cores it kept busy.
# With one core the bench client is pinned to the other, so the one worker has its core to itself.
cpu_q0_41_n=$(n 1000000) cpu_q0_14_n=$(n 2000000) cpu_q1_41_n=$(n 25000) cpu_q1_4k_n=$(n 10000)
for cpus in 0 0,1; do
  start_hub "$cpus"
  if [[ $cpus == 0 ]]; then client_cpus=1; else client_cpus=""; fi
  R[cpu$cpus.threads]=$(ls "/proc/$broker_pid/task" | wc -l)
  # QoS 0 runs last a fraction of a second even with 4M deliveries (8M for 1 -> 4), and their
  # rates spread by tens of percent on this VM: three runs each, the median rate is shown.
  for i in 1 2 3; do
    run "cpu$cpus.q0_41.$i" --qos 0 --publishers 4 --subscribers 1 --messages $cpu_q0_41_n \
      --broker-pid "$broker_pid"
    run "cpu$cpus.q0_14.$i" --qos 0 --publishers 1 --subscribers 4 --messages $cpu_q0_14_n \
      --broker-pid "$broker_pid"
  done
  median_rate "cpu$cpus.q0_41"; median_rate "cpu$cpus.q0_14"
  run "cpu$cpus.q1_11" --qos 1 --publishers 1 --subscribers 1 --messages $q1_n --window 100 \
    --broker-pid "$broker_pid"
  run "cpu$cpus.q1_41" --qos 1 --publishers 4 --subscribers 1 --messages $cpu_q1_41_n --window 100 \
    --broker-pid "$broker_pid"
  # Larger persisted messages: the hub's work (parsing, SQLite, checkpoints) outweighs the client's.
  run "cpu$cpus.q1_41_1k" --qos 1 --publishers 4 --subscribers 1 --messages $cpu_q1_41_n --window 100 \
    --payload 1024 --broker-pid "$broker_pid"
  run "cpu$cpus.q1_41_4k" --qos 1 --publishers 4 --subscribers 1 --messages $cpu_q1_4k_n --window 100 \
    --payload 4096 --broker-pid "$broker_pid"
  stop_broker
done
client_cpus=""
# A slow persistent consumer (4,000 msg/s, clean session 0 or an MQTT 5 session that does not
# expire): acknowledging at once in bursts, or holding 90 messages unacknowledged and
# acknowledging one at a time (manual ack).
slow_n=$(n 20000)
start_hub "0-$(($(nproc) - 1))"
for lag in 0 1 90; do
  for v in "" v5; do
    protocol=(); [[ $v == v5 ]] && protocol=(--protocol 5)
    run "slow.lag$lag$v" --qos 1 --publishers 1 --subscribers 1 --messages $slow_n --window 100 \
      --persistent 1 --ack-lag "$lag" --consume-rate 4000 --broker-pid "$broker_pid" "${protocol[@]}"
  done
done
stop_broker
# The store alone: add_message to commit at 2,000 msg/s (the writer-thread part of a PUBACK).
store_run() {  # store_run KEY ARGS...
  local key=$1; shift
  R[$key]=$("$store_bench" --rate 2000 --seconds $store_seconds --dir "$work/store-$key" "$@") || true
  log "$key: ${R[$key]}"
}
for i in 1 2; do
  store_run "store.normal_thread.$i" --sync normal --checkpoint thread
  store_run "store.normal_writer.$i" --sync normal --checkpoint writer
  store_run "store.full_thread.$i" --sync full --checkpoint thread
done

# Extraction from hub_bench's lines (and rate() above).
lost() { sed -nE 's/.*lost ([0-9.]+)%.*/\1/p' <<<"$1"; }
pct() { sed -nE "s/.*$2 p50 ([0-9.]+)  p90 ([0-9.]+)  p99 ([0-9.]+)  max ([0-9.]+) ms.*/\\$3/p" <<<"$1"; }
rss() { sed -nE "s/.*$2 ([0-9.]+) MB.*/\1/p" <<<"$1"; }
ratio() { awk -v a="${1:-0}" -v b="${2:-0}" 'BEGIN {
  if (a ~ /^-?[0-9.]+$/ && b ~ /^-?[0-9.]+$/ && b > 0) printf "%.2f", a / b; else print "n/a" }'; }
verdict() { awk -v v="${1:-0}" -v t="$2" -v op="$3" 'BEGIN {
  ok = (op == ">=") ? (v >= t) : (op == ">") ? (v > t) : (v <= t); print ok ? "PASS" : "MISS" }'; }
fmt() { awk -v v="${1:-0}" 'BEGIN { s = sprintf("%d", v); r = "";
  while (length(s) > 3) { r = "," substr(s, length(s) - 2) r; s = substr(s, 1, length(s) - 3) }
  print s r }'; }

throughput_rows=""
for c in "q0_11:1 → 1, $(k $q0_11_n)" "q0_41:4 → 1, 4 × $(k $q0_4_n)" \
         "q0_14:1 → 4, $(k $q0_4_n) ($(k $((4 * q0_4_n))) delivered)"; do
  key=${c%%:*}; name=${c#*:}
  h=$(rate "${R[hub.$key]}"); m=$(rate "${R[mosquitto.$key]}"); r=$(ratio "$h" "$m")
  v=$(verdict "$r" 1.5 ">="); [[ $(lost "${R[hub.$key]}") == 0.00 ]] || v="MISS (loss)"
  throughput_rows+="| QoS 0, $name, median of 3 | $(fmt "$h") msg/s, lost $(lost "${R[hub.$key]}") % | \
$(fmt "$m") msg/s, lost $(lost "${R[mosquitto.$key]}") % | $r | ≥ 1.5 | $v |"$'\n'
done
h=$(rate "${R[hub.q1_11]}"); m=$(rate "${R[mosquitto.q1_11]}"); r=$(ratio "$h" "$m")
qos1_row="| QoS 1, 1 → 1, $(k $q1_n), window 100, median of 3 | $(fmt "$h") msg/s, lost $(lost "${R[hub.q1_11]}") % \
(persisted before PUBACK) | $(fmt "$m") msg/s, lost $(lost "${R[mosquitto.q1_11]}") % | $r | ≥ 2 | \
$(verdict "$r" 2 ">=") |"

# median_run BROKER KEY WHAT: of the three runs, the output with the median p99 of WHAT.
median_run() {
  local i
  for i in 1 2 3; do
    echo "$(pct "${R[$1.$2.$i]}" "$3" 3) $i"
  done | sort -n | sed -n 2p | cut -d' ' -f2 | { read -r i; echo "${R[$1.$2.$i]}"; }
}
lat_row() {  # lat_row KEY WHAT LABEL TARGET
  local hp mp
  R[hub.$1]=$(median_run hub "$1" "$2"); R[mosquitto.$1]=$(median_run mosquitto "$1" "$2")
  hp=$(pct "${R[hub.$1]}" "$2" 3); mp=$(pct "${R[mosquitto.$1]}" "$2" 3)
  echo "| $3 | $(pct "${R[hub.$1]}" "$2" 1) / $(pct "${R[hub.$1]}" "$2" 2) / $hp / \
$(pct "${R[hub.$1]}" "$2" 4) | $(pct "${R[mosquitto.$1]}" "$2" 1) / $(pct "${R[mosquitto.$1]}" "$2" 2) / \
$mp / $(pct "${R[mosquitto.$1]}" "$2" 4) | p99 ≤ $4 ms | $(verdict "$hp" "$4" "<=") |"
}
latency_rows="$(lat_row lat0 delivery "QoS 0 at 5,000 msg/s, send → delivery" 1)
$(lat_row lat1 delivery "QoS 1 at 2,000 msg/s, send → delivery" 2)
$(lat_row lat1 puback "QoS 1 at 2,000 msg/s, send → PUBACK" 2)"

hi=$(rss "${R[hub.idle]}" before); mi=$(rss "${R[mosquitto.idle]}" before)
per_conn() { sed -nE 's/.*per connection ([0-9.-]+) KB.*/\1/p' <<<"$1"; }
above() { awk -v a="$(rss "$1" "with them")" -v b="$(rss "$1" before)" 'BEGIN { printf "%.1f", a - b }'; }
idle_row() {  # idle_row KEY LABEL: the RSS with the connections, what they add, each
  local h=${R[hub.$1]} m=${R[mosquitto.$1]} hn mn v
  hn=$(sed -nE 's/idle connections ([0-9]+)\/.*/\1/p' <<<"$h")
  mn=$(sed -nE 's/idle connections ([0-9]+)\/.*/\1/p' <<<"$m")
  v=$(verdict "$(above "$h")" 25 "<=")
  [[ $(verdict "$(per_conn "$h")" 1.5 "<=") == PASS ]] || v="MISS ($(per_conn "$h") KB each)"
  [[ $hn == "$connections" ]] || v="MISS (held $hn)"
  echo "| $2 | $(rss "$h" "with them") MB: +$(above "$h") MB, $(per_conn "$h") KB each ($(fmt "$hn") held) | \
$(rss "$m" "with them") MB: +$(above "$m") MB, $(per_conn "$m") KB each ($(fmt "$mn") held) | \
$(ratio "$(above "$h")" "$(above "$m")") | ≤ 25 MB above idle, ≤ 1.5 KB each | $v |"
}
memory_rows="| idle RSS (fresh broker, no client) | $hi MB | $mi MB | $(ratio "$hi" "$mi") | ≤ mosquitto | \
$(verdict "$(ratio "$hi" "$mi")" 1 "<=") |
$(idle_row idle "RSS with $(fmt "$connections") idle connections, keep alive 0")
$(idle_row idle60 "RSS with $(fmt "$connections") idle connections, keep alive 60")"
# flood_cell LINE: "peak X MB, Y MB after it left" from a flood line.
flood_cell() {
  echo "$(sed -nE 's/.* peak ([0-9.]+) MB.*/\1/p' <<<"$1") MB, \
$(sed -nE 's/.* after the subscriber left ([0-9.]+) MB.*/\1/p' <<<"$1") MB after it left \
(published in $(sed -nE 's/.* published [0-9]+ in ([0-9.]+) s.*/\1/p' <<<"$1") s)"
}
flood_rows=""
for c in "flood1:QoS 1, clean session" "flood1p:QoS 1, persistent session" "flood0:QoS 0"; do
  key=${c%%:*}; name=${c#*:}
  peak=$(sed -nE 's/.* peak ([0-9.]+) MB.*/\1/p' <<<"${R[hub.$key]}")
  flood_rows+="| $name, $(fmt $flood_n) × 32 KB | $(flood_cell "${R[hub.$key]}") | $(flood_cell "${R[mosquitto.$key]}") | \
< 100 MB | $(verdict "$peak" 100 "<") |"$'\n'
done
live=$(rate "${R[hub.live10]}"); dead=$(rate "${R[hub.dead10]}"); r=$(ratio "$dead" "$live")
v=$(verdict "$r" 0.9 ">="); [[ $(lost "${R[hub.dead10]}") == 0.00 ]] || v="MISS (loss)"
dead_row="| QoS 0, 1 → 10, $(k $dead_n) ($(k $((10 * dead_n))) delivered; median of 3) | $(fmt "$live") msg/s, lost \
$(lost "${R[hub.live10]}") % | $(fmt "$dead") msg/s, lost $(lost "${R[hub.dead10]}") % | $r | ≥ 0.9 | $v |"

# busy LINE: the broker's CPU seconds per second of the run (cores it kept busy).
busy() {
  ratio "$(sed -nE 's/.*broker cpu ([0-9.]+) s.*/\1/p' <<<"$1")" "$(sed -nE 's/.*\(([0-9.]+) s\).*/\1/p' <<<"$1")"
}
# hub_cost LINE: "X µs/msg, Y cores busy" from a line with the broker's CPU.
hub_cost() {
  echo "$(sed -nE 's/.* ([0-9.]+) us\/msg.*/\1/p' <<<"$1") µs/msg, $(busy "$1") cores busy"
}
us_per_msg() { sed -nE 's/.* ([0-9.]+) us\/msg.*/\1/p' <<<"$1"; }
# client_cost LINE: the bench client's CPU microseconds per message.
client_cost() { sed -nE 's/.*client cpu [0-9.]+ s \(([0-9.]+) us per msg\).*/\1/p' <<<"$1"; }
threads_rows=""
for c in "q0_41:QoS 0, 4 → 1, 4 × $(k $cpu_q0_41_n) (median of 3)" \
         "q0_14:QoS 0, 1 → 4, $(k $cpu_q0_14_n) ($(k $((4 * cpu_q0_14_n))) delivered; median of 3)" \
         "q1_11:QoS 1, 1 → 1, $(k $q1_n), window 100" "q1_41:QoS 1, 4 → 1, 4 × $(k $cpu_q1_41_n), window 100" \
         "q1_41_1k:QoS 1, 4 → 1, 4 × $(k $cpu_q1_41_n), window 100, 1 KB payload" \
         "q1_41_4k:QoS 1, 4 → 1, 4 × $(k $cpu_q1_4k_n), window 100, 4 KB payload"; do
  key=${c%%:*}; name=${c#*:}
  a=$(rate "${R[cpu0.$key]}"); b=$(rate "${R[cpu0,1.$key]}"); r=$(ratio "$b" "$a")
  # A higher rate with two workers shows scaling only if one worker was the limit, and only if
  # the client, sharing the two cores, needs less CPU per message than one worker did.
  v=$(verdict "$r" 1 ">")
  [[ $(verdict "$(busy "${R[cpu0.$key]}")" 0.9 ">=") == PASS ]] || v="not shown (1 worker < 0.9 cores busy)"
  c=$(client_cost "${R[cpu0,1.$key]}"); h=$(us_per_msg "${R[cpu0.$key]}")
  if [[ $v == MISS && -n $c && -n $h ]] && awk -v c="$c" -v h="$h" 'BEGIN { exit !(c >= h) }'; then
    v="not shown (the client needs $c µs/msg, one worker $h: no broker could grow on these 2 cores)"
  fi
  threads_rows+="| $name | $(fmt "$a") msg/s ($(hub_cost "${R[cpu0.$key]}")) | \
$(fmt "$b") msg/s ($(hub_cost "${R[cpu0,1.$key]}")) | $r | > 1 | $v |"$'\n'
done
# received LINE: "N of M" messages received.
received() { sed -nE 's/.*received ([0-9]+)\/([0-9]+).*/\1 of \2/p' <<<"$1"; }
slow_row() {  # slow_row NAME KEY
  echo "| $1 | $(us_per_msg "${R[$2]}") µs | $(rate "${R[$2]}") msg/s | $(received "${R[$2]}") |"
}
slow_rows="$(slow_row "acknowledged at once, in bursts" slow.lag0)
$(slow_row "1 held unacknowledged, acknowledged one at a time" slow.lag1)
$(slow_row "90 held unacknowledged, acknowledged one at a time" slow.lag90)"
store_rows=""
for c in "normal_thread:NORMAL, checkpoints on their own thread (the hub)" \
         "normal_writer:NORMAL, SQLite's automatic checkpoint in the writer (before)" \
         "full_thread:FULL (fsync of the WAL at every commit), checkpoint thread"; do
  key=${c%%:*}; name=${c#*:}
  for i in 1 2; do
    store_rows+="| $name, run $i | $(pct "${R[store.$key.$i]}" commit 1) / $(pct "${R[store.$key.$i]}" commit 2) / \
$(pct "${R[store.$key.$i]}" commit 3) / $(pct "${R[store.$key.$i]}" commit 4) |"$'\n'
  done
done

# MQTT 5 (issue 21): the hub's v5 figures against its own 3.1.1 ones (within 10 %), and the
# hub / mosquitto multiple in v5 against the one in 3.1.1 (not more than 10 % below it).
# check VALUE TARGET OP: verdict() that misses when a figure is missing.
check() { if [[ -z $1 || $1 == n/a ]]; then echo "MISS (no figure)"; else verdict "$1" "$2" "$3"; fi; }
window() { sed -nE 's/.*  window ([0-9]+) \(the broker.*/\1/p' <<<"$1"; }
# thr_cell LINE: "R msg/s, lost L % (C µs/msg)", and the window when the broker's Receive Maximum
# lowered it.
thr_cell() {
  local w; w=$(window "$1")
  echo "$(fmt "$(rate "$1")") msg/s, lost $(lost "$1") % ($(us_per_msg "$1") µs/msg)${w:+, window $w}"
}
q0_cases=("q0_11:QoS 0, 1 → 1, $(k $q0_11_n)" "q0_41:QoS 0, 4 → 1, 4 × $(k $q0_4_n)"
          "q0_14:QoS 0, 1 → 4, $(k $q0_4_n) ($(k $((4 * q0_4_n))) delivered)")
q1_cases=("q1_11:QoS 1, 1 → 1, $(k $q1_n), window 100"
          "q1p_11:QoS 1, 1 → 1, $(k $q1_n), window 100, persistent session")
q1_eq_cases=("q1_11_w$eq_window:QoS 1, 1 → 1, $(k $q1_n), window $eq_window"
             "q1p_11_w$eq_window:QoS 1, 1 → 1, $(k $q1_n), window $eq_window, persistent session")
v5_hub_rows=""
for c in "${q0_cases[@]}" "${q1_cases[@]}"; do
  key=${c%%:*}; name=${c#*:}
  h4=${R[hub.$key]} h5=${R[hub.$key.v5]}
  r=$(ratio "$(rate "$h5")" "$(rate "$h4")"); v=$(check "$r" 0.9 ">=")
  [[ -z $h5 || $(lost "$h5") == 0.00 ]] || v="MISS (loss)"
  v5_hub_rows+="| $name | $(thr_cell "$h4") | $(thr_cell "$h5") | $r | ≥ 0.9 | $v |"$'\n'
done
# The multiple over mosquitto is judged only where every run of the row had the same window: a v5
# publisher whose window the broker's Receive Maximum lowered ran another load than the 3.1.1 one.
v5_multiple_rows=""
for c in "${q0_cases[@]}" "${q1_eq_cases[@]}" "${q1_cases[@]}"; do
  key=${c%%:*}; name=${c#*:}
  h4=${R[hub.$key]} h5=${R[hub.$key.v5]} m4=${R[mosquitto.$key]} m5=${R[mosquitto.$key.v5]}
  x4=$(ratio "$(rate "$h4")" "$(rate "$m4")"); x5=$(ratio "$(rate "$h5")" "$(rate "$m5")")
  r=$(ratio "$x5" "$x4")
  lowered=""
  [[ -n $(window "$h5") ]] && lowered="the hub's v5 publisher had a window of $(window "$h5")"
  [[ -n $(window "$m5") ]] && lowered="mosquitto's v5 publisher had a window of $(window "$m5")"
  if [[ -n $lowered ]]; then
    target="—" v="not comparable: $lowered"
  else
    target="≥ 0.9" v=$(check "$r" 0.9 ">=")
  fi
  v5_multiple_rows+="| $name | $(thr_cell "$h4") | $(thr_cell "$h5") | $(thr_cell "$m4") | \
$(thr_cell "$m5") | $x4 | $x5 | $r | $target | $v |"$'\n'
done
# Why the QoS 1 rows at a window of 100 are not compared, from this run: the window mosquitto's
# v5 publisher kept, and mosquitto's 3.1.1 rates at both windows.
mosquitto_rm=$(window "${R[mosquitto.q1_11.v5]}")
m100=$(fmt "$(rate "${R[mosquitto.q1_11]}")")
m20=$(fmt "$(rate "${R[mosquitto.q1_11_w$eq_window]}")")
m100p=$(fmt "$(rate "${R[mosquitto.q1p_11]}")")
m20p=$(fmt "$(rate "${R[mosquitto.q1p_11_w$eq_window]}")")
hub_rm=$(window "${R[hub.q1_11.v5]}")
hub_kept="its publishers kept 100 in both protocols"
[[ -z $hub_rm ]] || hub_kept="its v5 publisher kept $hub_rm"
if [[ -n $mosquitto_rm ]]; then
  window_text="In this run mosquitto announced a Receive Maximum of $mosquitto_rm to the MQTT 5 clients, so
at QoS 1 its v5 publisher kept $mosquitto_rm messages unacknowledged where its 3.1.1 publisher kept
the window of 100 (the hub announces \`message.ingress.qos1.buffer.size\`, 100 by default:
$hub_kept). The QoS 1 rows at a window of 100 therefore put mosquitto under another load in
MQTT 5 than in 3.1.1 (with 3.1.1 clients it received $m100 msg/s at a window of 100 and $m20 at
$eq_window; $m100p and $m20p with a persistent session): they are shown as information, without
a target."
else
  window_text="In this run mosquitto's v5 publisher kept the window of 100 (mosquitto announced no lower
Receive Maximum). With 3.1.1 clients mosquitto received $m100 msg/s at a window of 100 and $m20 at
$eq_window ($m100p and $m20p with a persistent session)."
fi
if [[ $mosquitto_rm == "$eq_window" ]]; then
  eq_reason="the largest a v5 publisher may keep on mosquitto"
else
  eq_reason="mosquitto's \`max_inflight_messages\` in Debian's configuration"
fi
# v5_lat_row KEY WHAT LABEL: p50 / p99 of the median runs (by p99) of each broker and protocol.
v5_lat_row() {
  local h4 h5 m4 m5 r
  h4=$(median_run hub "$1" "$2"); h5=$(median_run hub "$1v5" "$2")
  m4=$(median_run mosquitto "$1" "$2"); m5=$(median_run mosquitto "$1v5" "$2")
  r=$(ratio "$(pct "$h5" "$2" 3)" "$(pct "$h4" "$2" 3)")
  echo "| $3 | $(pct "$h4" "$2" 1) / $(pct "$h4" "$2" 3) | $(pct "$h5" "$2" 1) / $(pct "$h5" "$2" 3) | \
$r | ≤ 1.1 | $(check "$r" 1.1 "<=") | $(pct "$m4" "$2" 1) / $(pct "$m4" "$2" 3) | \
$(pct "$m5" "$2" 1) / $(pct "$m5" "$2" 3) |"
}
v5_latency_rows="$(v5_lat_row lat0 delivery "QoS 0 at 5,000 msg/s, send → delivery")
$(v5_lat_row lat1 delivery "QoS 1 at 2,000 msg/s, send → delivery")
$(v5_lat_row lat1 puback "QoS 1 at 2,000 msg/s, send → PUBACK")"
v5_slow_row() {  # v5_slow_row NAME KEY: the hub's CPU per message with 3.1.1 and 5
  local r
  r=$(ratio "$(us_per_msg "${R[$2v5]}")" "$(us_per_msg "${R[$2]}")")
  echo "| $1 | $(us_per_msg "${R[$2]}") µs ($(received "${R[$2]}")) | \
$(us_per_msg "${R[$2v5]}") µs ($(received "${R[$2v5]}")) | $r | ≤ 1.1 | $(check "$r" 1.1 "<=") |"
}
v5_slow_rows="$(v5_slow_row "acknowledged at once, in bursts" slow.lag0)
$(v5_slow_row "1 held unacknowledged, acknowledged one at a time" slow.lag1)
$(v5_slow_row "90 held unacknowledged, acknowledged one at a time" slow.lag90)"
v5_all="$v5_hub_rows$v5_multiple_rows$v5_latency_rows"$'\n'"$v5_slow_rows"
v5_pass=$(grep -c '| PASS |' <<<"$v5_all" || true)
v5_total=$(grep -cE '\| (PASS|MISS)' <<<"$v5_all" || true)
v5_info=$(grep -c '| not comparable' <<<"$v5_all" || true)

# Figures for the report's text, from this run.
# runs_range KEY: "A–B msg/s", the slowest and fastest of KEY.1, KEY.2 and KEY.3.
runs_range() {
  local i
  for i in 1 2 3; do rate "${R[$1.$i]-}"; done | sort -n | sed -n '1p;$p' |
    { read -r a; read -r b; echo "$(fmt "$a")–$(fmt "$b") msg/s"; }
}
# spread_text: how far apart the three runs of one throughput case were (fastest / slowest - 1),
# at the median of the cases and at most.
spread_text() {
  local k a b c
  for k in $(printf '%s\n' "${!R[@]}" | sed -n 's/\.1$//p' | grep -v '\.lat' | sort); do
    a=$(rate "${R[$k.1]}") b=$(rate "${R[$k.2]-}") c=$(rate "${R[$k.3]-}")
    [[ -n $a && -n $b && -n $c ]] || continue
    printf '%s %s %s %s\n' "$k" "$a" "$b" "$c"
  done | awk '{ lo = $2; hi = $2; for (i = 3; i <= 4; ++i) { if ($i < lo) lo = $i; if ($i > hi) hi = $i }
      printf "%f %s\n", (lo > 0 ? 100 * (hi / lo - 1) : 0), $1 }' | sort -g |
    awk '{ s[NR] = $1; k[NR] = $2 }
      END { if (NR == 0) { print "no case ran three times"; exit }
        med = (NR % 2) ? s[(NR + 1) / 2] : (s[NR / 2] + s[NR / 2 + 1]) / 2
        printf "the fastest of the three runs of one case was %.0f %% above the slowest at the median of the %d cases, up to %.0f %% (%s)", med, NR, s[NR], k[NR] }'
}
# p99_range BROKER KEY WHAT: "A–B ms", the lowest and highest p99 of the three runs.
p99_range() {
  local i
  for i in 1 2 3; do pct "${R[$1.$2.$i]-}" "$3" 3; done | sort -g | sed -n '1p;$p' |
    { read -r a; read -r b; echo "$a–$b ms"; }
}
# client_range KEY...: the bench client's CPU µs per message over the three runs of each KEY.
client_range() {
  local k i
  for k in "$@"; do for i in 1 2 3; do client_cost "${R[$k.$i]-}"; done; done | sort -g |
    sed -n '1p;$p' | { read -r a; read -r b; echo "$a–$b"; }
}
worker_range() {  # worker_range KEY...: one worker's µs per message over the three runs of each
  local k i
  for k in "$@"; do for i in 1 2 3; do us_per_msg "${R[$k.$i]-}"; done; done | sort -g |
    sed -n '1p;$p' | { read -r a; read -r b; echo "$a–$b"; }
}
spread=$(spread_text)
load_after=$(load_average)
work_fs=$(findmnt -no FSTYPE,SOURCE -T "$work" 2>/dev/null | awk '{ print $1 " on " $2; exit }')

raw=""
for k in $(printf '%s\n' "${!R[@]}" | sort); do
  [[ $k == *.threads || $k == *.lat[01] ]] && continue
  [[ -n ${R[$k.1]+set} ]] && continue  # the median of KEY.1, KEY.2 and KEY.3, shown with them
  raw+=$(sed "s/^/$k: /" <<<"${R[$k]}")$'\n'
done

invocation="modules/hub/bench/run.sh --connections $connections"
run_kind="full"
if ((quick)); then
  invocation+=" --quick"
  run_kind="quick (\`--quick\`: a tenth of the full run's message counts, 1 s latency runs and holds; a check of the script, not figures to publish)"
fi
cat > "$output" <<REPORT
# Hub benchmark

\`baetyl-hub\` against Debian's mosquitto on the same machine in one run, measured by
\`modules/hub/bench/hub_bench.cpp\` over 127.0.0.1 with 64-byte payloads unless a case says
otherwise. Written by \`modules/hub/bench/run.sh\`; run it again to refresh every number. Rates
vary from run to run: compare the columns of one run. In this run, $spread.

- **hub**: Release build, persistence on (QoS 1 messages committed to SQLite in \`storage.dir\`, a
  fresh temporary directory, before PUBACK), one worker thread per core.
- **mosquitto**: $(mosquitto -h 2>/dev/null | head -1 | sed 's/^mosquitto //'), Debian's
  \`/etc/mosquitto/mosquitto.conf\` with its file paths moved to the temporary directory, plus a
  listener on 127.0.0.1 and \`allow_anonymous true\` (Debian's \`persistence true\` is a snapshot
  every 30 minutes and at exit, so QoS 1 messages are not written before PUBACK).
- Each broker is started fresh, measured alone, and stopped; the bench client runs on the same
  cores.

## Machine

| | |
|---|---|
$(machine_rows)
| compiler | $(compiler_version "$build_dir") |
| load average (1, 5, 15 min) | $load before the run, $load_after after it |
| threads after start | hub ${R[hub.threads]}, mosquitto ${R[mosquitto.threads]} |
| run | $run_kind |

## Commands

\`\`\`sh
$invocation
# which runs
$configure_cmd
$build_cmd
$(printf '%s\n' "${commands[@]}")
# (each latency case three times), and for the worker threads, the hub started as: taskset -c 0 baetyl-hub / taskset -c 0,1 baetyl-hub
hub_bench --port PORT ... --qos 0|1 ... [--payload 1024|4096] --broker-pid PID   # the worker-thread cases
hub_bench --port PORT ... --qos 1 --messages $slow_n --window 100 --persistent 1 --ack-lag 0|1|90 --consume-rate 4000 --broker-pid PID [--protocol 5]
store_bench --rate 2000 --seconds $store_seconds --sync normal|full --checkpoint thread|writer   # twice each
\`\`\`

## QoS 0 throughput (target ≥ 1.5 × mosquitto, no loss)

Messages received per second over all subscribers.

| case | baetyl-hub | mosquitto | ratio | target | |
|---|---|---|---|---|---|
${throughput_rows}
## QoS 1 throughput (target ≥ 2 × mosquitto)

| case | baetyl-hub | mosquitto | ratio | target | |
|---|---|---|---|---|---|
$qos1_row

## Latency at a fixed rate ($seconds s)

One publisher on a fixed schedule, one subscriber; milliseconds, p50 / p90 / p99 / max. Each case
runs three times per broker; each row shows the run with the median p99 (all runs are in the raw
output below).

| case | baetyl-hub | mosquitto | target | hub |
|---|---|---|---|---|
$latency_rows

## MQTT 5 clients (targets: within 10 % of the hub's 3.1.1 figures, the same multiple over mosquitto)

The throughput, latency and persistent-session cases above again with \`hub_bench --protocol 5\`,
on the same broker as the 3.1.1 runs and alternating with them, and the QoS 1 throughput cases
once more at a window of $eq_window with both protocols on both brokers, for the comparison with
mosquitto (see [The multiple over mosquitto](#the-multiple-over-mosquitto)). Every MQTT 5 client
connects with Clean Start, a Session Expiry Interval of 0xFFFFFFFF for the persistent session (as
3.1.1's clean session 0 never expires) and a Receive Maximum of 100 (\`--receive-maximum\`, the
largest window of these cases), publishes with an empty property list and acknowledges with the short PUBACK (the 3.1.1 bytes). A v5 publisher
keeps at most the broker's Receive Maximum unacknowledged; a cell says when that lowered the
window.

Targets, each a PASS/MISS below: the hub's v5 rate at least 0.9 × its 3.1.1 rate in the same case
(median of three runs each), without loss; its v5 latency p99 at most 1.1 × the 3.1.1 p99 (the
runs with the median p99); the slow persistent consumer's hub CPU per message at most 1.1 × the
3.1.1 one; and the multiple over mosquitto in v5 (hub rate / mosquitto rate, both v5) at least
0.9 × the multiple in 3.1.1, judged only where all four runs had the same window.

**$v5_pass of $v5_total PASS** ($v5_info more rows shown as information, not comparable).

### The hub with MQTT 5 against 3.1.1

Messages received per second over all subscribers, loss, and in brackets the hub's CPU time per
message received (\`--broker-pid\`).

| case | 3.1.1 | 5 | 5 / 3.1.1 | target | |
|---|---|---|---|---|---|
${v5_hub_rows}
### The multiple over mosquitto

Each case on both brokers with both protocols (in brackets each broker's CPU time per message),
and the hub's rate divided by mosquitto's in each protocol.

$window_text

The QoS 1 targets are judged on the runs at a window of $eq_window for all four,
$eq_reason: both brokers, both protocols, each three times alternating 3.1.1 and 5, the median
rate. The subscriber announces a Receive Maximum of 100 in v5, so each broker keeps as many
messages in flight to it as to a 3.1.1 subscriber: mosquitto its \`max_inflight_messages\` (20),
the hub its \`message.egress.qos1.buffer.size\` (100). (Reports before 2026-12-07 21:00 had the v5
subscriber announce $eq_window here, which held the hub's v5 deliveries to $eq_window in flight
against 100 in 3.1.1.)

| case | hub 3.1.1 | hub 5 | mosquitto 3.1.1 | mosquitto 5 | hub / mosquitto, 3.1.1 | hub / mosquitto, 5 | 5 / 3.1.1 | target | |
|---|---|---|---|---|---|---|---|---|---|
${v5_multiple_rows}
### Latency

p50 / p99 in milliseconds, of the run with the median p99 of three per broker and protocol.

| case | hub 3.1.1 | hub 5 | p99 5 / 3.1.1 | target | | mosquitto 3.1.1 | mosquitto 5 |
|---|---|---|---|---|---|---|---|
$v5_latency_rows

### Slow persistent consumer

The cases of [Slow persistent consumer](#slow-persistent-consumer-hub-cpu-per-message) with both
protocols, alternating on one hub: the hub's CPU time per message received (and how many were).

| consumer | 3.1.1 | 5 | 5 / 3.1.1 | target | |
|---|---|---|---|---|---|
$v5_slow_rows

## Memory (target: idle RSS ≤ mosquitto; $(fmt "$connections") idle connections ≤ 25 MB above the idle broker, ≤ 1.5 KB each)

VmRSS from \`/proc/<pid>/status\`: of the freshly started broker before any client, and with
$(fmt "$connections") clients connected (CONNECT with keep alive 0, then again on a fresh broker
with keep alive 60) after holding them $hold s; the ratio compares what the connections add.

| case | baetyl-hub | mosquitto | ratio | target | |
|---|---|---|---|---|---|
$memory_rows

## A subscriber that stops reading (target: hub peak RSS < 100 MB)

One subscriber on \`bench/#\` that never reads, one publisher sending $(fmt $flood_n) messages of 32 KB
(QoS 1: 100 in flight, as fast as PUBACKs come); then the subscriber leaves. Peak VmRSS of a
freshly started broker (sampled every 20 ms), and VmRSS $hold s after the subscriber left. The hub's
default queue bounds: QoS 0 10,000 messages or 8 MB, QoS 1/2 1,000 messages or 16 MB behind the
100 in flight (a persistent session's overflow stays in SQLite). mosquitto's defaults:
\`max_queued_messages 1000\`, \`max_inflight_messages 20\`.

| case | baetyl-hub: peak, after | mosquitto: peak, after | target | hub |
|---|---|---|---|---|
${flood_rows}
## One subscriber that stops reading among ten that read (target: their rate within 10 %)

One publisher of $(fmt $dead_n) QoS 0 messages, ten subscribers that read, and (second column) an
eleventh on the same filter that never reads; messages received per second by the ten, median of
three runs each, alternating, on one hub (the runs without: $(runs_range hub.live10), with:
$(runs_range hub.dead10)).

| case | without | with the dead subscriber | ratio | target | |
|---|---|---|---|---|---|
$dead_row

## Worker threads (target: throughput grows from 1 to 2)

The hub starts one worker thread per CPU it may use (\`sched_getaffinity\`; there is no key for
the number); it is started under \`taskset -c 0\` (1 worker) and under \`taskset -c 0,1\`
(2 workers): ${R[cpu0.threads]} and ${R[cpu0,1.threads]} threads after start, with the store's writer
and checkpoint threads. With one core the bench client is pinned to the other core (\`taskset -c
1\`), so the one worker has a core to itself; with two it is not pinned. In brackets, the hub's CPU time
(the process's CPU-time clock, to the nanosecond) per message received and its CPU time divided by the run's duration (cores
the hub kept busy): one worker that kept less than 0.9 cores busy was not what limited the rate,
and its row is not shown as a PASS or MISS.

| case | 1 core | 2 cores | ratio | target | |
|---|---|---|---|---|---|
${threads_rows}
## Slow persistent consumer (hub CPU per message)

A subscriber with clean session 0 (its queue entries are stored) that takes 4,000 msg/s while a
publisher sends $(fmt $slow_n) QoS 1 messages as fast as PUBACKs allow; hub CPU time per message received
(\`--persistent 1 --consume-rate 4000\` with \`--ack-lag 0\`, \`1\` and \`90\`).

| consumer | hub CPU per message | rate | received |
|---|---|---|---|
$slow_rows

## Store commit latency (the writer-thread part of a PUBACK)

\`store_bench --rate 2000 --seconds $store_seconds\`: the hub's store alone, one message with a queue entry
every 0.5 ms and its acknowledgement, time from \`add_message\` to the commit callback;
milliseconds, p50 / p90 / p99 / max. Its \`--dir\`, like every hub's \`storage.dir\` in this run, is
in a temporary directory under $(dirname "$work") (${work_fs:-file system not found}).

| synchronous, checkpoint | p50 / p90 / p99 / max |
|---|---|
${store_rows}
## Raw output

\`\`\`
${raw}\`\`\`

## Notes

- Latency is measured from the publisher's send time (written into the payload) to the subscriber
  reading the message, both in one process on one clock. A publisher behind schedule sends at once,
  so a stall shows in the next messages' latency only through queueing.
- QoS 1 in the latency case is acknowledged by the subscriber at once, one PUBACK per message; the
  PUBACK row is the publisher's view: the hub commits the message to SQLite before answering.
- Latency tails (p99, max) change from run to run, which is why each latency case runs three
  times. The p99 of the three 3.1.1 runs in this run: QoS 0 delivery hub
  $(p99_range hub lat0 delivery), mosquitto $(p99_range mosquitto lat0 delivery); QoS 1 delivery
  hub $(p99_range hub lat1 delivery), mosquitto $(p99_range mosquitto lat1 delivery); QoS 1
  PUBACK hub $(p99_range hub lat1 puback), mosquitto $(p99_range mosquitto lat1 puback).
- mosquitto may drop QoS 1 messages for a subscriber whose queue is full: its default
  \`max_queued_messages\` is 1000 beyond the messages in flight (\`max_inflight_messages\`, 20, to a
  3.1.1 client; the Receive Maximum of an MQTT 5 client); the QoS 1 rate counts only what arrived.
- Threads after start (the machine table): mosquitto ${R[mosquitto.threads]}, the hub
  ${R[hub.threads]}; the hub's idle RSS includes its threads' stacks and SQLite.
- Worker threads: the bench client runs on the same $(nproc) cores. With one worker the client has
  another core to itself; with two it shares them with the hub. In the QoS 0 cases with two
  workers it needed $(client_range "cpu0,1.q0_41" "cpu0,1.q0_14") µs of CPU per message received
  ("client cpu" in the raw output), one worker $(worker_range cpu0.q0_41 cpu0.q0_14) µs of hub CPU. A row
  where the client needed as much as one worker is "not shown", as one where one worker kept less
  than 0.9 cores busy (the hub was not the limit). How the workers share the connections and
  their writes: modules/hub/README.md, Design.
- Store: the hub runs SQLite with \`synchronous=NORMAL\`: a commit survives a crash of the hub,
  not a power cut (modules/hub/README.md, Durability). \`synchronous=FULL\` adds an fsync of the
  WAL to every commit; the store table shows both on this run's disk.
- The bench client's QoS 1 publisher refills its window once per read of PUBACKs (one \`send\`
  for every PUBACK that read returned), as a client that keeps a window in flight does. Measured
  separately on 2026-12-07 (not by this script): a publisher that sent one PUBLISH per PUBACK
  made one \`send\` per message (103,000 for 100,000 messages) and spent about 7.5 µs per message,
  mostly in the kernel (a loopback send also runs the receiving socket's TCP work); refilling per
  read it sent about 2,200 times for 100,000 messages and needed 0.6–1.0 µs per message, and the
  hub then read several PUBLISH packets at a time and committed them together (4.5–5.4 instead of
  7.3–13.9 µs of hub CPU per message in alternating runs). The QoS 1 rows of reports before
  2026-12-07 15:00 were measured with one PUBLISH per PUBACK, so their hub rates are lower.
REPORT
log "wrote $output"
