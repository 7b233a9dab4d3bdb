"""The verification pass's arithmetic on the API server's counters, on expositions written here in
kube-apiserver's format (k8s.io/apiserver v0.34: the envelope series carry `apiserver_id_hash`, the
transformation counter carries `resource`, `transformation_type`, `transformer_prefix` and `status`).

On a real control plane, with one and two kube-apiservers, it is proven in tests/e2e_k8s/test_verify.py."""

from __future__ import annotations

import hashlib

import pytest

from kms_aks_tools.cluster import replicas as apiserver_replicas
from kms_aks_tools.cluster import verify

KMS = "k8s:enc:kms:v2:kms-aks:"
CURRENT, OLD = "sha256:" + "c" * 64, "sha256:" + "0" * 64


def replica_id(name: str) -> str:
    return "sha256:" + hashlib.sha256(name.encode()).hexdigest()


A, B = replica_id("apiserver-aaaa"), replica_id("apiserver-bbbb")


def exposition(
    replica: str,
    *,
    started: float = 1000.0,
    reads: dict[str, float] | None = None,
    prefixes: dict[str, float] | None = None,
    errors: float = 0.0,
    extra_label_sets: int = 0,
) -> str:
    """A /metrics text as one kube-apiserver serves it (only the families the pass reads, and a distractor)."""
    lines = [
        "# TYPE process_start_time_seconds gauge",
        f"process_start_time_seconds {started}",
        "# TYPE apiserver_envelope_encryption_key_id_hash_status_last_timestamp_seconds gauge",
        "apiserver_envelope_encryption_key_id_hash_status_last_timestamp_seconds"
        f'{{apiserver_id_hash="{replica}",key_id_hash="{OLD}",provider_name="kms-aks"}} 1.7e+09',
        "apiserver_envelope_encryption_key_id_hash_status_last_timestamp_seconds"
        f'{{apiserver_id_hash="{replica}",key_id_hash="{CURRENT}",provider_name="kms-aks"}} 1.8e+09',
        "# TYPE apiserver_envelope_encryption_key_id_hash_total counter",
        "apiserver_envelope_encryption_key_id_hash_total"
        f'{{apiserver_id_hash="{replica}",key_id_hash="{CURRENT}",provider_name="kms-aks",'
        'transformation_type="to_storage"} 50',
    ]
    for key, value in (reads or {}).items():
        lines.append(
            "apiserver_envelope_encryption_key_id_hash_total"
            f'{{apiserver_id_hash="{replica}",key_id_hash="{key}",provider_name="kms-aks",'
            f'transformation_type="from_storage"}} {value}'
        )
    for n in range(extra_label_sets):
        lines.append(
            "apiserver_envelope_encryption_key_id_hash_total"
            f'{{apiserver_id_hash="{replica}",key_id_hash="sha256:{n:064x}",provider_name="kms-aks",'
            'transformation_type="to_storage"} 1'
        )
    lines.append("# TYPE apiserver_storage_transformation_operations_total counter")
    for prefix, value in (prefixes or {}).items():
        lines.append(
            "apiserver_storage_transformation_operations_total"
            f'{{resource="secrets",status="OK",transformation_type="from_storage",transformer_prefix="{prefix}"}} '
            f"{value}"
        )
    lines += [
        "apiserver_storage_transformation_operations_total"
        f'{{resource="secrets",status="Internal",transformation_type="from_storage",transformer_prefix="{KMS}"}} '
        f"{errors}",
        # Not Secrets, not reads: never counted.
        "apiserver_storage_transformation_operations_total"
        '{resource="configmaps",status="OK",transformation_type="from_storage",transformer_prefix="identity"} 999',
        "apiserver_storage_transformation_operations_total"
        f'{{resource="secrets",status="OK",transformation_type="to_storage",transformer_prefix="{KMS}"}} 999',
        "# TYPE apiserver_request_total counter",
        'apiserver_request_total{code="200",verb="GET"} 12345',
    ]
    return "\n".join(lines) + "\n"


