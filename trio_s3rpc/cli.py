"""The ``trio-s3rpc`` command: ``serve`` and ``check-config``.

``serve --config .rr.yaml`` serves what the RoadRunner config describes;
``serve --embedded`` starts a private SeaweedFS first, so a newcomer has a
working server with one command. Exit codes: 0 after a clean (signalled)
stop or a valid config, 1 for configuration errors, 2 for usage errors.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import trio

from trio_s3rpc import __version__
from trio_s3rpc.budget import limit_malloc_arenas
from trio_s3rpc.config import (
    MAX_WORKERS,
    Config,
    ConfigError,
    describe,
    exposure_warning,
    load_config,
    load_document,
    parse_config,
    parse_listen,
    same_address,
)
from trio_s3rpc.errors import RPCError
from trio_s3rpc.logs import FORMATS, setup_logging

log = logging.getLogger("trio_s3rpc")

EMBEDDED_LISTEN = "tcp://127.0.0.1:6001"
EMBEDDED_BUCKET = "uploads"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trio-s3rpc",
        description="RoadRunner-compatible Goridge RPC server for S3 storage.",
    )
    parser.add_argument("--version", action="version", version=f"trio-s3rpc {__version__}")
    parser.add_argument("--log-level", default=os.environ.get("TRIO_S3RPC_LOG_LEVEL", "info"))
    parser.add_argument(
        "--log-format",
        choices=FORMATS,
        default=os.environ.get("TRIO_S3RPC_LOG_FORMAT") or None,
        help="text (key=value lines, the default) or json (one object per line); "
        "overrides s3.logs.format",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve s3.* RPC calls until SIGINT/SIGTERM")
    source = serve.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", help="RoadRunner .rr.yaml with rpc and s3 sections")
    source.add_argument(
        "--embedded",
        action="store_true",
        help="start a private SeaweedFS on 127.0.0.1 and serve a bucket 'uploads' from it",
    )
    serve.add_argument(
        "--listen", help="override s3.listen / rpc.listen (tcp://host:port or unix:///path)"
    )
    serve.add_argument(
        "--workers",
        type=int,
        help="server processes sharing the listen socket (overrides s3.workers; "
        "default: s3.workers, whose default is the number of cores)",
    )
    serve.add_argument(
        "--data-dir",
        default=".trio-s3rpc-data",
        help="with --embedded: where SeaweedFS keeps its data (default ./.trio-s3rpc-data)",
    )

    # Started by `serve` itself, one per worker; not for people to run.
    worker = commands.add_parser("worker")
    worker.add_argument("--slot", type=int, required=True)
    worker.add_argument("--workers", type=int, required=True)
    worker.add_argument("--run-dir", required=True)
    worker.add_argument("--listen-fd", type=int, action="append", default=[])

    check = commands.add_parser("check-config", help="validate a config and show what it serves")
    check.add_argument("--config", required=True)
    check.add_argument(
        "--probe",
        action="store_true",
        help="also contact each bucket's service and resolve visibility_mode: auto",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command != "check-config":
        limit_malloc_arenas()  # before any thread: an arena once taken stays
    setup_logging(args.log_level, args.log_format or "text")
    try:
        if args.command == "check-config":
            return _check_config(args)
        if args.command == "worker":
            return _run_worker(args)
        workers = _workers_option(args.workers)
        if args.embedded:
            return _serve_embedded(args, workers)
        config = _load(args.config, args.listen)
        log_format = args.log_format or config.s3.observability.log_format
        if log_format != (args.log_format or "text"):
            setup_logging(args.log_level, log_format)
        for warning in config.warnings:
            log.warning("event=config_warning %s", warning)
        document = load_document(args.config)
        return _serve(config, document, args.config, workers, args.log_level, log_format=log_format)
    except RPCError as exc:
        print(exc.wire_text(), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0


def _load(path: str, listen: str | None) -> Config:
    config = load_config(path)
    if listen:
        config = _with_listen(config, listen)
    return config


def _with_listen(config: Config, listen: str) -> Config:
    from dataclasses import replace

    address = parse_listen(listen)
    relay = config.rpc.relay.address if config.rpc.relay is not None else None
    for other, what in ((relay, "s3.relay"), (config.rpc.roadrunner_listen, "rpc.listen")):
        if other is not None and same_address(address, other):
            raise ConfigError(f"--listen: {address} clashes with {what} ({other})")
    return replace(config, rpc=replace(config.rpc, listen=address, listen_key="--listen"))


def _workers_option(value: int | None) -> int | None:
    if value is not None and not 1 <= value <= MAX_WORKERS:
        raise ConfigError(f"--workers must be between 1 and {MAX_WORKERS}, got {value}")
    return value


def _serve(
    config: Config,
    document: Any,
    source: str,
    workers: int | None = None,
    log_level: str = "info",
    on_ready: Any = None,
    *,
    log_format: str = "text",
) -> int:
    """Serve ``config``; ``document`` is its unparsed source, which workers parse again."""
    workers = config.s3.workers if workers is None else workers
    if workers > 1:
        return _serve_supervised(
            config, document, source, workers, log_level, on_ready, log_format=log_format
        )
    from trio_s3rpc.app import Application, serve_until_signalled

    async def run() -> None:
        app = Application(config)
        await app.server.open()  # fail on a bad listen address before anything starts
        async with trio.open_nursery() as nursery:
            address = await nursery.start(serve_until_signalled, app)
            _announce(log_format, address, 1)
            if on_ready is not None:
                on_ready(address)

    trio.run(run)
    return 0


def _announce(log_format: str, address: object, workers: int) -> None:
    if log_format == "json":
        # stderr carries nothing but JSON lines
        log.info("event=serving version=%s address=%s workers=%d", __version__, address, workers)
        return
    suffix = f" with {workers} workers" if workers > 1 else ""
    print(f"trio-s3rpc {__version__} serving on {address}{suffix}", file=sys.stderr, flush=True)


def _serve_supervised(
    config: Config,
    document: Any,
    source: str,
    workers: int,
    log_level: str,
    on_ready: Any,
    *,
    log_format: str = "text",
) -> int:
    from trio_s3rpc.cluster.observability import SupervisorObservability
    from trio_s3rpc.cluster.supervisor import Supervisor
    from trio_s3rpc.trioutil import first_error

    supervisor = Supervisor(config, document, source, workers, log_level=log_level)
    supervisor.log_format = log_format
    # Before the first worker starts: the metrics directory goes into their environment.
    observability = SupervisorObservability(config, supervisor)

    async def run() -> None:
        async with trio.open_nursery() as outer:
            await outer.start(observability.run)
            async with trio.open_nursery() as nursery:
                address = await nursery.start(supervisor.run)
                _announce(log_format, address, workers)
                if on_ready is not None:
                    on_ready(address)
            outer.cancel_scope.cancel()  # the service stopped: so do its HTTP endpoints

    with first_error():
        trio.run(run)
    return 0


def _run_worker(args: argparse.Namespace) -> int:
    import signal

    from trio_s3rpc.app import serve_worker
    from trio_s3rpc.cluster.worker import WorkerLink, WorkerPlace, read_worker_input

    def exit_before_serving(signum: int, frame: object) -> None:
        # Nothing accepted yet, so nothing to drain; once serving, the
        # application's own handler (drain, then stop now) replaces this one.
        os._exit(0)

    signal.signal(signal.SIGTERM, exit_before_serving)
    signal.signal(signal.SIGINT, exit_before_serving)
    given = read_worker_input()
    config = parse_config(given["document"], source=str(given.get("source", "<supervisor>")))
    log_format = args.log_format or config.s3.observability.log_format
    worker_fields = {"worker": args.slot, "pid": os.getpid()}
    setup_logging(args.log_level, log_format, fields=worker_fields)
    config = _with_listen(config, str(given["listen"]))
    link = WorkerLink(WorkerPlace(args.run_dir, args.slot, args.workers))
    trio.run(serve_worker, config, link, args.listen_fd)
    return 0


def _check_config(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(exc.wire_text(), file=sys.stderr)
        return 1
    for warning in config.warnings:
        print(f"warning: {warning}")
    risk = exposure_warning(config.rpc)
    if risk:
        print(f"warning: {config.rpc.listen_key}: {risk}")
    print(describe(config))
    if args.probe:
        return _probe(config)
    print("config OK")
    return 0


def _probe(config: Config) -> int:
    from trio_s3rpc.storage import visibility
    from trio_s3rpc.storage.buckets import Storage

    failures = 0

    async def run() -> None:
        nonlocal failures
        storage = Storage(config.s3)
        try:
            for name in sorted(storage.buckets):
                try:
                    mode = await visibility.mode(storage.bucket(name))
                    print(f"bucket {name}: visibility_mode resolves to {mode}")
                except RPCError as exc:
                    failures += 1
                    print(f"bucket {name}: probe failed: {exc.wire_text()}")
        finally:
            await storage.aclose()

    trio.run(run)
    return 1 if failures else 0


def embedded_config(endpoint: Any, listen: str) -> Config:
    """The config ``serve --embedded`` serves: one bucket on the private SeaweedFS."""
    return parse_config(embedded_document(endpoint, listen), source="--embedded")


def embedded_document(endpoint: Any, listen: str) -> dict[str, Any]:
    return {
        "rpc": {"listen": listen},
        "s3": {
            "default": EMBEDDED_BUCKET,
            "servers": {
                "embedded": {
                    "region": endpoint.region,
                    "endpoint": endpoint.endpoint,
                    "credentials": {"key": endpoint.access_key, "secret": endpoint.secret_key},
                }
            },
            "buckets": {
                EMBEDDED_BUCKET: {
                    "server": "embedded",
                    "bucket": EMBEDDED_BUCKET,
                    # SeaweedFS accepts ACL headers and ignores them.
                    "visibility_mode": "none",
                }
            },
        },
    }


PHP_SNIPPET = """\
<?php
use Spiral\\Goridge\\RPC\\RPC;
use Spiral\\Goridge\\Relay;

