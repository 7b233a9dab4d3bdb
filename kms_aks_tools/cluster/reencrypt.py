"""`kms-aks reencrypt`: rewrite every Secret of a cluster, so that each one is stored under its current KMS key.

    kms-aks reencrypt --stack prod [--kubeconfig FILE] [--context NAME] [--dry-run]
                      [--concurrency 16] [--rate 0] [--page-size 250] [--checkpoint FILE]

After a key change, AKS's KMS plugin keeps two key slots: the new (current) key and the previous one. Secrets
written before the change stay under the previous key until they are written again, and a second key change
drops that key with them. The API server encrypts with the current key on every write, and writes a Secret
whose stored form is under another key even when nothing changed (its read is "stale"); a Secret already
under the current key is not written again (k8s.io/apiserver pkg/storage/etcd3/store.go, GuaranteedUpdate).
So a rewrite is a plain replace of each Secret with what was read.

- Secrets are listed a page at a time (`limit`/`continue`): memory stays flat however many there are.
- Each Secret is replaced with the resourceVersion it was read with. On 409 Conflict (someone wrote it
  meanwhile) it is read again and retried, so no update is lost; 404 (deleted meanwhile) is skipped and
  counted; 429 is retried after its Retry-After, 5xx with backoff. The Secret is sent back exactly as the API
  server gave it (plain JSON, never through the client's models, which would drop fields they do not know).
- As fast as the API server admits (kms_aks_tools.cluster.throttle): the requests in flight adapt to its
  answers (more while they come back quickly, fewer on a 429, a 5xx or rising latency); `--concurrency` and
  `--rate` are caps a user may set. The next page is listed while the current one is rewritten.
- A checkpoint file, written after each page, lets a rerun continue after a kill: it skips the pages done and
  retries the Secrets that failed. A Secret rewritten again after an interrupted page is not written twice,
  since it is already under the current key; it is counted as `unchanged`.
- After a complete pass, where the API server serves its envelope metrics, the current key must be the
  stack's (kms_aks_tools.cluster.key_metrics). Then a verification pass GETs every Secret and reads the API
  server's counters around it (kms_aks_tools.cluster.verify); a record goes to `rotations/<stack>.yaml` to
  commit: `complete` with that evidence, or `unverified` (with the reason) where the counters cannot prove it.

Secret data is never printed: progress and errors name Secrets by namespace and name only.

This module is the command (its options, its output, its exit code); the write pass is `rewrite.py`, its
checkpoint `checkpoint.py`, its progress display `progress.py`, the verification pass `verify.py`, and the record
it writes `pass_record.py`.

Exit codes: 0 every Secret rewritten, verified, and the record written; 1 some Secrets failed (each named, with
the reason), listing stopped midway (a rerun continues), the key changed during the pass, or the rewrite could
not be verified (an `unverified` record is written, which the rotation gate refuses); 2 bad input, an
unreachable cluster, an unknown context, refused credentials or missing rights, or a cluster whose current
key is not the stack's: nothing written.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from azure_facts.key_ids import NotAVersionedKeyId, metric_key_id_hash, plugin_key_id
from kms_aks_tools.cli.console import make_console
from kms_aks_tools.cli.exits import EXIT_BAD_INPUT, EXIT_BLOCKED, EXIT_OK
from kms_aks_tools.cli.options import add_project_option, positive_int, subcommand_parser
from kms_aks_tools.cluster import verify
from kms_aks_tools.cluster.checkpoint import (
    CheckpointError,
    default_checkpoint_path,
    load_checkpoint,
    resume_or_start,
    summary,
)
from kms_aks_tools.cluster.connection import (
    Cluster,
    ClusterInputError,
    connect,
    preflight,
)
from kms_aks_tools.cluster.key_metrics import EnvelopeMetrics, fetch_metrics
from kms_aks_tools.cluster.keys import StackKey, StackKeyError, load_stack_key, stack_project
from kms_aks_tools.cluster.pass_record import pass_record
from kms_aks_tools.cluster.reencryption_records import (
    RecordError,
    RecordFile,
    append_record,
    load_records,
)
from kms_aks_tools.cluster.rewrite import (
    DEFAULT_CONCURRENCY,
    DEFAULT_PAGE_SIZE,
    DEFAULT_PROGRESS_EVERY,
    DEFAULT_RATE,
    ListingError,
    Options,
    PassResult,
    ReencryptionPass,
)


def _rate(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
    if number < 0:
        raise argparse.ArgumentTypeError(f"must be 0 (no limit) or more, not {value}")
    return number


def _page_size(value: str) -> int:
    number = positive_int(value)
    if number > 5000:
        raise argparse.ArgumentTypeError(f"at most 5000 Secrets a page (memory stays flat), not {number}")
    return number


def add_cluster_arguments(parser: argparse.ArgumentParser) -> None:
    """`--stack`, `--kubeconfig`, `--context`, `--key-id`: shared by reencrypt and key-status."""
    parser.add_argument(
        "--stack",
        required=True,
        help="stack name (Pulumi.<stack>.yaml) or a path to such a file: the key it pins, and where its records go",
    )
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, else ~/.kube/config)")
    parser.add_argument("--context", help="kubeconfig context (default: its current context)")
    parser.add_argument(
        "--key-id",
        help="the versioned key id the cluster uses, for a stack that pins no version or already pins the next "
        "one (az aks show --query securityProfile.azureKeyVaultKms.keyId)",
    )
    add_project_option(parser)  # a stack name is the found project's; its records go to its rotations/


def configure_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The options of `kms-aks reencrypt`, shared by `kms_aks_tools.cli` and `python -m`."""
    add_cluster_arguments(parser)
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="count the Secrets still under another key, as the API server's counters show them; write nothing",
    )
    parser.add_argument(
        "--concurrency",
        type=positive_int,
        default=DEFAULT_CONCURRENCY,
        help=f"at most this many requests in flight; the pass adapts below it to what the API server admits "
        f"(default {DEFAULT_CONCURRENCY})",
    )
    parser.add_argument(
        "--rate",
        type=_rate,
        default=DEFAULT_RATE,
        help="at most this many API requests a second (default 0: no cap; the API server's 429s set the pace)",
    )
    parser.add_argument(
        "--page-size",
        type=_page_size,
        default=DEFAULT_PAGE_SIZE,
        help=f"Secrets listed per page (default {DEFAULT_PAGE_SIZE}; at most 5000)",
    )
    parser.add_argument(
        "--progress-every",
        type=positive_int,
        default=DEFAULT_PROGRESS_EVERY,
        help=f"off a terminal, a progress line every this many Secrets (default {DEFAULT_PROGRESS_EVERY})",
    )
    parser.add_argument(
        "--checkpoint",
        type=Path,
        help="checkpoint file (default: rotations/<stack>.reencrypt-checkpoint.json beside the records; not to commit)",
    )
    parser.add_argument(
        "--wait-for-key",
        type=float,
        default=90.0,
        metavar="SECONDS",
        help="wait this long for the API server to report the stack's key as current before giving up (default 90: "
        "it polls its KMS plugin's Status about once a minute)",
    )
    parser.set_defaults(run=run)
    return parser