def test_a_replica_is_read_from_its_own_series() -> None:
    counters = apiserver_replicas.parse_replica(
        exposition(A, reads={CURRENT: 7, OLD: 3}, prefixes={KMS: 10, "identity": 2}, errors=1)
    )
    assert counters.replica == A and counters.started == 1000.0
    assert counters.current_key == CURRENT, "the newest Status is the current key"
    assert counters.key_reads == {CURRENT: 7, OLD: 3}, "from_storage only"
    assert counters.secret_reads == {KMS: 10, "identity": 2} and counters.secret_read_errors == 1
    assert counters.label_sets == 3


def test_a_scrape_that_names_no_replica_is_not_trusted() -> None:
    text = "# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds 1\n"
    with pytest.raises(apiserver_replicas.WindowUntrusted, match="named no API server replica"):
        apiserver_replicas.parse_replica(text)


def scrape(**replicas: str) -> dict[str, apiserver_replicas.ReplicaCounters]:
    parsed = [apiserver_replicas.parse_replica(text) for text in replicas.values()]
    return {c.replica: c for c in parsed}


def test_the_differences_are_added_over_the_replicas() -> None:
    before = scrape(a=exposition(A, reads={CURRENT: 100, OLD: 5}, prefixes={KMS: 105}), b=exposition(B))
    after = scrape(
        a=exposition(A, reads={CURRENT: 160, OLD: 6}, prefixes={KMS: 166}),
        b=exposition(B, reads={CURRENT: 30, OLD: 2}, prefixes={KMS: 32, "identity": 1}),
    )
    delta = apiserver_replicas.window_delta(before, after)
    assert delta.by_key == {CURRENT: 90, OLD: 3}
    assert delta.by_prefix == {KMS: 93, "identity": 1} and delta.secret_reads == 94


@pytest.mark.parametrize(
    ("after", "why"),
    [
        (exposition(A, started=2000.0, reads={CURRENT: 200}, prefixes={KMS: 200}), "restarted"),
        (exposition(A, reads={CURRENT: 50}, prefixes={KMS: 200}), "went down"),
        (exposition(A, reads={}, prefixes={KMS: 200}), "vanished"),
        (exposition(A, reads={CURRENT: 200}, prefixes={KMS: 200}, extra_label_sets=98), "LRU"),
    ],
)
def test_a_window_with_a_reset_is_not_trusted(after: str, why: str) -> None:
    before = scrape(a=exposition(A, reads={CURRENT: 100}, prefixes={KMS: 100}))
    with pytest.raises(apiserver_replicas.WindowUntrusted, match=why):
        apiserver_replicas.window_delta(before, scrape(a=after))


def test_a_replica_that_appears_or_disappears_makes_the_window_untrusted() -> None:
    one, two = scrape(a=exposition(A)), scrape(a=exposition(A), b=exposition(B))
    for before, after in ((one, two), (two, one)):
        with pytest.raises(apiserver_replicas.WindowUntrusted, match="replicas answering changed"):
            apiserver_replicas.window_delta(before, after)


def reads(n: int, failed: int = 0) -> verify._Reads:
    return verify._Reads(read=n, failed=[("ns", f"s{i}", "HTTP 500") for i in range(failed)])


def judge(before: str, after: str, ours: verify._Reads) -> verify._WindowVerdict:
    return verify._judge_window(scrape(a=before), scrape(a=after), ours, CURRENT)


def test_a_window_with_only_our_reads_counts_exactly() -> None:
    before = exposition(A, reads={CURRENT: 10, OLD: 10}, prefixes={KMS: 20})
    after = exposition(A, reads={CURRENT: 17, OLD: 13}, prefixes={KMS: 30})
    verdict = judge(before, after, reads(10))
    assert verdict.accepted and verdict.exact and verdict.delta is not None
    assert verdict.delta.by_key == {CURRENT: 7, OLD: 3}


