"""The ``visibility_mode: auto`` probe decides only on answers about ACLs.

The service is scripted at the transport boundary (each operation answers what
a real service was seen or documented to answer); the end-to-end probes run
against SeaweedFS and moto in ``tests/test_visibility_e2e.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx
import pytest
import trio

from tests.support.fake_s3 import fake_storage
from trio_s3rpc.errors import RPCError
from trio_s3rpc.s3.transport import S3Error, S3Response
from trio_s3rpc.s3.xml import ALL_USERS_URI
from trio_s3rpc.storage import visibility


def acl_document(public: bool) -> S3Response:
    grants = (
        f'<Grant><Grantee xsi:type="Group"><URI>{ALL_USERS_URI}</URI></Grantee>'
        "<Permission>READ</Permission></Grant>"
        if public
        else ""
    )
    body = (
        '<?xml version="1.0" encoding="UTF-8"?><AccessControlPolicy '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><Owner><ID>me</ID></Owner>'
        '<AccessControlList><Grant><Grantee xsi:type="CanonicalUser"><ID>me</ID></Grantee>'
        f"<Permission>FULL_CONTROL</Permission></Grant>{grants}</AccessControlList>"
        "</AccessControlPolicy>"
    ).encode()
    return S3Response(200, httpx.Headers({"content-type": "application/xml"}), body)


class ScriptedService:
    """Answers PutObject and GetObjectAcl from scripts (an S3Error is raised), DeleteObject 204."""

    def __init__(self, put: S3Error | None = None, get: S3Error | S3Response | None = None):
        self.put, self.get = put, get if get is not None else acl_document(public=True)
        self.operations: list[str] = []

    async def request(
        self,
        operation: str,
        method: str,
        bucket: str,
        key: str | None = None,
        *,
        query: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        **_: Any,
    ) -> S3Response:
        self.operations.append(operation)
        await trio.lowlevel.checkpoint()
        answer: S3Error | S3Response | None
        answer = {"PutObject": self.put, "GetObjectAcl": self.get}.get(operation)
        if isinstance(answer, S3Error):
            raise answer
        return answer or S3Response(200, httpx.Headers(), b"")


def auto_bucket(service: ScriptedService) -> Any:
    storage, _ = fake_storage(visibility_mode="auto")
    bucket = storage.bucket("b")
    bucket.transport = service
    return bucket


# What services that keep no ACLs answer (the list in storage/visibility.py says where from).
@pytest.mark.parametrize(
    ("put", "get"),
    [
        # AWS S3, a bucket with ACLs disabled (Object Ownership: bucket owner enforced).
        (
            S3Error(
                "PutObject", 400, "AccessControlListNotSupported", "The bucket does not allow ACLs"
            ),
            None,
        ),
        # MinIO and Cloudflare R2: ACLs are not implemented.
        (
            S3Error("PutObject", 501, "NotImplemented", "A header you provided is not implemented"),
            None,
        ),
        (None, S3Error("GetObjectAcl", 501, "NotImplemented", "not implemented")),
        # SeaweedFS: the canned ACL of a PutObject is accepted and not kept.
        (None, acl_document(public=False)),
    ],
)
async def test_answers_about_acls_resolve_to_none(put: S3Error | None, get: Any) -> None:
    bucket = auto_bucket(ScriptedService(put, get))
    assert await visibility.mode(bucket) == "none"
    assert bucket.visibility_mode == "none"


async def test_a_grant_that_comes_back_resolves_to_acl() -> None:
    service = ScriptedService()
    bucket = auto_bucket(service)
    assert await visibility.mode(bucket) == "acl"
    assert service.operations == ["PutObject", "GetObjectAcl", "DeleteObject"]


# Refusals that say nothing about ACLs: a wrong secret, clock skew, an expired
# token, a missing permission, a service in trouble.
@pytest.mark.parametrize(
    ("put", "get"),
    [
        (S3Error("PutObject", 403, "SignatureDoesNotMatch", "The signature does not match"), None),
        (S3Error("PutObject", 403, "InvalidAccessKeyId", "No such key"), None),
        (S3Error("PutObject", 403, "RequestTimeTooSkewed", "The difference is too large"), None),
        (S3Error("PutObject", 400, "ExpiredToken", "The provided token has expired"), None),
        (S3Error("PutObject", 403, "AccessDenied", "Access Denied"), None),
        (S3Error("PutObject", 400, "InvalidRequest", "Bad request"), None),
        (S3Error("PutObject", 503, "SlowDown", "Reduce your request rate"), None),
        (None, S3Error("GetObjectAcl", 403, "AccessDenied", "Access Denied")),
    ],
)
async def test_other_refusals_fail_the_probe_and_leave_it_undecided(
    put: S3Error | None, get: Any
) -> None:
    service = ScriptedService(put, get)
    bucket = auto_bucket(service)
    with pytest.raises(RPCError) as failed:
        await visibility.mode(bucket)
    assert failed.value.message.startswith(
        "bucket 'b': visibility_mode auto is not decided: the ACL probe failed: "
    )
    assert (put or get).code in failed.value.message
    assert "retried at the next call that needs it" in failed.value.details
    assert bucket.visibility_mode == "auto"
    # A call that needs the decision fails with that error; nothing is written.
    with pytest.raises(RPCError, match="visibility_mode auto is not decided"):
        await visibility.acl_headers(bucket, "public")
    # Once the service answers about ACLs, the probe decides.
    service.put, service.get = None, acl_document(public=True)
    assert await visibility.mode(bucket) == "acl"


async def test_callers_waiting_on_a_failed_probe_share_its_error() -> None:
    service = ScriptedService(S3Error("PutObject", 403, "SignatureDoesNotMatch", "bad"))
    bucket = auto_bucket(service)
    errors: list[str] = []

    async def decide() -> None:
        try:
            await visibility.mode(bucket)
        except RPCError as exc:
            errors.append(exc.message)

    async with trio.open_nursery() as nursery:
        for _ in range(5):
            nursery.start_soon(decide)
    assert len(errors) == 5
    # One probe for the five callers: they waited for it and got its answer.
    assert service.operations == ["PutObject"]
