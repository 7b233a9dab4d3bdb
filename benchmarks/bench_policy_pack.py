"""Benchmark of the kms-aks policy pack through the real analyzer protocol.

    .venv/bin/python benchmarks/bench_policy_pack.py [--sizes 10000,100000] [--repeat 3] [--strict]

The stack is the real program's recorded prod stack plus what a large stack holds around it: a Kubernetes
provider, namespaces, a quarter of the resources Kubernetes Secrets (2,500 of 10,000), ConfigMaps,
Deployments, role assignments of other principals and other Azure resources, with parents and dependencies.
The pack is started as the CLI starts it and configured with policies/config/prod.json.

Measured, for each size:
- `Analyze` once per resource: milliseconds per resource (next to a bare gRPC round trip);
- `AnalyzeStack` once: seconds (the best of --repeat runs), split into the protocol floor (every stack
  policy disabled through Configure), what pulumi_policy spends per stack policy before the policy runs
  (one stack policy enabled), and the policies' own work (timed in-process on the same resources);
- the growth from the first size to the others.

Goals (2-core machine): AnalyzeStack over 10k resources under 0.5 s; Analyze at most 0.8 ms per resource;
100k within 10 times 10k. The figures are printed either way; --strict exits 1 when a goal is missed.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "policies"))

from google.protobuf import empty_pb2, json_format  # noqa: E402
from pulumi.runtime.proto import analyzer_pb2  # noqa: E402

from kms_aks_tools.offline.mock_engine import run_stack  # noqa: E402
from kms_aks_tools.offline.policy_pack import (  # noqa: E402
    PolicyClient,
    PolicyPackProcess,
    analyze_request,
    analyze_stack_request,
    load_policy_config,
)
from kms_aks_tools.offline.recording import SECRET_SIG, SECRET_SIG_KEY, RecordedResource  # noqa: E402

SECRET = "kubernetes:core/v1:Secret"
GOAL_STACK_SECONDS_10K = 0.5
GOAL_ANALYZE_MS = 0.8
GOAL_GROWTH = 10.0


# ------------------------------------------------------------------------------------------ the stack


def _urn(stack: str, type_token: str, name: str, parent_type: str | None = None) -> str:
    qualified = f"{parent_type}${type_token}" if parent_type else type_token
    return f"urn:pulumi:{stack}::kms-aks::{qualified}::{name}"


def _resource(
    urn: str,
    type_token: str,
    name: str,
    inputs: dict[str, Any],
    *,
    parent: str,
    dependencies: Sequence[str] = (),
    property_dependencies: dict[str, tuple[str, ...]] | None = None,
    provider: str = "",
) -> RecordedResource:
    return RecordedResource(
        urn=urn,
        type=type_token,
        name=name,
        custom=True,
        parent=parent,
        inputs=inputs,
        outputs={},
        dependencies=tuple(dependencies),
        property_dependencies=property_dependencies or {},
        provider=provider,
    )


def build_stack(total: int, base: list[RecordedResource]) -> list[RecordedResource]:
    """`base` plus generated resources up to `total`, a quarter of them Secrets."""
    stack_urn = next(r.urn for r in base if r.type == "pulumi:pulumi:Stack")
    stack_name = stack_urn.split(":")[2]
    cluster = next(r for r in base if r.type == "azure-native:containerservice:ManagedCluster")
    secrets = total // 4
    namespaces = max(1, total // 500)
    provider_urn = _urn(stack_name, "pulumi:providers:kubernetes", "aks")
    provider = _resource(
        provider_urn,
        "pulumi:providers:kubernetes",
        "aks",
        {"kubeconfig": {SECRET_SIG_KEY: SECRET_SIG, "value": "apiVersion: v1\nkind: Config\n"}, "version": "4.23.0"},
        parent=stack_urn,
        dependencies=[cluster.urn],
        property_dependencies={"kubeconfig": (cluster.urn,)},
    )
    provider_ref = f"{provider_urn}::0d4f6a2e-0000-4000-8000-000000000001"
    resources = [*base, provider]
    namespace_urns = []
    for n in range(namespaces):
        name = f"team-{n:03d}"
        namespace = _resource(
            _urn(stack_name, "kubernetes:core/v1:Namespace", name),
            "kubernetes:core/v1:Namespace",
            name,
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": {"team": name}}},
            parent=stack_urn,
            provider=provider_ref,
        )
        resources.append(namespace)
        namespace_urns.append(namespace.urn)

    def kubernetes(type_token: str, name: str, index: int, spec: dict[str, Any]) -> RecordedResource:
        namespace = namespace_urns[index % namespaces]
        inputs = {
            "apiVersion": "apps/v1" if type_token.startswith("kubernetes:apps") else "v1",
            "kind": type_token.rsplit(":", 1)[-1],
            "metadata": {
                "name": name,
                "namespace": namespace.rsplit("::", 1)[-1],
                "labels": {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "shop"},
            },
            **spec,
        }
        return _resource(
            _urn(stack_name, type_token, name),
            type_token,
            name,
            inputs,
            parent=stack_urn,
            dependencies=[namespace],
            property_dependencies={"metadata": (namespace,)},
            provider=provider_ref,
        )

    for i in range(secrets):
        secret_value = {SECRET_SIG_KEY: SECRET_SIG, "value": f"s3cr3t-{i}"}
        resources.append(
            kubernetes(
                SECRET, f"app-{i}", i, {"type": "Opaque", "stringData": {"password": secret_value, "user": "app"}}
            )
        )
    configmaps = total // 4
    for i in range(configmaps):
        data = {"LOG_LEVEL": "info", "FEATURE_FLAGS": "a,b,c", "REGION": "westeurope"}
        resources.append(kubernetes("kubernetes:core/v1:ConfigMap", f"config-{i}", i, {"data": data}))
    deployments = total * 15 // 100
    for i in range(deployments):
        container = {
            "name": "app",
            "image": f"registry.example.com/shop/app-{i}:1.0.{i % 50}",
            "ports": [{"containerPort": 8080, "name": "http"}],
            "env": [{"name": "CONFIG", "valueFrom": {"configMapKeyRef": {"name": f"config-{i}", "key": "REGION"}}}],
            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
        }
        spec = {
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app.kubernetes.io/name": f"app-{i}"}},
                "template": {
                    "metadata": {"labels": {"app.kubernetes.io/name": f"app-{i}"}},
                    "spec": {"containers": [container]},
                },
            }
        }
        resources.append(kubernetes("kubernetes:apps/v1:Deployment", f"app-{i}", i, spec))
    role_assignments = total // 10
    group = next(r.inputs.get("resourceGroupName") for r in base if r.type == "azure-native:resources:ResourceGroup")
    for i in range(role_assignments):
        # Other principals' grants: the same type as the KMS grant, so the rules must index, not scan.
        name = f"ra-{i}"
        resources.append(
            _resource(
                _urn(stack_name, "azure-native:authorization:RoleAssignment", name),
                "azure-native:authorization:RoleAssignment",
                name,
                {
                    "principalId": f"{i:08x}-0000-4000-8000-000000000000",
                    "principalType": "ServicePrincipal",
                    "roleDefinitionId": "/subscriptions/s/providers/Microsoft.Authorization/roleDefinitions/"
                    "acdd72a7-3385-48ef-bd42-f606fba81ae7",
                    "scope": f"/subscriptions/s/resourceGroups/{group}/providers/Microsoft.Storage/"
                    f"storageAccounts/st{i}",
                },
                parent=stack_urn,
            )
        )
    i = 0
    while len(resources) < total:
        name = f"dns-{i}"
        resources.append(
            _resource(
                _urn(stack_name, "azure-native:network:PrivateRecordSet", name),
                "azure-native:network:PrivateRecordSet",
                name,
                {
                    "resourceGroupName": group,
                    "privateZoneName": "shop.internal",
                    "recordType": "A",
                    "relativeRecordSetName": name,
                    "ttl": 300,
                    "aRecords": [{"ipv4Address": f"10.0.{i // 250 % 250}.{i % 250}"}],
                },
                parent=stack_urn,
            )
        )
        i += 1
    return resources[:total]


# ------------------------------------------------------------------------------------------ measuring


@dataclass
class SizeResult:
    size: int
    secrets: int
    analyze_ms: float
    stack_seconds: float
    stack_runs: list[float]
    floor_seconds: float
    one_policy_seconds: float
    own_work_seconds: float
    violations: list[str]


def _best(runs: int, call: Callable[[], Any]) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return times


def bare_round_trip_ms(client: PolicyClient, calls: int = 2000) -> float:
    stub = client._stub  # the raw stub: a round trip with no policy work at all
    stub.GetPluginInfo(empty_pb2.Empty())
    start = time.perf_counter()
    for _ in range(calls):
        stub.GetPluginInfo(empty_pb2.Empty())
    return (time.perf_counter() - start) / calls * 1000


def own_work_seconds(request: analyzer_pb2.AnalyzeStackRequest, config: dict[str, Any], runs: int) -> float:
    """The stack policies' own validation time in this process, on resources built as pulumi_policy builds
    them (properties deserialized and wrapped in its unknown-checking proxy), without the SDK's conversion."""
    import kms_pack
    from pulumi_policy import (
        PolicyCustomTimeouts,
        PolicyResource,
        PolicyResourceOptions,
        StackValidationArgs,
        StackValidationPolicy,
    )
    from pulumi_policy.deserialize import deserialize_properties
    from pulumi_policy.proxy import UnknownValueError, unknown_checking_proxy

    resources: list[PolicyResource] = []
    by_urn: dict[str, PolicyResource] = {}
    for r in request.resources:
        props = unknown_checking_proxy(deserialize_properties(json_format.MessageToDict(r.properties)))
        opts = PolicyResourceOptions(
            r.options.protect, list(r.options.ignoreChanges), None, [], PolicyCustomTimeouts(0, 0, 0), [], r.parent
        )
        resource = PolicyResource(r.type, props, r.urn, r.name, opts, None, None, [], {})
        resources.append(resource)
        by_urn[r.urn] = resource
    for r, resource in zip(request.resources, resources, strict=True):
        resource.dependencies = [by_urn[d] for d in r.dependencies if d in by_urn]
        resource.property_dependencies = {
            k: [by_urn[d] for d in v.urns if d in by_urn] for k, v in r.propertyDependencies.items()
        }
    stack_policies = [p for p in kms_pack.POLICIES if isinstance(p, StackValidationPolicy)]
    # Time it under the garbage-collector settings the pack process runs with.
    thresholds = gc.get_threshold()
    kms_pack.tune_garbage_collector()

    def validate_all() -> None:
        for policy in stack_policies:
            args = StackValidationArgs(resources, config.get(policy.name, {}))
            with contextlib.suppress(UnknownValueError):
                policy.validate(args, lambda message, urn=None: None)

    try:
        return min(_best(runs, validate_all))
    finally:
        gc.set_threshold(*thresholds)


