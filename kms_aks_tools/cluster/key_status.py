"""`kms-aks key-status`: which KMS key the stack pins, which one the API server uses, which ones it still reads.

Options and exit codes: `kms-aks key-status --help` (argparse is the one place they are written).

AKS shows the current key id and nothing about the previous slot (Azure/AKS#4926). The API server's envelope
metrics do (kms_aks_tools.cluster.key_metrics): the newest KMS Status names the current key, and the reads
(`from_storage`) under any other key are data still stored under it. Metric labels are hashes, so a key is
named where it is known: the stack's pinned key, the keys of its re-encryption records, and `--known-key-id`.

Those read counts are since each API server started, and include reads made before a rewrite. `--verify` counts
now: it GETs every Secret from etcd and reads the counters around it (kms_aks_tools.cluster.verify), so it
tells how many Secrets are under each key at this moment, on every API server replica.

A record counts only where `reencryption_records.judge` trusts it: complete, with verified evidence for its
key, about this cluster (the stack's cluster name and the API server's host).

Where the API server does not serve the metrics (no rights on /metrics, no KMS v2), it says so and shows what
the stack and the records know.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from azure_facts.key_ids import NotAVersionedKeyId, canonical_key_url, metric_key_id_hash, plugin_key_id
from kms_aks_tools.cli.console import make_console
from kms_aks_tools.cli.exits import EXIT_BAD_INPUT, EXIT_BLOCKED, EXIT_OK
from kms_aks_tools.cli.options import positive_int, subcommand_parser
from kms_aks_tools.cluster import verify
from kms_aks_tools.cluster.connection import ClusterInputError, connect, preflight
from kms_aks_tools.cluster.key_metrics import EnvelopeMetrics, fetch_metrics
from kms_aks_tools.cluster.keys import StackKeyError, load_stack_key, stack_project
from kms_aks_tools.cluster.reencrypt import add_cluster_arguments
from kms_aks_tools.cluster.reencryption_records import (
    ClusterIdentity,
    RecordError,
    RecordFile,
    ReencryptionRecord,
    load_records,
    server_host,
    trusted_record,
)


@dataclass
class KeyRow:
    """One key the metrics or the stack name: its hash, its URL where known, and what the API server did with it."""

    key_id_hash: str
    key_id: str | None = None
    current: bool = False
    status_at: datetime | None = None
    reads: int = 0
    last_read: datetime | None = None
    writes: int = 0
    last_write: datetime | None = None
    record: ReencryptionRecord | None = None


@dataclass
class KeyStatus:
    stack: str
    pinned_key_id: str | None
    pinned_note: str | None
    metrics: EnvelopeMetrics
    records_file: str
    keys: list[KeyRow] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)
    cluster: dict[str, str] = field(default_factory=dict)
    verification: verify.Verification | None = None
    names: dict[str, str] = field(default_factory=dict)  # key_id_hash -> key URL, where known
    key_source: str = "pinned by the stack"  # or "given by --key-id ...": the stack pins no version

    @property
    def current(self) -> KeyRow | None:
        return next((k for k in self.keys if k.current), None)

    @property
    def exit_code(self) -> int:
        return EXIT_BLOCKED if self.findings else EXIT_OK


def _iso(value: datetime | None) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def build_status(
    stack: str,
    pinned: str | None,
    pinned_note: str | None,
    metrics: EnvelopeMetrics,
    records: RecordFile,
    records_file: str,
    known: list[str],
    cluster: ClusterIdentity,
    verification: verify.Verification | None = None,
    *,
    key_source: str = "pinned by the stack",
    key_id_option: str = "",
) -> KeyStatus:
    """Joins the metrics, the stack's pin (or `--key-id`'s key, `key_source` says which), the records (those
    `reencryption_records.judge` trusts for `cluster`) and the verification pass into one row per key, and the
    findings. `key_id_option` is the ` --key-id URL` the advised `reencrypt` needs."""
    names: dict[str, str] = {}
    for url in [*known, *(r.keyId for r in records.records), *([pinned] if pinned else [])]:
        names[metric_key_id_hash(plugin_key_id(url))] = canonical_key_url(url)
    status = KeyStatus(
        stack, pinned, pinned_note, metrics, records_file, verification=verification, names=names, key_source=key_source
    )
    reencrypt = f"`kms-aks reencrypt --stack {stack}{key_id_option}`"
    pinned_hash = metric_key_id_hash(plugin_key_id(pinned)) if pinned else None
    hashes = metrics.reported_hashes() if metrics.served else []
    # Then what the stack and the records know, newest record first.
    recorded = [metric_key_id_hash(plugin_key_id(r.keyId)) for r in sorted(records.records, key=lambda r: r.finishedAt)]
    for key_hash in [*([pinned_hash] if pinned_hash else []), *reversed(recorded)]:
        if key_hash not in hashes:
            hashes.append(key_hash)
    for key_hash in hashes:
        row = KeyRow(key_id_hash=key_hash, key_id=names.get(key_hash))
        row.current = metrics.served and key_hash == metrics.current
        row.status_at = metrics.status.get(key_hash)
        if key_hash in metrics.reads:
            row.reads, row.last_read = metrics.reads[key_hash].count, metrics.reads[key_hash].last
        if key_hash in metrics.writes:
            row.writes, row.last_write = metrics.writes[key_hash].count, metrics.writes[key_hash].last
        if row.key_id:
            row.record, _ = trusted_record(records, row.key_id, cluster)
        status.keys.append(row)

    current = status.current
    if metrics.served and current is not None:
        if pinned_hash and current.key_id_hash != pinned_hash:
            status.findings.append(
                f"the API server encrypts with {current.key_id or current.key_id_hash}, not the key "
                f"{key_source.split(' (')[0]} ({pinned}): `pulumi up` has not applied the pin, or this is another "
                "stack's cluster"
            )
        elif current.record is None:
            status.findings.append(
                f"the current key {current.key_id or current.key_id_hash} has no complete re-encryption record in "
                f"{records_file}{_refusals(records, current.key_id, cluster)}: run {reencrypt} before the next key "
                "change"
            )
    elif metrics.served:
        status.findings.append(
            "the API server's metrics name no current KMS key: it has not polled its KMS plugin's Status since it "
            "started, or Secrets are not KMS-encrypted"
        )
    elif not pinned:
        status.findings.append(
            "which key the cluster uses cannot be told: the API server's metrics are not available and the stack "
            "pins no version (pass --key-id, or pin it)"
        )
    else:
        record, _ = trusted_record(records, pinned, cluster)
        if record is None:
            status.findings.append(
                f"the key {key_source.split(' (')[0]} ({pinned}) has no complete re-encryption record in "
                f"{records_file}{_refusals(records, pinned, cluster)}: run {reencrypt} before the next key change"
            )
    if verification is not None:
        status.findings.extend(_verification_findings(verification, names))
    return status


def _refusals(records: RecordFile, key_id: str | None, cluster: ClusterIdentity) -> str:
    """Why the records of `key_id` are not trusted, where there are some."""
    verdicts = trusted_record(records, key_id, cluster)[1] if key_id else []
    return " (" + "; ".join(v.reason for v in verdicts[:3]) + ")" if verdicts else ""


def _verification_findings(checked: verify.Verification, names: dict[str, str]) -> list[str]:
    bound = "" if checked.exact else "at most "
    found = [
        f"{bound}{count} Secret(s) are still stored under {names.get(key, key)}, not the current key"
        for key, count in sorted(checked.under_other_keys().items())
    ]
    if checked.not_kms:
        found.append(f"{bound}{checked.not_kms} Secret(s) are stored under no KMS key")
    if checked.reason is not None and not found:
        found.append(f"the verification pass could not prove where every Secret is: {checked.reason}")
    return found


def to_json(status: KeyStatus) -> dict[str, Any]:
    return {
        "stack": status.stack,
        "cluster": status.cluster,
        "pinnedKeyId": status.pinned_key_id,
        "keySource": status.key_source,
        "metricsServed": status.metrics.served,
        "metricsNote": status.metrics.reason,
        "currentKeyIdHash": status.current.key_id_hash if status.current else None,
        "currentKeyId": status.current.key_id if status.current else None,
        "keys": [
            {
                "keyIdHash": k.key_id_hash,
                "keyId": k.key_id,
                "current": k.current,
                "lastStatus": _iso(k.status_at),
                "reads": k.reads,
                "lastRead": _iso(k.last_read),
                "writes": k.writes,
                "lastWrite": _iso(k.last_write),
                "record": _iso(k.record.finishedAt) if k.record else None,
            }
            for k in status.keys
        ],
        "recordsFile": status.records_file,
        "verification": _verification_json(status.verification, status.names),
        "findings": status.findings,
    }


def _verification_json(checked: verify.Verification | None, names: dict[str, str]) -> dict[str, Any] | None:
    if checked is None:
        return None
    return {
        "verified": checked.verified,
        "reason": checked.reason,
        "exact": checked.exact,
        "listed": checked.listed,
        "read": checked.read,
        "deleted": checked.deleted,
        "apiServers": checked.replicas,
        "byKey": [
            {"keyIdHash": key, "keyId": names.get(key), "secrets": count}
            for key, count in sorted(checked.by_key.items())
        ],
        "notKms": checked.not_kms,
        "unreadable": [f"{namespace}/{name}" for namespace, name, _ in checked.unreadable],
        "windows": checked.windows,
        "retriedWindows": checked.retried,
    }


def _hash_of(key_id: str | None) -> str | None:
    return metric_key_id_hash(plugin_key_id(key_id)) if key_id else None


def render(status: KeyStatus, console: Console) -> None:
    where = f" on {status.cluster['server']} (context {status.cluster['context']})" if status.cluster else ""
    console.print(f"[bold]KMS key of stack {escape(status.stack)}[/]{escape(where)}")
    if status.pinned_key_id:
        console.print(f"  key {escape(status.key_source)}:  {escape(status.pinned_key_id)}")
    else:
        console.print(f"  pinned by the stack:  {escape(status.pinned_note or 'nothing')}")
    if not status.metrics.served:
        console.print(f"  API server:           [yellow]no key metrics[/]: {escape(status.metrics.reason or '')}")
        console.print("                        (the key in use and the previous slot cannot be seen; the stack and the")
        console.print("                        records below are what is known)")
    table = Table(show_lines=False)
    for column in ("key", "slot", "last Status", "reads (from_storage)", "last read", "writes", "re-encryption record"):
        table.add_column(column)
    for row in status.keys:
        if row.current:
            slot = "[bold]current[/]"
        elif row.reads and status.metrics.served:
            slot = "read since start (previous)"
        elif status.metrics.served:
            slot = "-"
        elif row.key_id_hash == _hash_of(status.pinned_key_id):
            slot = status.key_source.split(" (")[0]
        else:
            slot = "recorded"
        table.add_row(
            escape(row.key_id or f"unknown key, {row.key_id_hash}"),
            slot,
            _iso(row.status_at) or "-",
            str(row.reads),
            _iso(row.last_read) or "-",
            str(row.writes),
            _iso(row.record.finishedAt) + f" ({row.record.secrets.listed} Secrets)" if row.record else "none",
        )
    if status.keys:
        console.print(table)
    else:
        # No metrics, no pinned key, no record: an empty table would look like "no keys"; say what is unknown.
        console.print("  keys: none known (no metrics, no pinned or --key-id key, no re-encryption record)")
    console.print(f"  records: {escape(status.records_file)}")
    if status.verification is not None:
        summary = verify.summary(status.verification, lambda h: status.names.get(h, h))
        console.print(f"  verified now:         {escape(summary)}")
    for finding in status.findings:
        console.print(f"[bold yellow]attention:[/] {escape(finding)}")
    if status.findings:
        return
    if status.metrics.served:
        console.print(
            "[bold green]key-status: the current key is the stack's and every Secret was rewritten under it[/]"
        )
    else:
        console.print(
            "[bold green]key-status: the key the stack pins has a complete re-encryption record[/] (the key the "
            "cluster uses now was not confirmed: no metrics)"
        )


def configure_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The options of `kms-aks key-status`, shared by `kms_aks_tools.cli` and `python -m`."""
    add_cluster_arguments(parser)
    parser.add_argument(
        "--known-key-id",
        action="append",
        default=[],
        metavar="URL",
        help="a versioned key id to name in the metrics (e.g. the previous version); repeatable",
    )
    parser.add_argument("--offline", action="store_true", help="do not contact the cluster: the stack and records only")
    parser.add_argument(
        "--verify",
        action="store_true",
        help="GET every Secret from etcd and count, with the API server's own metrics, how many are under each key",
    )
    parser.add_argument(
        "--concurrency", type=positive_int, default=4, help="with --verify: Secrets read at once (default 4)"
    )
    parser.add_argument("--json", action="store_true", help="print the status as JSON")
    parser.set_defaults(run=run)
    return parser


