"""`kms-aks reencrypt` and `kms-aks key-status` without a cluster: argument errors, the checkpoint file, the
stack's key, progress off a terminal, and the metrics parser. Their behaviour on a cluster is proven against a
real kube-apiserver and etcd in tests/e2e_k8s/test_reencrypt.py."""

from __future__ import annotations

import hashlib
import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from rich.console import Console

from azure_facts import key_ids
from kms_aks_tools.cli import main as cli
from kms_aks_tools.cluster import keys
from kms_aks_tools.cluster.checkpoint import Checkpoint, Counts, load_checkpoint, save_checkpoint
from kms_aks_tools.cluster.key_metrics import parse_metrics
from kms_aks_tools.cluster.progress import ProgressReport
from kms_aks_tools.cluster.reencryption_records import (
    ApiServerReport,
    ClusterRef,
    ReencryptionRecord,
    SecretCounts,
    Verification,
    append_record,
)
from kms_aks_tools.project.stack_file import PACKAGE_ROOT

VAULT = "kv-kmsaks-test"
V1 = f"https://{VAULT}.vault.azure.net/keys/aks-kms/{'1' * 32}"
V2 = f"https://{VAULT}.vault.azure.net/keys/aks-kms/{'2' * 32}"


def write_stack(directory: Path, key_id: str = V2, name: str = "clustertest") -> Path:
    path = directory / f"Pulumi.{name}.yaml"
    path.write_text(
        "config:\n"
        "  azure-native:location: westeurope\n"
        "  kms-aks:location: westeurope\n"
        "  kms-aks:existingKey:\n"
        f"    keyId: {key_id}\n"
        "    keyVaultResourceId: /subscriptions/11111111-2222-3333-4444-555555555555/resourceGroups/rg-keys/"
        f"providers/Microsoft.KeyVault/vaults/{VAULT}\n"
        "    permissionModel: rbac\n"
        "  kms-aks:cluster:\n"
        "    name: aks-clustertest\n"
        '    kubernetesVersion: "1.33"\n'
        "    apiServerAuthorizedIpRanges: [198.51.100.0/24]\n"
    )
    return path


def write_kubeconfig(directory: Path, server: str = "https://127.0.0.1:1", token: str = "not-a-token") -> Path:
    path = directory / "kubeconfig"
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": server, "insecure-skip-tls-verify": True}}],
                "users": [{"name": "u", "user": {"token": token}}],
                "contexts": [{"name": "test-admin", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "test-admin",
            }
        )
    )
    return path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    try:
        code = cli.main(list(args))
    except SystemExit as exit_:  # argparse's own usage errors
        code = int(exit_.code or 0)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def written(directory: Path) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file())


# ------------------------------------------------------------------------------------------- the stack's key


def test_the_pinned_key_comes_from_existing_key_or_kms_key_version(tmp_path: Path) -> None:
    assert keys.load_stack_key(str(write_stack(tmp_path))).key_id == V2
    dev = keys.load_stack_key("dev")
    assert dev.key_id is None and "kmsKey.version" in (dev.unpinned_reason or "")
    assert dev.records_file == PACKAGE_ROOT / "rotations" / "dev.yaml"
    pinned = tmp_path / "Pulumi.pinned.yaml"
    pinned.write_text(
        (PACKAGE_ROOT / "Pulumi.dev.yaml")
        .read_text()
        .replace("    size: 2048\n", f"    size: 2048\n    version: {'a' * 32}\n")
    )
    assert (
        keys.load_stack_key(str(pinned)).key_id
        == f"https://kv-kmsaks-dev-01.vault.azure.net/keys/aks-kms-dev/{'a' * 32}"
    )


