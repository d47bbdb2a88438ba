#!/usr/bin/env bash
# Builds the benchmarks in Release (build-bench/), runs them and writes docs/benchmarks.md.
#
#   bench/run.sh [--messages N]     N: messages per client throughput scenario (default 100000)
#
# Needs the build packages (scripts/install-deps.sh --build, which includes libbenchmark-dev),
# mosquitto and mosquitto-clients, and python3. The client benchmark takes about 40 s on 2 cores;
# everything runs on 127.0.0.1 only.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=build-bench
messages=100000
while (($#)); do
  case $1 in
    --messages) messages=${2:?--messages needs a number}; shift 2 ;;
    -h|--help) sed -n '2,8p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "run.sh: unknown argument: $1" >&2; exit 2 ;;
  esac
done

for tool in cmake python3 mosquitto mosquitto_pub; do
  command -v "$tool" >/dev/null || {
    echo "run.sh: $tool not found; run scripts/install-deps.sh first" >&2
    exit 1
  }
done

cd "$root"
. bench/machine_facts.sh
work=$(mktemp -d /tmp/baetyl-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT

configure_cmd=$(release_configure_cmd "$build_dir")
build_cmd="cmake --build $build_dir -j$(nproc) --target baetyl-mqtt-codec-bench \
baetyl-mqtt-client-bench"
codec_cmd="$build_dir/bin/baetyl-mqtt-codec-bench"
client_cmd="$build_dir/bin/baetyl-mqtt-client-bench --messages $messages"

load=$(load_average)

echo "run.sh: configuring and building ($build_dir, Release)" >&2
$configure_cmd >"$work/configure.log" || { cat "$work/configure.log" >&2; exit 1; }
$build_cmd >"$work/build.log" 2>&1 || { cat "$work/build.log" >&2; exit 1; }

echo "run.sh: MQTT codec benchmark" >&2
$codec_cmd --benchmark_out="$work/codec.json" --benchmark_out_format=json >&2

echo "run.sh: MQTT client benchmark" >&2
$client_cmd >"$work/client.md"
cat "$work/client.md" >&2

python3 - "$work/facts.json" <<EOF
import json, sys
facts = {
    "date": """$(date -u '+%Y-%m-%d %H:%M')""",
    "nproc": $(nproc),
    "cpu_model": """$(cpu_model)""",
    "memory": """$(memory_total)""",
    "kernel": """$(uname -sr)""",
    "compiler": """$(compiler_version "$build_dir")""",
    "mosquitto": """mosquitto $(dpkg-query -W -f='${Version}' mosquitto 2>/dev/null || echo '?')""",
    "benchmark": """$(dpkg-query -W -f='${Version}' libbenchmark-dev 2>/dev/null || echo '?')""",
    "load": """$load""",
    "commands": """$configure_cmd
$build_cmd
$codec_cmd
$client_cmd""",
}
json.dump(facts, open(sys.argv[1], "w"))
EOF

python3 bench/write_report.py --codec-json "$work/codec.json" --client-md "$work/client.md" \
  --facts "$work/facts.json" --out docs/benchmarks.md
echo "run.sh: wrote docs/benchmarks.md" >&2
