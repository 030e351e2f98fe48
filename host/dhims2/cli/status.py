"""`dhims2 status [BATCH] [--follow]`: what happened to uploads, and following them to the end."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import TYPE_CHECKING

from dhims2.cli.arguments import add_server_arguments

if TYPE_CHECKING:
    from dhims2.cli.report import ProgressLine
    from dhims2.queue.service import Interruption
    from dhims2.queue.store import Store

WATCH_INTERVAL = 1.0


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("batch", nargs="?", help="a batch id; without it, the recent batches")
    parser.add_argument(
        "--follow",
        action="store_true",
        help="send what is still queued and follow DHIS2's jobs until every record is settled",
    )
    parser.add_argument("--timeout", type=float, help="with --follow, stop after SECONDS")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    add_server_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from dhims2.cli.report import exit_status, print_batch
    from dhims2.queue.retention import purge_expired
    from dhims2.workspace.config import load_config
    from dhims2.workspace.connection import UsageError

    with _store_for_reading(args.follow) as store:
        if not store.read_only:
            retention_days = load_config().retention_days
            purge_expired(store, retention_days)
            _warn_of_unsent_records(store, retention_days)
        if args.batch is None:
            if args.follow:
                raise UsageError("--follow needs a batch id (see `dhims2 status`)")
            return _list_batches(store, as_json=args.json)
        summary = store.batch(args.batch)
        status = 0
        if args.follow and not summary.finished:
            status = follow(args, store, args.batch)
        print_batch(store, args.batch, as_json=args.json)
        return status or exit_status(store.batch(args.batch))


def _warn_of_unsent_records(store: Store, retention_days: int) -> None:
    from dhims2.queue.retention import WARNING_DAYS, unsent_expiring

    expiring = unsent_expiring(store, retention_days)
    if expiring:
        print(
            f"{expiring} records that never reached DHIS2 (rejected, failed or cancelled) are"
            f" deleted from this computer within {WARNING_DAYS} days ({retention_days} days after"
            " they finished): correct them and upload them again before then",
            file=sys.stderr,
        )


def _store_for_reading(following: bool) -> Store:
    """The store; on a full disk or a read-only folder, still readable to show what it holds."""
    from dhims2.queue.faults import DiskFull, StoreReadOnly
    from dhims2.queue.store import STORE_FILE_NAME, Store
    from dhims2.workspace.config import data_dir
    from dhims2.workspace.connection import open_store

    try:
        return open_store()
    except (DiskFull, StoreReadOnly) as fault:
        path = data_dir() / STORE_FILE_NAME
        if following or not path.exists():
            raise
        print(f"{fault}. Showing what is saved; nothing can be changed.", file=sys.stderr)
        return Store(path, read_only=True)


def follow(args: argparse.Namespace, store: Store, batch_id: str) -> int:
    """Sends and follows the batch's server's pending work; another sender is watched instead."""
    from dhims2.cli.report import ProgressLine
    from dhims2.queue.service import UploadService, run_service
    from dhims2.workspace.config import load_config
    from dhims2.workspace.connection import open_client

    summary = store.batch(batch_id)
    config = load_config()
    if not getattr(args, "server", None):
        args.server = summary.server
    progress = ProgressLine(batch_id)
    with open_client(args, config) as client:
        service = UploadService(store, client, listener=progress)
        interruption = run_service(service, timeout=args.timeout)
    if interruption is not None and interruption.code == "BUSY":
        interruption = _watch(store, batch_id, progress, args.timeout)
    progress.finish()
    if interruption is not None:
        print(f"{interruption}", file=sys.stderr)
        return interruption.exit_status
    return 0


def _watch(
    store: Store, batch_id: str, progress: ProgressLine, timeout: float | None
) -> Interruption | None:
    """Another process is sending: show its progress from the shared store until it is done."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        summary = store.batch(batch_id)
        progress({"type": "batch.progress", **summary.to_json()})
        if summary.finished or (deadline is not None and time.monotonic() >= deadline):
            return None
        time.sleep(WATCH_INTERVAL)


def _list_batches(store: Store, *, as_json: bool) -> int:
    batches = store.list_batches(limit=20)
    if as_json:
        print(json.dumps({"batches": [batch.to_json() for batch in batches]}))
        return 0
    if not batches:
        print("No uploads on this computer yet.")
        return 0
    print(
        f"{'batch':<12} {'when':<17} {'total':>6} {'created':>8} {'updated':>8} "
        f"{'rejected':>9} {'failed':>7} {'pending':>8}  source"
    )
    for batch in batches:
        counts = batch.to_json()
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(batch.created_at))
        print(
            f"{batch.id:<12} {when:<17} {counts['total']:>6} {counts['created']:>8} "
            f"{counts['updated']:>8} {counts['rejected']:>9} {counts['failed']:>7} "
            f"{counts['pending']:>8}  {batch.source}"
        )
    return 0
