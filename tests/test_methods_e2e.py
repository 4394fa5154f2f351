"""Every s3.* method end to end: RPC client -> server -> real SeaweedFS.

Each test drives the server exactly as PHP does (JSON with base64 content, or
msgpack with raw bytes) and checks what the caller sees, and where it
matters what landed on the storage service, inspected directly.
"""

from __future__ import annotations

import base64
import contextlib
import json
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

import crc32c
import httpx
import pytest

from tests.support.server import config_dict, endpoint_server, running_app
from tests.support.services import admin_client
from trio_s3rpc.client import RemoteError, RPCClient

pytestmark = pytest.mark.integration

AWKWARD_NAMES = [
    "with space.txt",
    "plus+sign.txt",
    "hash#tag.txt",
    "question?mark.txt",
    "amp&ersand.txt",
    "unicodé/файл/文件.txt",
    "percent%20literal.txt",
    "a..b.txt",
    "deep/nested/dir/file.bin",
]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture
def run_id() -> str:
    return secrets.token_hex(4)


@pytest.fixture
async def rpc(seaweedfs: Any, run_id: str) -> AsyncIterator[RPCClient]:
    config = config_dict(
        endpoint_server(seaweedfs),
        {
            "uploads": {
                "bucket": "test-bucket",
                "prefix": f"e2e-{run_id}/",
                "visibility_mode": "none",
            },
            "other": {
                "bucket": "test-bucket-2",
                "prefix": f"o-{run_id}/",
                "visibility_mode": "none",
            },
            "small-parts": {
                "bucket": "test-bucket",
                "prefix": f"mp-{run_id}/",
                "visibility_mode": "none",
                "part_size": 5 * 1024 * 1024,
                "concurrency": 3,
                "multipart_copy_threshold": 6 * 1024 * 1024,
            },
        },
    )
    async with running_app(config) as (_, address), await RPCClient.connect(address) as client:
        yield client


async def test_write_read_exists_delete_round_trip(
    rpc: RPCClient, seaweedfs: Any, run_id: str
) -> None:
    content = bytes(range(256)) * 16
    written = await rpc.call(
        "s3.Write",
        {
            "bucket": "uploads",
            "pathname": "docs/report.pdf",
            "content": b64(content),
            "config": {"author": "ann"},
        },
    )
    assert written["success"] is True
    assert written["pathname"] == "docs/report.pdf"
    assert written["size"] == len(content)
    assert written["last_modified"] > 1_700_000_000

    read = await rpc.call("s3.Read", {"bucket": "uploads", "pathname": "docs/report.pdf"})
    assert base64.b64decode(read["content"]) == content
    assert read["size"] == len(content)
    assert read["mime_type"] == "application/pdf"
    assert abs(read["last_modified"] - written["last_modified"]) <= 2

    # The object landed under the bucket's prefix with its metadata.
    head = admin_client(seaweedfs).head_object(
        Bucket="test-bucket", Key=f"e2e-{run_id}/docs/report.pdf"
    )
    # User metadata, and the checksum the server stores with every object it writes.
    assert head["Metadata"] == {"author": "ann", "trio-s3rpc-checksum": written["checksum"]}
    assert head["ContentType"] == "application/pdf"

    assert await rpc.call("s3.Exists", {"bucket": "uploads", "pathname": "docs/report.pdf"}) == {
        "exists": True
    }
    assert await rpc.call("s3.Delete", {"bucket": "uploads", "pathname": "docs/report.pdf"}) == {
        "success": True
    }
    assert await rpc.call("s3.Exists", {"bucket": "uploads", "pathname": "docs/report.pdf"}) == {
        "exists": False
    }
    # Deleting what is not there succeeds, as in S3.
    assert (await rpc.call("s3.Delete", {"pathname": "docs/report.pdf"}))["success"] is True


