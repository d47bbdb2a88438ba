#!/usr/bin/env bash
# The ARM builds run under emulation (Debian's qemu-user-static), on the build machine:
#   scripts/test-arm.sh [--no-build] [arm64] [armhf]          (default: arm64 armhf)
# For each architecture it cross-builds into build-<arch> (configured with
# cmake/toolchain-<arch>.cmake when it is not yet) the programs `baetyl check` needs for
# example/native, the Python stubs of proto/function.proto and the unit tests of the SDK and the
# hub, then checks, each program run by qemu-<arch>-static:
#   1. the compiled programs are ELF files for the architecture (readelf);
#   2. `baetyl version` prints the platform linux/arm64 (linux/arm for armhf);
#   3. `baetyl check -w <copy of example/native>` prints OK!;
#   4. baetyl-hub on a free 127.0.0.1 port passes a QoS 1 round trip with mosquitto_pub/sub of
#      the build machine: a message to `t` reaches a subscriber of `t` and, through the hub's
#      route, of `t/topic`; SIGTERM stops the hub with status 0;
#   5. baetyl-function-sql on a free 127.0.0.1 port answers baetyl.Function/Call from the build
#      machine's Python client (test/fixtures/tools/function_call.py): the docs' filter
#      `select qos() as qos, topic() as topic, * where id < 10` passes {"id":1} and drops {"id":20};
#   6. the unit tests of the SDK (sdk/tests) and of the hub (hub_unit_test) pass; the SDK's MQTT
#      client tests use the build machine's mosquitto as their broker.
# and, when CHECKS names it (it needs Docker and `make image ARCH=<arch>` first):
#   image. the image baetyl-hub:latest-<arch> is of the architecture, and a container of it
#      (docker run --platform, port 1883 published on a free 127.0.0.1 port) passes the same round
#      trip; SIGTERM stops it with status 0.
# --no-build runs the checks on what build-<arch> holds. CHECKS picks checks by name (default
# "elf version example hub sql unit"; the build is the same). JOBS sets the build's parallel jobs
# (default: number of cores). Needs `ARCH=<arch> scripts/install-deps.sh` (the cross compiler,
# the :<arch> libraries, qemu-user-static) and mosquitto, mosquitto-clients, python3-grpcio.
# Exits 1 at the first failed check, printing what it saw.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
jobs=${JOBS:-$(nproc)}
build=1
arches=()
for arg in "$@"; do
  case $arg in
    --no-build) build=0 ;;
    arm64 | armhf) arches+=("$arg") ;;
    *)
      echo "test-arm: unknown argument '$arg'" \
        "(usage: scripts/test-arm.sh [--no-build] [arm64] [armhf])" >&2
      exit 2 ;;
  esac