def test_others_reads_still_prove_zero_but_never_a_count() -> None:
    before = exposition(A, reads={CURRENT: 10, OLD: 10}, prefixes={KMS: 20})
    # 10 of ours and 40 background reads (a watch cache re-list: no request, so no resource label): the key
    # counters show them, the Secrets' request counter does not. None under the old key: still a proof of zero.
    clean = judge(before, exposition(A, reads={CURRENT: 60, OLD: 10}, prefixes={KMS: 30}), reads(10))
    assert clean.accepted and not clean.exact
    # The same with 3 under the old key: they may be ours or the background's; the window is tried again.
    dirty = judge(before, exposition(A, reads={CURRENT: 57, OLD: 13}, prefixes={KMS: 30}), reads(10))
    assert not dirty.accepted and "40 in the background" in (dirty.problem or "")
    # Another client's GETs of Secrets in the window: the same.
    other = judge(before, exposition(A, reads={CURRENT: 22, OLD: 13}, prefixes={KMS: 35}), reads(10))
    assert not other.accepted and "5 by other requests on Secrets" in (other.problem or "")


def test_fewer_reads_than_ours_means_a_replica_was_not_counted() -> None:
    before = exposition(A, reads={CURRENT: 10}, prefixes={KMS: 10})
    verdict = judge(before, exposition(A, reads={CURRENT: 15}, prefixes={KMS: 15}), reads(10))
    assert not verdict.accepted and "was not counted" in (verdict.problem or "")


def test_failed_reads_are_counted_as_reads_that_reached_storage() -> None:
    before = exposition(A, reads={CURRENT: 10}, prefixes={KMS: 10})
    after = exposition(A, reads={CURRENT: 18}, prefixes={KMS: 18}, errors=2)
    assert judge(before, after, reads(8, failed=2)).exact


def test_a_verified_result_needs_every_secret_under_the_expected_key() -> None:
    started = verify._now()
    good = verify.Verification(expected_key=CURRENT, started_at=started, listed=3, read=3, replicas=[A])
    good.by_key[CURRENT] = 3
    good.current_keys = {CURRENT}
    verify._conclude(good, [])
    assert good.verified
    evidence = verify.evidence(good)
    assert evidence.status == "verified" and evidence.readsByKey == {CURRENT: 3} and evidence.keyIdHash == CURRENT

    stale = verify.Verification(expected_key=CURRENT, started_at=started, listed=3, read=3, replicas=[A])
    stale.by_key.update({CURRENT: 2, OLD: 1})
    stale.current_keys = {CURRENT}
    verify._conclude(stale, [])
    assert not stale.verified and stale.under_other_keys() == {OLD: 1}
    assert "1 Secret(s) are still under another key" in (stale.reason or "")

    moved = verify.Verification(expected_key=CURRENT, started_at=started, listed=3, read=3, replicas=[A])
    moved.by_key[CURRENT] = 3
    moved.current_keys = {OLD}
    verify._conclude(moved, [])
    assert not moved.verified and "current key is not the expected one" in (moved.reason or "")


def test_the_apiserver_id_hash_is_getHash_of_the_lease_name() -> None:
    # metrics.go getHash: fmt.Sprintf("sha256:%x", sha256(data)); the Lease's name is the API server's id.
    assert apiserver_replicas.apiserver_id_hash("apiserver-aaaa") == A


def test_windows_double_after_an_exact_try_and_halve_after_a_retry() -> None:
    # Each window costs two /metrics scrapes per replica: a run of exact windows should need few of them.
    sizes, size = [], 250
    for _ in range(6):
        size = verify.next_window(size, 250, retried=False)
        sizes.append(size)
    assert sizes == [500, 1000, 2000, 4000, 4000, 4000]
    assert verify.next_window(4000, 250, retried=True) == 2000
    assert verify.next_window(300, 250, retried=True) == 250
    # A user's larger first window is never shrunk below itself, nor capped below itself.
    assert verify.next_window(8000, 8000, retried=False) == 8000
