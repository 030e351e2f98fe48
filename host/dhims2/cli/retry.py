"""`dhims2 retry BATCH`: send a batch's failed records again and follow them."""

from __future__ import annotations

import argparse

from dhims2.workspace.connection import add_server_arguments


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("batch", help="the batch id (see `dhims2 status`)")
    parser.add_argument("--timeout", type=float, help="stop following after SECONDS")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    add_server_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from dhims2.cli.report import exit_status, print_batch
    from dhims2.cli.status import follow
    from dhims2.workspace.connection import open_store

    with open_store() as store:
        store.batch(args.batch)  # raises UnknownBatch
        requeued = store.retry_failed(args.batch)
        if not args.json:
            print(f"{requeued} failed records queued again")
        status = follow(args, store, args.batch)
        print_batch(store, args.batch, as_json=args.json)
        return status or exit_status(store.batch(args.batch))