done
((${#arches[@]})) || arches=(arm64 armhf)

programs=(baetyl baetyl-hub baetyl-function-manager baetyl-function-python baetyl-function-node
          baetyl-function-sql baetyl-remote-mqtt)
sdk_tests=(sdk_config_test sdk_log_test sdk_env_test sdk_base64_test sdk_http_test
           sdk_mqtt_codec_test sdk_mqtt_client_test sdk_context_test)
# Test programs are in bin/; each runs in its CMake directory, as CTest runs it.
unit_tests=("${sdk_tests[@]/%/:sdk/tests}" hub_unit_test:modules/hub/tests)

work=$(mktemp -d /tmp/baetyl-test-arm.XXXXXX)
pids=()
containers=()
cleanup() {
  local pid container
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for container in "${containers[@]}"; do docker rm -f "$container" >/dev/null 2>&1 || true; done
  rm -rf "$work"
}
trap cleanup EXIT

fail() {
  echo "test-arm: FAILED: $*" >&2
  exit 1
}
pass() { echo "test-arm: $arch: ok: $*"; }

free_port() {
  /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# wait_for_port <port> <pid> <log>: until something listens on 127.0.0.1:<port> (60 s at most:
# programs start slowly under emulation), failing with the log when the process exits first.
wait_for_port() {
  local port=$1 pid=$2 log=$3 deadline=$((SECONDS + 60))
  until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
    kill -0 "$pid" 2>/dev/null ||
      fail "$(basename "$log" .log) exited before listening on $port: $(cat "$log")"
    ((SECONDS < deadline)) || fail "nothing listens on 127.0.0.1:$port after 60 s: $(cat "$log")"
    sleep 0.2
  done
}

# stop <pid> <name> <log>: SIGTERM, then the exit status must be 0 within 20 s.
stop() {
  local pid=$1 name=$2 log=$3 status=0 deadline=$((SECONDS + 20))
  kill -TERM "$pid"
  while kill -0 "$pid" 2>/dev/null; do
    ((SECONDS < deadline)) || fail "$name did not stop within 20 s of SIGTERM"
    sleep 0.2
  done
  wait "$pid" || status=$?
  ((status == 0)) || fail "$name exited with status $status on SIGTERM: $(tail -n 20 "$log")"
}

build_arch() {
  local dir=$1
  if [[ ! -f $dir/CMakeCache.txt ]]; then
    cmake -S "$root" -B "$dir" -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_TOOLCHAIN_FILE="$root/cmake/toolchain-$arch.cmake" \
      >"$work/configure-$arch.log" 2>&1 ||
      fail "configuring $dir: $(tail -n 30 "$work/configure-$arch.log")"
  fi
  local targets=("${programs[@]}" baetyl_function_proto_python "${sdk_tests[@]}" hub_unit_test)
  cmake --build "$dir" -j "$jobs" --target "${targets[@]}" >"$work/build-$arch.log" 2>&1 ||
    fail "building $dir: $(grep -m 20 -E 'error|Error' "$work/build-$arch.log")"
}

check_elf() {
  local program machine compiled=0
  for program in "${programs[@]}"; do
    [[ -x $bin/$program ]] || fail "$bin/$program is missing (run without --no-build)"
    # The Python and Node runtimes are scripts.
    [[ $(head -c 4 "$bin/$program") == $'\x7fELF' ]] || continue
    compiled=$((compiled + 1))
    machine=$(readelf -h "$bin/$program" | awk -F: '/Machine:/ { gsub(/^ +/, "", $2); print $2 }')
    [[ $machine == "$elf_machine" ]] ||
      fail "$bin/$program is built for '$machine', not $elf_machine"
  done
  pass "$compiled compiled programs are $elf_machine ELF files"
}

check_version() {
  local out
  out=$("$qemu" "$bin/baetyl" version) || fail "baetyl version: $out"
  grep -q "^Platform: *linux/$platform\$" <<<"$out" || fail "baetyl version printed: $out"
  pass "baetyl version: $(grep -m 1 '^Version' <<<"$out" | tr -s ' '), linux/$platform"
}

check_example() {
  local dir=$work/$arch-example out
  cp -r "$root/example/native" "$dir"
  out=$("$qemu" "$bin/baetyl" check -w "$dir" 2>&1) || fail "baetyl check on example/native: $out"
  [[ $(tail -n 1 <<<"$out") == "OK!" ]] || fail "baetyl check on example/native printed: $out"
  pass "baetyl check -w example/native: OK!"
}

# hub_config <dir> <listen url>: the hub's service.yml under <dir>/etc/baetyl: user test may
# publish and subscribe to everything, and `t` is routed to `t/topic`.
hub_config() {
  mkdir -p "$1/etc/baetyl"
  cat >"$1/etc/baetyl/service.yml" <<EOF
listen:
  - $2
principals:
  - username: test
    password: hahaha
    permissions:
      - {action: pub, permit: ['#']}
      - {action: sub, permit: ['#']}
subscriptions:
  - source: {topic: t}
    target: {topic: t/topic}
logger: {level: info}
EOF
}

# round_trip <dir> <port> <pid> <log>: messages `hello <arch> <n>` go to `t` on 127.0.0.1:<port>
# every half second until one of them has reached the subscriber both on `t` and, through the
# hub's route, on `t/topic`. The hub may take the subscriber's two filters one after the other,
# so the first message may come on `t` alone. <pid> is the hub's (or its container's client).
round_trip() {
  local dir=$1 port=$2 hub=$3 log=$4
  local mqtt=(-h 127.0.0.1 -p "$port" -u test -P hahaha -q 1) n=0 deadline=$((SECONDS + 60))
  : >"$dir/received"
  mosquitto_sub "${mqtt[@]}" -i "test-arm-sub-$$" -t t -t t/topic -v -W 120 \
    >"$dir/received" 2>"$dir/sub.log" &
  local sub=$!
  pids+=("$sub")
  until [[ -n $(on_both_topics "$dir/received") ]]; do
    kill -0 "$hub" 2>/dev/null || fail "the hub exited: $(cat "$log")"
    kill -0 "$sub" 2>/dev/null || fail "mosquitto_sub ended: $(cat "$dir/sub.log")"
    ((SECONDS < deadline)) ||
      fail "no message reached the subscriber on both t and t/topic in 60 s;" \
        "received: $(cat "$dir/received"); hub: $(cat "$log")"
    n=$((n + 1))
    mosquitto_pub "${mqtt[@]}" -i "test-arm-pub-$$" -t t -m "hello $arch $n" \
      2>>"$dir/sub.log" || true
    sleep 0.5
  done
  kill "$sub" 2>/dev/null || true
}

# The first payload of `mosquitto_sub -v` output <file> that came on both t and t/topic.
on_both_topics() {
  awk '{ payload = $0; sub(/^[^ ]+ /, "", payload) }
       $1 == "t" { on_t[payload] = 1 } $1 == "t/topic" { on_route[payload] = 1 }
       END { for (p in on_t) if (p in on_route) { print p; exit } }' "$1"
}

check_hub() {
  local dir=$work/$arch-hub port
  port=$(free_port)
  hub_config "$dir" "tcp://127.0.0.1:$port"
  (cd "$dir" && BAETYL_SERVICE_NAME=hub exec "$qemu" "$bin/baetyl-hub") >"$dir/hub.log" 2>&1 &
  local hub=$!
  pids+=("$hub")
  wait_for_port "$port" "$hub" "$dir/hub.log"
  round_trip "$dir" "$port" "$hub" "$dir/hub.log"
  stop "$hub" baetyl-hub "$dir/hub.log"
  pass "baetyl-hub: QoS 1 round trip with mosquitto_pub/sub on 127.0.0.1:$port" \
    "(t and route t/topic)"
}

# The hub's image of the architecture in a container. `docker run` stays attached: its exit is the
# container's, and it hands SIGTERM on to the hub.
check_image() {
  local image=baetyl-hub:latest-$arch dir=$work/$arch-image port recorded
  command -v docker >/dev/null || fail "docker not found (the image check needs Docker)"
  recorded=$(docker image inspect -f '{{.Os}}/{{.Architecture}}' "$image" 2>&1) ||
    fail "$image is missing: run make image ARCH=$arch ($recorded)"
  [[ $docker_platform == "$recorded" || $docker_platform == "$recorded"/* ]] ||
    fail "$image is recorded as $recorded, not $docker_platform"
  port=$(free_port)
  hub_config "$dir" "tcp://0.0.0.0:1883"
  local name=baetyl-test-arm-hub-$$
  containers+=("$name")
  docker run --rm --name "$name" --platform "$docker_platform" -e BAETYL_SERVICE_NAME=hub \
    -p "127.0.0.1:$port:1883" -v "$dir/etc/baetyl:/etc/baetyl:ro" "$image" >"$dir/hub.log" 2>&1 &
  local hub=$!
  pids+=("$hub")
  # The published port answers as soon as the container starts; round_trip retries until the hub
  # itself does.
  wait_for_port "$port" "$hub" "$dir/hub.log"
  local machine
  machine=$(docker exec "$name" uname -m 2>&1) || fail "docker exec $name uname -m: $machine"
  round_trip "$dir" "$port" "$hub" "$dir/hub.log"
  stop "$hub" "the $image container" "$dir/hub.log"
  pass "$image ($recorded, uname -m: $machine): QoS 1 round trip on 127.0.0.1:$port"
}

check_sql() {
  local dir=$work/$arch-sql port
  port=$(free_port)
  mkdir -p "$dir/etc/baetyl"
  cat >"$dir/etc/baetyl/service.yml" <<'EOF'
functions:
  - name: sql-filter
    handler: 'select qos() as qos, topic() as topic, * where id < 10'
EOF
  (cd "$dir" && BAETYL_SERVICE_INSTANCE_ADDRESS=127.0.0.1:$port exec "$qemu" \
    "$bin/baetyl-function-sql") >"$dir/sql.log" 2>&1 &
  local sql=$!
  pids+=("$sql")
  wait_for_port "$port" "$sql" "$dir/sql.log"

  local call=(/usr/bin/python3 "$root/test/fixtures/tools/function_call.py" "$build_dir/python"
              "127.0.0.1:$port" sql-filter) reply
  reply=$("${call[@]}" '{"id":1}' 1 t) ||
    fail "calling the SQL runtime: $reply $(cat "$dir/sql.log")"
  [[ $reply == *'"Payload": "{\"qos\":1,\"topic\":\"t\",\"id\":1}"'* && $reply == *'"ID": 42'* ]] ||
    fail "the SQL runtime answered {\"id\":1} with $reply"
  reply=$("${call[@]}" '{"id":20}' 1 t) ||
    fail "calling the SQL runtime: $reply $(cat "$dir/sql.log")"
  [[ $reply == *'"Payload": ""'* ]] || fail "the SQL runtime answered {\"id\":20} with $reply"
  stop "$sql" baetyl-function-sql "$dir/sql.log"
  pass "baetyl-function-sql: Function.Call over 127.0.0.1:$port" \
    "passes {\"id\":1}, drops {\"id\":20}"
}

check_unit_tests() {
  local entry test out count total=0
  for entry in "${unit_tests[@]}"; do
    test=${entry%%:*}
    [[ -x $bin/$test ]] || fail "$bin/$test is missing (run without --no-build)"
    out=$(cd "$build_dir/${entry#*:}" && timeout 600 "$qemu" "$bin/$test" --gtest_brief=1 2>&1) ||
      fail "$test under $qemu: $out"
    count=$(grep -oE '\[  PASSED  \] [0-9]+' <<<"$out" | grep -oE '[0-9]+$')
    total=$((total + count))
  done
  pass "unit tests under emulation: $total tests of ${#unit_tests[@]} programs passed"
}

for arch in "${arches[@]}"; do
  case $arch in
    arm64)
      qemu=qemu-aarch64-static elf_machine=AArch64 platform=arm64 docker_platform=linux/arm64 ;;
    armhf) qemu=qemu-arm-static elf_machine=ARM platform=arm docker_platform=linux/arm/v7 ;;
  esac
  command -v "$qemu" >/dev/null || fail "$qemu not found: run ARCH=$arch scripts/install-deps.sh"
  build_dir=$root/build-$arch
  bin=$build_dir/bin
  started=$SECONDS
  if ((build)); then
    build_arch "$build_dir"
    echo "test-arm: $arch: built in $((SECONDS - started)) s"
  fi
  for check in ${CHECKS:-elf version example hub sql unit}; do
    case $check in
      elf) check_elf ;;
      version) check_version ;;
      example) check_example ;;
      hub) check_hub ;;
      sql) check_sql ;;
      unit) check_unit_tests ;;
      image) check_image ;;
      *) fail "unknown check '$check' in CHECKS (elf version example hub sql unit image)" ;;
    esac
  done
  echo "test-arm: $arch: checks passed (${CHECKS:-all}) in $((SECONDS - started)) s"
done