async def test_missing_object_is_file_not_found(rpc: RPCClient) -> None:
    for method in ("s3.Read", "s3.GetMetadata"):
        with pytest.raises(RemoteError) as error:
            await rpc.call(method, {"bucket": "uploads", "pathname": "nope/missing.txt"})
        assert error.value.code == "FILE_NOT_FOUND"
        assert "nope/missing.txt" in error.value.text
    with pytest.raises(RemoteError) as error:
        await rpc.call(
            "s3.Copy",
            {
                "source_bucket": "uploads",
                "source_pathname": "nope.txt",
                "dest_bucket": "uploads",
                "dest_pathname": "x.txt",
            },
        )
    assert error.value.code == "FILE_NOT_FOUND"


async def test_default_bucket_used_when_bucket_omitted(rpc: RPCClient) -> None:
    await rpc.call("s3.Write", {"pathname": "default.txt", "content": b64(b"d")})
    read = await rpc.call("s3.Read", {"bucket": "uploads", "pathname": "default.txt"})
    assert base64.b64decode(read["content"]) == b"d"


@pytest.mark.parametrize("name", AWKWARD_NAMES)
async def test_awkward_keys_round_trip(rpc: RPCClient, name: str) -> None:
    data = name.encode() * 3
    await rpc.call("s3.Write", {"bucket": "uploads", "pathname": name, "content": b64(data)})
    read = await rpc.call("s3.Read", {"bucket": "uploads", "pathname": name})
    assert base64.b64decode(read["content"]) == data
    copied = await rpc.call(
        "s3.Copy",
        {
            "source_bucket": "uploads",
            "source_pathname": name,
            "dest_bucket": "other",
            "dest_pathname": "copy/" + name,
        },
    )
    assert copied["size"] == len(data)
    read = await rpc.call("s3.Read", {"bucket": "other", "pathname": "copy/" + name})
    assert base64.b64decode(read["content"]) == data
    listing = await rpc.call("s3.ListObjects", {"bucket": "other", "prefix": "copy/"})
    assert "copy/" + name in [o["key"] for o in listing["objects"]]
    url = (
        await rpc.call(
            "s3.GetPublicURL", {"bucket": "uploads", "pathname": name, "expires_in": 300}
        )
    )["url"]
    async with httpx.AsyncClient() as http:
        fetched = await http.get(url)
    assert fetched.status_code == 200
    assert fetched.content == data


async def test_msgpack_carries_binary_content_exactly(seaweedfs: Any, run_id: str) -> None:
    config = config_dict(
        endpoint_server(seaweedfs),
        {
            "uploads": {
                "bucket": "test-bucket",
                "prefix": f"mp-{run_id}/",
                "visibility_mode": "none",
            }
        },
    )
    payload = bytes(range(256)) + b"\x00\xff\xfe" * 100
    async with running_app(config) as (_, address):
        async with await RPCClient.connect(address, codec="msgpack") as rpc:
            await rpc.call("s3.Write", {"pathname": "bin.dat", "content": payload})
            read = await rpc.call("s3.Read", {"pathname": "bin.dat"})
            assert read["content"] == payload
            assert isinstance(read["content"], bytes)
            # A PHP str holding invalid UTF-8 (the captured seq=7 frame) is stored byte-exact.
            import msgpack

            from trio_s3rpc.client import open_stream
            from trio_s3rpc.goridge.frame import CODEC_MSGPACK, encode_rpc_request

            stream = await open_stream(address)
            body = b"\x83" + msgpack.packb("bucket") + msgpack.packb("uploads")
            body += msgpack.packb("pathname") + msgpack.packb("php.bin")
            body += msgpack.packb("content") + b"\xa8\x00\xff\xfehello"
            await stream.send_all(encode_rpc_request(1, "s3.Write", CODEC_MSGPACK, body))
            await stream.receive_some(65536)
            await stream.aclose()
            read = await rpc.call("s3.Read", {"pathname": "php.bin"})
            assert read["content"] == b"\x00\xff\xfehello"


async def test_json_carries_binary_content_exactly(rpc: RPCClient) -> None:
    payload = bytes(range(256)) * 4
    await rpc.call("s3.Write", {"pathname": "all-bytes.bin", "content": b64(payload)})
    read = await rpc.call("s3.Read", {"pathname": "all-bytes.bin"})
    assert base64.b64decode(read["content"]) == payload
    assert read["mime_type"] == "application/octet-stream"


