"""Archival writes against moto, and content types from content against SeaweedFS.

``storage_class`` and server-side encryption (``sse``, ``sse_kms_key_id``)
are given per write or as the bucket's defaults; moto keeps and reports them
as AWS does, so a plain botocore HeadObject shows what landed, and
GetMetadata and ListObjects must answer the same. A pathname without a known
extension takes the content type its first bytes show.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.support.server import endpoint_server, running_app
from tests.support.services import admin_client
from tests.test_sniff import SAMPLES
from trio_s3rpc.client import RemoteError, RPCClient

pytestmark = pytest.mark.integration

MIB = 1024 * 1024
PART = 5 * MIB
MOTO_BUCKET = "acl-bucket"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@asynccontextmanager
async def moto_server(
    moto: Any, seaweedfs: Any, root: Path, prefix: str
) -> AsyncIterator[RPCClient]:
    """Buckets on moto: ``plain`` (no defaults) and ``cold`` (GLACIER_IR, SSE-KMS by default);
    ``weed`` on SeaweedFS, for copies between services."""
    common = {"prefix": prefix, "part_size": PART, "concurrency": 2}
    config = {
        "rpc": {"listen": "tcp://127.0.0.1:0"},
        "s3": {
            "default": "plain",
            "local_roots": [str(root)],
            "servers": {"moto": endpoint_server(moto), "seaweedfs": endpoint_server(seaweedfs)},
            "buckets": {
                "plain": {"server": "moto", "bucket": MOTO_BUCKET, **common},
                "cold": {
                    "server": "moto",
                    "bucket": MOTO_BUCKET,
                    "storage_class": "GLACIER_IR",
                    "sse": "aws:kms",
                    "sse_kms_key_id": "alias/archive",
                    **common,
                    "prefix": prefix + "cold/",
                },
                "weed": {
                    "server": "seaweedfs",
                    "bucket": "test-bucket",
                    "visibility_mode": "none",
                    **common,
                },
            },
        },
    }
    async with running_app(config) as (_, address), await RPCClient.connect(address) as rpc:
        yield rpc


@pytest.fixture
def prefix() -> str:
    return f"arc-{secrets.token_hex(4)}/"


def landed(moto: Any, key: str) -> tuple[str, str, str]:
    head = admin_client(moto).head_object(Bucket=MOTO_BUCKET, Key=key)
    return (
        head.get("StorageClass", "STANDARD"),
        head.get("ServerSideEncryption", ""),
        head.get("SSEKMSKeyId", ""),
    )


async def test_storage_class_and_sse_round_trip_on_every_write_path(
    moto: Any, seaweedfs: Any, tmp_path: Path, prefix: str
) -> None:
    big = secrets.token_bytes(2 * PART + 1)  # multipart, and a self-copy to store its checksum
    (tmp_path / "big.bin").write_bytes(big)
    archival = {"storage_class": "STANDARD_IA", "sse": "AES256"}
    async with moto_server(moto, seaweedfs, tmp_path, prefix) as rpc:
        await rpc.call("s3.Write", {"pathname": "w.txt", "content": b64(b"w"), **archival})
        await rpc.call("s3.Write", {"pathname": "wbig.bin", "content": b64(big), **archival})
        await rpc.call(
            "s3.WriteFile",
            {"pathname": "f.bin", "source_path": str(tmp_path / "big.bin"), **archival},
        )
        upload_id = (await rpc.call("s3.UploadStart", {"pathname": "u.bin", **archival}))[
            "upload_id"
        ]
        await rpc.call("s3.UploadChunk", {"upload_id": upload_id, "content": b64(big)})
        await rpc.call("s3.UploadFinish", {"upload_id": upload_id, "size": len(big)})
        await rpc.call(
            "s3.Copy",
            {
                "source_pathname": "w.txt",
                "dest_pathname": "c.txt",
                "storage_class": "ONEZONE_IA",
                "sse": "aws:kms",
                "sse_kms_key_id": "alias/copies",
            },
        )
        for pathname in ("w.txt", "wbig.bin", "f.bin", "u.bin"):
            assert landed(moto, prefix + pathname) == ("STANDARD_IA", "AES256", ""), pathname
            meta = await rpc.call("s3.GetMetadata", {"pathname": pathname})
            assert (meta["storage_class"], meta["sse"]) == ("STANDARD_IA", "AES256")
            assert "sse_kms_key_id" not in meta
        assert landed(moto, prefix + "c.txt") == ("ONEZONE_IA", "aws:kms", "alias/copies")
        meta = await rpc.call("s3.GetMetadata", {"pathname": "c.txt"})
        assert (meta["storage_class"], meta["sse"], meta["sse_kms_key_id"]) == (
            "ONEZONE_IA",
            "aws:kms",
            "alias/copies",
        )
        listing = await rpc.call("s3.ListObjects", {"bucket": "plain", "prefix": ""})
        classes = {entry["key"]: entry["storage_class"] for entry in listing["objects"]}
        assert classes == {
            "w.txt": "STANDARD_IA",
            "wbig.bin": "STANDARD_IA",
            "f.bin": "STANDARD_IA",
            "u.bin": "STANDARD_IA",
            "c.txt": "ONEZONE_IA",
        }
        # The checksum still verifies on an encrypted, re-classed object.
        read = await rpc.call("s3.Read", {"pathname": "wbig.bin"})
        assert base64.b64decode(read["content"]) == big


async def test_bucket_defaults_apply_and_a_write_overrides_them(
    moto: Any, seaweedfs: Any, tmp_path: Path, prefix: str
) -> None:
    async with moto_server(moto, seaweedfs, tmp_path, prefix) as rpc:
        await rpc.call("s3.Write", {"bucket": "cold", "pathname": "d.txt", "content": b64(b"d")})
        assert landed(moto, prefix + "cold/d.txt") == ("GLACIER_IR", "aws:kms", "alias/archive")
        await rpc.call(
            "s3.Write",
            {
                "bucket": "cold",
                "pathname": "o.txt",
                "content": b64(b"o"),
                "storage_class": "STANDARD",
                "sse": "AES256",
            },
        )
        assert landed(moto, prefix + "cold/o.txt") == ("STANDARD", "AES256", "")
        # A copy between services lands in the destination bucket's class and encryption.
        await rpc.call("s3.Write", {"bucket": "weed", "pathname": "src.txt", "content": b64(b"s")})
        await rpc.call(
            "s3.Copy",
            {
                "source_bucket": "weed",
                "source_pathname": "src.txt",
                "dest_bucket": "cold",
                "dest_pathname": "from-weed.txt",
            },
        )
        assert landed(moto, prefix + "cold/from-weed.txt") == (
            "GLACIER_IR",
            "aws:kms",
            "alias/archive",
        )


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"storage_class": "FROZEN"}, "storage_class"),
        ({"storage_class": "glacier_ir"}, "did you mean GLACIER_IR?"),
        ({"sse": "rot13"}, "sse"),
        ({"sse": "AES256", "sse_kms_key_id": "alias/x"}, "sse_kms_key_id"),
    ],
)
async def test_bad_archival_fields_are_refused_before_anything_is_sent(
    moto: Any, seaweedfs: Any, tmp_path: Path, prefix: str, fields: dict[str, str], named: str
) -> None:
    async with moto_server(moto, seaweedfs, tmp_path, prefix) as rpc:
        for method, args in (
            ("s3.Write", {"pathname": "bad.txt", "content": b64(b"x")}),
            ("s3.UploadStart", {"pathname": "bad.txt"}),
            ("s3.Copy", {"source_pathname": "none.txt", "dest_pathname": "bad.txt"}),
        ):
            with pytest.raises(RemoteError) as error:
                await rpc.call(method, {**args, **fields})
            assert error.value.code == "INVALID_REQUEST", method
            assert named in error.value.text, method
    client = admin_client(moto)
    assert not client.list_objects_v2(Bucket=MOTO_BUCKET, Prefix=prefix).get("KeyCount")
    assert not client.list_multipart_uploads(Bucket=MOTO_BUCKET, Prefix=prefix).get("Uploads")


async def test_content_type_from_content_when_the_name_says_nothing(
    seaweedfs: Any, moto: Any, tmp_path: Path, prefix: str
) -> None:
    async with moto_server(moto, seaweedfs, tmp_path, prefix) as rpc:
        for number, (expected, data) in enumerate(sorted(SAMPLES.items())):
            source = tmp_path / f"upload-{number}"
            source.write_bytes(data)
            blob, file = f"blob-{number}", f"file-{number}.dat"
            await rpc.call("s3.Write", {"bucket": "weed", "pathname": blob, "content": b64(data)})
            await rpc.call(
                "s3.WriteFile", {"bucket": "weed", "pathname": file, "source_path": str(source)}
            )
            for pathname in (blob, file):
                meta = await rpc.call("s3.GetMetadata", {"bucket": "weed", "pathname": pathname})
                assert meta["mime_type"] == expected, pathname
            head = admin_client(seaweedfs).head_object(Bucket="test-bucket", Key=prefix + blob)
            assert head["ContentType"] == expected
        # A known extension, or an explicit content type, is never second-guessed.
        png = SAMPLES["image/png"]
        await rpc.call("s3.Write", {"bucket": "weed", "pathname": "n.txt", "content": b64(png)})
        (tmp_path / "png").write_bytes(png)
        await rpc.call(
            "s3.WriteFile",
            {
                "bucket": "weed",
                "pathname": "x",
                "source_path": str(tmp_path / "png"),
                "content_type": "a/b",
            },
        )
        for pathname, expected in (("n.txt", "text/plain"), ("x", "a/b")):
            meta = await rpc.call("s3.GetMetadata", {"bucket": "weed", "pathname": pathname})
            assert meta["mime_type"] == expected


async def test_a_registered_bucket_takes_storage_class_and_sse_as_a_configured_one(
    moto: Any, seaweedfs: Any, tmp_path: Path, prefix: str
) -> None:
    async with moto_server(moto, seaweedfs, tmp_path, prefix) as rpc:
        await rpc.call(
            "s3.RegisterBucket",
            {
                "name": "registered-cold",
                "server": "moto",
                "bucket": MOTO_BUCKET,
                "prefix": prefix + "reg/",
                "storage_class": "GLACIER_IR",
                "sse": "aws:kms",
                "sse_kms_key_id": "alias/registered",
            },
        )
        await rpc.call(
            "s3.Write", {"bucket": "registered-cold", "pathname": "r.txt", "content": b64(b"r")}
        )
        assert landed(moto, prefix + "reg/r.txt") == ("GLACIER_IR", "aws:kms", "alias/registered")