def build_parser() -> argparse.ArgumentParser:
    return configure_parser(subcommand_parser("reencrypt", __doc__.split("\n\n")[0]))


def _key_name(key_hash: str | None, stack_key: StackKey) -> str:
    if key_hash is None:
        return "none reported"
    if key_hash == stack_key.metric_hash:
        return f"{stack_key.key_id} (the stack's)"
    return f"{key_hash} (not the stack's key {stack_key.key_id})"


def _recorded_name(key_hash: str, records: RecordFile) -> str:
    """A metric key hash as its URL where a record of the stack names that key (the hash is shown too)."""
    for record in records.records:
        if metric_key_id_hash(plugin_key_id(record.keyId)) == key_hash:
            return f"{record.keyId} ({key_hash})"
    return key_hash


def _wait_for_stack_key(
    cluster: Cluster, stack_key: StackKey, records: RecordFile, wait: float, console: Console
) -> EnvelopeMetrics:
    """The metrics once they show the stack's key as current, or as they are when `wait` seconds have passed."""
    deadline = time.monotonic() + max(wait, 0.0)
    metrics = fetch_metrics(cluster)
    told = False
    while metrics.served and metrics.current not in (None, stack_key.metric_hash) and time.monotonic() < deadline:
        if not told:
            console.print(
                f"reencrypt: the API server's current key is {_recorded_name(metrics.current, records)}, not the "
                f"stack's; waiting up to "
                f"{wait:g} s for its next KMS Status poll"
            )
            told = True
        time.sleep(min(5.0, max(deadline - time.monotonic(), 0.0)))
        metrics = fetch_metrics(cluster)
    return metrics