def build_parser() -> argparse.ArgumentParser:
    return configure_parser(subcommand_parser("key-status", __doc__.split("\n\n")[0]))


def run(args: argparse.Namespace) -> int:
    console = make_console()
    try:
        stack_key = load_stack_key(args.stack, key_id=args.key_id, root=stack_project(args.stack, args.cwd))
        known = [canonical_key_url(url) for url in args.known_key_id]
        records = load_records(stack_key.records_file, stack_key.stack)
        cluster_ref: dict[str, str] = {}
        checked: verify.Verification | None = None
        if args.offline and args.verify:
            raise ClusterInputError("--verify reads the cluster; it cannot be combined with --offline")
        if args.offline:
            metrics = EnvelopeMetrics(served=False, reason="--offline: the cluster was not asked")
            identity = ClusterIdentity(name=stack_key.cluster_name, hosts=None, offline=True)
        else:
            cluster = connect(args.kubeconfig, args.context, pool_size=args.concurrency)
            try:
                preflight(cluster, verbs=("list", "get") if args.verify else ())
                metrics = fetch_metrics(cluster)
                cluster_ref = {"context": cluster.context, "server": cluster.server}
                identity = ClusterIdentity(name=stack_key.cluster_name, hosts=frozenset({server_host(cluster.server)}))
                if args.verify:
                    checked = verify.verify(
                        cluster, metrics.current or stack_key.metric_hash, concurrency=args.concurrency
                    )
            finally:
                cluster.close()
    except (StackKeyError, NotAVersionedKeyId, ClusterInputError, RecordError) as error:
        console.print(f"[bold red]error:[/] {escape(str(error))}")
        return EXIT_BAD_INPUT
    status = build_status(
        stack_key.stack,
        stack_key.key_id,
        stack_key.unpinned_reason,
        metrics,
        records,
        str(stack_key.records_file),
        known,
        identity,
        checked,
        key_source=stack_key.source,
        key_id_option=stack_key.key_id_option,
    )
    status.cluster = cluster_ref
    if args.json:
        print(json.dumps(to_json(status), indent=2))
    else:
        render(status, console)
    return status.exit_code


def main(argv: list[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
