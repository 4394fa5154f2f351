"""Object headers, presigned uploads and named downloads, end to end on SeaweedFS, moto and RGW.

What a browser or plain HTTP client does with the URLs and forms the server
signs (httpx here, as any HTTP client would), and what the service then holds,
read back through the server and directly.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import MOTO_ACL_BUCKET, RGW_ACL_BUCKET
from tests.support.server import endpoint_server, running_app
from tests.support.services import admin_client
from trio_s3rpc.client import RemoteError, RPCClient

pytestmark = pytest.mark.integration

HEADERS = {
    "cache_control": "public, max-age=3600",
    "content_disposition": 'attachment; filename="report.pdf"',
    "content_encoding": "identity",
    "content_language": "en-GB",
    "expires": 2000000000,
}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture
def run() -> str:
    return secrets.token_hex(4)


@pytest.fixture
async def rpc(seaweedfs: Any, moto: Any, rgw: Any, run: str) -> AsyncIterator[RPCClient]:
    sw = endpoint_server(seaweedfs)
    # The same SeaweedFS under another host name, as browsers would reach a service
    # that this server reaches inside a container network.
    port = seaweedfs.endpoint.rsplit(":", 1)[1]
    published = {**sw, "public_endpoint": f"http://localhost:{port}"}
    config = {
        "rpc": {"listen": "tcp://127.0.0.1:0"},
        "s3": {
            "default": "sw",
            "servers": {
                "sw": sw,
                "published": published,
                "moto": endpoint_server(moto),
                "rgw": endpoint_server(rgw),
            },
            "buckets": {
                "sw": {
                    "server": "sw",
                    "bucket": "test-bucket",
                    "prefix": f"pre-{run}/",
                    "visibility_mode": "none",
                },
                "published": {
                    "server": "published",
                    "bucket": "test-bucket",
                    "prefix": f"pub-{run}/",
                    "visibility_mode": "none",
                },
                "moto": {"server": "moto", "bucket": MOTO_ACL_BUCKET, "prefix": f"pre-{run}/"},
                "rgw": {
                    "server": "rgw",
                    "bucket": RGW_ACL_BUCKET,
                    "prefix": f"pre-{run}/",
                    "visibility_mode": "acl",
                },
            },
        },
    }
    async with running_app(config) as (_, address), await RPCClient.connect(address) as client:
        yield client


@pytest.mark.parametrize("bucket", ["sw", "moto", "rgw"])
async def test_standard_headers_are_stored_answered_and_served(rpc: RPCClient, bucket: str) -> None:
    await rpc.call(
        "s3.Write",
        {
            "bucket": bucket,
            "pathname": "r.bin",
            "content": b64(b"%PDF"),
            "content_type": "application/pdf",
            **HEADERS,
        },
    )
    meta = await rpc.call("s3.GetMetadata", {"bucket": bucket, "pathname": "r.bin"})
    assert meta["mime_type"] == "application/pdf"
    assert {name: meta[name] for name in HEADERS} == HEADERS
    url = (
        await rpc.call("s3.GetPublicURL", {"bucket": bucket, "pathname": "r.bin", "expires_in": 60})
    )["url"]
    async with httpx.AsyncClient() as http:
        served = await http.get(url)
    assert served.status_code == 200
    assert served.content == b"%PDF"
    assert served.headers["content-type"] == "application/pdf"
    assert served.headers["cache-control"] == HEADERS["cache_control"]
    assert served.headers["content-disposition"] == HEADERS["content_disposition"]
    assert served.headers["content-language"] == "en-GB"


async def test_write_file_and_chunked_upload_take_the_headers(
    rpc: RPCClient, tmp_path: Path
) -> None:
    source = tmp_path / "local.txt"
    source.write_bytes(b"from a file")
    await rpc.call("s3.WriteFile", {"pathname": "file.txt", "source_path": str(source), **HEADERS})
    meta = await rpc.call("s3.GetMetadata", {"pathname": "file.txt"})
    assert {name: meta[name] for name in HEADERS} == HEADERS
    upload = await rpc.call("s3.UploadStart", {"pathname": "chunked.txt", **HEADERS})
    await rpc.call("s3.UploadChunk", {"upload_id": upload["upload_id"], "content": b64(b"abc")})
    await rpc.call("s3.UploadFinish", {"upload_id": upload["upload_id"], "size": 3})
    meta = await rpc.call("s3.GetMetadata", {"pathname": "chunked.txt"})
    assert {name: meta[name] for name in HEADERS} == HEADERS
    assert meta["checksum"]  # the checksum copy kept the headers and added the checksum


async def test_copy_keeps_or_replaces_headers_and_keeps_the_rest(
    rpc: RPCClient, seaweedfs: Any, run: str
) -> None:
    await rpc.call(
        "s3.Write",
        {
            "pathname": "a.txt",
            "content": b64(b"a"),
            "config": {"author": "ann"},
            "content_type": "text/x-a",
            **HEADERS,
        },
    )
    await rpc.call("s3.Copy", {"source_pathname": "a.txt", "dest_pathname": "same.txt"})
    same = await rpc.call("s3.GetMetadata", {"pathname": "same.txt"})
    assert {name: same[name] for name in HEADERS} == HEADERS
    await rpc.call(
        "s3.Copy",
        {"source_pathname": "a.txt", "dest_pathname": "b.txt", "cache_control": "no-store"},
    )
    changed = await rpc.call("s3.GetMetadata", {"pathname": "b.txt"})
    assert changed["cache_control"] == "no-store"
    assert changed["content_disposition"] == HEADERS["content_disposition"]
    assert changed["mime_type"] == "text/x-a"
    assert changed["checksum"] == same["checksum"]
    stored = admin_client(seaweedfs).head_object(Bucket="test-bucket", Key=f"pre-{run}/b.txt")
    assert stored["Metadata"]["author"] == "ann"  # headers replaced, user metadata kept
    read = await rpc.call("s3.Read", {"pathname": "b.txt"})
    assert base64.b64decode(read["content"]) == b"a"


async def test_a_copy_between_services_carries_and_replaces_headers(rpc: RPCClient) -> None:
    await rpc.call(
        "s3.Write",
        {"pathname": "across.txt", "content": b64(b"x"), "content_type": "text/x-a", **HEADERS},
    )
    await rpc.call(
        "s3.Copy",
        {
            "source_pathname": "across.txt",
            "dest_bucket": "moto",
            "dest_pathname": "across.txt",
            "cache_control": "no-store",
        },
    )
    landed = await rpc.call("s3.GetMetadata", {"bucket": "moto", "pathname": "across.txt"})
    assert landed["cache_control"] == "no-store"
    assert landed["content_disposition"] == HEADERS["content_disposition"]
    assert landed["content_language"] == HEADERS["content_language"]
    assert landed["mime_type"] == "text/x-a"


async def test_a_header_that_cannot_be_an_http_header_is_refused(rpc: RPCClient) -> None:
    with pytest.raises(RemoteError) as caught:
        await rpc.call(
            "s3.Write",
            {
                "pathname": "x.txt",
                "content": b64(b"x"),
                "content_disposition": "inline\r\nX-Injected: yes",
            },
        )
    assert caught.value.code == "INVALID_REQUEST"
    assert "content_disposition" in str(caught.value)
    assert not (await rpc.call("s3.Exists", {"pathname": "x.txt"}))["exists"]


@pytest.mark.parametrize("bucket", ["sw", "moto", "rgw"])
async def test_copy_and_move_onto_themselves_succeed_and_change_nothing(
    rpc: RPCClient, bucket: str
) -> None:
    await rpc.call("s3.Write", {"bucket": bucket, "pathname": "self.txt", "content": b64(b"me")})
    before = await rpc.call("s3.GetMetadata", {"bucket": bucket, "pathname": "self.txt"})
    same = {
        "source_bucket": bucket,
        "source_pathname": "self.txt",
        "dest_bucket": bucket,
        "dest_pathname": "self.txt",
    }
    copied = await rpc.call("s3.Copy", same)
    moved = await rpc.call("s3.Move", same)
    assert copied["success"] and moved["success"]
    assert copied["size"] == moved["size"] == 2
    after = await rpc.call("s3.GetMetadata", {"bucket": bucket, "pathname": "self.txt"})
    assert after["etag"] == before["etag"]
    assert after["last_modified"] == before["last_modified"]
    read = await rpc.call("s3.Read", {"bucket": bucket, "pathname": "self.txt"})
    assert base64.b64decode(read["content"]) == b"me"


async def test_permanent_urls_serve_public_objects_only(rpc: RPCClient) -> None:
    """On a service that enforces ACLs (RGW; moto serves anonymous reads whatever the
    ACL), as a browser without credentials meets the URLs GetPublicURL answers."""
    bucket = {"bucket": "rgw"}
    await rpc.call(
        "s3.Write",
        {
            **bucket,
            "pathname": "acl/public.txt",
            "content": b64(b"for all"),
            "visibility": "public",
        },
    )
    await rpc.call("s3.Write", {**bucket, "pathname": "acl/private.txt", "content": b64(b"mine")})

    async def fetch(pathname: str, **args: Any) -> httpx.Response:
        answer = await rpc.call("s3.GetPublicURL", {**bucket, "pathname": pathname, **args})
        async with httpx.AsyncClient() as http:
            return await http.get(answer["url"])

    public = await fetch("acl/public.txt")
    assert (public.status_code, public.content) == (200, b"for all")
    assert (await fetch("acl/private.txt")).status_code == 403
    # A presigned URL serves the private object; SetVisibility opens and closes it.
    assert (await fetch("acl/private.txt", expires_in=60)).content == b"mine"
    await rpc.call(
        "s3.SetVisibility", {**bucket, "pathname": "acl/private.txt", "visibility": "public"}
    )
    assert (await fetch("acl/private.txt")).status_code == 200
    await rpc.call(
        "s3.SetVisibility", {**bucket, "pathname": "acl/private.txt", "visibility": "private"}
    )
    assert (await fetch("acl/private.txt")).status_code == 403
    meta = await rpc.call("s3.GetMetadata", {**bucket, "pathname": "acl/public.txt"})
    assert meta["visibility"] == "public"


async def test_named_download_through_get_public_url(rpc: RPCClient) -> None:
    await rpc.call("s3.Write", {"pathname": "data.bin", "content": b64(b"1,2")})
    answer = await rpc.call(
        "s3.GetPublicURL",
        {
            "pathname": "data.bin",
            "expires_in": 120,
            "response_content_type": "text/csv",
            "response_content_disposition": 'attachment; filename="numbers.csv"',
        },
    )
    async with httpx.AsyncClient() as http:
        served = await http.get(answer["url"])
    assert served.status_code == 200
    assert served.headers["content-type"] == "text/csv"
    assert served.headers["content-disposition"] == 'attachment; filename="numbers.csv"'
    with pytest.raises(RemoteError) as caught:
        await rpc.call(
            "s3.GetPublicURL", {"pathname": "data.bin", "response_content_type": "text/csv"}
        )
    assert caught.value.code == "INVALID_REQUEST"
    assert "expires_in" in str(caught.value)


@pytest.mark.parametrize("bucket", ["sw", "moto", "rgw"])
async def test_presigned_put_uploads_with_the_answered_headers(rpc: RPCClient, bucket: str) -> None:
    answer = await rpc.call(
        "s3.GetUploadURL",
        {
            "bucket": bucket,
            "pathname": "put/photo.jpg",
            "content_type": "image/jpeg",
            "expires_in": 300,
        },
    )
    assert answer["headers"]["Content-Type"] == "image/jpeg"
    assert answer["expires_at"] > 0
    async with httpx.AsyncClient() as http:
        put = await http.put(answer["url"], content=b"\xff\xd8jpeg", headers=answer["headers"])
    assert put.status_code == 200, put.text
    meta = await rpc.call("s3.GetMetadata", {"bucket": bucket, "pathname": "put/photo.jpg"})
    assert meta["size"] == 6
    assert meta["mime_type"] == "image/jpeg"
    with pytest.raises(RemoteError) as caught:
        await rpc.call("s3.GetUploadURL", {"pathname": "x", "expires_in": 8 * 24 * 3600})
    assert caught.value.code == "INVALID_REQUEST"


# moto checks neither signatures nor POST policies: these run where they are enforced.
@pytest.mark.parametrize("bucket", ["sw", "rgw"])
async def test_presigned_put_signs_its_content_type(rpc: RPCClient, bucket: str) -> None:
    answer = await rpc.call(
        "s3.GetUploadURL",
        {"bucket": bucket, "pathname": "put/typed.txt", "content_type": "text/plain"},
    )
    async with httpx.AsyncClient() as http:
        put = await http.put(answer["url"], content=b"x", headers={"Content-Type": "text/html"})
    assert put.status_code == 403
    exists = await rpc.call("s3.Exists", {"bucket": bucket, "pathname": "put/typed.txt"})
    assert not exists["exists"]


@pytest.mark.parametrize("bucket", ["sw", "rgw"])
async def test_upload_form_takes_a_file_within_its_limits_and_refuses_others(
    rpc: RPCClient, bucket: str
) -> None:
    form = await rpc.call(
        "s3.GetUploadForm",
        {
            "bucket": bucket,
            "key_prefix": "inbox/",
            "max_size": 1000,
            "content_type_prefix": "image/",
            "expires_in": 300,
        },
    )
    fields = form["fields"]
    assert fields["key"].endswith("inbox/${filename}")

    async def post(name: str, body: bytes, content_type: str, **override: str) -> httpx.Response:
        data = {**fields, "Content-Type": content_type, **override}
        async with httpx.AsyncClient() as http:
            return await http.post(form["url"], data=data, files={"file": (name, body)})

    ok = await post("cat.png", b"\x89PNG" + b"x" * 500, "image/png")
    assert ok.status_code in (200, 201, 204), ok.text
    meta = await rpc.call("s3.GetMetadata", {"bucket": bucket, "pathname": "inbox/cat.png"})
    assert meta["size"] == 504
    assert meta["mime_type"] == "image/png"

    too_big = await post("big.png", b"x" * 1001, "image/png")
    assert too_big.status_code in (400, 403), too_big.text
    exists = await rpc.call("s3.Exists", {"bucket": bucket, "pathname": "inbox/big.png"})
    assert not exists["exists"]
    wrong_type = await post("page.html", b"<p>", "text/html")
    assert wrong_type.status_code in (400, 403), wrong_type.text
    outside = await post(
        "cat.png", b"x", "image/png", key=fields["key"].replace("inbox/", "elsewhere/")
    )
    assert outside.status_code in (400, 403), outside.text


async def test_public_endpoint_names_the_published_host(rpc: RPCClient, seaweedfs: Any) -> None:
    await rpc.call("s3.Write", {"bucket": "published", "pathname": "p.txt", "content": b64(b"p")})
    presigned = await rpc.call(
        "s3.GetPublicURL", {"bucket": "published", "pathname": "p.txt", "expires_in": 60}
    )
    assert presigned["url"].startswith("http://localhost:")
    async with httpx.AsyncClient() as http:
        served = await http.get(presigned["url"])
    assert served.status_code == 200
    assert served.content == b"p"
    permanent = await rpc.call("s3.GetPublicURL", {"bucket": "published", "pathname": "p.txt"})
    assert permanent["url"].startswith("http://localhost:")
    upload = await rpc.call("s3.GetUploadURL", {"bucket": "published", "pathname": "u.txt"})
    assert upload["url"].startswith("http://localhost:")
    form = await rpc.call("s3.GetUploadForm", {"bucket": "published", "max_size": 10})
    assert form["url"].startswith("http://localhost:")
    # The server itself still reaches the service at its configured endpoint.
    assert seaweedfs.endpoint.startswith("http://127.0.0.1:")


def test_public_endpoint_must_be_an_http_url() -> None:
    from tests.support.server import config_dict
    from trio_s3rpc.config import ConfigError, parse_config

    server = {
        "region": "us-east-1",
        "endpoint": "http://minio:9000",
        "public_endpoint": "ftp://localhost:9000",
        "credentials": {"key": "k", "secret": "s"},
    }
    with pytest.raises(ConfigError) as caught:
        parse_config(config_dict(server))
    assert "public_endpoint" in str(caught.value)
    server["public_endpoint"] = "http://localhost:9000/"
    parsed = parse_config(config_dict(server))
    assert parsed.s3.servers["main"].public_endpoint == "http://localhost:9000"
