"""End-to-end integrity against SeaweedFS, moto and Ceph RGW, under both checksum policies.

Every write path answers the CRC32C of the bytes it stored and stores it in
the object's metadata; whole-object reads check it, so an object changed
behind the server's back (rewritten through the S3 API with the same
metadata) is refused by Read and ReadFile, and ReadFile then leaves no file.
Under ``checksums: when_supported`` a recording proxy shows every uploaded
body carrying ``x-amz-checksum-crc32c`` (which SeaweedFS is shown to verify);
under ``when_required`` none does; aws-chunked trailers are never sent.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import crc32c
import pytest
import trio

from tests.support.server import endpoint_server
from tests.support.services import admin_client
from tests.test_visibility_e2e import Client, Head, app_behind_proxy, heads
from trio_s3rpc.checksums import header_value
from trio_s3rpc.client import RemoteError
from trio_s3rpc.config import parse_config
from trio_s3rpc.s3.transport import S3Error, S3Transport
from trio_s3rpc.storage.resumable import MARKER_PART, Marker

pytestmark = pytest.mark.integration

MIB = 1024 * 1024
PART = 5 * MIB
BUCKETS = {"moto": "acl-bucket", "seaweedfs": "test-bucket", "rgw": "acl-bucket"}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def checksum_of(data: bytes) -> str:
    return f"crc32c:{crc32c.crc32c(data):08x}"


@pytest.fixture
def prefix() -> str:
    return f"int-{secrets.token_hex(4)}/"


@asynccontextmanager
async def server_for(
    endpoint: Any, bucket: str, prefix: str, root: Path, checksums: str = "when_required"
) -> AsyncIterator[tuple[Client, Any]]:
    """The server on one bucket (5 MiB parts, multipart copy above 6 MiB), behind a proxy."""
    settings = {
        "bucket": bucket,
        "prefix": prefix,
        "visibility_mode": "none",
        "part_size": PART,
        "concurrency": 3,
        "multipart_copy_threshold": 6 * MIB,
    }
    async with app_behind_proxy(
        endpoint, {"uploads": settings}, root, server={"checksums": checksums}
    ) as (rpc, proxy):
        yield rpc, proxy


async def chunked(rpc: Client, pathname: str, data: bytes, chunk_size: int) -> Any:
    upload_id = (await rpc.call("s3.UploadStart", {"pathname": pathname}))["upload_id"]
    for start in range(0, len(data), chunk_size):
        chunk = data[start : start + chunk_size]
        await rpc.call("s3.UploadChunk", {"upload_id": upload_id, "content": b64(chunk)})
    return await rpc.call("s3.UploadFinish", {"upload_id": upload_id, "size": len(data)})


@pytest.mark.parametrize(
    ("service", "checksums"),
    [
        (service, checksums)
        for service in ("seaweedfs", "moto", "rgw")
        for checksums in ("when_required", "when_supported")
        # RGW under when_required: test_rgw_e2e's multipart ETag test.
        if (service, checksums) != ("rgw", "when_required")
    ],
)
async def test_every_write_path_stores_and_answers_the_checksum(
    service: str, checksums: str, request: pytest.FixtureRequest, prefix: str, tmp_path: Path
) -> None:
    endpoint = request.getfixturevalue(service)
    bucket = BUCKETS[service]
    small = b"small object"
    big = secrets.token_bytes(2 * PART + 12_345)  # three parts, three download ranges
    (tmp_path / "small.txt").write_bytes(small)
    (tmp_path / "big.bin").write_bytes(big)
    expected: dict[str, bytes] = {}
    async with server_for(endpoint, bucket, prefix, tmp_path, checksums) as (rpc, proxy):
        answers = {
            "write-small.txt": await rpc.call(
                "s3.Write", {"pathname": "write-small.txt", "content": b64(small)}
            ),
            "write-big.bin": await rpc.call(
                "s3.Write", {"pathname": "write-big.bin", "content": b64(big)}
            ),
            "file-small.txt": await rpc.call(
                "s3.WriteFile",
                {"pathname": "file-small.txt", "source_path": str(tmp_path / "small.txt")},
            ),
            "file-big.bin": await rpc.call(
                "s3.WriteFile",
                {"pathname": "file-big.bin", "source_path": str(tmp_path / "big.bin")},
            ),
            "chunked-small.txt": await chunked(rpc, "chunked-small.txt", small, 5),
            "chunked-big.bin": await chunked(rpc, "chunked-big.bin", big, 3 * MIB + 1),
        }
        expected = {name: small if name.endswith(".txt") else big for name in answers}
        # Copy keeps the checksum: COPY directive, REPLACE with new metadata, multipart copy.
        answers["copy-small.txt"] = await rpc.call(
            "s3.Copy",
            {
                "source_pathname": "write-small.txt",
                "dest_pathname": "copy-small.txt",
                "config": {"note": "replaced"},
            },
        )
        answers["copy-big.bin"] = await rpc.call(
            "s3.Copy", {"source_pathname": "file-big.bin", "dest_pathname": "copy-big.bin"}
        )
        answers["moved.txt"] = await rpc.call(
            "s3.Move", {"source_pathname": "file-small.txt", "dest_pathname": "moved.txt"}
        )
        del expected["file-small.txt"]
        expected |= {"copy-small.txt": small, "copy-big.bin": big, "moved.txt": small}

        for pathname, data in expected.items():
            answer = answers[pathname]
            assert answer["checksum"] == checksum_of(data), pathname
            assert answer["size"] == len(data), pathname
            meta = await rpc.call("s3.GetMetadata", {"pathname": pathname})
            assert meta["checksum"] == checksum_of(data), pathname
            stored = admin_client(endpoint).head_object(Bucket=bucket, Key=prefix + pathname)
            assert stored["Metadata"]["trio-s3rpc-checksum"] == checksum_of(data), pathname
            read = await rpc.call("s3.Read", {"pathname": pathname})
            assert base64.b64decode(read["content"]) == data, pathname
        replaced = admin_client(endpoint).head_object(Bucket=bucket, Key=prefix + "copy-small.txt")
        assert replaced["Metadata"]["note"] == "replaced"

        destination = tmp_path / "down" / "big.bin"
        destination.parent.mkdir()
        got = await rpc.call(
            "s3.ReadFile", {"pathname": "chunked-big.bin", "destination_path": str(destination)}
        )
        assert got["checksum"] == checksum_of(big)
        assert destination.read_bytes() == big

        sent = heads(proxy)
    assert_checksum_headers(sent, checksums)


def assert_checksum_headers(sent: list[Head], checksums: str) -> None:
    bodies = [
        h
        for h in sent
        if h.method == "PUT" and "x-amz-copy-source" not in h.headers and not h.touches_acl
    ]
    assert bodies  # PutObject and UploadPart requests
    for head in sent:
        # Never aws-chunked: no trailers, no streaming signatures.
        assert "x-amz-trailer" not in head.headers
        assert "aws-chunked" not in head.headers.get("content-encoding", "")
        assert not head.headers.get("x-amz-content-sha256", "").startswith("STREAMING-")
    flexible = [h for h in sent if any(n.startswith("x-amz-checksum-") for n in h.headers)]
    if checksums == "when_required":
        assert flexible == []
        return
    for head in bodies:
        assert "x-amz-checksum-crc32c" in head.headers, head.target
    creates = [h for h in sent if h.method == "POST" and h.target.endswith("?uploads=")]
    assert creates
    for head in creates:
        assert head.headers["x-amz-checksum-algorithm"] == "CRC32C"
        assert head.headers["x-amz-checksum-type"] == "FULL_OBJECT"


async def test_seaweedfs_verifies_the_crc32c_header_it_is_sent(seaweedfs: Any, prefix: str) -> None:
    config = parse_config(
        {
            "s3": {
                "servers": {"s": {**endpoint_server(seaweedfs), "checksums": "when_supported"}},
                "buckets": {"b": {"server": "s", "bucket": "test-bucket"}},
            }
        }
    )
    transport = S3Transport(config.s3.servers["s"])
    try:
        wrong = {"x-amz-checksum-crc32c": header_value(crc32c.crc32c(b"other bytes"))}
        with pytest.raises(S3Error) as error:
            await transport.request(
                "PutObject", "PUT", "test-bucket", prefix + "x", headers=wrong, body=b"bytes"
            )
        assert error.value.code == "BadDigest"
        # The header the transport adds itself is right, and accepted.
        await transport.request("PutObject", "PUT", "test-bucket", prefix + "x", body=b"bytes")
    finally:
        await transport.aclose()


def corrupt(endpoint: Any, bucket: str, key: str, data: bytes) -> None:
    """Rewrite an object through the S3 API with other bytes and the same metadata."""
    client = admin_client(endpoint)
    head = client.head_object(Bucket=bucket, Key=key)
    client.put_object(
        Bucket=bucket,
        Key=key,
        Body=data,
        Metadata=head["Metadata"],
        ContentType=head["ContentType"],
    )


@pytest.mark.parametrize("service", ["seaweedfs", "moto", "rgw"])
async def test_an_object_changed_behind_the_servers_back_is_refused(
    service: str, request: pytest.FixtureRequest, prefix: str, tmp_path: Path
) -> None:
    endpoint = request.getfixturevalue(service)
    bucket = BUCKETS[service]
    original = b"the quarterly report, final version"
    tampered = b"the quarterly report, FAKED version"
    big = bytearray(secrets.token_bytes(2 * PART + 99))
    (tmp_path / "big.bin").write_bytes(big)
    async with server_for(endpoint, bucket, prefix, tmp_path) as (rpc, _):
        await rpc.call("s3.Write", {"pathname": "report.txt", "content": b64(original)})
        await rpc.call(
            "s3.WriteFile", {"pathname": "big.bin", "source_path": str(tmp_path / "big.bin")}
        )
        corrupt(endpoint, bucket, prefix + "report.txt", tampered)
        big[PART + 7] ^= 0x01  # one bit, in the middle range of three
        corrupt(endpoint, bucket, prefix + "big.bin", bytes(big))

        async def refused(method: str, args: dict[str, Any], stored: str, read: str) -> None:
            with pytest.raises(RemoteError) as error:
                await rpc.call(method, args)
            assert error.value.code == "S3_OPERATION_FAILED", method
            assert "checksum mismatch" in error.value.text
            assert stored in error.value.text and read in error.value.text

        report = (checksum_of(original), checksum_of(tampered))
        await refused("s3.Read", {"pathname": "report.txt"}, *report)
        # A range that covers the whole object is the whole object.
        whole = {"pathname": "report.txt", "offset": 0, "length": len(original)}
        await refused("s3.Read", whole, *report)
        # A part of it cannot be checked, and is answered.
        piece = await rpc.call("s3.Read", {"pathname": "report.txt", "offset": 4, "length": 9})
        assert base64.b64decode(piece["content"]) == tampered[4:13]

        downloads = tmp_path / "downloads"
        downloads.mkdir()
        fresh = downloads / "report.txt"
        await refused(
            "s3.ReadFile", {"pathname": "report.txt", "destination_path": str(fresh)}, *report
        )
        existing = downloads / "big.bin"
        existing.write_bytes(b"the previous download")
        await refused(
            "s3.ReadFile",
            {"pathname": "big.bin", "destination_path": str(existing)},
            checksum_of((tmp_path / "big.bin").read_bytes()),
            checksum_of(bytes(big)),
        )
        # No destination file, no temporary file; an existing file is left as it was.
        assert sorted(p.name for p in downloads.iterdir()) == ["big.bin"]
        assert existing.read_bytes() == b"the previous download"
        # The metadata still says what was written.
        meta = await rpc.call("s3.GetMetadata", {"pathname": "report.txt"})
        assert meta["checksum"] == checksum_of(original)


async def test_objects_without_a_checksum_are_served_unverified(
    seaweedfs: Any, prefix: str, tmp_path: Path
) -> None:
    admin_client(seaweedfs).put_object(
        Bucket="test-bucket", Key=prefix + "foreign.txt", Body=b"written by another tool"
    )
    async with server_for(seaweedfs, "test-bucket", prefix, tmp_path) as (rpc, _):
        read = await rpc.call("s3.Read", {"pathname": "foreign.txt"})
        assert base64.b64decode(read["content"]) == b"written by another tool"
        meta = await rpc.call("s3.GetMetadata", {"pathname": "foreign.txt"})
        assert "checksum" not in meta
        copied = await rpc.call(
            "s3.Copy", {"source_pathname": "foreign.txt", "dest_pathname": "copied.txt"}
        )
        assert "checksum" not in copied
        destination = tmp_path / "foreign.txt"
        got = await rpc.call(
            "s3.ReadFile", {"pathname": "foreign.txt", "destination_path": str(destination)}
        )
        assert "checksum" not in got
        assert destination.read_bytes() == b"written by another tool"


async def test_the_checksum_metadata_name_cannot_be_set_by_callers(
    seaweedfs: Any, prefix: str, tmp_path: Path
) -> None:
    forged = {"trio-s3rpc-checksum": "crc32c:00000000"}
    async with server_for(seaweedfs, "test-bucket", prefix, tmp_path) as (rpc, _):
        await rpc.call("s3.Write", {"pathname": "a.txt", "content": b64(b"a")})
        for method, args in [
            ("s3.Write", {"pathname": "b.txt", "content": b64(b"b"), "config": forged}),
            ("s3.Copy", {"source_pathname": "a.txt", "dest_pathname": "c.txt", "config": forged}),
            ("s3.UploadStart", {"pathname": "d.txt", "config": forged}),
        ]:
            with pytest.raises(RemoteError) as error:
                await rpc.call(method, args)
            assert error.value.code == "INVALID_REQUEST", method
            assert "reserved" in error.value.text


async def test_checksums_of_concurrent_multipart_writes_do_not_mix(
    seaweedfs: Any, prefix: str, tmp_path: Path
) -> None:
    # Parts of several uploads in flight at once: each answer is its own object's CRC.
    files = {f"f{index}.bin": secrets.token_bytes(PART + 1000 * index) for index in range(4)}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    answers: dict[str, Any] = {}
    async with server_for(seaweedfs, "test-bucket", prefix, tmp_path) as (rpc, _):

        async def upload(name: str) -> None:
            async with await Client.connect(rpc.address) as own:
                answers[name] = await own.call(
                    "s3.WriteFile", {"pathname": name, "source_path": str(tmp_path / name)}
                )

        async with trio.open_nursery() as nursery:
            for name in files:
                nursery.start_soon(upload, name)
    assert {name: a["checksum"] for name, a in answers.items()} == {
        name: checksum_of(data) for name, data in files.items()
    }


async def test_a_resumed_write_file_checksums_reused_and_sent_parts_alike(
    seaweedfs: Any, prefix: str, tmp_path: Path
) -> None:
    data = secrets.token_bytes(2 * PART + 4321)
    source = tmp_path / "resumed.bin"
    source.write_bytes(data)
    # An unfinished upload of the key holding the file's first part and the marker a
    # failed resumable WriteFile of this file leaves (released), as such a failure leaves it.
    client = admin_client(seaweedfs)
    key = prefix + "resumed.bin"
    upload_id = client.create_multipart_upload(Bucket="test-bucket", Key=key)["UploadId"]
    client.upload_part(
        Bucket="test-bucket", Key=key, UploadId=upload_id, PartNumber=1, Body=data[:PART]
    )
    marker = Marker.of(
        seaweedfs.secret_key,
        "test-bucket",
        key,
        PART,
        len(data),
        source.stat().st_mtime_ns,
        hashlib.md5(data[:PART]).hexdigest(),
    )
    client.upload_part(
        Bucket="test-bucket",
        Key=key,
        UploadId=upload_id,
        PartNumber=MARKER_PART,
        Body=marker.released,
    )
    async with server_for(seaweedfs, "test-bucket", prefix, tmp_path) as (rpc, proxy):
        written = await rpc.call(
            "s3.WriteFile",
            {"pathname": "resumed.bin", "source_path": str(source), "resume": True},
        )
        sent = [
            h
            for h in heads(proxy)
            if "partNumber=" in h.target
            and "x-amz-copy-source" not in h.headers
            and f"partNumber={MARKER_PART}" not in h.target
        ]
        assert len(sent) == 2  # part 1 was reused, not sent
        assert written["checksum"] == checksum_of(data)
        read = await rpc.call("s3.Read", {"pathname": "resumed.bin"})
        assert base64.b64decode(read["content"]) == data
    stored = client.head_object(Bucket="test-bucket", Key=key)
    assert stored["Metadata"]["trio-s3rpc-checksum"] == checksum_of(data)
