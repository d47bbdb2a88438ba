#!/usr/bin/env python3
"""Compares the function pipeline in native and docker mode from baetyl-function-bench --summary.

Input: the JSON lines of interleaved runs (each line names its variant: native, native-group,
native-docker-group, published, host, direct, direct-docker-cgroup). Prints a markdown table of medians over the runs, with every
run's value, and the target of the Docker issue: Python QoS 1 throughput in containers within
20 % of native.
"""
import json
import statistics
import sys

VARIANTS = [
    ("native", "native"),
    ("native-group", "native, in a CPU cgroup of its own"),
    ("native-docker-group", "native, in a CPU cgroup beside the containers"),
    ("published", "docker, clients on the port published on 127.0.0.1 (docker-proxy)"),
    ("host", "docker, clients on the port published on the host's address (Docker's NAT)"),
    ("direct", "docker, clients on the hub container's address"),
    ("direct-docker-cgroup",
     "docker, clients on the hub container's address, containers in Docker's cgroup `docker`"),
]


def load(path):
    rows = []
    with open(path) as lines:
        for line in lines:
            line = line.strip()
            if line:
                row = json.loads(line)
                if row.get("kind") == "throughput":
                    row["lost"] = row["messages"] - row["received"]
                    received = max(row["received"], 1)
                    row["proxy_us"] = row["cpu"]["proxy"] * 1e6 / received
                rows.append(row)
    return rows


def values(rows, variant, kind, function, field, qos=None):
    found = []
    for row in rows:
        if row["variant"] != variant or row.get("kind") != kind or row["function"] != function:
            continue
        if qos is not None and row.get("qos") != qos:
            continue
        found.append(row[field])
    return found


def cell(found, fmt):
    if not found:
        return "—"
    median = statistics.median(found)
    runs = ", ".join(fmt.format(v) for v in found)
    return f"**{fmt.format(median)}** ({runs})"


def main():
    rows = load(sys.argv[1])
    present = [(key, label) for key, label in VARIANTS if any(r["variant"] == key for r in rows)]
    print("| | " + " | ".join(label for _, label in present) + " |")
    print("|---|" + "---|" * len(present))

    def line(what, kind, function, field, fmt, qos=None):
        cells = [cell(values(rows, key, kind, function, field, qos), fmt) for key, _ in present]
        print(f"| {what} | " + " | ".join(cells) + " |")

    line("hub route t/hub → o/hub, QoS 1: msg/s", "throughput", "hub", "rate", "{:,.0f}", 1)
    line("Python, instance.max 1, QoS 1: msg/s", "throughput", "py1", "rate", "{:,.0f}", 1)
    line("… messages lost", "throughput", "py1", "lost", "{:,.0f}", 1)
    line("… CPU µs per output, every process", "throughput", "py1", "cpu_us_per_output",
         "{:.0f}", 1)
    line("… of which docker-proxy", "throughput", "py1", "proxy_us", "{:.0f}", 1)
    line("Python, instance.max 4, QoS 1: msg/s", "throughput", "pyn", "rate", "{:,.0f}", 1)
    line("… messages lost", "throughput", "pyn", "lost", "{:,.0f}", 1)
    line("… CPU µs per output, every process", "throughput", "pyn", "cpu_us_per_output",
         "{:.0f}", 1)
    line("latency at 500 msg/s, QoS 1, instance.max 1: p50 ms", "latency", "py1", "p50", "{:.2f}")
    line("… p99 ms", "latency", "py1", "p99", "{:.2f}")
    line("cold start of a Python instance: median ms", "latency", "py1", "cold_median", "{:.0f}")
    print()

    sent = values(rows, "native", "throughput", "py1", "messages", 1)
    if sent:
        print(f"Each throughput run sends {int(sent[0]):,} messages. Bold: the median of the "
              "runs; in brackets: each run, in order.")
        print()
    for function, instances in (("py1", "1"), ("pyn", "4")):
        native = values(rows, "native", "throughput", function, "rate", 1)
        for key, label in present:
            if key == "native" or not native:
                continue
            docker = values(rows, key, "throughput", function, "rate", 1)
            if not docker:
                continue
            ratio = statistics.median(docker) / statistics.median(native)
            verdict = "PASS" if ratio >= 0.8 else "MISS"
            print(f"- Python QoS 1 (instance.max {instances}), {label}: {ratio:.0%} of native "
                  f"(target ≥ 80 %): **{verdict}**")


if __name__ == "__main__":
    main()
