"""A fake storage boundary for unit tests: it answers the few S3 requests a test needs
and records every request, without a network.

Integration tests never use it: every feature also runs against SeaweedFS or
moto. It stands in for :class:`S3Transport` below a real :class:`Storage`,
so the storage code above it runs unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import trio

from trio_s3rpc.config import parse_config
from trio_s3rpc.s3.transport import S3Error, S3Response
from trio_s3rpc.storage.buckets import Storage


@dataclass(slots=True)
class Sent:
    operation: str
    key: str | None
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body_size: int


@dataclass
class FakeTransport:
    """Objects by key (size only); one multipart upload at a time, which completes
    with whatever parts came."""

    sizes: dict[str, int] = field(default_factory=dict)
    sent: list[Sent] = field(default_factory=list)
    parts: dict[int, int] = field(default_factory=dict)  # part number -> size
    # Operation -> how many of its next requests fail as if the service were down.
    failures: dict[str, int] = field(default_factory=dict)
    # Operation -> how many of its requests succeed before every later one fails
    # (a service that goes down in the middle of an upload).
    fails_after: dict[str, int] = field(default_factory=dict)
    # Operation -> an event its requests wait for once received (a slow service).
    holds: dict[str, trio.Event] = field(default_factory=dict)
    # The ETag in the CompleteMultipartUpload answer ("" as Ceph RGW 16 answers), and
    # the one HeadObject answers.
    complete_etag: str = '"whole-2"'
    head_etag: str = '"source"'
    # The unfinished upload (id -> key): made when CreateMultipartUpload arrives, before
    # a hold delays its answer, and listed as moto lists every upload: initiated in 2010,
    # so the reaper finds it stale.
    uploads: dict[str, str] = field(default_factory=dict)

    def operations(self) -> list[str]:
        return [request.operation for request in self.sent]

    async def request(
        self,
        operation: str,
        method: str,
        bucket: str,
        key: str | None = None,
        *,
        query: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
        raise_errors: bool = True,
        **_: Any,
    ) -> S3Response:
        query = dict(query or {})
        self.sent.append(Sent(operation, key, query, dict(headers or {}), len(body)))
        await trio.lowlevel.checkpoint()
        if operation == "CreateMultipartUpload":
            self.uploads["up-1"] = key or ""
        if operation in self.holds:
            await self.holds[operation].wait()
        if self._down(operation):
            error = S3Error(operation, 503, "ServiceUnavailable", "the fake service is down")
            if not raise_errors:
                return S3Response.failed(error)
            raise error
        if operation == "UploadPart":
            self.parts[int(query["partNumber"])] = len(body)
        if operation in ("AbortMultipartUpload", "CompleteMultipartUpload"):
            self.uploads.pop(query["uploadId"], None)
        answers = {
            "HeadObject": lambda: self._head(key or ""),
            "CreateMultipartUpload": lambda: _xml(
                "<InitiateMultipartUploadResult><UploadId>up-1</UploadId>"
                "</InitiateMultipartUploadResult>"
            ),
            "UploadPart": lambda: S3Response(200, httpx.Headers({"etag": '"part"'}), b""),
            "UploadPartCopy": lambda: _xml(
                '<CopyPartResult><ETag>"part"</ETag>'
                "<LastModified>2026-01-01T00:00:00.000Z</LastModified></CopyPartResult>"
            ),
            "ListParts": self._list_parts,
            "ListMultipartUploads": lambda: self._list_uploads(query.get("prefix", "")),
            "CopyObject": lambda: _xml(
                '<CopyObjectResult><ETag>"copied"</ETag>'
                "<LastModified>2026-01-01T00:00:00.000Z</LastModified></CopyObjectResult>"
            ),
            "CompleteMultipartUpload": lambda: _xml(
                f"<CompleteMultipartUploadResult><ETag>{self.complete_etag}</ETag>"
                "</CompleteMultipartUploadResult>"
            ),
            "AbortMultipartUpload": lambda: S3Response(204, httpx.Headers(), b""),
        }
        return answers[operation]()

    def _down(self, operation: str) -> bool:
        """Whether this request of ``operation`` fails (see ``failures``, ``fails_after``)."""
        if self.failures.get(operation, 0) > 0:
            self.failures[operation] -= 1
            return True
        if operation in self.fails_after:
            self.fails_after[operation] -= 1
            return self.fails_after[operation] < 0
        return False

    def _list_parts(self) -> S3Response:
        listed = "".join(
            f'<Part><PartNumber>{number}</PartNumber><ETag>"part"</ETag><Size>{size}</Size></Part>'
            for number, size in sorted(self.parts.items())
        )
        return _xml(f"<ListPartsResult><UploadId>up-1</UploadId>{listed}</ListPartsResult>")

    def _list_uploads(self, prefix: str) -> S3Response:
        listed = "".join(
            f"<Upload><Key>{key}</Key><UploadId>{upload_id}</UploadId>"
            "<Initiated>2010-11-10T20:48:33.000Z</Initiated></Upload>"
            for upload_id, key in self.uploads.items()
            if key.startswith(prefix)
        )
        return _xml(
            "<ListMultipartUploadsResult><IsTruncated>false</IsTruncated>"
            f"{listed}</ListMultipartUploadsResult>"
        )

    def _head(self, key: str) -> S3Response:
        headers = {"content-length": str(self.sizes.get(key, 0)), "etag": self.head_etag}
        return S3Response(200, httpx.Headers(headers), b"")

    async def aclose(self) -> None:
        pass


def _xml(text: str) -> S3Response:
    body = b'<?xml version="1.0" encoding="UTF-8"?>' + text.encode()
    return S3Response(200, httpx.Headers({"content-type": "application/xml"}), body)


def fake_storage(**bucket: Any) -> tuple[Storage, FakeTransport]:
    """A Storage with one bucket ``b`` (visibility_mode none) whose transport is fake."""
    config = parse_config(
        {
            "s3": {
                "default": "b",
                "servers": {
                    "fake": {
                        "region": "us-east-1",
                        "endpoint": "http://127.0.0.1:9",
                        "credentials": {"key": "k", "secret": "s"},
                    }
                },
                "buckets": {
                    "b": {"server": "fake", "bucket": "bkt", "visibility_mode": "none", **bucket}
                },
            }
        },
        source="test",
    )
    storage = Storage(config.s3)
    transport = FakeTransport()
    for registered in storage.buckets.values():
        registered.transport = transport  # type: ignore[assignment]
    return storage, transport
