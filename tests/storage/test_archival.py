"""Archival headers of new objects, without a network: request fields over bucket defaults."""

from __future__ import annotations

import pytest

from trio_s3rpc.config import BucketConfig
from trio_s3rpc.errors import RPCError
from trio_s3rpc.storage.archival import Archival, archival_headers, archival_of

PLAIN = BucketConfig("plain", "s", "b")
COLD = BucketConfig(
    "cold", "s", "b", storage_class="GLACIER_IR", sse="aws:kms", sse_kms_key_id="alias/cold"
)


def test_nothing_asked_nothing_sent() -> None:
    assert archival_headers(PLAIN, Archival()) == {}


def test_bucket_defaults_apply() -> None:
    assert archival_headers(COLD, Archival()) == {
        "x-amz-storage-class": "GLACIER_IR",
        "x-amz-server-side-encryption": "aws:kms",
        "x-amz-server-side-encryption-aws-kms-key-id": "alias/cold",
    }


def test_request_fields_override_and_a_key_id_stays_with_its_encryption() -> None:
    assert archival_headers(COLD, Archival(storage_class="STANDARD", sse="AES256")) == {
        "x-amz-storage-class": "STANDARD",
        "x-amz-server-side-encryption": "AES256",
    }
    assert archival_headers(COLD, Archival(sse_kms_key_id="alias/other")) == {
        "x-amz-storage-class": "GLACIER_IR",
        "x-amz-server-side-encryption": "aws:kms",
        "x-amz-server-side-encryption-aws-kms-key-id": "alias/other",
    }


@pytest.mark.parametrize(
    ("asked", "message"),
    [
        (Archival(storage_class="glacier"), "field 'storage_class' must be one of S3's"),
        (Archival(sse="KMS"), "field 'sse' must be AES256 or aws:kms, got 'KMS'"),
        (Archival(sse_kms_key_id="alias/x"), "field 'sse_kms_key_id' is only used with sse"),
        (Archival(sse="aws:kms", sse_kms_key_id="a b"), "field 'sse_kms_key_id' must be a KMS"),
    ],
)
def test_bad_fields_are_named(asked: Archival, message: str) -> None:
    with pytest.raises(RPCError) as error:
        archival_headers(PLAIN, asked)
    assert error.value.code.value == "INVALID_REQUEST"
    assert message in error.value.message


def test_what_head_object_says() -> None:
    assert archival_of({}) == Archival("STANDARD", "", "")
    assert archival_of(
        {
            "x-amz-storage-class": "DEEP_ARCHIVE",
            "x-amz-server-side-encryption": "aws:kms",
            "x-amz-server-side-encryption-aws-kms-key-id": "arn:aws:kms:k",
        }
    ) == Archival("DEEP_ARCHIVE", "aws:kms", "arn:aws:kms:k")
