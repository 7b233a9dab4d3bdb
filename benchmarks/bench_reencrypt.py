"""`kms-aks reencrypt` on the real control plane: Secrets per second and the process's peak memory at two sizes.

The goal: memory flat (the pass holds one page, whatever the cluster's size) and time linear in the number of
Secrets. One control plane (etcd, kube-apiserver v1.34, our KMS v2 plugin, the Key Vault stand-in;
kms_aks_tools.cluster.ControlPlane) serves both sizes: SMALL Secrets are written under the key's first version,
the key moves to a second version and the pass runs; then Secrets are added up to LARGE, the key moves to a
third version and the pass runs again over all of them. Each pass runs as its own process; its wall time and
peak RSS are the child's own figures (wait4). Both passes use the same flags (default concurrency and page
size, no rate limit), so the ratios compare like with like.

    .venv/bin/python benchmarks/bench_reencrypt.py [--small 2000] [--large 20000] [--concurrency 4]

Builds the binaries on first use (e2e/k8s/build.sh, cached in .tools/). The figures depend on the machine and
on what else runs on it: they are printed with the load average before and after.
"""

from __future__ import annotations

import argparse
import base64
import os
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kubernetes import client, config  # noqa: E402

from azure_facts.key_ids import plugin_key_id  # noqa: E402
from testbed import ControlPlane, build_binaries, envelope_key_id  # noqa: E402

PER_NAMESPACE = 500


def create_secrets(core: client.CoreV1Api, start: int, stop: int) -> None:
    """Secrets number start..stop-1, 500 to a namespace, 256 random bytes each, written 8 at a time."""

    def one(index: int) -> None:
        namespace = f"bench-{index // PER_NAMESPACE:03d}"
        if index % PER_NAMESPACE == 0:
            core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
        core.create_namespaced_secret(
            namespace,
            client.V1Secret(
                metadata=client.V1ObjectMeta(name=f"s{index:06d}"),
                data={"blob": base64.b64encode(os.urandom(256)).decode()},
            ),
        )

    firsts = [i for i in range(start, stop) if i % PER_NAMESPACE == 0]
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(one, firsts))  # namespaces first
        list(pool.map(one, [i for i in range(start, stop) if i % PER_NAMESPACE != 0]))


def write_stack(directory: Path, key_url: str) -> Path:
    vault = key_url.split("//", 1)[1].split(".", 1)[0]
    path = directory / "Pulumi.bench.yaml"
    path.write_text(
        "config:\n  azure-native:location: westeurope\n  kms-aks:location: westeurope\n  kms-aks:existingKey:\n"
        f"    keyId: {key_url}\n    keyVaultResourceId: /subscriptions/11111111-2222-3333-4444-555555555555/"
        f"resourceGroups/rg-keys/providers/Microsoft.KeyVault/vaults/{vault}\n    permissionModel: rbac\n"
        '  kms-aks:cluster:\n    name: aks-bench\n    kubernetesVersion: "1.33"\n'
        "    apiServerAuthorizedIpRanges: [198.51.100.0/24]\n"
    )
    return path


def reencrypt(plane: ControlPlane, stack: Path, concurrency: int) -> tuple[float, int, str]:
    """Wall seconds, peak RSS (KiB) and the summary line of one `kms-aks reencrypt` process."""
    command = [
        sys.executable, "-m", "kms_aks_tools.cli", "reencrypt", "--stack", str(stack),
        "--kubeconfig", str(plane.kubeconfig), "--context", plane.context,
        "--rate", "0", "--concurrency", str(concurrency), "--progress-every", "1000000",
    ]
    with tempfile.TemporaryFile("w+") as out:
        start = time.perf_counter()
        process = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, text=True)
        _, status, usage = os.wait4(process.pid, 0)
        elapsed = time.perf_counter() - start
        out.seek(0)
        text = out.read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"reencrypt failed:\n{text}")
    summary = next((line for line in text.splitlines() if "Secrets listed" in line), "")
    return elapsed, usage.ru_maxrss, summary


def all_under(plane: ControlPlane, version: str, expected: int) -> None:
    wanted = plugin_key_id(plane.key_id(version))
    key_ids = [envelope_key_id(raw) for _, _, raw in plane.etcd_secrets()]
    wrong = sum(1 for k in key_ids if k != wanted)
    if len(key_ids) != expected or wrong:
        raise SystemExit(f"etcd: {len(key_ids)} Secrets, {wrong} not under the new key (expected {expected}, 0)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", type=int, default=2000)
    parser.add_argument("--large", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()

    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores "
          "(a shared machine: other work runs beside this benchmark)")
    bin_dir = build_binaries()
    results: list[tuple[int, float, int, str]] = []
    with tempfile.TemporaryDirectory(prefix="bench-reencrypt-") as tmp, ControlPlane.start(
        Path(tmp) / "plane", bin_dir=bin_dir
    ) as plane:
        api = config.new_client_from_config(config_file=str(plane.kubeconfig), context=plane.context)
        core = client.CoreV1Api(api)
        made = 0
        for size in (args.small, args.large):
            started = time.perf_counter()
            create_secrets(core, made, size)
            made = size
            print(f"{size} Secrets written in {time.perf_counter() - started:.0f} s; moving the key to a new version")
            version = plane.create_key_version()
            plane.use_key_version(version, wait=True)
            stack = write_stack(Path(tmp), plane.key_id(version))
            elapsed, peak_kib, summary = reencrypt(plane, stack, args.concurrency)
            all_under(plane, version, size)
            results.append((size, elapsed, peak_kib, summary))
            print(f"  {summary}")
        api.close()

    print()
    # `process s`: the whole command (interpreter start, checks, metrics, record); `pass s`: the rewrite itself,
    # as the command's summary reports it. The fixed start-up cost weighs on the small run's process time.
    print(f"{'Secrets':>8} {'process s':>10} {'pass s':>8} {'Secrets/s':>10} {'peak RSS MiB':>13}")
    passes = []
    for size, elapsed, peak_kib, summary in results:
        match = re.search(r" in ([0-9.]+) s ", summary)
        passes.append(float(match.group(1)) if match else elapsed)
        print(f"{size:>8} {elapsed:>10.1f} {passes[-1]:>8.1f} {size / passes[-1]:>10.1f} {peak_kib / 1024:>13.1f}")
    (small, t_small, m_small, _), (large, t_large, m_large, _) = results
    print(
        f"size x{large / small:.1f}: pass time x{passes[1] / passes[0]:.2f}, process time x{t_large / t_small:.2f} "
        f"(linear: x{large / small:.1f}); peak memory x{m_large / m_small:.2f} (flat: x1.0)"
    )
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