def measure(
    client: PolicyClient, size: int, base: list[RecordedResource], config: dict[str, Any], repeat: int
) -> SizeResult:
    resources = build_stack(size, base)
    secrets = sum(1 for r in resources if r.type == SECRET)
    print(f"\n{size:,} resources ({secrets:,} {SECRET}): building requests...", flush=True)
    start = time.perf_counter()
    by_urn = {r.urn: r for r in resources}
    requests = [analyze_request(r, by_urn) for r in resources]
    stack_request = analyze_stack_request(resources)
    print(f"  client-side conversion: {time.perf_counter() - start:.1f} s (not part of the figures below)")

    reconciled = client.configure(config)
    start = time.perf_counter()
    for request in requests:
        client.analyze(request)
    analyze_ms = (time.perf_counter() - start) / len(requests) * 1000
    print(f"  Analyze: {analyze_ms:.3f} ms per resource", flush=True)

    result: list[Any] = []
    stack_runs = _best(repeat, lambda: result.append(client.analyze_stack(stack_request)))
    violations = sorted({f"{v.policy_name} ({v.enforcement_level})" for v in result[-1]})
    print(f"  AnalyzeStack: {min(stack_runs):.3f} s (runs: {', '.join(f'{t:.3f}' for t in stack_runs)})", flush=True)

    info = client.get_analyzer_info()
    stack_policies = [p.name for p in info.policies if p.policy_type == "stack"]
    client.configure({**config, **{name: "disabled" for name in stack_policies}})
    floor = min(_best(repeat, lambda: client.analyze_stack(stack_request)))
    # The secret limit's own work is a count: with it alone, AnalyzeStack is the floor plus the SDK's cost.
    client.configure({**config, **{name: "disabled" for name in stack_policies if name != "aks-kms-secret-limit"}})
    one_policy = min(_best(repeat, lambda: client.analyze_stack(stack_request)))
    client.configure(config)

    own = own_work_seconds(stack_request, {k: dict(v.properties) for k, v in reconciled.items()}, repeat)
    return SizeResult(size, secrets, analyze_ms, min(stack_runs), stack_runs, floor, one_policy, own, violations)