async def test_ranged_reads_at_the_edges(rpc: RPCClient) -> None:
    data = bytes(range(100))
    await rpc.call("s3.Write", {"pathname": "range.bin", "content": b64(data)})

    async def read(**kw: int) -> tuple[bytes, int]:
        answer = await rpc.call("s3.Read", {"pathname": "range.bin", **kw})
        return base64.b64decode(answer["content"]), answer["size"]

    assert await read(offset=0, length=10) == (data[:10], 100)
    assert await read(offset=90, length=50) == (data[90:], 100)
    assert await read(offset=99, length=1) == (data[99:], 100)
    assert await read(offset=100, length=10) == (b"", 100)
    assert await read(offset=500) == (b"", 100)
    assert await read(offset=40) == (data[40:], 100)
    assert await read(offset=5, length=0) == (b"", 100)
    with pytest.raises(RemoteError) as error:
        await read(offset=-1)
    assert error.value.code == "INVALID_REQUEST"


async def test_copy_keeps_metadata_and_move_removes_source(
    rpc: RPCClient, seaweedfs: Any, run_id: str
) -> None:
    await rpc.call(
        "s3.Write",
        {"pathname": "src/photo.jpg", "content": b64(b"jpeg"), "config": {"k": "v"}},
    )
    copied = await rpc.call(
        "s3.Copy",
        {"source_pathname": "src/photo.jpg", "dest_pathname": "dst/photo-copy.jpg"},
    )
    assert copied == {
        "success": True,
        "pathname": "dst/photo-copy.jpg",
        "size": 4,
        "last_modified": copied["last_modified"],
        "checksum": "crc32c:" + format(crc32c.crc32c(b"jpeg"), "08x"),
    }
    head = admin_client(seaweedfs).head_object(
        Bucket="test-bucket", Key=f"e2e-{run_id}/dst/photo-copy.jpg"
    )
    assert head["Metadata"] == {"k": "v", "trio-s3rpc-checksum": copied["checksum"]}
    assert head["ContentType"] == "image/jpeg"

    moved = await rpc.call(
        "s3.Move",
        {"source_pathname": "src/photo.jpg", "dest_bucket": "other", "dest_pathname": "moved.jpg"},
    )
    assert moved["pathname"] == "moved.jpg" and moved["size"] == 4
    assert (await rpc.call("s3.Exists", {"pathname": "src/photo.jpg"}))["exists"] is False
    read = await rpc.call("s3.Read", {"bucket": "other", "pathname": "moved.jpg"})
    assert base64.b64decode(read["content"]) == b"jpeg"


async def test_get_metadata(rpc: RPCClient) -> None:
    await rpc.call("s3.Write", {"pathname": "meta/data.json", "content": b64(b'{"a":1}')})
    meta = await rpc.call("s3.GetMetadata", {"pathname": "meta/data.json"})
    assert meta["size"] == 7
    assert meta["mime_type"] == "application/json"
    assert meta["visibility"] == "private"  # the bucket's, as this bucket has no ACLs
    assert meta["etag"].strip('"')
    assert meta["last_modified"] > 1_700_000_000


async def test_visibility_on_a_bucket_without_acls_is_a_clear_error(rpc: RPCClient) -> None:
    await rpc.call("s3.Write", {"pathname": "v.txt", "content": b64(b"v")})
    with pytest.raises(RemoteError) as error:
        await rpc.call("s3.SetVisibility", {"pathname": "v.txt", "visibility": "public"})
    assert error.value.code == "INVALID_VISIBILITY"
    assert "cannot set per-object visibility" in error.value.text
    with pytest.raises(RemoteError) as error:
        await rpc.call("s3.Write", {"pathname": "v.txt", "content": "", "visibility": "publik"})
    assert error.value.code == "INVALID_VISIBILITY"
    # Asking for the bucket's own visibility is fine.
    assert (await rpc.call("s3.SetVisibility", {"pathname": "v.txt", "visibility": "private"}))[
        "success"
    ]


