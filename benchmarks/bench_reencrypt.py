"""`kms-aks reencrypt` beside kubectl on the real control plane: Secrets per second and peak memory, in one run.

The method it replaces is Microsoft's documented one, `kubectl get secrets -A -o json | kubectl replace -f -`,
with a kubectl built from the same k8s.io/kubernetes module as the API server (e2e/k8s/build.sh kubectl).
One control plane (etcd, kube-apiserver v1.34, our KMS v2 plugin, the Key Vault stand-in;
kms_aks_tools.cluster.ControlPlane) serves every size: Secrets are added up to each size in turn, and at each
size every method runs once, each after its own key change (a new key version), so that each finds every
Secret under the previous key and must rewrite all of them; etcd's bytes are then checked (every Secret under
the new key). Wall time and peak RSS are each process's own (wait4); kubectl's peak is the larger of its two
processes (`get` holds the whole list, `replace` decodes all of it).

    .venv/bin/python benchmarks/bench_reencrypt.py [--sizes 2000,10000,20000] [--caps-at 2000]

Methods: kubectl and `kms-aks reencrypt` with its defaults at every size; at the sizes named by --caps-at,
also with caps a user may set: `--concurrency 4`, and `--rate 200` (Secrets/s must come out just under 200).
Builds the binaries on first use (cached in .tools/). The machine is shared: compare the ratios within one
run; the load average is printed before and after.
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
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kubernetes import client, config  # noqa: E402

from azure_facts.key_ids import plugin_key_id  # noqa: E402
from testbed import ControlPlane, envelope_key_id  # noqa: E402
from testbed.controlplane import BUILD_SCRIPT  # noqa: E402

PER_NAMESPACE = 500
KUBECTL = "kubectl get -A -o json | replace -f -"
DEFAULTS = "kms-aks reencrypt (defaults)"


@dataclass
class Row:
    size: int
    method: str
    seconds: float
    peak_kib: int
    cpu: float  # user + system seconds of the method's own process(es)
    detail: str = ""

    @property
    def rate(self) -> float:
        return self.size / self.seconds


def build_with_kubectl() -> Path:
    """The bin folder of e2e/k8s/build.sh, with kubectl built too (each binary only when stale)."""
    if os.environ.get("KMS_AKS_K8S_BIN"):
        return Path(os.environ["KMS_AKS_K8S_BIN"])
    result = subprocess.run(["bash", str(BUILD_SCRIPT), "kubectl"], stdout=subprocess.PIPE, text=True, check=True)
    return Path(result.stdout.strip().splitlines()[-1])


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


def reencrypt(plane: ControlPlane, stack: Path, flags: list[str]) -> tuple[float, int, float, str]:
    """Wall seconds, peak RSS (KiB), CPU seconds and the summary line of one `kms-aks reencrypt` process."""
    command = [
        sys.executable,
        "-m",
        "kms_aks_tools.cli",
        "reencrypt",
        "--stack",
        str(stack),
        "--kubeconfig",
        str(plane.kubeconfig),
        "--context",
        plane.context,
        "--progress-every",
        "1000000",
        *flags,
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
    return elapsed, usage.ru_maxrss, usage.ru_utime + usage.ru_stime, summary


def kubectl_replace(plane: ControlPlane, kubectl: Path) -> tuple[float, int, int, float]:
    """Wall seconds, the peak RSS (KiB) of `kubectl get` and of `kubectl replace`, piped as the docs say, and
    their CPU seconds together."""
    base = [str(kubectl), "--kubeconfig", str(plane.kubeconfig), "--context", plane.context]
    with tempfile.TemporaryFile("w+") as out:
        start = time.perf_counter()
        get = subprocess.Popen([*base, "get", "secrets", "-A", "-o", "json"], stdout=subprocess.PIPE)
        replace = subprocess.Popen(
            [*base, "replace", "-f", "-"], stdin=get.stdout, stdout=subprocess.DEVNULL, stderr=out
        )
        assert get.stdout is not None
        get.stdout.close()  # replace holds the pipe's read end
        peaks, cpu = {}, 0.0
        for name, process in (("get", get), ("replace", replace)):
            _, status, usage = os.wait4(process.pid, 0)
            process.returncode = os.waitstatus_to_exitcode(status)
            peaks[name] = usage.ru_maxrss
            cpu += usage.ru_utime + usage.ru_stime
            if process.returncode != 0:
                out.seek(0)
                raise SystemExit(f"kubectl {name} failed with exit {process.returncode}:\n{out.read()[-2000:]}")
        elapsed = time.perf_counter() - start
    return elapsed, peaks["get"], peaks["replace"], cpu


def all_under(plane: ControlPlane, version: str, expected: int, method: str) -> None:
    wanted = plugin_key_id(plane.key_id(version))
    key_ids = [envelope_key_id(raw) for _, _, raw in plane.etcd_secrets()]
    wrong = sum(1 for k in key_ids if k != wanted)
    if len(key_ids) != expected or wrong:
        raise SystemExit(f"{method}: etcd holds {len(key_ids)} Secrets, {wrong} not under the new key")


def new_key(plane: ControlPlane, directory: Path) -> tuple[str, Path]:
    version = plane.create_key_version()
    plane.use_key_version(version, wait=True)
    return version, write_stack(directory, plane.key_id(version))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="2000,10000,20000", help="Secrets at each step (default 2000,10000,20000)")
    parser.add_argument("--caps-at", default="2000", help="sizes at which the capped runs run too (default 2000)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    caps_at = {int(s) for s in args.caps_at.split(",") if s}

    print(
        f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores "
        "(a shared machine: other work runs beside this benchmark)",
        flush=True,
    )
    bin_dir = build_with_kubectl()
    kubectl = bin_dir / "kubectl"
    version_line = subprocess.run(
        [str(kubectl), "version", "--client"], capture_output=True, text=True, check=True
    ).stdout.splitlines()[0]
    print(f"kubectl: {version_line} (k8s.io/kubernetes/cmd/kubectl, built by e2e/k8s/build.sh kubectl)", flush=True)
    rows: list[Row] = []
    with (
        tempfile.TemporaryDirectory(prefix="bench-reencrypt-") as tmp,
        ControlPlane.start(Path(tmp) / "plane", bin_dir=bin_dir) as plane,
    ):
        api = config.new_client_from_config(config_file=str(plane.kubeconfig), context=plane.context)
        core = client.CoreV1Api(api)
        made = 0
        for size in sizes:
            started = time.perf_counter()
            create_secrets(core, made, size)
            made = size
            print(f"{size} Secrets written in {time.perf_counter() - started:.0f} s", flush=True)

            version, _ = new_key(plane, Path(tmp))
            seconds, peak_get, peak_replace, cpu = kubectl_replace(plane, kubectl)
            all_under(plane, version, size, KUBECTL)
            rows.append(
                Row(
                    size,
                    KUBECTL,
                    seconds,
                    max(peak_get, peak_replace),
                    cpu,
                    f"get {peak_get // 1024} MiB, replace {peak_replace // 1024} MiB",
                )
            )
            print(f"  {KUBECTL}: {seconds:.1f} s", flush=True)

            runs: list[tuple[str, list[str]]] = [(DEFAULTS, [])]
            if size in caps_at:
                runs += [
                    ("kms-aks reencrypt --concurrency 4", ["--concurrency", "4"]),
                    ("kms-aks reencrypt --rate 200", ["--rate", "200"]),
                ]
            for method, flags in runs:
                version, stack = new_key(plane, Path(tmp))
                seconds, peak, cpu, summary = reencrypt(plane, stack, flags)
                all_under(plane, version, size, method)
                match = re.search(r" in ([0-9.]+) s ", summary)
                throttled = re.search(r"(\d+) 429s absorbed", summary)
                detail = f"pass {match.group(1) if match else '?'} s, {throttled.group(1) if throttled else '?'} 429s"
                rows.append(Row(size, method, seconds, peak, cpu, detail))
                print(f"  {method}: {seconds:.1f} s ({summary.split('reencrypt: ')[-1][:90]}...)", flush=True)
        api.close()

    print()
    print("Each row: every Secret rewritten under a new key and checked in etcd. Time: the whole process(es).")
    print()
    print("| Secrets | method | time s | Secrets/s | vs kubectl | peak MiB | vs kubectl | CPU s | notes |")
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for size in sizes:
        base = next(r for r in rows if r.size == size and r.method == KUBECTL)
        for row in (r for r in rows if r.size == size):
            print(
                f"| {size} | {row.method} | {row.seconds:.1f} | {row.rate:.0f} | {row.rate / base.rate:.2f}x | "
                f"{row.peak_kib / 1024:.0f} | {row.peak_kib / base.peak_kib:.2f}x | {row.cpu:.1f} | {row.detail} |"
            )
    ours = [r for r in rows if r.method == DEFAULTS]
    kube = [r for r in rows if r.method == KUBECTL]
    print()
    print(
        f"defaults' peak memory from {ours[0].size} to {ours[-1].size} Secrets: "
        f"x{ours[-1].peak_kib / ours[0].peak_kib:.2f} (kubectl's: x{kube[-1].peak_kib / kube[0].peak_kib:.2f})"
    )
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