def run(args: argparse.Namespace) -> int:
    console = make_console()
    try:
        return _run(args, console)
    except (StackKeyError, NotAVersionedKeyId, ClusterInputError, CheckpointError, RecordError) as error:
        console.print(f"[bold red]error:[/] {escape(str(error))}")
        return EXIT_BAD_INPUT
    except ListingError as error:  # --dry-run's listing; a pass reports its own
        console.print(f"[bold red]error:[/] {escape(str(error))}")
        return EXIT_BLOCKED


def _run(args: argparse.Namespace, console: Console) -> int:
    stack_key = load_stack_key(args.stack, key_id=args.key_id, root=stack_project(args.stack, args.cwd))
    if stack_key.key_id is None and not args.dry_run:
        raise StackKeyError(f"{stack_key.unpinned_reason}; the record names the key its Secrets were rewritten under")
    # A broken records file is refused before any write; its keys name a hash the metrics report.
    records = load_records(stack_key.records_file, stack_key.stack)
    checkpoint_path = args.checkpoint or default_checkpoint_path(stack_key)
    existing = load_checkpoint(checkpoint_path)
    cluster = connect(args.kubeconfig, args.context, pool_size=args.concurrency)
    try:
        preflight(cluster, verbs=("list", "get") if args.dry_run else ("list", "get", "update"))
        if args.dry_run:
            return _dry_run(cluster, stack_key, args.concurrency, console, rate=args.rate)
        assert stack_key.key_id is not None
        metrics = _wait_for_stack_key(cluster, stack_key, records, args.wait_for_key, console)
        if metrics.served and metrics.current is not None and metrics.current != stack_key.metric_hash:
            raise ClusterInputError(
                f"the API server {cluster.server} (context {cluster.context!r}) encrypts with key "
                f"{_recorded_name(metrics.current, records)}, not the key "
                f"{'given by --key-id' if stack_key.given else f'stack {stack_key.stack} pins'} ({stack_key.key_id}, "
                f"{stack_key.metric_hash}): is this the stack's cluster, and has `pulumi up` applied the key? "
                "Nothing was rewritten"
            )
        checkpoint = resume_or_start(existing, checkpoint_path, stack_key, cluster, console)
        options = Options(args.concurrency, args.rate, args.page_size, args.progress_every)
        result = ReencryptionPass(cluster, checkpoint, checkpoint_path, options, console).run()
        return _finish(result, cluster, stack_key, checkpoint_path, console, args.concurrency, rate=args.rate)
    finally:
        cluster.close()