def test_key_ids_in_the_three_spellings() -> None:
    # The Azure plugin hashes the URL it rebuilds from the vault URL: the same string as the pinned key id.
    assert key_ids.plugin_key_id(V1) == hashlib.sha256(V1.encode()).hexdigest()
    assert key_ids.metric_key_id_hash("abc") == "sha256:" + hashlib.sha256(b"abc").hexdigest()
    assert key_ids.plugin_key_id(V1) != key_ids.plugin_key_id(V2)
    with pytest.raises(key_ids.NotAVersionedKeyId, match="not a versioned Key Vault key id"):
        key_ids.plugin_key_id(f"https://{VAULT}.vault.azure.net/keys/aks-kms")


# ------------------------------------------------------------------------------------------- argument errors


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--concurrency", "0"], "--concurrency: must be at least 1, not 0"),
        (["--rate", "-1"], "--rate: must be 0 (no limit) or more"),
        (["--page-size", "100000"], "--page-size: at most 5000 Secrets a page"),
        (["--page-size", "ten"], "--page-size: not a whole number: 'ten'"),
    ],
)
def test_bad_flags_exit_2_with_the_flag_named(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, args: list[str], expected: str
) -> None:
    code, out = run(capsys, "reencrypt", "--stack", str(write_stack(tmp_path)), *args)
    assert code == 2 and expected in out


@pytest.mark.stacks
def test_unknown_stack_unpinned_stack_and_a_conflicting_key_id(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out = run(capsys, "reencrypt", "--stack", "nosuch")
    shipped = sorted(p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in PACKAGE_ROOT.glob("Pulumi.*.yaml"))
    assert "dev" in shipped and "prod" in shipped
    assert code == 2 and f"unknown stack 'nosuch'; stacks: {', '.join(shipped)}" in out
    code, out = run(capsys, "reencrypt", "--stack", "dev", "--kubeconfig", str(write_kubeconfig(tmp_path)))
    assert code == 2 and "pins no key version (kms-aks:kmsKey.version is not set)" in out and "--key-id" in out
    stack = write_stack(tmp_path)
    # A stack that pins the next version already (the rotation's pull request, before its `up`): --key-id names
    # the key the cluster uses now; the API server's metrics decide (tests/e2e_k8s), not the stack file.
    code, out = run(capsys, "reencrypt", "--stack", str(stack), "--key-id", V1, "--kubeconfig", str(tmp_path / "no"))
    assert code == 2 and "does not exist" in out and "Traceback" not in out
    code, out = run(capsys, "key-status", "--stack", str(stack), "--key-id", V1, "--offline")
    assert f"key given by --key-id (the stack pins {V2}, not applied yet): {V1}" in " ".join(out.split())
    assert f"kms-aks reencrypt --stack clustertest --key-id {V1}" in " ".join(out.split())
    assert not (tmp_path / "rotations").exists()


@pytest.mark.parametrize("command", ["reencrypt", "key-status"])
def test_missing_kubeconfig_and_unknown_context_exit_2_and_write_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, command: str
) -> None:
    stack = write_stack(tmp_path)
    code, out = run(capsys, command, "--stack", str(stack), "--kubeconfig", str(tmp_path / "absent"))
    assert code == 2 and f"kubeconfig {tmp_path / 'absent'} does not exist" in out
    kubeconfig = write_kubeconfig(tmp_path)
    code, out = run(capsys, command, "--stack", str(stack), "--kubeconfig", str(kubeconfig), "--context", "prod-admin")
    assert code == 2
    assert (
        out.count("error:") == 1
        and f"context 'prod-admin' is not in kubeconfig {kubeconfig}; contexts: test-admin" in out
    )
    assert written(tmp_path) == ["Pulumi.clustertest.yaml", "kubeconfig"]


# ------------------------------------------------------------------------------------------- the checkpoint


def checkpoint(**changes: object) -> Checkpoint:
    base = Checkpoint(
        stack="clustertest",
        keyId=V2,
        context="test-admin",
        server="https://127.0.0.1:6443",
        startedAt=datetime(2026, 11, 30, 11, 0, tzinfo=UTC),
        continueToken="eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6MTIzLCJzdGFydCI6Im5zMDEvczAwNDlcdTAwMDAifQ",
        pagesDone=2,
        counts=Counts(listed=500, rewritten=497, unchanged=1, deleted=1),
    )
    return base.model_copy(update=changes)


