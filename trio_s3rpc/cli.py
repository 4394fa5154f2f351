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
from trio_s3rpc.config import (
    Config,
    ConfigError,
    describe,
    exposure_warning,
    load_config,
    parse_config,
    parse_listen,
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
        "--data-dir",
        default=".trio-s3rpc-data",
        help="with --embedded: where SeaweedFS keeps its data (default ./.trio-s3rpc-data)",
    )

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
    setup_logging(args.log_level, args.log_format or "text")
    try:
        if args.command == "check-config":
            return _check_config(args)
        if args.embedded:
            return _serve_embedded(args)
        config = _load(args.config, args.listen)
        log_format = args.log_format or config.s3.observability.log_format
        if log_format != (args.log_format or "text"):
            setup_logging(args.log_level, log_format)
        for warning in config.warnings:
            log.warning("event=config_warning %s", warning)
        return _serve(config, json_logs=log_format == "json")
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

    return replace(config, rpc=replace(config.rpc, listen=parse_listen(listen)))


def _serve(config: Config, on_ready: Any = None, *, json_logs: bool = False) -> int:
    from trio_s3rpc.app import Application, serve_until_signalled

    async def run() -> None:
        app = Application(config)
        await app.server.open()  # fail on a bad listen address before anything starts
        async with trio.open_nursery() as nursery:
            address = await nursery.start(serve_until_signalled, app)
            if json_logs:
                # stderr carries nothing but JSON lines
                log.info("event=serving version=%s address=%s", __version__, address)
            else:
                print(f"trio-s3rpc {__version__} serving on {address}", file=sys.stderr, flush=True)
            if on_ready is not None:
                on_ready(address)

    trio.run(run)
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
    return parse_config(
        {
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
        },
        source="--embedded",
    )


PHP_SNIPPET = """\
<?php
use Spiral\\Goridge\\RPC\\RPC;
use Spiral\\Goridge\\Relay;

$rpc = new RPC(Relay::create('{address}'));
$rpc->call('s3.Write', ['bucket' => 'uploads', 'pathname' => 'hello.txt',
                        'content' => base64_encode('Hello from PHP')]);
var_dump($rpc->call('s3.Read', ['bucket' => 'uploads', 'pathname' => 'hello.txt']));
"""


def _serve_embedded(args: argparse.Namespace) -> int:
    from trio_s3rpc.embedded import EmbeddedSeaweedFS

    data_dir = Path(args.data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    seaweed = EmbeddedSeaweedFS(data_dir, buckets=[EMBEDDED_BUCKET])
    json_logs = args.log_format == "json"
    if json_logs:
        log.info("event=seaweedfs_starting data_dir=%s", data_dir)
    else:
        print(f"starting SeaweedFS in {data_dir} ...", file=sys.stderr, flush=True)
    try:
        endpoint = seaweed.start()
        if json_logs:
            log.info("event=seaweedfs_started endpoint=%s pid=%s", endpoint.endpoint, seaweed.pid)
        else:
            print(f"SeaweedFS S3 on {endpoint.endpoint} (pid {seaweed.pid})", file=sys.stderr)
        config = embedded_config(endpoint, args.listen or EMBEDDED_LISTEN)

        def ready(address: object) -> None:
            if json_logs:
                return
            print("\nPHP, with spiral/goridge installed:\n", file=sys.stderr)
            print(PHP_SNIPPET.format(address=address), file=sys.stderr, flush=True)

        return _serve(config, on_ready=ready, json_logs=json_logs)
    finally:
        seaweed.stop()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
