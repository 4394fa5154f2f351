"""Real S3 services for the test suite: a moto server launcher and direct inspection helpers.

SeaweedFS is launched by ``trio_s3rpc.embedded`` itself (the suite tests what
``serve --embedded`` ships); moto adds what SeaweedFS lacks, such as ACLs.
Both yield an ``S3Endpoint``; ``admin_client`` gives tests a plain botocore
client on it, to check what really landed on the service.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import botocore.config
import botocore.session

from trio_s3rpc.embedded import S3Endpoint, s3_client, terminate_process

MOTO_CREDENTIALS = "testing"  # moto accepts any key and secret


def admin_client(endpoint: S3Endpoint) -> Any:
    """A path-style botocore S3 client with the endpoint's credentials."""
    return botocore.session.get_session().create_client(
        "s3",
        endpoint_url=endpoint.endpoint,
        region_name=endpoint.region,
        aws_access_key_id=endpoint.access_key,
        aws_secret_access_key=endpoint.secret_key,
        config=botocore.config.Config(
            s3={"addressing_style": "path"}, retries={"max_attempts": 3}, read_timeout=30
        ),
    )


def open_uploads(endpoint: S3Endpoint, prefix: str, bucket: str = "test-bucket") -> list[str]:
    """The keys of the multipart uploads open under ``prefix`` in ``bucket``."""
    answer = admin_client(endpoint).list_multipart_uploads(Bucket=bucket, Prefix=prefix)
    return [upload["Key"] for upload in answer.get("Uploads", [])]


def open_multipart_uploads(endpoint: S3Endpoint) -> list[str]:
    """Every multipart upload still open on the service, as ``bucket/key (upload id)``."""
    client = admin_client(endpoint)
    found = []
    for bucket in client.list_buckets()["Buckets"]:
        paginator = client.get_paginator("list_multipart_uploads")
        for page in paginator.paginate(Bucket=bucket["Name"]):
            for upload in page.get("Uploads", []):
                found.append(f"{bucket['Name']}/{upload['Key']} ({upload['UploadId']})")
    return found


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def find_moto_server() -> str:
    candidate = Path(sys.executable).parent / "moto_server"
    if candidate.is_file():
        return str(candidate)
    found = shutil.which("moto_server")
    if found is None:
        raise RuntimeError("moto is not installed: pip install 'moto[server]'")
    return found


class MotoServer:
    """``moto_server`` on 127.0.0.1 and a free port; its output goes to ``log_path``."""

    def __init__(self, log_path: str | os.PathLike[str], *, startup_timeout: float = 30.0) -> None:
        self.log_path = Path(log_path)
        self.startup_timeout = startup_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._endpoint: S3Endpoint | None = None

    @property
    def endpoint(self) -> S3Endpoint:
        if self._endpoint is None:
            raise RuntimeError("moto is not running; call start() first")
        return self._endpoint

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self) -> S3Endpoint:
        """Start moto and wait until it answers ListBuckets; stops it again on failure."""
        if self._endpoint is not None:
            return self._endpoint
        port = free_port()
        command = [find_moto_server(), "-H", "127.0.0.1", "-p", str(port)]
        endpoint = S3Endpoint(f"http://127.0.0.1:{port}", MOTO_CREDENTIALS, MOTO_CREDENTIALS)
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        try:
            self._wait_until_ready(endpoint)
        except BaseException:
            self.stop()
            raise
        self._endpoint = endpoint
        return endpoint

    def stop(self) -> None:
        """SIGTERM, then SIGKILL; idempotent."""
        process, self._process, self._endpoint = self._process, None, None
        if process is not None:
            terminate_process(process)

    def __enter__(self) -> S3Endpoint:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _wait_until_ready(self, endpoint: S3Endpoint) -> None:
        assert self._process is not None
        client = s3_client(endpoint)  # one attempt per poll: no retry backoff
        deadline = time.monotonic() + self.startup_timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                break
            try:
                client.list_buckets()
                return
            except Exception as exc:  # still importing or not yet listening
                last_error = exc
            time.sleep(0.05)
        tail = self.log_path.read_bytes()[-2000:].decode(errors="replace")
        raise RuntimeError(f"moto_server did not start (last error: {last_error!r}):\n{tail}")