def test_the_checkpoint_survives_a_round_trip_and_holds_no_secret_data(tmp_path: Path) -> None:
    path = tmp_path / "rotations" / "clustertest.reencrypt-checkpoint.json"
    saved = checkpoint()
    save_checkpoint(path, saved)
    assert load_checkpoint(path) == saved
    assert written(tmp_path) == ["rotations/clustertest.reencrypt-checkpoint.json"]  # no .partial left behind
    document = json.loads(path.read_text())
    assert set(document) == {
        "format",
        "stack",
        "keyId",
        "context",
        "server",
        "startedAt",
        "elapsedSeconds",
        "continueToken",
        "listingDone",
        "pagesDone",
        "estimatedTotal",
        "counts",
        "failures",
    }


def test_a_foreign_or_broken_checkpoint_is_refused_before_anything_is_done(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    stack = write_stack(tmp_path)
    path = tmp_path / "rotations" / "clustertest.reencrypt-checkpoint.json"
    path.parent.mkdir()
    path.write_text('{"format": 1, "stack": "clustertest"}')
    code, out = run(capsys, "reencrypt", "--stack", str(stack), "--kubeconfig", str(write_kubeconfig(tmp_path)))
    assert code == 2
    assert f"checkpoint {path} is not a kms-aks reencrypt checkpoint (keyId: Field required); delete it" in out
    assert path.read_text() == '{"format": 1, "stack": "clustertest"}'


# ------------------------------------------------------------------------------------------- progress


def test_off_a_terminal_progress_is_a_plain_line_every_n_secrets() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=400)
    report = ProgressReport(console, every=3, done=0, total=7, started=0.0)
    counts = Counts(listed=7)
    for n in range(7):
        counts.rewritten = n + 1
        report.advance(counts, 0, 7)
    report.stop()
    lines = out.getvalue().splitlines()
    assert [line.split(" Secrets")[0] for line in lines] == ["reencrypt: 3/7", "reencrypt: 6/7"]
    assert "(rewritten 3, unchanged 0, deleted 0, failed 0)" in lines[0]


def test_a_resumed_pass_reports_from_where_it_stopped() -> None:
    out = io.StringIO()
    report = ProgressReport(
        Console(file=out, force_terminal=False, width=400), every=5, done=8, total=None, started=0.0
    )
    for _ in range(4):
        report.advance(Counts(), 0, None)
    assert [line.split(" Secrets")[0] for line in out.getvalue().splitlines()] == ["reencrypt: 10"]


# ------------------------------------------------------------------------------------------- metrics

# As kube-apiserver v1.34 writes them (the form in k8s.io/apiserver's metrics.go comments), among other series.
LABELS = 'apiserver_id_hash="sha256:aa",provider_name="azurekmsprovider"'
EXPOSITION = "\n".join(
    [
        "# HELP apiserver_envelope_encryption_key_id_hash_status_last_timestamp_seconds [ALPHA] The last time in "
        "seconds when a keyID was returned by the Status RPC call.",
        "# TYPE apiserver_envelope_encryption_key_id_hash_status_last_timestamp_seconds gauge",
        f'apiserver_envelope_encryption_key_id_hash_status_last_timestamp_seconds{{{LABELS},key_id_hash="sha256:old"}}'
        " 1.7645e+09",
        f'apiserver_envelope_encryption_key_id_hash_status_last_timestamp_seconds{{{LABELS},key_id_hash="sha256:new"}}'
        " 1.7646e+09",
        "# HELP apiserver_envelope_encryption_key_id_hash_total [ALPHA] Number of times a keyID is used split by "
        "transformation type, provider, and apiserver identity.",
        "# TYPE apiserver_envelope_encryption_key_id_hash_total counter",
        f'apiserver_envelope_encryption_key_id_hash_total{{{LABELS},key_id_hash="sha256:old",'
        'transformation_type="from_storage"} 2000',
        f'apiserver_envelope_encryption_key_id_hash_total{{{LABELS},key_id_hash="sha256:new",'
        'transformation_type="to_storage"} 1999',
        "# HELP apiserver_envelope_encryption_key_id_hash_last_timestamp_seconds [ALPHA] The last time in seconds "
        "when a keyID was used.",
        "# TYPE apiserver_envelope_encryption_key_id_hash_last_timestamp_seconds gauge",
        f'apiserver_envelope_encryption_key_id_hash_last_timestamp_seconds{{{LABELS},key_id_hash="sha256:old",'
        'transformation_type="from_storage"} 1.76455e+09',
        "# HELP apiserver_request_total [STABLE] Counter of apiserver requests.",
        "# TYPE apiserver_request_total counter",
        'apiserver_request_total{code="200",verb="GET"} 12',
        "",
    ]
)


