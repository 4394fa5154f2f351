"""One operation of each workload, for each kind of client, as the load generator calls it.

Four clients do the same work against the same service:

- ``rpc``: our server through :class:`trio_s3rpc.client.RPCClient`, one
  connection per task, JSON codec with base64 content as PHP sends it; a
  Read's content is decoded, as PHP would. ``rpc-msgpack`` is the same with
  the msgpack codec (raw bytes, no base64), which PHP can choose too.
- ``transport``: :class:`trio_s3rpc.s3.transport.S3Transport` used directly,
  our own optimised S3 stack without the RPC hop (its floor).
- ``httpx``: a plain ``httpx.AsyncClient`` with botocore's ``S3SigV4Auth``,
  the naive trio+httpx floor.
- ``boto3``: boto3 from threads, what a Python user would write.

Every operation checks its answer (status, size, existence), so a fast
failure can never count as a fast success.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import httpx
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotocoreCredentials

from benchmarks.server import RPC_BUCKET
from benchmarks.target import S3Target
from trio_s3rpc.client import RPCClient
from trio_s3rpc.config import Credentials, ServerConfig
from trio_s3rpc.s3.transport import S3Transport

AsyncOperation = Callable[[int], Awaitable[None]]
"""Called with the task's iteration number; raises on any failure."""
SyncOperation = Callable[[int], None]

TRIO_CLIENTS = ("rpc", "rpc-msgpack", "transport", "httpx")
THREAD_CLIENTS = ("boto3",)
CLIENTS = (*TRIO_CLIENTS, *THREAD_CLIENTS)
OBJECT_WORKLOADS = ("write", "read", "exists")
WORKLOADS = ("listbuckets", *OBJECT_WORKLOADS)
WRITE_KEYS_PER_TASK = 16
HTTP_TIMEOUT = 60.0


@dataclass(slots=True, frozen=True)
class CellSpec:
    """What one worker process runs for one cell: its share of the connections."""

    workload: str
    client: str
    size: int
    connections: int
    worker: int
    rpc_address: str
    target: S3Target
    fixture_count: int


class WrongAnswer(Exception):
    """The service answered, but not what the operation asked for."""


def fixture_key(size: int, index: int) -> str:
    """Pathname (below the run's prefix) of a pre-written object that Read/Exists use."""
    return f"fixtures/{size}/{index}"


def write_key(spec: CellSpec, task: int, iteration: int) -> str:
    # Each task rewrites its own few keys: no two writers race on one key.
    return f"write/{spec.size}/{spec.worker}-{task}-{iteration % WRITE_KEYS_PER_TASK}"


def read_key(spec: CellSpec, task: int, iteration: int) -> str:
    return fixture_key(spec.size, (task * 7 + iteration) % spec.fixture_count)


def payload(size: int) -> bytes:
    return os.urandom(size)


# -- rpc ------------------------------------------------------------------------


def rpc_codec(client: str) -> str:
    """``msgpack`` for ``rpc-msgpack`` and a peer's ``peer:NAME-msgpack``, else ``json``."""
    return "msgpack" if client.endswith("-msgpack") else "json"


async def rpc_operations(spec: CellSpec, stack: AsyncExitStack) -> list[AsyncOperation]:
    """Our server's cells, or a Goridge peer's (``peer:NAME``): ``spec.rpc_address`` says whose."""
    codec = rpc_codec(spec.client)
    content = payload(spec.size)
    # JSON carries bytes as base64 text (what PHP's base64_encode produces).
    encoded = content if codec == "msgpack" else base64.b64encode(content).decode("ascii")
    operations = []
    for task in range(spec.connections):
        client = await RPCClient.connect(spec.rpc_address, codec=codec)
        stack.push_async_callback(client.aclose)
        operations.append(_rpc_operation(spec, client, task, encoded))
    return operations


def _content_bytes(content: str | bytes) -> bytes:
    return base64.b64decode(content) if isinstance(content, str) else content


def _rpc_operation(
    spec: CellSpec, rpc: RPCClient, task: int, encoded: str | bytes
) -> AsyncOperation:
    if spec.workload == "listbuckets":

        async def list_buckets(iteration: int) -> None:
            # {} rather than PHP's [] (an empty array): the Go plugin refuses []
            # ("invalid character '['"); ours reads both the same way.
            answer = await rpc.call("s3.ListBuckets", {})
            if RPC_BUCKET not in answer.get("buckets", ()):
                raise WrongAnswer(f"ListBuckets answered {answer!r}")

        return list_buckets
    if spec.workload == "write":

        async def write(iteration: int) -> None:
            args = {
                "bucket": RPC_BUCKET,
                "pathname": write_key(spec, task, iteration),
                "content": encoded,
            }
            answer = await rpc.call("s3.Write", args)
            if answer.get("size") != spec.size:
                raise WrongAnswer(f"Write answered {answer!r}")

        return write
    if spec.workload == "read":

        async def read(iteration: int) -> None:
            args = {"bucket": RPC_BUCKET, "pathname": read_key(spec, task, iteration)}
            answer = await rpc.call("s3.Read", args)
            if len(_content_bytes(answer["content"])) != spec.size:
                raise WrongAnswer(f"Read answered {answer.get('size')} bytes")

        return read

    async def exists(iteration: int) -> None:
        args = {"bucket": RPC_BUCKET, "pathname": read_key(spec, task, iteration)}
        answer = await rpc.call("s3.Exists", args)
        if answer.get("exists") is not True:
            raise WrongAnswer(f"Exists answered {answer!r}")

    return exists


