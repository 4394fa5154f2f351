"""The PHP package ``php/`` run by PHP itself against live servers.

Each test starts this server (on a TCP port and on a unix socket, buckets on
SeaweedFS and on moto; for the RGW run, one on Ceph's RADOS Gateway), hands the
addresses to a PHPUnit suite in environment variables, and asserts that
PHPUnit passed with nothing skipped. The suites
are in ``php/tests``; Flysystem's own ``FilesystemAdapterTestCase`` comes from
Flysystem's source as Debian ships it (see ``.ci/install-php``).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import subprocess
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio

from tests.conftest import MOTO_ACL_BUCKET, RGW_ACL_BUCKET
from tests.support.php import PHP_DIR, require_php
from tests.support.proxy import TCPProxy
from tests.support.server import endpoint_server, running_app
from tests.support.services import free_port
from trio_s3rpc.client import RemoteError, RPCClient

pytestmark = pytest.mark.integration

GIB = 1 << 30


def php_config(
    seaweedfs: Any,
    moto: Any,
    run_id: str,
    local_root: Path,
    listen: str,
    *,
    extra_servers: dict[str, Any] | None = None,
    extra_buckets: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The server the PHP suites run against. ``extra_servers``/``extra_buckets`` add
    services and buckets (another S3 service's, say); a suite is pointed at such a
    bucket with ``TRIO_S3RPC_BUCKET_<NAME>`` (``LiveServer::bucket``)."""
    sw = endpoint_server(seaweedfs)
    wrong = {**sw, "credentials": {"key": seaweedfs.access_key, "secret": "not-the-secret"}}

    def bucket(server: str, name: str, prefix: str, mode: str, **extra: Any) -> dict[str, Any]:
        return {
            "server": server,
            "bucket": name,
            "prefix": f"php-{run_id}/{prefix}/",
            "visibility_mode": mode,
            **extra,
        }

    return {
        "rpc": {"listen": listen},
        "s3": {
            "default": "sw",
            "local_roots": [str(local_root)],
            "servers": {
                "seaweedfs": sw,
                "moto": endpoint_server(moto),
                "wrong-secret": wrong,
                **(extra_servers or {}),
            },
            "buckets": {
                "sw": bucket("seaweedfs", "test-bucket", "client", "none"),
                "moto": bucket("moto", MOTO_ACL_BUCKET, "client", "acl"),
                "fly-sw": bucket("seaweedfs", "test-bucket", "flysystem", "none"),
                "fly-moto": bucket("moto", MOTO_ACL_BUCKET, "flysystem", "acl"),
                "denied": bucket("wrong-secret", "test-bucket", "denied", "none"),
                # SeaweedFS creates a bucket on first write; moto answers NoSuchBucket.
                "no-such-bucket": bucket("moto", f"absent-{run_id}", "x", "none"),
                **(extra_buckets or {}),
            },
        },
    }


@pytest.fixture
async def php_env(
    seaweedfs: Any, moto: Any, tmp_path: Path, nursery: trio.Nursery
) -> AsyncIterator[dict[str, str]]:
    """The environment a PHP suite needs: the server over tcp and unix, and a cutting proxy."""
    require_php()
    run_id = secrets.token_hex(4)
    local_root = tmp_path / "files"
    local_root.mkdir()
    tcp_config = php_config(seaweedfs, moto, run_id, local_root, "tcp://127.0.0.1:0")
    unix_config = php_config(seaweedfs, moto, run_id, local_root, f"unix://{tmp_path}/rpc.sock")
    async with running_app(tcp_config) as (_, tcp), running_app(unix_config) as (_, unix):
        host, port = tcp.removeprefix("tcp://").rsplit(":", 1)
        proxy = TCPProxy(host, int(port))
        proxy.cut_after_bytes = 12 << 20  # every connection through it breaks after 12 MiB
        proxy_port = await proxy.start(nursery)
        yield {
            "TRIO_S3RPC_TCP": tcp,
            "TRIO_S3RPC_UNIX": unix,
            "TRIO_S3RPC_CUTTING_PROXY": f"tcp://127.0.0.1:{proxy_port}",
            "TRIO_S3RPC_LOCAL_ROOT": str(local_root),
            "TRIO_S3RPC_SEAWEEDFS": seaweedfs.endpoint,
            "TRIO_S3RPC_MOTO": moto.endpoint,
        }