def _dry_run(cluster: Cluster, stack_key: StackKey, concurrency: int, console: Console, *, rate: float = 0) -> int:
    """The verification pass alone: how many Secrets are not under the stack's key, as the counters show."""
    checked = verify.verify(cluster, stack_key.metric_hash, concurrency=concurrency, rate=rate)
    names = {stack_key.metric_hash: f"{stack_key.key_id} (the stack's)"} if stack_key.metric_hash else {}
    console.print(f"reencrypt --dry-run: {escape(verify.summary(checked, lambda h: names.get(h, h)))}")
    if checked.reason is not None and checked.read == 0:
        console.print(
            f"reencrypt --dry-run: {checked.listed} Secrets listed on {cluster.server} (context {cluster.context}); "
            "which of them a pass would rewrite cannot be told; nothing was written"
        )
        return EXIT_OK
    pending = sum(checked.under_other_keys().values()) + checked.not_kms
    bound = "" if checked.exact else "at most "
    console.print(
        f"reencrypt --dry-run: {bound}{pending} Secrets would be rewritten on {cluster.server} (context "
        f"{cluster.context}); nothing was written"
    )
    return EXIT_OK


def _finish(
    result: PassResult,
    cluster: Cluster,
    stack_key: StackKey,
    path: Path,
    console: Console,
    concurrency: int = 4,
    *,
    rate: float = 0,
) -> int:
    state = result.checkpoint
    console.print(f"reencrypt: {summary(state)}")
    if result.stopped_by is not None:
        console.print(
            f"[bold red]reencrypt: {escape(result.stopped_by)}[/]; {state.pagesDone} pages are done and saved in "
            f"{path}: rerun the same command to continue. No record was written"
        )
        return EXIT_BLOCKED
    if not result.complete:
        shown = state.failures[:100]
        for failure in shown:
            console.print(
                f"[bold red]failed:[/] {escape(failure.namespace)}/{escape(failure.name)}: {escape(failure.reason)}"
            )
        if len(state.failures) > len(shown):
            console.print(f"... and {len(state.failures) - len(shown)} more, all listed in {path}")
        console.print(
            f"[bold red]reencrypt: {len(state.failures)} Secret(s) not rewritten[/]; fix the cause and rerun the "
            f"same command: it retries just those ({path}). No record was written"
        )
        return EXIT_BLOCKED
    assert stack_key.key_id is not None and stack_key.metric_hash is not None
    metrics = fetch_metrics(cluster)
    if metrics.served and metrics.current != stack_key.metric_hash:
        path.unlink(missing_ok=True)
        console.print(
            f"[bold red]reencrypt: the API server's current key changed during the pass[/]: it now reports "
            f"{_key_name(metrics.current, stack_key)}. Secrets rewritten before the change are under the stack's "
            "key, the others under the new one. No record was written; pin the key the cluster uses and rerun"
        )
        return EXIT_BLOCKED
    console.print("reencrypt: verifying: every Secret read again from etcd, counted by the API server's own metrics")
    checked = verify.verify(cluster, stack_key.metric_hash, concurrency=concurrency, rate=rate)
    record = pass_record(state, cluster, stack_key, metrics, checked)
    append_record(stack_key.records_file, stack_key.stack, record)
    proven = record.complete
    path.unlink(missing_ok=True)
    if metrics.served:
        console.print(
            f"reencrypt: the API server reports {stack_key.key_id} as its current key "
            f"({metric_key_id_hash(plugin_key_id(stack_key.key_id))})"
        )
    else:
        console.print(f"reencrypt: [yellow]the current key could not be confirmed[/]: {escape(metrics.reason or '')}")
    names = {stack_key.metric_hash: "the stack's key"}
    console.print(f"reencrypt: verification: {escape(verify.summary(checked, lambda h: names.get(h, h)))}")
    if not proven:
        console.print(
            f"[bold red]reencrypt: every Secret was rewritten, but that could not be verified[/]; the record "
            f"appended to {stack_key.records_file} says `unverified`, and the rotation gate refuses it (commit it "
            "only with a reencryptionWaivers entry whose reason says why; docs/rotation.md)"
        )
        return EXIT_BLOCKED
    console.print(
        f"[bold green]reencrypt: every Secret is under {escape(stack_key.key_id)}[/], as the API server's counters "
        f"show; record appended to {stack_key.records_file}: commit it"
    )
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