def test_the_newest_status_is_the_current_key_and_reads_under_others_are_the_previous_slot() -> None:
    metrics = parse_metrics(EXPOSITION)
    assert metrics.served and metrics.current == "sha256:new"
    assert metrics.reads["sha256:old"].count == 2000
    assert metrics.reads["sha256:old"].last == datetime.fromtimestamp(1.76455e9, tz=UTC)
    assert metrics.writes["sha256:new"].count == 1999 and "sha256:new" not in metrics.reads
    assert metrics.reported_hashes() == ["sha256:new", "sha256:old"]


def test_no_key_series_means_not_served() -> None:
    metrics = parse_metrics('# TYPE apiserver_request_total counter\napiserver_request_total{code="200"} 1\n')
    assert not metrics.served and metrics.current is None
    assert "no apiserver_envelope_encryption_key_id_hash_* series" in (metrics.reason or "")


# ------------------------------------------------------------------------------------------- key-status offline


def a_record(key_id: str, *, complete: bool = True) -> ReencryptionRecord:
    # The metric label, computed here from the URL: sha256 hex of the URL, then "sha256:" + sha256 hex of that.
    label = "sha256:" + hashlib.sha256(hashlib.sha256(key_id.encode()).hexdigest().encode()).hexdigest()
    return ReencryptionRecord(
        keyId=key_id,
        pluginKeyId=key_ids.plugin_key_id(key_id),
        complete=complete,
        finishedAt=datetime(2026, 11, 30, 12, 0, tzinfo=UTC),
        durationSeconds=12.5,
        cluster=ClusterRef(name="aks-clustertest", context="test-admin", server="https://127.0.0.1:6443"),
        secrets=SecretCounts(listed=3, rewritten=3, deleted=0, failed=0 if complete else 1),
        apiServer=ApiServerReport(metricsServed=True),
        verification=Verification(
            status="verified" if complete else "unverified",
            keyIdHash=label,
            apiServers=["sha256:" + "a" * 64],
            startedAt=datetime(2026, 11, 30, 11, 59, tzinfo=UTC),
            finishedAt=datetime(2026, 11, 30, 12, 0, tzinfo=UTC),
            secretsListed=3,
            secretsRead=3,
            readsByKey={label: 3},
            exact=True,
        ),
    )


