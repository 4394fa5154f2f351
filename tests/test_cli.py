"""The ``trio-s3rpc`` command as an operator runs it: check-config, serve, signals."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import trio
import yaml

from tests.support.services import free_port
from trio_s3rpc.client import RemoteError, RPCClient

SECRET = "s3cr3t-value-that-must-not-leak"


def write_config(path: Path, listen: str, **s3: object) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "version": "3",
                "rpc": {"listen": listen},
                "http": {"address": "0.0.0.0:8080"},  # other RoadRunner sections are ignored
                "s3": {
                    "servers": {
                        "main": {
                            "region": "us-east-1",
                            # Nothing listens here: calls retry for seconds, then fail.
                            "endpoint": "http://127.0.0.1:9",
                            "credentials": {"key": "AKIAEXAMPLEKEY", "secret": SECRET},
                        }
                    },
                    "buckets": {"uploads": {"server": "main", "bucket": "bkt", "partsize": 1}},
                    **s3,
                },
            }
        )
    )
    return path


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trio_s3rpc", *args], capture_output=True, text=True, timeout=60
    )


def test_check_config_prints_what_would_be_served_with_secrets_masked(tmp_path: Path) -> None:
    config = write_config(tmp_path / ".rr.yaml", "tcp://127.0.0.1:6001")
    result = run_cli("check-config", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert "tcp://127.0.0.1:6001" in result.stdout
    assert "uploads" in result.stdout
    assert SECRET not in result.stdout + result.stderr
    assert "AKIAEXAMPLEKEY" not in result.stdout
    # A typo is warned about, with a suggestion.
    assert "partsize" in result.stdout and "part_size" in result.stdout


def test_check_config_fails_naming_the_field(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(
        "s3:\n  servers:\n    main: {region: r, credentials: {key: k, secret: s}}\n"
        "  buckets:\n    uploads: {server: nope, bucket: b}\n"
    )
    result = run_cli("check-config", "--config", str(config))
    assert result.returncode == 1
    assert "INVALID_CONFIG" in result.stderr
    assert "s3.buckets.uploads.server" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_refuses_a_bad_listen_address_clearly(tmp_path: Path) -> None:
    config = write_config(tmp_path / ".rr.yaml", "tcp://127.0.0.1:6001")
    result = run_cli("serve", "--config", str(config), "--listen", "udp://nowhere")
    assert result.returncode == 1
    assert "INVALID_CONFIG" in result.stderr and "udp://nowhere" in result.stderr
    assert "Traceback" not in result.stderr


def start_server(config: Path, port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, "-m", "trio_s3rpc", "serve", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process
        except OSError:
            if time.monotonic() > deadline:
                process.kill()
                raise
            time.sleep(0.05)


async def test_sigterm_lets_the_call_in_flight_finish_then_exits_zero(tmp_path: Path) -> None:
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    process = start_server(write_config(tmp_path / ".rr.yaml", address), port)
    try:
        async with await RPCClient.connect(address) as rpc:
            answers: list[str] = []
            async with trio.open_nursery() as nursery:

                async def slow_call() -> None:
                    # The storage service is down: the call retries for seconds.
                    try:
                        await rpc.call("s3.Exists", {"pathname": "a.txt"})
                    except RemoteError as exc:
                        answers.append(exc.code)

                nursery.start_soon(slow_call)
                await trio.sleep(0.5)
                process.send_signal(signal.SIGTERM)
                # The listener closes at once (polled, so a busy machine does
                # not fail the test; the hang guard bounds the wait)...
                with trio.fail_after(20):
                    while True:
                        try:
                            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                        except OSError:
                            break
                        await trio.sleep(0.05)
            # ...but the call in flight got its answer.
            assert answers == ["S3_OPERATION_FAILED"]
        assert process.wait(30) == 0
        output = process.stdout.read().decode() if process.stdout else ""
        assert "shutdown_complete" in output
        assert SECRET not in output
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