# -------------------------------------------------------------------------------------------- report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--sizes", default="10000,100000", help="stack sizes, comma-separated (default: %(default)s)")
    parser.add_argument("--repeat", type=int, default=2, help="AnalyzeStack runs per size; the best counts")
    parser.add_argument("--stack", default="prod", help="the recorded stack at the heart of it (default: prod)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a goal is missed")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]

    base = run_stack(args.stack)
    if base.error:
        print(f"the program failed under the mock engine: {base.error}", file=sys.stderr)
        return 2
    config = load_policy_config(args.stack)
    print(
        f"kms-aks policy pack benchmark: {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"pulumi-policy {metadata.version('pulumi-policy')}, grpcio {metadata.version('grpcio')}"
    )
    start = time.perf_counter()
    with PolicyPackProcess().start() as pack:
        client = pack.wait_ready()
        print(f"pack started as the CLI starts it, ready in {time.perf_counter() - start:.2f} s")
        info = client.get_analyzer_info()
        kinds = [p.policy_type for p in info.policies]
        print(f"{len(info.policies)} policies: {kinds.count('resource')} resource, {kinds.count('stack')} stack")
        round_trip = bare_round_trip_ms(client)
        print(f"bare gRPC round trip: {round_trip:.3f} ms")
        results = [measure(client, size, list(base.resources), config, args.repeat) for size in sizes]

    stack_policy_count = kinds.count("stack")
    print("\n== results ==")
    print("AnalyzeStack = protocol floor (stack policies disabled) + the policies' own work (in-process)")
    print(
        "             + pulumi_policy's conversion of every resource, once per call for all "
        f"{stack_policy_count} stack policies (policies/shared_stack_view.py)"
    )
    print(
        f"{'resources':>10} {'secrets':>8} {'Analyze ms/res':>15} {'AnalyzeStack s':>15} {'floor s':>8} "
        f"{'own work s':>11} {'SDK conversion s':>17} {'one stack policy s':>19}"
    )
    for r in results:
        sdk = r.stack_seconds - r.floor_seconds - r.own_work_seconds
        print(
            f"{r.size:>10,} {r.secrets:>8,} {r.analyze_ms:>15.3f} {r.stack_seconds:>15.3f} {r.floor_seconds:>8.3f} "
            f"{r.own_work_seconds:>11.3f} {sdk:>17.3f} {r.one_policy_seconds:>19.3f}"
        )
    print(f"violations reported by AnalyzeStack: {', '.join(results[0].violations) or 'none'}")

    missed = []
    first = results[0]
    if first.size == 10_000:
        ok = first.stack_seconds < GOAL_STACK_SECONDS_10K
        verdict = "met" if ok else "MISSED"
        print(f"goal AnalyzeStack 10k < {GOAL_STACK_SECONDS_10K:g} s: {first.stack_seconds:.3f} s -> {verdict}")
        if not ok:
            missed.append("AnalyzeStack 10k")
            sdk = first.stack_seconds - first.floor_seconds - first.own_work_seconds
            print(
                f"  the policies' own work is {first.own_work_seconds:.3f} s; pulumi_policy spends {sdk:.3f} s "
                f"converting every resource for its {stack_policy_count} stack policies; with a single stack "
                f"policy AnalyzeStack takes {first.one_policy_seconds:.3f} s"
            )
    for r in results:
        ok = r.analyze_ms <= GOAL_ANALYZE_MS
        print(
            f"goal Analyze <= {GOAL_ANALYZE_MS:g} ms/resource at {r.size:,}: {r.analyze_ms:.3f} ms "
            f"(round trip {round_trip:.3f} ms) -> {'met' if ok else 'MISSED'}"
        )
        if not ok:
            missed.append(f"Analyze at {r.size:,}")
    for r in results[1:]:
        factor = r.size / first.size
        growth = r.stack_seconds / first.stack_seconds
        allowed = GOAL_GROWTH * factor / 10
        ok = growth <= allowed
        print(
            f"growth {first.size:,} -> {r.size:,} ({factor:g}x resources): AnalyzeStack {growth:.2f}x, "
            f"own work {r.own_work_seconds / first.own_work_seconds:.2f}x, Analyze/resource "
            f"{r.analyze_ms / first.analyze_ms:.2f}x (goal <= {allowed:g}x) -> {'met' if ok else 'MISSED'}"
        )
        if not ok:
            missed.append(f"growth to {r.size:,}")
    if missed:
        print(f"missed: {', '.join(missed)}")
    return 1 if missed and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
