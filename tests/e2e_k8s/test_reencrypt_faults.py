"""Issue 26's fault scenarios: `kms-aks reencrypt` on a real kube-apiserver while the server pushes back.

- the `--rate` cap, measured by the API server's own counters for the tool's user (its FlowSchema's
  `apiserver_flowcontrol_dispatched_requests_total`, and `apiserver_request_total` for Secret updates);
- API Priority and Fairness: a PriorityLevelConfiguration with a tiny share (Reject) and a FlowSchema for the
  tool's user, so the server really answers 429; a workload client in another flow keeps being served;
- continue-token expiry: etcd compacted under a slow pass, the API server answers 410 with a fresh token;
- 5xx: the KMS plugin stopped until the API server's write key expires, so Secret writes fail.

The tool runs as a ServiceAccount with just the rights it needs (not system:masters, which APF exempts).
Every scenario is judged on etcd: every Secret under the new key (the envelope's keyID), each written once
more than before (etcd's `version`), the data unchanged (hashes through the API), and on the API server's
counters, never only on what the tool says. The scenarios share one control plane and run in order.
"""

from __future__ import annotations

import base64
import hashlib
import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from kubernetes import client

from testbed import ControlPlane
from tests.e2e_k8s.conftest import kms_aks, kms_aks_process
from tests.e2e_k8s.test_reencrypt import api_secrets, azure_key_id, etcd_key_ids, etcd_versions, rotate, write_stack

NAMESPACES, PER_NAMESPACE = 20, 60  # 1,200 Secrets
COMPACTION = 10  # seconds between the API server's etcd compactions
TOOL_NAMESPACE, TOOL_ACCOUNT = "kms-aks-system", "kms-aks-reencrypt"
FLOW_SCHEMA = "kms-aks-reencrypt"
TINY_LEVEL = "kms-aks-tiny"
# Low enough that a busy 2-core machine serving etcd, the API server and the tool still reaches it.
RATE_CAP = 30


