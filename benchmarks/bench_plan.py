"""How long a warm `kms-aks plan` (what `make plan` runs) takes next to its floor, measured in the same run.

The floor is a bare interpreter that only imports the SDK modules the program uses: no program can plan
faster than it loads its providers. The goal is a warm plan (venv ready, caches warm) within 1.25x the
floor on a 2-core machine. Runs alternate plan and floor so that machine noise hits both alike. The CPU
seconds (user + system, the plan's policy pack included) are printed too: on a busy machine they move less
than wall time.

    .venv/bin/python benchmarks/bench_plan.py [--runs 7] [--stack dev] [--strict]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# The SDK modules the program uses. azure-native loads a resource's module on first attribute access, so
# the floor touches the same classes the program does; importing the package alone loads almost nothing.
FLOOR = (
    "import pulumi, pulumi_azuread, pulumiverse_time\n"
    "from pulumi_azure_native import authorization, containerservice, eventgrid, keyvault, managedidentity\n"
    "from pulumi_azure_native import monitor, operationalinsights, resources\n"
    "_ = (authorization.RoleAssignment, authorization.get_client_config_output, containerservice.ManagedCluster,\n"
    "     containerservice.ManagedClusterAgentPoolProfileArgs, keyvault.Vault, keyvault.Key, keyvault.AccessPolicy,\n"
    "     keyvault.VaultPropertiesArgs, managedidentity.UserAssignedIdentity, resources.ResourceGroup,\n"
    "     eventgrid.SystemTopic, eventgrid.SystemTopicEventSubscription, monitor.ActionGroup,\n"
    "     monitor.DiagnosticSetting, monitor.ScheduledQueryRule, monitor.DataCollectionRule,\n"
    "     monitor.DataCollectionRuleAssociation, operationalinsights.Workspace, pulumiverse_time.Sleep,\n"
    "     pulumi_azuread.Group)\n"
)
GOAL = 1.25


def timed(command: list[str]) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds and peak RSS (KiB) of one child process, the child's own figures from wait4."""
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - start
    stderr = process.stderr.read().decode() if process.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{stderr}")
    return elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss


def pack_peak_rss(stack: str) -> int:
    """Peak RSS (KiB) of the policy pack process after it analysed the whole stack."""
    from kms_aks_tools.offline.mock_engine import run_stack
    from kms_aks_tools.offline.policy_pack import PolicyPackProcess, load_policy_config

    recorded = run_stack(stack, preview=True)
    with PolicyPackProcess() as pack:
        client = pack.wait_ready()
        client.configure(load_policy_config(stack))
        client.check(recorded.resources)
        status = Path(f"/proc/{pack.pid}/status").read_text()
    return next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--stack", default="dev")
    parser.add_argument("--strict", action="store_true", help="exit 1 when the goal is missed")
    args = parser.parse_args()

    plan_cmd = [sys.executable, "-m", "kms_aks_tools.cli", "plan", "--stack", args.stack]  # = kms-aks plan
    floor_cmd = [sys.executable, "-c", FLOOR]
    timed(plan_cmd)  # warm the file cache and bytecode once
    timed(floor_cmd)

    plan_times, floor_times, plan_cpu, floor_cpu, plan_rss, floor_rss = [], [], [], [], [], []
    for _ in range(args.runs):
        seconds, cpu, rss = timed(plan_cmd)
        plan_times.append(seconds)
        plan_cpu.append(cpu)
        plan_rss.append(rss)
        seconds, cpu, rss = timed(floor_cmd)
        floor_times.append(seconds)
        floor_cpu.append(cpu)
        floor_rss.append(rss)

    plan_median, floor_median = statistics.median(plan_times), statistics.median(floor_times)
    ratio = plan_median / floor_median
    print(
        f"warm plan ({args.stack}):  median {plan_median:.3f} s  (min {min(plan_times):.3f}, max {max(plan_times):.3f})"
    )
    print(f"floor (SDK imports): median {floor_median:.3f} s  (min {min(floor_times):.3f}, max {max(floor_times):.3f})")
    print(f"ratio plan/floor:    {ratio:.2f}x  (goal <= {GOAL:.2f}x)  {'OK' if ratio <= GOAL else 'MISSED'}")
    plan_cpu_median, floor_cpu_median = statistics.median(plan_cpu), statistics.median(floor_cpu)
    print(
        f"CPU (user+sys):      plan median {plan_cpu_median:.3f} s, floor {floor_cpu_median:.3f} s, "
        f"ratio {plan_cpu_median / floor_cpu_median:.2f}x"
    )
    print(f"load average:        {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(
        f"peak memory: plan process {max(plan_rss) / 1024:.0f} MiB, floor {max(floor_rss) / 1024:.0f} MiB, "
        f"policy pack process {pack_peak_rss(args.stack) / 1024:.0f} MiB"
    )
    return 1 if args.strict and ratio > GOAL else 0


if __name__ == "__main__":
    sys.exit(main())
