"""`kms-aks plan --all` at 10 and 50 stacks, next to one stack's plan, measured in the same run.

It generates a temporary project of stack files, copies of the shipped dev stack under other names and
regions, and times:

- one stack's `kms-aks plan` (median of `--runs`): the unit of work;
- `kms-aks plan --all` over 10 and over 50 of them (every stack in its own process, `--jobs` at once), with the
  peak memory of the whole process tree (the command, its workers and their policy packs), sampled from /proc.

Goal on 2 cores: 50 stacks within 1.3x of (one plan x 50 / workers), and peak memory bounded by the worker count
(about the same at 10 and at 50 stacks). The machine may be shared: the figures are ratios within one run.

    .venv/bin/python benchmarks/bench_fleet.py [--runs 3] [--jobs N] [--sizes 10 50] [--strict]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
REGIONS = ("westeurope", "northeurope", "swedencentral", "eastus", "eastus2", "westus3", "uksouth", "francecentral")
GOAL = 1.3


def make_project(folder: Path, count: int) -> None:
    """`count` copies of the dev stack, each with its own vault, key, cluster and region."""
    source = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())
    for index in range(count):
        name = f"s{index:03d}"
        config = dict(source["config"])
        region = REGIONS[index % len(REGIONS)]
        config["azure-native:location"] = config["kms-aks:location"] = region
        config["kms-aks:keyVault"] = {**config["kms-aks:keyVault"], "name": f"kv-bench-{name}"}
        config["kms-aks:kmsKey"] = {**config["kms-aks:kmsKey"], "name": f"key-{name}"}
        config["kms-aks:cluster"] = {**config["kms-aks:cluster"], "name": f"aks-{name}"}
        (folder / f"Pulumi.{name}.yaml").write_text(yaml.safe_dump({"config": config}, sort_keys=False))


def _tree_rss_kib(root: int) -> int:
    """The summed resident memory of `root` and every descendant, from /proc."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        pid = int(entry.name)
        children.setdefault(int(fields.get("PPid", "0").strip()), []).append(pid)
        rss[pid] = int(fields.get("VmRSS", "0 kB").split()[0])
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack.extend(children.get(pid, []))
    return total


def measured(command: list[str]) -> tuple[float, int, int]:
    """Wall seconds, peak tree RSS (KiB, sampled every 0.2 s) and exit code of one command."""
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _tree_rss_kib(process.pid))
            done.wait(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    code = process.wait()
    elapsed = time.perf_counter() - start
    done.set()
    sampler.join()
    return elapsed, peak, code


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="runs of the single-stack plan (median)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="workers (default: the cores)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 50])
    parser.add_argument("--strict", action="store_true", help="exit 1 when the time goal is missed")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="kms-aks-bench-fleet-") as tmp:
        base = Path(tmp)
        make_project(base, max(args.sizes))
        one = [sys.executable, "-m", "kms_aks_tools.commands.plan", "--stack", str(base / "Pulumi.s000.yaml")]
        measured(one)  # warm the file cache and bytecode once
        singles = [measured(one) for _ in range(args.runs)]
        single = statistics.median(seconds for seconds, _, _ in singles)
        single_peak = max(peak for _, peak, _ in singles)
        print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start; workers: {args.jobs}")
        print(f"one stack's plan:  median {single:.2f} s over {args.runs} runs, peak {single_peak / 1024:.0f} MiB")

        missed = False
        peaks = {}
        for size in args.sizes:
            folder = base / f"n{size}"
            folder.mkdir()
            for path in sorted(base.glob("Pulumi.s*.yaml"))[:size]:
                (folder / path.name).write_text(path.read_text())
            command = [
                sys.executable, "-m", "kms_aks_tools.cli", "plan", "--all", "--cwd", str(folder),
                "--jobs", str(args.jobs),
            ]  # fmt: skip
            seconds, peak, code = measured(command)
            peaks[size] = peak
            ideal = single * size / args.jobs
            ratio = seconds / ideal
            missed |= ratio > GOAL
            print(
                f"plan --all, {size:>3} stacks: {seconds:7.1f} s  (one plan x {size} / {args.jobs} = {ideal:.1f} s; "
                f"ratio {ratio:.2f}x, goal <= {GOAL}x {'OK' if ratio <= GOAL else 'MISSED'}), "
                f"peak memory {peak / 1024:.0f} MiB, exit {code}"
            )
        if len(peaks) > 1:
            low, high = min(args.sizes), max(args.sizes)
            print(
                f"peak memory {high} vs {low} stacks: {peaks[high] / max(peaks[low], 1):.2f}x "
                f"(bounded by the worker count when near 1; one plan's tree alone: {single_peak / 1024:.0f} MiB)"
            )
        print(f"load average at end: {os.getloadavg()[0]:.1f} (other work on the machine skews the times)")
    return 1 if args.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main())