@pytest.fixture(scope="module")
def control_plane(k8s_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """This module's own plane: etcd compacted every COMPACTION seconds, so continue tokens expire quickly; 30
    seats of concurrency in all (not 600), so that a priority level with 1 share of 246 has just one seat."""
    args = [
        f"--etcd-compaction-interval={COMPACTION}s",
        "--max-requests-inflight=20",
        "--max-mutating-requests-inflight=10",
    ]
    with ControlPlane.start(tmp_path_factory.mktemp("faults"), bin_dir=k8s_bin, apiserver_args=args) as plane:
        yield plane


# ------------------------------------------------------------------------------------------- helpers


def api(plane: ControlPlane, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """One request as the admin (system:masters: APF's exempt flow), apart from the tool and its client."""
    response = requests.request(
        method,
        f"{plane.server}{path}",
        json=body,
        headers={"Authorization": f"Bearer {plane.token}"},
        verify=str(plane.ca_file),
        timeout=30,
    )
    assert response.status_code < 300, f"{method} {path}: {response.status_code} {response.text}"
    return response.json()


def metric(plane: ControlPlane, name: str, **labels: str) -> float:
    """The sum of `name`'s series whose labels include `labels`, read here with a regular expression."""
    total = 0.0
    for series_labels, value in re.findall(rf"^{name}\{{([^}}]*)\}} (\S+)$", plane.metrics(), re.M):
        if all(f'{k}="{v}"' in series_labels for k, v in labels.items()):
            total += float(value)
    return total


def service_account_kubeconfig(plane: ControlPlane, directory: Path, namespace: str, name: str) -> Path:
    """A kubeconfig whose user is the ServiceAccount `namespace/name` (a token from the TokenRequest API)."""
    answer = api(
        plane,
        "POST",
        f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token",
        {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 7200}},
    )
    document = yaml.safe_load(plane.kubeconfig.read_text())
    document["users"][0]["user"] = {"token": answer["status"]["token"]}
    path = directory / f"{name}.kubeconfig"
    path.write_text(yaml.safe_dump(document))
    path.chmod(0o600)
    return path


def flow_schema(level: str, precedence: int = 500) -> dict[str, Any]:
    """The FlowSchema that puts the tool's ServiceAccount's requests on Secrets into `level`."""
    return {
        "apiVersion": "flowcontrol.apiserver.k8s.io/v1",
        "kind": "FlowSchema",
        "metadata": {"name": FLOW_SCHEMA},
        "spec": {
            "priorityLevelConfiguration": {"name": level},
            "matchingPrecedence": precedence,
            "distinguisherMethod": {"type": "ByUser"},
            "rules": [
                {
                    "subjects": [
                        {
                            "kind": "ServiceAccount",
                            "serviceAccount": {"namespace": TOOL_NAMESPACE, "name": TOOL_ACCOUNT},
                        }
                    ],
                    "resourceRules": [
                        {
                            "verbs": ["*"],
                            "apiGroups": [""],
                            "resources": ["secrets"],
                            "namespaces": ["*"],
                            "clusterScope": True,
                        }
                    ],
                }
            ],
        },
    }


def use_flow_schema(plane: ControlPlane, level: str) -> None:
    """Points the tool's FlowSchema at `level`, and waits until the API server dispatches by it."""
    path = f"/apis/flowcontrol.apiserver.k8s.io/v1/flowschemas/{FLOW_SCHEMA}"
    existing = requests.get(
        f"{plane.server}{path}", headers={"Authorization": f"Bearer {plane.token}"}, verify=str(plane.ca_file)
    )
    if existing.status_code == 200:
        api(plane, "DELETE", path)
    api(plane, "POST", "/apis/flowcontrol.apiserver.k8s.io/v1/flowschemas", flow_schema(level))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status = api(plane, "GET", path).get("status") or {}
        if any(c.get("type") == "Dangling" and c.get("status") == "False" for c in status.get("conditions", [])):
            time.sleep(1.0)  # the dispatcher's configuration follows the status' own controller
            return
        time.sleep(0.2)
    raise AssertionError(f"FlowSchema {FLOW_SCHEMA} for level {level} not taken up")


class Story:
    stack: Path
    tool: Path  # the tool's kubeconfig (its ServiceAccount)
    workload: Path  # a workload's kubeconfig (another ServiceAccount, another flow)
    hashes: dict[tuple[str, str], str]


@pytest.fixture(scope="module")
def story(control_plane: ControlPlane, core: client.CoreV1Api, tmp_path_factory: pytest.TempPathFactory) -> Story:
    state = Story()
    directory = tmp_path_factory.mktemp("faults-stack")
    plane = control_plane
    for namespace in (TOOL_NAMESPACE, "workload"):
        api(plane, "POST", "/api/v1/namespaces", {"metadata": {"name": namespace}})
    api(plane, "POST", f"/api/v1/namespaces/{TOOL_NAMESPACE}/serviceaccounts", {"metadata": {"name": TOOL_ACCOUNT}})
    api(plane, "POST", "/api/v1/namespaces/workload/serviceaccounts", {"metadata": {"name": "app"}})
    rbac = "/apis/rbac.authorization.k8s.io/v1"
    api(
        plane,
        "POST",
        f"{rbac}/clusterroles",
        {
            "metadata": {"name": TOOL_ACCOUNT},
            "rules": [
                {"apiGroups": [""], "resources": ["secrets"], "verbs": ["list", "get", "update"]},
                {"nonResourceURLs": ["/metrics"], "verbs": ["get"]},
                # The verification pass finds the API server replicas by their identity Leases (docs/rotation.md).
                {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["list"]},
            ],
        },
    )
    api(
        plane,
        "POST",
        f"{rbac}/clusterrolebindings",
        {
            "metadata": {"name": TOOL_ACCOUNT},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": TOOL_ACCOUNT},
            "subjects": [{"kind": "ServiceAccount", "namespace": TOOL_NAMESPACE, "name": TOOL_ACCOUNT}],
        },
    )
    api(
        plane,
        "POST",
        f"{rbac}/namespaces/workload/roles",
        {
            "metadata": {"name": "app"},
            "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "patch"]}],
        },
    )
    api(
        plane,
        "POST",
        f"{rbac}/namespaces/workload/rolebindings",
        {
            "metadata": {"name": "app"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "app"},
            "subjects": [{"kind": "ServiceAccount", "namespace": "workload", "name": "app"}],
        },
    )
    api(
        plane,
        "POST",
        "/api/v1/namespaces/workload/secrets",
        {"metadata": {"name": "app-config"}, "stringData": {"counter": "0"}},
    )
    state.tool = service_account_kubeconfig(plane, directory, TOOL_NAMESPACE, TOOL_ACCOUNT)
    state.workload = service_account_kubeconfig(plane, directory, "workload", "app")

    def one_namespace(n: int) -> None:
        namespace = f"faults-{n:02d}"
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
        for i in range(PER_NAMESPACE):
            value = hashlib.sha256(f"{namespace}/{i}".encode()).hexdigest()
            core.create_namespaced_secret(
                namespace,
                client.V1Secret(
                    metadata=client.V1ObjectMeta(name=f"s{i:03d}"),
                    data={"password": base64.b64encode(value.encode()).decode()},
                ),
            )

    with ThreadPoolExecutor(max_workers=6) as pool:
        list(pool.map(one_namespace, range(NAMESPACES)))
    state.hashes = api_secrets(core)
    state.stack = write_stack(directory, control_plane.key_id(control_plane.current_version))
    return state


def reencrypt_args(plane: ControlPlane, story: Story, *extra: str) -> list[str]:
    return ["reencrypt", "--stack", str(story.stack), "--kubeconfig", str(story.tool), *extra]


def new_key(plane: ControlPlane, story: Story) -> str:
    version = rotate(plane)
    write_stack(story.stack.parent, plane.key_id(version))
    return version


def assert_one_rewrite_each(
    plane: ControlPlane, core: client.CoreV1Api, story: Story, version: str, before: dict[tuple[str, str], int]
) -> None:
    """etcd: every Secret under `version`; each of the scenario's Secrets written exactly once since `before`,
    its data unchanged (the workload's own Secret changes meanwhile)."""
    key_ids = etcd_key_ids(plane)
    assert Counter(key_ids.values()) == {azure_key_id(plane.key_id(version)): len(before)}
    after = etcd_versions(plane)
    ours = [k for k in before if k[0].startswith("faults-")]
    assert len(ours) == NAMESPACES * PER_NAMESPACE
    assert {k: after[k] - before[k] for k in ours} == dict.fromkeys(ours, 1), "nothing missed or written twice"
    hashes = api_secrets(core)
    assert {k: hashes[k] for k in ours} == {k: story.hashes[k] for k in ours}


# ------------------------------------------------------------------------------------------- the rate cap


def test_the_rate_cap_holds_by_the_api_servers_own_counters(
    control_plane: ControlPlane, core: client.CoreV1Api, story: Story
) -> None:
    use_flow_schema(control_plane, "workload-high")  # a roomy level: nothing here is rejected
    version = new_key(control_plane, story)
    before = etcd_versions(control_plane)
    dispatched: list[tuple[float, float]] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            count = metric(control_plane, "apiserver_flowcontrol_dispatched_requests_total", flow_schema=FLOW_SCHEMA)
            dispatched.append((time.monotonic(), count))
            done.wait(0.5)

    updates_before = metric(control_plane, "apiserver_request_total", verb="PUT", resource="secrets", code="200")
    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        result = kms_aks(*reencrypt_args(control_plane, story, "--rate", str(RATE_CAP)))
    finally:
        done.set()
        sampler.join()
    dispatched.append(
        (
            time.monotonic(),
            metric(control_plane, "apiserver_flowcontrol_dispatched_requests_total", flow_schema=FLOW_SCHEMA),
        )
    )
    assert result.returncode == 0, result.stdout + result.stderr
    total = len(before)  # the scenario's Secrets and the workload's
    updates = metric(control_plane, "apiserver_request_total", verb="PUT", resource="secrets", code="200")
    assert updates - updates_before == total, "the API server counted one update per Secret"

    # The busy span: from the last sample before the first request to the first sample after the last one.
    first = next(i for i, (_, c) in enumerate(dispatched) if c > dispatched[0][1]) - 1
    last = next(i for i, (_, c) in enumerate(dispatched) if c == dispatched[-1][1])
    (t0, c0), (t1, c1) = dispatched[first], dispatched[last]
    assert c1 - c0 >= total, "the tool's requests went through its FlowSchema"
    windows = [
        (c_b - c_a) / (t_b - t_a)
        for (t_a, c_a), (t_b, c_b) in zip(dispatched[first : last - 9], dispatched[first + 10 : last + 1], strict=True)
    ]
    assert windows and max(windows) <= RATE_CAP * 1.1, f"no 5-s window over the cap: {max(windows):.1f}/s"
    # The pace is the cap's: over the whole span (its first and last samples half empty), near the cap.
    pace = (c1 - c0) / (t1 - t0)
    assert RATE_CAP * 0.75 <= pace <= RATE_CAP * 1.05, f"{pace:.1f}/s over {t1 - t0:.1f} s"
    assert_one_rewrite_each(control_plane, core, story, version, before)


# ------------------------------------------------------------------------------------------- APF 429s


def test_priority_and_fairness_429s_are_absorbed_and_another_flow_keeps_being_served(
    control_plane: ControlPlane, core: client.CoreV1Api, story: Story
) -> None:
    api(
        control_plane,
        "POST",
        "/apis/flowcontrol.apiserver.k8s.io/v1/prioritylevelconfigurations",
        {
            "metadata": {"name": TINY_LEVEL},
            "spec": {
                "type": "Limited",
                "limited": {"nominalConcurrencyShares": 1, "lendablePercent": 0, "limitResponse": {"type": "Reject"}},
            },
        },
    )
    use_flow_schema(control_plane, TINY_LEVEL)
    seats = metric(control_plane, "apiserver_flowcontrol_nominal_limit_seats", priority_level=TINY_LEVEL)
    assert seats == 1, f"a tiny share: {seats} seats"
    version = new_key(control_plane, story)
    before = etcd_versions(control_plane)
    rejected_before = metric(control_plane, "apiserver_flowcontrol_rejected_requests_total", flow_schema=FLOW_SCHEMA)
    workload_rejected_before = metric(
        control_plane, "apiserver_flowcontrol_rejected_requests_total", priority_level="workload-low"
    )

    workload = yaml.safe_load(story.workload.read_text())
    token = workload["users"][0]["user"]["token"]
    answers: Counter[int] = Counter()
    latencies: list[float] = []
    stop = threading.Event()

    def workload_client() -> None:
        url = f"{control_plane.server}/api/v1/namespaces/workload/secrets/app-config"
        with requests.Session() as session:
            session.headers["Authorization"] = f"Bearer {token}"
            ca = str(control_plane.ca_file)  # per request: a Session's own `verify` yields to REQUESTS_CA_BUNDLE
            n = 0
            while not stop.is_set():
                n += 1
                started = time.monotonic()
                got = session.get(url, timeout=30, verify=ca)
                patched = session.patch(
                    url,
                    json={"stringData": {"counter": str(n)}},
                    headers={"Content-Type": "application/merge-patch+json"},
                    timeout=30,
                    verify=ca,
                )
                latencies.append(time.monotonic() - started)
                answers.update([got.status_code, patched.status_code])
                stop.wait(0.05)

    process = kms_aks_process(*reencrypt_args(control_plane, story, "--progress-every", "300"))
    writer = threading.Thread(target=workload_client)
    writer.start()
    try:
        output, _ = process.communicate(timeout=600)
    finally:
        stop.set()
        writer.join(timeout=60)
    assert process.returncode == 0, output
    absorbed = int(re.search(r"(\d+) 429s absorbed \(each retried", output).group(1))  # type: ignore[union-attr]
    # The verification pass's GETs are the tool's requests too: the 429s they absorbed are counted apart.
    verifying = re.search(r"(\d+) 429s absorbed by the verification", output)
    absorbed += int(verifying.group(1)) if verifying else 0
    rejected = metric(control_plane, "apiserver_flowcontrol_rejected_requests_total", flow_schema=FLOW_SCHEMA)
    assert absorbed > 0, "the API server pushed back"
    assert rejected - rejected_before == absorbed, "every 429 the server sent was absorbed, and no other"
    assert re.search(r"^reencrypt: \d+/\d+ Secrets .*/s, \d+ 429s absorbed, concurrency \d+", output, re.M)

    # The workload's flow (service-accounts -> workload-low) was served all along.
    assert set(answers) == {200} and answers[200] >= 20, answers
    assert (
        metric(control_plane, "apiserver_flowcontrol_rejected_requests_total", priority_level="workload-low")
        == workload_rejected_before
    )
    assert max(latencies) < 5.0, f"the workload waited {max(latencies):.1f} s"
    assert_one_rewrite_each(control_plane, core, story, version, before)
    use_flow_schema(control_plane, "workload-high")


# ------------------------------------------------------------------------------------------- continue tokens


def test_continue_tokens_expire_after_compaction_and_the_pass_lists_on_missing_nothing(
    control_plane: ControlPlane, core: client.CoreV1Api, story: Story
) -> None:
    # With ListFromCacheSnapshot (beta, on in 1.34) continue pages come from the watch cache's snapshots; with it
    # off (as on 1.31-1.33, where AKS still runs it) they come from etcd at the first page's revision: 410 once
    # etcd has compacted past it.
    control_plane.apiserver_args.append("--feature-gates=ListFromCacheSnapshot=false")
    control_plane.restart_apiserver()
    version = new_key(control_plane, story)
    before = etcd_versions(control_plane)
    gone_before = metric(control_plane, "apiserver_request_total", verb="LIST", resource="secrets", code="410")
    # 50 Secrets a page at 40 requests a second: about 35 s, several compactions.
    result = kms_aks(*reencrypt_args(control_plane, story, "--rate", "40", "--page-size", "50"))
    assert result.returncode == 0, result.stdout + result.stderr
    expired = int(re.search(r"(\d+) expired continue tokens \(410\)", result.stdout).group(1))  # type: ignore[union-attr]
    gone = metric(control_plane, "apiserver_request_total", verb="LIST", resource="secrets", code="410")
    assert expired >= 1, result.stdout
    assert gone - gone_before == expired, "the tool listed on after every 410 the API server sent"
    assert_one_rewrite_each(control_plane, core, story, version, before)


# ------------------------------------------------------------------------------------------- 5xx


def test_kms_plugin_down_until_writes_fail_the_pass_retries_and_a_rerun_completes(
    control_plane: ControlPlane, core: client.CoreV1Api, story: Story
) -> None:
    version = new_key(control_plane, story)
    before = etcd_versions(control_plane)
    canary = "/api/v1/namespaces/workload/secrets/app-config"
    control_plane.stop_plugin()
    # The API server writes with the DEK seed it holds for up to 3 minutes after its last good Status call
    # (k8s.io/apiserver encryptionconfig: kmsv2PluginWriteDEKSourceMaxTTL); only then do writes fail.
    stopped, n, failure = time.monotonic(), 0, None
    while failure is None and time.monotonic() - stopped < 240:
        n += 1
        response = requests.patch(
            f"{control_plane.server}{canary}",
            json={"stringData": {"canary": str(n)}},
            headers={"Authorization": f"Bearer {control_plane.token}", "Content-Type": "application/merge-patch+json"},
            verify=str(control_plane.ca_file),
            timeout=30,
        )
        if response.status_code >= 500:
            failure = response
        else:
            assert response.status_code == 200, response.text
            time.sleep(2.0)
    assert failure is not None, "writes kept working 4 minutes without the plugin"
    assert failure.status_code == 500 and "expired" in failure.json()["message"], failure.text
    errors_before = metric(control_plane, "apiserver_request_total", verb="PUT", resource="secrets", code="500")

    process = kms_aks_process(*reencrypt_args(control_plane, story))
    # The plugin comes back a few seconds after the pass's first failed write, as the API server counts it.
    deadline = time.monotonic() + 180
    while metric(control_plane, "apiserver_request_total", verb="PUT", resource="secrets", code="500") <= errors_before:
        assert process.poll() is None and time.monotonic() < deadline, "the pass wrote nothing while writes failed"
        time.sleep(0.5)
    time.sleep(3.0)
    control_plane.start_plugin()
    output, _ = process.communicate(timeout=600)
    if process.returncode == 1:
        named = re.findall(r"^failed: (faults-\d\d/s\d{3}|workload/app-config): HTTP 500 .* expired at", output, re.M)
        count = int(re.search(r"(\d+) Secret\(s\) not rewritten", output).group(1))  # type: ignore[union-attr]
        assert named and len(named) == min(count, 100), output  # the first 100 named, all in the checkpoint
        rerun = kms_aks(*reencrypt_args(control_plane, story))
        assert rerun.returncode == 0, rerun.stdout + rerun.stderr
        assert f" {count} to retry)" in rerun.stdout
    else:
        assert process.returncode == 0, output
    assert_one_rewrite_each(control_plane, core, story, version, before)