async def test_list_objects_prefix_delimiter_and_pagination(rpc: RPCClient) -> None:
    for name in ["list/a.txt", "list/b.txt", "list/c.txt", "list/sub/d.txt", "list/sub/e.txt"]:
        await rpc.call("s3.Write", {"pathname": name, "content": b64(name.encode())})
    top = await rpc.call("s3.ListObjects", {"prefix": "list/", "delimiter": "/"})
    assert [o["key"] for o in top["objects"]] == ["list/a.txt", "list/b.txt", "list/c.txt"]
    assert top["common_prefixes"] == [{"prefix": "list/sub/"}]
    assert top["is_truncated"] is False
    assert top["objects"][0]["size"] == len(b"list/a.txt")

    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        args: dict[str, Any] = {"prefix": "list/", "max_keys": 2}
        if token:
            args["continuation_token"] = token
        page = await rpc.call("s3.ListObjects", args)
        pages += 1
        seen += [o["key"] for o in page["objects"]]
        if not page["is_truncated"]:
            break
        token = page["next_continuation_token"]
    assert pages == 3
    assert seen == ["list/a.txt", "list/b.txt", "list/c.txt", "list/sub/d.txt", "list/sub/e.txt"]


async def test_public_url_permanent_and_presigned(
    rpc: RPCClient, seaweedfs: Any, run_id: str
) -> None:
    await rpc.call("s3.Write", {"pathname": "pub/a b.txt", "content": b64(b"hello")})
    permanent = await rpc.call("s3.GetPublicURL", {"pathname": "pub/a b.txt"})
    assert permanent == {"url": f"{seaweedfs.endpoint}/test-bucket/e2e-{run_id}/pub/a%20b.txt"}
    before = int(time.time())
    signed = await rpc.call("s3.GetPublicURL", {"pathname": "pub/a b.txt", "expires_in": 60})
    after = int(time.time())
    assert "X-Amz-Signature=" in signed["url"]
    assert before + 60 <= signed["expires_at"] <= after + 60
    async with httpx.AsyncClient() as http:
        assert (await http.get(signed["url"])).content == b"hello"
    with pytest.raises(RemoteError) as error:
        await rpc.call("s3.GetPublicURL", {"pathname": "pub/a b.txt", "expires_in": 8 * 86400})
    assert error.value.code == "INVALID_REQUEST"
    assert "7 days" in error.value.text


async def test_pathname_validation(rpc: RPCClient) -> None:
    for bad in ["", "/abs.txt", "../up.txt", "a/../b.txt", "a\x00b", "x" * 1100]:
        with pytest.raises(RemoteError) as error:
            await rpc.call("s3.Write", {"pathname": bad, "content": ""})
        assert error.value.code == "INVALID_PATHNAME", bad


async def test_large_write_is_multipart_and_reads_back(
    rpc: RPCClient, seaweedfs: Any, run_id: str
) -> None:
    data = secrets.token_bytes(12 * 1024 * 1024)
    written = await rpc.call(
        "s3.Write", {"bucket": "small-parts", "pathname": "big.bin", "content": b64(data)}
    )
    assert written["size"] == len(data)
    head = admin_client(seaweedfs).head_object(Bucket="test-bucket", Key=f"mp-{run_id}/big.bin")
    # A multipart ETag ends with -<number of parts>: 12 MiB in 5 MiB parts is 3.
    assert head["ETag"].strip('"').endswith("-3")
    read = await rpc.call("s3.Read", {"bucket": "small-parts", "pathname": "big.bin"})
    assert base64.b64decode(read["content"]) == data


async def test_large_copy_uses_multipart_copy(rpc: RPCClient, seaweedfs: Any, run_id: str) -> None:
    data = secrets.token_bytes(11 * 1024 * 1024)
    await rpc.call(
        "s3.Write",
        {
            "bucket": "small-parts",
            "pathname": "c/src.bin",
            "content": b64(data),
            "config": {"origin": "test"},
        },
    )
    copied = await rpc.call(
        "s3.Copy",
        {
            "source_bucket": "small-parts",
            "source_pathname": "c/src.bin",
            "dest_bucket": "small-parts",
            "dest_pathname": "c/dst.bin",
        },
    )
    assert copied["size"] == len(data)
    head = admin_client(seaweedfs).head_object(Bucket="test-bucket", Key=f"mp-{run_id}/c/dst.bin")
    assert head["ETag"].strip('"').endswith("-3")
    assert head["Metadata"] == {"origin": "test", "trio-s3rpc-checksum": copied["checksum"]}
    read = await rpc.call("s3.Read", {"bucket": "small-parts", "pathname": "c/dst.bin"})
    assert base64.b64decode(read["content"]) == data