async def run_php(
    argv: list[str], env: dict[str, str], **kwargs: Any
) -> trio.CompletedProcess[bytes]:
    return await trio.run_process(
        argv,
        env={**os.environ, **env},
        cwd=PHP_DIR,
        capture_stdout=True,
        capture_stderr=True,
        check=False,
        **kwargs,
    )


async def run_phpunit(env: dict[str, str], *args: str) -> str:
    _, phpunit = require_php()
    result = await run_php(
        [
            phpunit,
            "-c",
            "phpunit.xml.dist",
            "--fail-on-skipped",
            "--fail-on-warning",
            "--fail-on-risky",
            "--fail-on-incomplete",
            *args,
        ],
        env,
    )
    output = result.stdout.decode(errors="replace") + result.stderr.decode(errors="replace")
    assert result.returncode == 0, output
    assert "OK (" in output, output
    print(output)
    return output


async def test_php_unit_suite_offline_against_a_fake_transport() -> None:
    """Frames, error parsing, retries, resume and option mapping: no server, no network."""
    await run_phpunit({}, "--testsuite", "unit")


async def test_php_client_every_method_both_codecs_both_sockets(php_env: dict[str, str]) -> None:
    await run_phpunit(php_env, "--testsuite", "client")


async def test_flysystem_adapter_test_case_against_moto_acl(php_env: dict[str, str]) -> None:
    await run_phpunit(php_env, "tests/Flysystem/MotoAdapterTest.php")


async def test_flysystem_adapter_test_case_against_seaweedfs_none(php_env: dict[str, str]) -> None:
    await run_phpunit(php_env, "tests/Flysystem/SeaweedFsAdapterTest.php")


async def test_flysystem_adapter_test_case_against_rgw_acl(
    php_env: dict[str, str], rgw: Any
) -> None:
    """The same suite on a production store with real object ACLs (Ceph RGW)."""
    config = {
        "rpc": {"listen": "tcp://127.0.0.1:0"},
        "s3": {
            "default": "fly-rgw",
            "servers": {"rgw": endpoint_server(rgw)},
            "buckets": {
                "fly-rgw": {
                    "server": "rgw",
                    "bucket": RGW_ACL_BUCKET,
                    "prefix": f"php-{secrets.token_hex(4)}/flysystem/",
                    "visibility_mode": "acl",
                }
            },
        },
    }
    async with running_app(config) as (_, address):
        await run_phpunit(
            {**php_env, "TRIO_S3RPC_RGW_TCP": address}, "tests/Flysystem/RgwAdapterTest.php"
        )


async def test_laravel_and_symfony_recipes_of_the_php_readme(php_env: dict[str, str]) -> None:
    await run_phpunit(php_env, "--testsuite", "frameworks")


async def test_shutting_down_reaches_php_as_its_own_exception(
    php_env: dict[str, str], seaweedfs: Any, moto: Any, tmp_path: Path
) -> None:
    """A WriteFile still running when the server stops, past its grace period."""
    _, phpunit = require_php()
    local_root = Path(php_env["TRIO_S3RPC_LOCAL_ROOT"])
    with (local_root / "sparse-1g.bin").open("wb") as sparse:
        sparse.truncate(GIB)  # no disk used: long enough to outlast a one-second grace
    config = php_config(seaweedfs, moto, secrets.token_hex(4), local_root, "tcp://127.0.0.1:0")
    config["s3"]["shutdown_timeout"] = 1
    transfer_id = f"stopping-{secrets.token_hex(4)}"
    async with running_app(config) as (app, address):
        env = {
            **php_env,
            "TRIO_S3RPC_STOPPING": address,
            "TRIO_S3RPC_STOPPING_TRANSFER": transfer_id,
        }
        argv = [
            phpunit,
            "-c",
            "phpunit.xml.dist",
            "--fail-on-skipped",
            "--fail-on-warning",
            "tests/Stopping/ShuttingDownTest.php",
        ]
        async with trio.open_nursery() as nursery:
            process = await nursery.start(
                partial(
                    trio.run_process,
                    argv,
                    env={**os.environ, **env},
                    cwd=PHP_DIR,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    check=False,
                )
            )
            output = bytearray()

            async def collect() -> None:
                async for data in process.stdout:
                    output.extend(data)

            nursery.start_soon(collect)
            async with await RPCClient.connect(address) as rpc:
                while True:
                    try:
                        status = await rpc.call("s3.TransferStatus", {"transfer_id": transfer_id})
                    except RemoteError:
                        status = {}
                    if status.get("state") == "running" and status.get("bytes_done", 0) > 0:
                        break
                    await trio.sleep(0.05)
            app.request_shutdown()
    text = output.decode(errors="replace")
    assert process.returncode == 0, text
    assert "OK (1 test" in text, text


