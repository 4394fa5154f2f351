"""JSON logs: the same events and fields as the key=value lines, one object per line.

The unit tests feed log records through both formatters; the end-to-end test
runs ``trio-s3rpc serve`` with ``s3.logs.format: json`` against SeaweedFS,
makes calls that succeed and fail, stops it with SIGTERM, and reads its
stderr back line by line.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import trio
import yaml

from tests.support.server import endpoint_server
from tests.support.services import free_port
from trio_s3rpc.client import RemoteError, RPCClient
from trio_s3rpc.embedded import S3Endpoint
from trio_s3rpc.logs import JSONFormatter, record_fields, setup_logging


def record(message: str, *args: Any, name: str = "trio_s3rpc") -> logging.LogRecord:
    return logging.LogRecord(name, logging.INFO, __file__, 1, message, args, None)


def test_key_value_fields_keep_their_names_and_types() -> None:
    fields = record_fields(
        record("event=upload_aborted bucket=%s key=%s parts=%d", "uploads", "a b.txt", 3)
    )
    assert fields == {"event": "upload_aborted", "bucket": "uploads", "key": "a b.txt", "parts": 3}


def test_repr_values_are_the_strings_and_free_words_the_message() -> None:
    fields = record_fields(
        record(
            "event=bad_frame connection=%d peer=%s error=%r; closing connection",
            7,
            "127.0.0.1:5000",
            "header CRC mismatch",
        )
    )
    assert fields == {
        "event": "bad_frame",
        "connection": 7,
        "peer": "127.0.0.1:5000",
        "error": "header CRC mismatch",
        "message": "closing connection",
    }


def test_a_leading_bare_word_is_the_event_and_floats_keep_their_precision() -> None:
    fields = record_fields(
        record("s3_retry operation=%s status=%d delay=%.2f", "PutObject", 503, 0.123456)
    )
    assert fields == {"event": "s3_retry", "operation": "PutObject", "status": 503, "delay": 0.12}


def test_literal_values_and_library_records() -> None:
    assert record_fields(record("event=signal name=%s action=stop_now", "SIGINT")) == {
        "event": "signal",
        "name": "SIGINT",
        "action": "stop_now",
    }
    assert record_fields(record("HTTP Request: %s %s", "GET", "http://x", name="httpx")) == {
        "event": "log",
        "message": "HTTP Request: GET http://x",
    }
    # A message that does not fit its arguments is still logged, whole.
    assert record_fields(record("event=odd value=%s %s", "only-one")) == {
        "event": "log",
        "message": "event=odd value=%s %s ('only-one',)",
    }


def test_both_formats_carry_the_same_line() -> None:
    text, lines = io.StringIO(), io.StringIO()
    message = ("event=visibility_probe bucket=%s mode=%s", "uploads", "none")
    for stream, log_format in ((text, "text"), (lines, "json")):
        setup_logging("info", log_format, stream)
        logging.getLogger("trio_s3rpc.storage").info(*message)
    setup_logging("warning", "text")
    assert text.getvalue().rstrip().endswith("event=visibility_probe bucket=uploads mode=none")
    document = json.loads(lines.getvalue())
    assert document["event"] == "visibility_probe"
    assert document["bucket"] == "uploads" and document["mode"] == "none"
    assert document["level"] == "info" and document["logger"] == "trio_s3rpc.storage"
    assert document["time"].endswith("Z")


def test_an_exception_is_one_field_of_one_line() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        exc_record = logging.LogRecord(
            "trio_s3rpc", logging.ERROR, __file__, 1, "internal_error id=%s", ("abc",),
            sys.exc_info(),
        )  # fmt: skip
    line = JSONFormatter().format(exc_record)
    assert "\n" not in line
    document = json.loads(line)
    assert document["event"] == "internal_error" and document["id"] == "abc"
    assert "ValueError: boom" in document["exception"]


def start_server(config: Path, port: int, log: Path, *flags: str) -> subprocess.Popen[bytes]:
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "trio_s3rpc", *flags, "serve", "--config", str(config)],
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 30
    # "serving" (the banner, or the JSON event) comes once every worker serves.
    while b"serving" not in log.read_bytes():
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            process.wait()
            raise RuntimeError(f"the server did not start:\n{log.read_text()}")
        time.sleep(0.05)
    socket.create_connection(("127.0.0.1", port), timeout=5).close()
    return process


@pytest.mark.integration
@pytest.mark.parametrize("chosen_by", ["config", "flag"])
async def test_serve_writes_json_lines_without_secrets(
    seaweedfs: S3Endpoint, tmp_path: Path, chosen_by: str
) -> None:
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    config = tmp_path / ".rr.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "rpc": {"listen": address},
                "s3": {
                    # The flag wins over the config.
                    "logs": {"format": "json" if chosen_by == "config" else "text"},
                    "metrics": {"address": "127.0.0.1:0"},
                    "status": {"address": "127.0.0.1:0"},
                    "servers": {"main": endpoint_server(seaweedfs)},
                    "buckets": {
                        "uploads": {
                            "server": "main",
                            "bucket": "test-bucket",
                            "prefix": "json-logs/",
                            "visibility_mode": "auto",  # logs its probe
                            "partsize": 1,  # a config warning
                        }
                    },
                },
            }
        )
    )
    flags = ["--log-format", "json"] if chosen_by == "flag" else []
    log = tmp_path / "server.log"
    process = start_server(config, port, log, *flags)
    try:
        async with await RPCClient.connect(address) as rpc:
            content = base64.b64encode(b"logged").decode()
            await rpc.call("s3.Write", {"pathname": "a.txt", "content": content})
            with pytest.raises(RemoteError):
                await rpc.call("s3.Read", {"pathname": "missing.txt"})
            await rpc.call("s3.Delete", {"pathname": "a.txt"})
        process.send_signal(signal.SIGTERM)
        try:
            code = await trio.to_thread.run_sync(lambda: process.wait(30))
        except subprocess.TimeoutExpired:
            pytest.fail(f"no exit 30 s after SIGTERM:\n{log.read_text()}")
        assert code == 0, log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    output = log.read_text()
    lines = [line for line in output.splitlines() if line.strip()]
    documents = [json.loads(line) for line in lines]  # every line is one JSON object
    events = [document["event"] for document in documents]
    for event in (
        "config_warning",
        "listening",
        "http_listening",
        "serving",
        "visibility_probe",
        "signal",
        "shutdown_started",
        "shutdown_complete",
    ):
        assert event in events, f"{event} missing from {events}"
    probe = next(d for d in documents if d["event"] == "visibility_probe")
    assert probe["bucket"] == "uploads" and probe["mode"] in ("acl", "none")
    assert seaweedfs.secret_key not in output
    assert seaweedfs.access_key not in output


HOSTILE = "x\nlevel=ERROR logger=forged event=owned\x1b[2J\r\u2028y\u2029\x85\x7f\x00z"


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_no_value_can_break_a_line_or_drive_a_terminal(log_format: str) -> None:
    out = io.StringIO()
    setup_logging("info", log_format, out)
    try:
        logging.getLogger("trio_s3rpc.storage").info(
            "event=bucket_registered name=%s server=%s", HOSTILE, "main"
        )
    finally:
        setup_logging("warning", "text")
    text = out.getvalue()
    assert text.count("\n") == 1 and text.endswith("\n")  # one record, one line
    for raw in ("\x1b", "\r", "\u2028", "\u2029", "\x85", "\x7f", "\x00"):
        assert raw not in text, repr(raw)
    if log_format == "json":
        assert json.loads(text)["name"] == HOSTILE  # the value itself, escaped as JSON
    else:
        assert (
            "name=x\\x0alevel=ERROR logger=forged event=owned\\x1b[2J\\x0d\\u2028y\\u2029"
            "\\x85\\x7f\\x00z server=main"
        ) in text
