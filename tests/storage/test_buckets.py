"""The one mapping of storage failures, and pathname validation (no network)."""

from __future__ import annotations

import pytest

from tests.support.fake_s3 import fake_storage
from trio_s3rpc.errors import ErrorCode, RPCError
from trio_s3rpc.s3.parts import PartLimitError
from trio_s3rpc.s3.transport import S3Error
from trio_s3rpc.storage.buckets import (
    MAX_KEY_BYTES,
    StorageError,
    StorageErrors,
    map_s3_error,
    validate_pathname,
)


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (404, "NoSuchKey", ErrorCode.FILE_NOT_FOUND),
        (404, "NotFound", ErrorCode.FILE_NOT_FOUND),
        (404, "", ErrorCode.FILE_NOT_FOUND),  # a HEAD answer has no body to name the code
        (404, "NoSuchBucket", ErrorCode.S3_OPERATION_FAILED),  # the bucket, not the file
        (404, "NoSuchUpload", ErrorCode.S3_OPERATION_FAILED),
        (403, "SignatureDoesNotMatch", ErrorCode.PERMISSION_DENIED),
        (400, "AccessDenied", ErrorCode.PERMISSION_DENIED),
        (400, "AllAccessDisabled", ErrorCode.PERMISSION_DENIED),
        (0, "Timeout", ErrorCode.OPERATION_TIMEOUT),
        (0, "ConnectionError", ErrorCode.S3_OPERATION_FAILED),
        (500, "InternalError", ErrorCode.S3_OPERATION_FAILED),
    ],
)
def test_map_s3_error_codes(status: int, code: str, expected: ErrorCode) -> None:
    mapped = map_s3_error(S3Error("GetObject", status, code, "what the service said"), "b", "a.txt")
    assert mapped.code is expected
    assert mapped.details == "bucket: b, pathname: a.txt"
    assert (mapped.status, mapped.service_code) == (status, code)


def test_map_s3_error_says_which_operation_failed_and_why() -> None:
    mapped = map_s3_error(S3Error("PutObject", 500, "InternalError", "disk on fire"), "b")
    assert mapped.wire_text() == (
        "S3_OPERATION_FAILED: PutObject failed: InternalError: disk on fire (bucket: b)"
    )
    denied = map_s3_error(S3Error("PutObject", 403, "AccessDenied", "no"), "b", "x")
    assert denied.message == "the storage service refused PutObject: AccessDenied: no"
    late = map_s3_error(S3Error("GetObject", 0, "Timeout", "no answer in time"), "b", "x")
    assert late.message == "GetObject timed out: no answer in time"


def test_storage_errors_maps_storage_failures_and_refused_plans_and_passes_the_rest() -> None:
    with pytest.raises(StorageError) as mapped:
        with StorageErrors("b", "a.txt"):
            raise S3Error("HeadObject", 404, "NoSuchKey", "gone")
    assert mapped.value.code is ErrorCode.FILE_NOT_FOUND
    with pytest.raises(RPCError) as refused:
        with StorageErrors("b", "a.txt"):
            raise PartLimitError("too large")
    assert (refused.value.code, refused.value.message) == (ErrorCode.INVALID_REQUEST, "too large")
    with pytest.raises(KeyError):
        with StorageErrors("b"):
            raise KeyError("a bug stays a bug")


def test_a_bucket_request_names_the_pathname_of_its_key() -> None:
    storage, _ = fake_storage(prefix="tenant/")
    bucket = storage.bucket("")
    assert bucket.pathname("tenant/dir/a.txt") == "dir/a.txt"
    assert bucket.pathname(None) == ""
    ref = storage.resolve("", "dir/a.txt")
    assert (ref.bucket, ref.pathname, ref.key) == (bucket, "dir/a.txt", "tenant/dir/a.txt")


def test_unknown_buckets_and_overlong_keys_are_refused() -> None:
    storage, _ = fake_storage(prefix="tenant/")
    with pytest.raises(RPCError) as missing:
        storage.resolve("nope", "a.txt")
    assert missing.value.code is ErrorCode.BUCKET_NOT_FOUND
    longest = "x" * (MAX_KEY_BYTES - len("tenant/"))
    assert storage.resolve("", longest).key == "tenant/" + longest
    with pytest.raises(RPCError) as long:
        storage.resolve("", longest + "x")
    assert long.value.code is ErrorCode.INVALID_PATHNAME
    assert "1024 bytes" in long.value.message


@pytest.mark.parametrize(
    "pathname", ["a.txt", "dir/sub/a.txt", "..dots../a", "a b/ü.txt", "dir/", ".hidden"]
)
def test_valid_pathnames(pathname: str) -> None:
    validate_pathname(pathname)


@pytest.mark.parametrize(
    ("pathname", "says"),
    [
        ("", "is empty"),
        ("/a.txt", "must not start with '/'"),
        ("a/../b", "'.' or '..' segment"),
        ("..", "'.' or '..' segment"),
        ("a/./b", "'.' or '..' segment"),
        ("a\nb", "control characters"),
        ("a\x00b", "control characters"),
        ("a\x7fb", "control characters"),
    ],
)
def test_invalid_pathnames_say_what_is_wrong(pathname: str, says: str) -> None:
    with pytest.raises(RPCError) as error:
        validate_pathname(pathname, "dest_pathname")
    assert error.value.code is ErrorCode.INVALID_PATHNAME
    assert error.value.message.startswith("dest_pathname ")
    assert says in error.value.message