def test_key_status_offline_shows_what_the_stack_and_the_records_know(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    stack = write_stack(tmp_path)
    code, out = run(capsys, "key-status", "--stack", str(stack), "--offline")
    assert code == 1
    assert f"has no complete re-encryption record in {tmp_path / 'rotations' / 'clustertest.yaml'}" in out
    append_record(tmp_path / "rotations" / "clustertest.yaml", "clustertest", a_record(V2, complete=False))
    assert run(capsys, "key-status", "--stack", str(stack), "--offline")[0] == 1, "an incomplete record is no record"
    append_record(tmp_path / "rotations" / "clustertest.yaml", "clustertest", a_record(V1))
    append_record(tmp_path / "rotations" / "clustertest.yaml", "clustertest", a_record(V2))
    code, out = run(capsys, "key-status", "--stack", str(stack), "--offline", "--json")
    assert code == 0
    status = json.loads(out)
    assert status["metricsServed"] is False and status["currentKeyId"] is None
    assert [(k["keyId"], k["record"]) for k in status["keys"]] == [
        (V2, "2026-11-30T12:00:00Z"),
        (V1, "2026-11-30T12:00:00Z"),
    ]


def test_key_status_never_claims_a_key_it_cannot_know(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(capsys, "key-status", "--stack", "dev", "--offline")
    assert code == 1
    assert "which key the cluster uses cannot be told" in out and "every Secret was rewritten" not in out


def unpinned_stack(directory: Path) -> Path:
    """A copy of dev: a created key without kms-aks:kmsKey.version, so only Azure knows the cluster's version."""
    path = directory / "Pulumi.unpinned.yaml"
    path.write_text((PACKAGE_ROOT / "Pulumi.dev.yaml").read_text())
    return path


DEV_V1 = f"https://kv-kmsaks-dev-01.vault.azure.net/keys/aks-kms-dev/{'a' * 32}"


def test_key_status_on_an_unpinned_stack_advises_a_command_that_runs_and_labels_the_key_truthfully(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    stack = unpinned_stack(tmp_path)
    code, out = run(capsys, "key-status", "--stack", str(stack), "--offline", "--key-id", DEV_V1)
    assert code == 1
    # The advised command names the key again: without --key-id, reencrypt on this stack exits 2.
    assert f"run `kms-aks reencrypt --stack unpinned --key-id {DEV_V1}` before the next key change" in out
    assert "pinned by the stack" not in out and "given by --key-id" in out
    code, out = run(capsys, "key-status", "--stack", str(stack), "--offline", "--key-id", DEV_V1, "--json")
    assert json.loads(out)["keySource"] == "given by --key-id (the stack pins no version)"
    # The advice, followed, gets past the key check (it stops only at the absent kubeconfig).
    code, out = run(
        capsys, "reencrypt", "--stack", str(stack), "--key-id", DEV_V1, "--kubeconfig", str(tmp_path / "absent")
    )
    assert code == 2 and "does not exist" in out and "pins no key version" not in out


def test_key_status_offline_on_an_unpinned_stack_says_no_key_is_known_instead_of_an_empty_table(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out = run(capsys, "key-status", "--stack", str(unpinned_stack(tmp_path)), "--offline")
    assert code == 1
    assert "keys: none known (no metrics, no pinned or --key-id key, no re-encryption record)" in out
    assert "┃" not in out and "last Status" not in out, "no table without a row"
    assert "which key the cluster uses cannot be told" in out


def test_a_stack_name_is_the_found_projects_and_its_records_go_to_that_projects_rotations(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project"
    (project / "deep").mkdir(parents=True)
    (project / "Pulumi.yaml").write_text((PACKAGE_ROOT / "Pulumi.yaml").read_text())
    write_stack(project, name="clustertest")
    code, out = run(capsys, "key-status", "--stack", "clustertest", "--offline", "--cwd", str(project / "deep"))
    assert code == 1 and f"records: {project / 'rotations' / 'clustertest.yaml'}" in " ".join(out.split())
    monkeypatch.chdir(project / "deep")  # as `pulumi` finds it: the nearest Pulumi.yaml upward
    code, out = run(capsys, "key-status", "--stack", "clustertest", "--offline")
    assert f"records: {project / 'rotations' / 'clustertest.yaml'}" in " ".join(out.split())
    monkeypatch.chdir(tmp_path)
    code, out = run(capsys, "reencrypt", "--stack", "clustertest")
    assert code == 2 and "no Pulumi.yaml" in out
