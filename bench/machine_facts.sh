# Sourced by the benchmark scripts (bench/run*.sh, modules/hub/bench/run.sh): facts about this
# machine and the build for their reports.

# The CPU model, e.g. "Intel(R) Xeon(R) CPU @ 2.20GHz".
cpu_model() { grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'; }

# The total memory, e.g. "7.8 GiB".
memory_total() { awk '/^MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo; }

# The date, CPU, memory and kernel rows of a report's markdown "Machine" table.
machine_rows() {
  echo "| date | $(date -u '+%Y-%m-%d %H:%M') UTC |"
  echo "| CPU | $(cpu_model), $(nproc) cores |"
  echo "| memory | $(memory_total) |"
  echo "| kernel | $(uname -sr) |"
}

# The load averages of the last 1, 5 and 15 minutes, e.g. "0.52 0.61 0.70".
load_average() { cut -d' ' -f1-3 /proc/loadavg; }

# The command that configures the Release build of the benchmarks in the build directory $1.
release_configure_cmd() {
  echo "cmake -S . -B $1 -DCMAKE_BUILD_TYPE=Release -DBAETYL_BUILD_BENCH=ON" \
    "-DBAETYL_BUILD_TESTS=OFF"
}

# The first line of --version of the C++ compiler of the build directory $1 (c++ when it names
# none).
compiler_version() {
  local compiler
  compiler=$(sed -n 's/^CMAKE_CXX_COMPILER:[A-Z]*=//p' "$1/CMakeCache.txt")
  "${compiler:-c++}" --version | head -1
}