$rpc = new RPC(Relay::create('{address}'));
$rpc->call('s3.Write', ['bucket' => 'uploads', 'pathname' => 'hello.txt',
                        'content' => base64_encode('Hello from PHP')]);
var_dump($rpc->call('s3.Read', ['bucket' => 'uploads', 'pathname' => 'hello.txt']));
"""


def _serve_embedded(args: argparse.Namespace, workers: int | None) -> int:
    from trio_s3rpc.embedded import EXPOSURE_NOTE, EmbeddedSeaweedFS

    data_dir = Path(args.data_dir).resolve()
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    seaweed = EmbeddedSeaweedFS(data_dir, buckets=[EMBEDDED_BUCKET])
    log_format = args.log_format or "text"
    if log_format == "json":
        log.info("event=seaweedfs_starting data_dir=%s", data_dir)
    else:
        print(f"starting SeaweedFS in {data_dir} ...", file=sys.stderr, flush=True)
    try:
        endpoint = seaweed.start()
        if log_format == "json":
            log.info(
                "event=seaweedfs_started endpoint=%s pid=%s exposure=%r",
                endpoint.endpoint,
                seaweed.pid,
                EXPOSURE_NOTE,
            )
        else:
            print(
                f"SeaweedFS S3 on {endpoint.endpoint} (pid {seaweed.pid}): {EXPOSURE_NOTE}",
                file=sys.stderr,
            )
        document = embedded_document(endpoint, args.listen or EMBEDDED_LISTEN)
        config = parse_config(document, source="--embedded")

        def ready(address: object) -> None:
            if log_format == "json":
                return
            print("\nPHP, with spiral/goridge installed:\n", file=sys.stderr)
            print(PHP_SNIPPET.format(address=address), file=sys.stderr, flush=True)

        return _serve(
            config,
            document,
            "--embedded",
            workers,
            args.log_level,
            on_ready=ready,
            log_format=log_format,
        )
    finally:
        seaweed.stop()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