# -- S3Transport ----------------------------------------------------------------


async def transport_operations(spec: CellSpec, stack: AsyncExitStack) -> list[AsyncOperation]:
    target = spec.target
    server = ServerConfig(
        name="bench",
        region=target.region,
        endpoint=target.endpoint,
        credentials=Credentials(target.access_key, target.secret_key),
        force_path_style=target.path_style,
    )
    transport = S3Transport(server, max_connections=spec.connections)
    stack.push_async_callback(transport.aclose)
    content = payload(spec.size)
    return [
        _transport_operation(spec, transport, task, content) for task in range(spec.connections)
    ]


def _transport_operation(
    spec: CellSpec, transport: S3Transport, task: int, content: bytes
) -> AsyncOperation:
    bucket, prefix = spec.target.bucket, spec.target.prefix
    if spec.workload == "write":
        headers = {"Content-Type": "application/octet-stream"}

        async def write(iteration: int) -> None:
            key = prefix + write_key(spec, task, iteration)
            await transport.request("PutObject", "PUT", bucket, key, headers=headers, body=content)

        return write
    if spec.workload == "read":

        async def read(iteration: int) -> None:
            key = prefix + read_key(spec, task, iteration)
            response = await transport.request("GetObject", "GET", bucket, key)
            if len(response.content) != spec.size:
                raise WrongAnswer(f"GET answered {len(response.content)} bytes")

        return read

    async def exists(iteration: int) -> None:
        key = prefix + read_key(spec, task, iteration)
        await transport.request("HeadObject", "HEAD", bucket, key)

    return exists


# -- httpx + botocore signing ---------------------------------------------------


class _Signer:
    """botocore's S3 SigV4 signer applied to a request we send with httpx."""

    def __init__(self, target: S3Target) -> None:
        credentials = BotocoreCredentials(target.access_key, target.secret_key)
        self._auth = S3SigV4Auth(credentials, "s3", target.region)

    def headers(self, method: str, url: str, body: bytes = b"") -> dict[str, str]:
        request = AWSRequest(method=method, url=url, data=body)
        self._auth.add_auth(request)
        return dict(request.headers.items())


async def httpx_operations(spec: CellSpec, stack: AsyncExitStack) -> list[AsyncOperation]:
    limits = httpx.Limits(
        max_connections=spec.connections, max_keepalive_connections=spec.connections
    )
    client = httpx.AsyncClient(limits=limits, timeout=HTTP_TIMEOUT, trust_env=False)
    await stack.enter_async_context(client)
    signer = _Signer(spec.target)
    content = payload(spec.size)
    return [
        _httpx_operation(spec, client, signer, task, content) for task in range(spec.connections)
    ]


def _httpx_operation(
    spec: CellSpec, client: httpx.AsyncClient, signer: _Signer, task: int, content: bytes
) -> AsyncOperation:
    target = spec.target

    def check(response: httpx.Response) -> None:
        if response.status_code != 200:
            raise WrongAnswer(f"{response.request.method} answered {response.status_code}")

    if spec.workload == "write":

        async def write(iteration: int) -> None:
            url = target.object_url(target.prefix + write_key(spec, task, iteration))
            headers = signer.headers("PUT", url, content)
            check(await client.put(url, content=content, headers=headers))

        return write
    if spec.workload == "read":

        async def read(iteration: int) -> None:
            url = target.object_url(target.prefix + read_key(spec, task, iteration))
            response = await client.get(url, headers=signer.headers("GET", url))
            check(response)
            if len(response.content) != spec.size:
                raise WrongAnswer(f"GET answered {len(response.content)} bytes")

        return read

    async def exists(iteration: int) -> None:
        url = target.object_url(target.prefix + read_key(spec, task, iteration))
        check(await client.head(url, headers=signer.headers("HEAD", url)))

    return exists


# -- boto3 ----------------------------------------------------------------------


def boto3_operations(spec: CellSpec) -> list[SyncOperation]:
    """One operation per thread, sharing one client (boto3 clients are thread-safe)."""
    client = spec.target.boto3_client(max_pool_connections=spec.connections)
    content = payload(spec.size)
    return [_boto3_operation(spec, client, task, content) for task in range(spec.connections)]


def _boto3_operation(spec: CellSpec, client: Any, task: int, content: bytes) -> SyncOperation:
    bucket, prefix = spec.target.bucket, spec.target.prefix
    if spec.workload == "write":

        def write(iteration: int) -> None:
            key = prefix + write_key(spec, task, iteration)
            client.put_object(Bucket=bucket, Key=key, Body=content)

        return write
    if spec.workload == "read":

        def read(iteration: int) -> None:
            key = prefix + read_key(spec, task, iteration)
            body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
            if len(body) != spec.size:
                raise WrongAnswer(f"GET answered {len(body)} bytes")

        return read

    def exists(iteration: int) -> None:
        client.head_object(Bucket=bucket, Key=prefix + read_key(spec, task, iteration))

    return exists


TrioFactory = Callable[[CellSpec, AsyncExitStack], Awaitable[list[AsyncOperation]]]
TRIO_FACTORIES: dict[str, TrioFactory] = {
    "rpc": rpc_operations,
    "rpc-msgpack": rpc_operations,
    "transport": transport_operations,
    "httpx": httpx_operations,
}


def trio_factory(client: str) -> TrioFactory | None:
    """How a trio client builds its operations; None for a thread client (boto3)."""
    if client.startswith("peer:"):
        return rpc_operations
    return TRIO_FACTORIES.get(client)
