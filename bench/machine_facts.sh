# Sourced by the bench/run*.sh scripts: facts about this machine for their reports.

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
