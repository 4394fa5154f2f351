"""Running the application in-process for tests, on a free port or a unix socket."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import trio

from trio_s3rpc.app import Application
from trio_s3rpc.config import parse_config

OFFLINE_SERVER = {
    # A server no test talks to: for tests that need none (ListBuckets, framing).
    "region": "us-east-1",
    "endpoint": "http://127.0.0.1:9",
    "credentials": {"key": "offline-key", "secret": "offline-secret"},
}


def config_dict(
    server: Mapping[str, Any] | None = None,
    buckets: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    listen: str = "tcp://127.0.0.1:0",
    rpc: Mapping[str, Any] | None = None,
    s3: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    buckets = buckets or {"uploads": {"bucket": "test-bucket"}}
    return {
        "rpc": {"listen": listen, **(rpc or {})},
        "s3": {
            "default": next(iter(buckets)),
            "servers": {"main": dict(server or OFFLINE_SERVER)},
            "buckets": {name: {"server": "main", **b} for name, b in buckets.items()},
            **(s3 or {}),
        },
    }


def endpoint_server(endpoint: Any) -> dict[str, Any]:
    """The config of a server for an ``S3Endpoint`` fixture."""
    return {
        "region": endpoint.region,
        "endpoint": endpoint.endpoint,
        "credentials": {"key": endpoint.access_key, "secret": endpoint.secret_key},
    }


@asynccontextmanager
async def running_app(config: Mapping[str, Any]) -> AsyncIterator[tuple[Application, str]]:
    """Start the application; yield it and its address; stop it (gracefully) on exit."""
    app = Application(parse_config(dict(config)))
    await app.server.open()  # a bad listen address raises here, not wrapped in a group
    async with trio.open_nursery() as nursery:
        address = await nursery.start(app.run)
        try:
            yield app, str(address)
        finally:
            # Idle connections close at once; the nursery waits for the drain.
            app.request_shutdown()