@pytest.mark.parametrize("codec", ["json", "msgpack"])
async def test_one_gib_stream_round_trip_under_64m(
    php_env: dict[str, str], tmp_path: Path, codec: str
) -> None:
    """writeStream of a 1 GiB file, then fpassthru of readStream, byte-exact, memory_limit=64M."""
    php, _ = require_php()
    source = Path(php_env["TRIO_S3RPC_LOCAL_ROOT"]) / "gib.bin"
    expected = hashlib.sha256()
    block = secrets.token_bytes(1 << 20)
    with source.open("wb") as out:
        for index in range(GIB >> 20):
            # Distinct blocks, so a misplaced range would change the hash.
            piece = index.to_bytes(8, "little") + block[8:]
            expected.update(piece)
            out.write(piece)
    received = hashlib.sha256()
    counts = {"stdout": 0}
    errors = bytearray()

    async def hash_stdout(stream: trio.abc.ReceiveStream) -> None:
        async for data in stream:
            received.update(data)
            counts["stdout"] += len(data)

    async def collect_stderr(stream: trio.abc.ReceiveStream) -> None:
        async for data in stream:
            errors.extend(data)

    argv = [php, "-d", "memory_limit=64M", "tests/scripts/gib-round-trip.php", str(source), codec]
    async with trio.open_nursery() as nursery:
        process = await nursery.start(
            partial(
                trio.run_process,
                argv,
                env={**os.environ, **php_env},
                cwd=PHP_DIR,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                check=False,
            )
        )
        nursery.start_soon(hash_stdout, process.stdout)
        nursery.start_soon(collect_stderr, process.stderr)
    report = errors.decode(errors="replace")
    assert process.returncode == 0, report
    assert counts["stdout"] == GIB, report
    assert received.hexdigest() == expected.hexdigest(), report
    print(report)  # the figures: seconds and PHP's peak memory for each direction
    source.unlink()


async def test_php_clients_survive_a_server_restart_mid_use(
    php_env: dict[str, str], seaweedfs: Any, moto: Any, tmp_path: Path
) -> None:
    """The server stopped and started again on its address while PHP holds connections and
    a readStream one range in: every kind of client works again, the stream resumes."""
    php, _ = require_php()
    listen = f"tcp://127.0.0.1:{free_port()}"
    local_root = Path(php_env["TRIO_S3RPC_LOCAL_ROOT"])
    config = php_config(seaweedfs, moto, secrets.token_hex(4), local_root, listen)
    env = {**os.environ, **php_env, "TRIO_S3RPC_RESTARTING": listen}
    argv = [php, "tests/scripts/restart.php"]
    output = bytearray()
    ready = trio.Event()

    async def collect(stdout: trio.abc.ReceiveStream) -> None:
        async for data in stdout:
            output.extend(data)
            if b"ready\n" in output:
                ready.set()
        ready.set()  # the script ended (failed) before it was ready

    with trio.fail_after(120):
        async with trio.open_nursery() as nursery:
            async with running_app(config):
                process = await nursery.start(
                    partial(
                        trio.run_process,
                        argv,
                        env=env,
                        cwd=PHP_DIR,
                        stdin=subprocess.PIPE,
                        stdout=subprocess.PIPE,
                        stderr=subprocess.STDOUT,
                        check=False,
                    )
                )
                nursery.start_soon(collect, process.stdout)
                await ready.wait()
            assert b"ready\n" in output, output.decode(errors="replace")
            # Stopped: the stream's next range and every connection meet a closed server.
            await process.stdin.send_all(b"go\n")
            async with running_app(config):
                await process.wait()
    text = output.decode(errors="replace")
    assert process.returncode == 0, text
    assert text.rstrip().endswith("done"), text
    print(text)
