"""Ceph's RADOS Gateway: what the suite's cluster is, and the RGW quirks the server survives.

The gateway (``tests/support/rgw.py``) keeps real object ACLs, which is why
the ACL-dependent tests also run on it (``test_visibility_e2e.py``,
``test_presign_e2e.py``, ``test_integrity_e2e.py``, the Flysystem suite).
Here: that the grants are enforced as a browser meets them, that the
cluster stops by its pids, and RGW's own ways: a CompleteMultipartUpload
answer with an empty ``<ETag></ETag>``, and ``x-amz-checksum-crc32c``
ignored (a wrong one is accepted, nothing is echoed), which the server
notices without claiming a verification that did not happen.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import secrets
from pathlib import Path
from typing import Any

import botocore.exceptions
import crc32c
import httpx
import pytest

from tests.conftest import RGW_ACL_BUCKET
from tests.support.rgw import RadosGateway
from tests.support.server import endpoint_server
from tests.support.services import admin_client
from tests.test_integrity_e2e import assert_checksum_headers
from tests.test_visibility_e2e import app_behind_proxy, heads
from trio_s3rpc.checksums import header_value
from trio_s3rpc.client import RemoteError
from trio_s3rpc.config import Credentials, parse_config
from trio_s3rpc.s3.signing import RequestSigner
from trio_s3rpc.s3.transport import S3Transport

pytestmark = pytest.mark.integration

MIB = 1 << 20
PART = 5 * MIB
ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def checksum_of(data: bytes) -> str:
    return f"crc32c:{crc32c.crc32c(data):08x}"


@pytest.fixture
def prefix() -> str:
    return f"rgw-{secrets.token_hex(4)}/"


def test_the_gateway_enforces_object_acls(rgw: Any, rgw_other_user: Any, prefix: str) -> None:
    owner, other = admin_client(rgw), admin_client(rgw_other_user)
    owner.put_object(Bucket=RGW_ACL_BUCKET, Key=prefix + "public", Body=b"p", ACL="public-read")
    owner.put_object(Bucket=RGW_ACL_BUCKET, Key=prefix + "private", Body=b"s")
    base = f"{rgw.endpoint}/{RGW_ACL_BUCKET}/{prefix}"
    assert httpx.get(base + "public").status_code == 200
    assert httpx.get(base + "public").content == b"p"
    assert httpx.get(base + "private").status_code == 403
    # A second user is refused the owner's private object, and reads the public one.
    with pytest.raises(botocore.exceptions.ClientError) as refused:
        other.get_object(Bucket=RGW_ACL_BUCKET, Key=prefix + "private")
    assert refused.value.response["Error"]["Code"] == "AccessDenied"
    assert other.get_object(Bucket=RGW_ACL_BUCKET, Key=prefix + "public")["Body"].read() == b"p"
    grants = owner.get_object_acl(Bucket=RGW_ACL_BUCKET, Key=prefix + "public")["Grants"]
    assert {"Type": "Group", "URI": ALL_USERS} in [grant["Grantee"] for grant in grants]


def test_two_gateways_run_side_by_side_and_stop_by_their_pids(
    rgw: Any, tmp_path: Path, prefix: str
) -> None:
    gateway = RadosGateway(tmp_path / "second", user_names=("solo",), memory_bytes=64 * MIB)
    with gateway as endpoint:
        pids = gateway.pids
        assert sorted(pids) == ["mon", "osd", "rgw"]
        assert endpoint.endpoint != rgw.endpoint
        client = admin_client(endpoint)
        client.create_bucket(Bucket="second-bucket")
        client.put_object(Bucket="second-bucket", Key="k", Body=b"second")
        # The session's gateway is another cluster: it has no such bucket.
        assert "second-bucket" not in [
            bucket["Name"] for bucket in admin_client(rgw).list_buckets()["Buckets"]
        ]
    for pid in pids.values():
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)  # reaped: no process, no zombie
    assert gateway.pids == {}


def part_etag_of(data: bytes) -> str:
    """S3's (and RGW's) multipart ETag of ``data`` sent in PART-sized parts."""
    digests = [
        hashlib.md5(data[start : start + PART]).digest() for start in range(0, len(data), PART)
    ]
    return f'"{hashlib.md5(b"".join(digests)).hexdigest()}-{len(digests)}"'


def test_rgw_completes_a_multipart_upload_with_an_empty_etag(rgw: Any, prefix: str) -> None:
    """The quirk itself, as botocore meets it (the premise of the next test)."""
    client = admin_client(rgw)
    key = prefix + "plain-multipart"
    upload_id = client.create_multipart_upload(Bucket=RGW_ACL_BUCKET, Key=key)["UploadId"]
    part = client.upload_part(
        Bucket=RGW_ACL_BUCKET, Key=key, UploadId=upload_id, PartNumber=1, Body=b"x" * 100
    )
    done = client.complete_multipart_upload(
        Bucket=RGW_ACL_BUCKET,
        Key=key,
        UploadId=upload_id,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )
    assert done.get("ETag", "") == ""
    head = client.head_object(Bucket=RGW_ACL_BUCKET, Key=key)
    assert head["ETag"] == part_etag_of(b"x" * 100)


async def test_multipart_writes_learn_the_etag_rgw_does_not_answer(
    rgw: Any, prefix: str, tmp_path: Path
) -> None:
    """WriteFile, a chunked upload and a large Write complete on RGW; each gets the
    object's real ETag (the checksum's self-copy is conditional on it, and succeeds).
    Under when_required here; test_integrity_e2e runs every write path on RGW under
    when_supported."""
    data = secrets.token_bytes(2 * PART + 777)
    source = tmp_path / "big.bin"
    source.write_bytes(data)
    bucket = {"bucket": RGW_ACL_BUCKET, "prefix": prefix, "visibility_mode": "acl"}
    async with app_behind_proxy(rgw, {"uploads": bucket}, tmp_path) as (rpc, proxy):
        written = {
            "file.bin": await rpc.call(
                "s3.WriteFile", {"pathname": "file.bin", "source_path": str(source)}
            ),
            "write.bin": await rpc.call(
                "s3.Write", {"pathname": "write.bin", "content": b64(data)}
            ),
        }
        upload = await rpc.call("s3.UploadStart", {"pathname": "chunked.bin"})
        for start in range(0, len(data), 3 * MIB):
            chunk = b64(data[start : start + 3 * MIB])
            await rpc.call("s3.UploadChunk", {"upload_id": upload["upload_id"], "content": chunk})
        written["chunked.bin"] = await rpc.call(
            "s3.UploadFinish", {"upload_id": upload["upload_id"], "size": len(data)}
        )
        for pathname, answer in written.items():
            assert answer["checksum"] == checksum_of(data), pathname
            meta = await rpc.call("s3.GetMetadata", {"pathname": pathname})
            head = admin_client(rgw).head_object(Bucket=RGW_ACL_BUCKET, Key=prefix + pathname)
            assert meta["etag"] == head["ETag"], pathname
            assert meta["checksum"] == checksum_of(data), pathname
            assert head["Metadata"]["trio-s3rpc-checksum"] == checksum_of(data), pathname
        # The self-copies were conditional on the ETag RGW's answer left out.
        self_copies = [
            h for h in heads(proxy) if "x-amz-copy-source" in h.headers and h.method == "PUT"
        ]
        streamed = [h for h in self_copies if "file.bin" in h.target or "chunked.bin" in h.target]
        assert len(streamed) == 2
        for head in streamed:
            assert head.headers["x-amz-copy-source-if-match"] == part_etag_of(data)
        assert_checksum_headers(heads(proxy), "when_required")  # and never aws-chunked


async def test_rgw_ignores_checksums_and_the_server_says_so(
    rgw: Any, seaweedfs: Any, prefix: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = parse_config(
        {
            "s3": {
                "servers": {"s": {**endpoint_server(rgw), "checksums": "when_supported"}},
                "buckets": {"b": {"server": "s", "bucket": RGW_ACL_BUCKET}},
            }
        }
    )
    transport = S3Transport(config.s3.servers["s"])
    try:
        # The premise: a wrong x-amz-checksum-crc32c is accepted, and nothing is echoed.
        wrong = {"x-amz-checksum-crc32c": header_value(crc32c.crc32c(b"other bytes"))}
        answer = await transport.request(
            "PutObject", "PUT", RGW_ACL_BUCKET, prefix + "x", headers=wrong, body=b"bytes"
        )
        assert answer.status == 200
        assert "x-amz-checksum-crc32c" not in answer.headers
    finally:
        await transport.aclose()

    caplog.set_level(logging.WARNING, logger="trio_s3rpc.s3")
    noticed = "event=checksum_not_verified server=main"
    for endpoint, bucket, verifies in [
        (seaweedfs, "test-bucket", True),
        (rgw, RGW_ACL_BUCKET, False),
    ]:
        caplog.clear()
        settings = {"bucket": bucket, "prefix": prefix, "visibility_mode": "none"}
        async with app_behind_proxy(
            endpoint, {"uploads": settings}, tmp_path, server={"checksums": "when_supported"}
        ) as (rpc, proxy):
            for index in range(3):
                written = await rpc.call(
                    "s3.Write", {"pathname": f"w{index}.txt", "content": b64(b"verified?")}
                )
                # The server's own CRC32C, stored and answered either way.
                assert written["checksum"] == checksum_of(b"verified?")
            sent = [h for h in heads(proxy) if h.method == "PUT"]
            assert all("x-amz-checksum-crc32c" in h.headers for h in sent)
            tampered = b"not what was written"
            stored = admin_client(endpoint).head_object(Bucket=bucket, Key=prefix + "w0.txt")
            admin_client(endpoint).put_object(
                Bucket=bucket, Key=prefix + "w0.txt", Body=tampered, Metadata=stored["Metadata"]
            )
            with pytest.raises(RemoteError, match="checksum mismatch") as mismatch:
                await rpc.call("s3.Read", {"pathname": "w0.txt"})
            assert mismatch.value.code == "S3_OPERATION_FAILED"
        # SeaweedFS echoes what it verified; RGW does not, and that is said once.
        assert caplog.text.count(noticed) == (0 if verifies else 1), caplog.text


def signed_put(
    endpoint: Any, key: str, body: bytes, content_sha256: str, headers: dict[str, str]
) -> httpx.Response:
    """A PutObject signed as given, sent by plain httpx."""
    sent = {"host": endpoint.endpoint.removeprefix("http://"), **headers}
    signer = RequestSigner(Credentials(endpoint.access_key, endpoint.secret_key), endpoint.region)
    signer.sign_headers("PUT", f"/{RGW_ACL_BUCKET}/{key}", "", sent, content_sha256)
    return httpx.put(f"{endpoint.endpoint}/{RGW_ACL_BUCKET}/{key}", content=body, headers=sent)


def test_rgw_checks_the_payload_signature_and_refuses_trailers(rgw: Any, prefix: str) -> None:
    """What the README's table of checks says of RGW: the SHA-256 payload signature is
    verified, and aws-chunked trailer uploads (which the server never sends) are refused."""
    wrong_sha = signed_put(rgw, prefix + "sha", b"bytes", hashlib.sha256(b"other").hexdigest(), {})
    assert wrong_sha.status_code == 400
    assert "XAmzContentSHA256Mismatch" in wrong_sha.text
    data = b"a body with a trailing checksum"
    trailer = f"x-amz-checksum-crc32c:{header_value(crc32c.crc32c(data))}"
    chunked = f"{len(data):x}\r\n".encode() + data + f"\r\n0\r\n{trailer}\r\n\r\n".encode()
    refused = signed_put(
        rgw,
        prefix + "trailer",
        chunked,
        "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
        {
            "content-encoding": "aws-chunked",
            "x-amz-decoded-content-length": str(len(data)),
            "x-amz-trailer": "x-amz-checksum-crc32c",
        },
    )
    assert refused.status_code == 400
    assert "XAmzContentSHA256Mismatch" in refused.text