async def test_wrong_credentials_are_permission_denied_without_the_secret(seaweedfs: Any) -> None:
    server = endpoint_server(seaweedfs)
    server["credentials"] = {"key": seaweedfs.access_key, "secret": "wrong-secret-value-123"}
    config = config_dict(server, {"uploads": {"bucket": "test-bucket", "visibility_mode": "none"}})
    async with running_app(config) as (_, address), await RPCClient.connect(address) as rpc:
        with pytest.raises(RemoteError) as error:
            await rpc.call("s3.Write", {"pathname": "x.txt", "content": ""})
    assert error.value.code == "PERMISSION_DENIED"
    assert "wrong-secret-value-123" not in error.value.text
    assert "PutObject" in error.value.text


async def test_service_down_is_s3_operation_failed_after_retries() -> None:
    config = config_dict(buckets={"uploads": {"bucket": "bkt", "visibility_mode": "none"}})
    async with running_app(config) as (app, address):
        for transport in app.storage._transports.values():
            transport.retry_attempts = 2  # keep the test short
        async with await RPCClient.connect(address) as rpc:
            with pytest.raises(RemoteError) as error:
                await rpc.call("s3.Exists", {"pathname": "x"})
    assert error.value.code == "S3_OPERATION_FAILED"
    assert "HeadObject" in error.value.text


async def test_json_answers_are_what_php_decodes(rpc: RPCClient) -> None:
    # The Go plugin's answer shape: omitempty fields are absent, not null.
    await rpc.call("s3.Write", {"pathname": "shape.txt", "content": b64(b"x")})
    url = await rpc.call("s3.GetPublicURL", {"pathname": "shape.txt"})
    assert set(url) == {"url"}
    listing = await rpc.call("s3.ListObjects", {"prefix": "shape"})
    assert set(listing) == {"objects", "is_truncated", "key_count"}
    assert json.dumps(listing)  # plain JSON types only


def decodings(token: str) -> list[bytes]:
    """What a curious caller gets by base64-decoding a token, or any dot-separated part."""
    found = [token.encode()]
    for part in [token, *token.split(".")]:
        for decode in (base64.b64decode, base64.urlsafe_b64decode):
            for pad in range(3):
                with contextlib.suppress(ValueError):
                    found.append(decode(part + "=" * pad))
    return found


async def test_continuation_tokens_do_not_reveal_the_bucket_prefix(
    rpc: RPCClient, run_id: str
) -> None:
    for name in ["tok/a.txt", "tok/b.txt", "tok/c.txt"]:
        await rpc.call("s3.Write", {"pathname": name, "content": b64(b"x")})
    first = await rpc.call("s3.ListObjects", {"prefix": "tok/", "max_keys": 1})
    token = first["next_continuation_token"]
    assert first["is_truncated"] and token
    prefix = f"e2e-{run_id}".encode()  # the bucket's configured prefix
    assert all(prefix not in decoded for decoded in decodings(token)), token
    assert all(b"tok/a.txt" not in decoded for decoded in decodings(token)), token
    second = await rpc.call(
        "s3.ListObjects", {"prefix": "tok/", "max_keys": 1, "continuation_token": token}
    )
    assert [o["key"] for o in second["objects"]] == ["tok/b.txt"]
    # A token that was altered, or made up from a key, is refused clearly.
    altered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    for bad in (altered, f"e2e-{run_id}/tok/a.txt"):
        with pytest.raises(RemoteError) as refused:
            await rpc.call("s3.ListObjects", {"prefix": "tok/", "continuation_token": bad})
        assert refused.value.code == "INVALID_REQUEST"
        assert "continuation_token is not one this server gave for bucket" in refused.value.text
