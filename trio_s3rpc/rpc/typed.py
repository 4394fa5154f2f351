"""The ``s3.*`` methods' request and answer records: dataclasses whose field
names are the wire names (``decoding.py`` turns arguments into them and them
into answers)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from trio_s3rpc.config import BUCKET_SETTINGS, how_read, wire_type
from trio_s3rpc.errors import ErrorCode, RPCError
from trio_s3rpc.rpc.decoding import (
    Binary,
    converter_for,
    field_value,
    omitempty,
    required_field,
    to_str,
)
from trio_s3rpc.storage.archival import Archival
from trio_s3rpc.storage.records import NewObject, StandardHeaderFields

# -- the s3.* methods' requests and answers ----------------------------------
#
# Field names are the wire names of ``rpc-api.md``.

# -- buckets ---------------------------------------------------------------


@dataclass(slots=True, frozen=True)
class RegisterBucketRequest:
    """``s3.RegisterBucket``: ``name`` and the bucket settings the caller set.

    Its fields are the settings of ``s3.buckets.<name>`` (``BucketConfig``'s
    declarations, read by :class:`RegisterBucketDecoder`), so a new bucket
    setting can be registered without an edit here. Settings left out, null
    or empty take the configuration's defaults.
    """

    name: str
    settings: dict[str, str | int]


class RegisterBucketDecoder:
    """Decodes ``s3.RegisterBucket`` from the bucket settings' declarations: each
    setting typed as it is on the wire (``wire_type``), errors naming the field
    as :class:`RequestDecoder`'s do."""

    __slots__ = ("_settings",)

    binary_fields: frozenset[str] = frozenset()
    request_type = RegisterBucketRequest

    def __init__(self) -> None:
        self._settings = tuple(
            (
                item.name,
                converter_for(wire_type(how_read(item))),
                item.default is dataclasses.MISSING,
            )
            for item in BUCKET_SETTINGS
        )

    @property
    def field_names(self) -> tuple[str, ...]:
        return ("name", *(key for key, _, _ in self._settings))

    def decode(self, args: Mapping[str, Any], binary_as_base64: bool) -> RegisterBucketRequest:
        name = required_field(args, "name", to_str, binary_as_base64)
        settings: dict[str, str | int] = {}
        for key, convert, required in self._settings:
            value = args.get(key)
            if required:
                settings[key] = required_field(args, key, convert, binary_as_base64)
            elif value is not None and value != "":
                settings[key] = field_value(key, convert, value, binary_as_base64)
        return RegisterBucketRequest(name, settings)


@dataclass(slots=True, frozen=True)
class RegisterBucketResponse:
    success: bool
    message: str


@dataclass(slots=True, frozen=True)
class ListBucketsRequest:
    pass


# Not frozen: a frozen dataclass's __init__ sets each field through object.__setattr__,
# and every ListBuckets call makes one (the RPC floor's call). Read it, never change it.
@dataclass(slots=True)
class ListBucketsResponse:
    buckets: list[str]
    default: str


@dataclass(slots=True, frozen=True)
class BucketRequest:
    bucket: str = ""


@dataclass(slots=True, frozen=True)
class BucketInfoResponse:
    """What a client needs to know of a bucket to write to it as the server will."""

    name: str
    # acl | none: an ``auto`` bucket is probed first, so the answer is what writes do.
    visibility_mode: str
    # The bucket's default visibility, every object's under ``none``.
    visibility: str


# -- objects ---------------------------------------------------------------


@dataclass(slots=True, frozen=True, kw_only=True)
class NewObjectFields(StandardHeaderFields):
    """The fields of every call that creates an object (Write, WriteFile, UploadStart,
    Copy, Move): user metadata (``config``), visibility, storage class and encryption
    ("" = the bucket's default), and the standard headers."""

    config: dict[str, str] = field(default_factory=dict)
    visibility: str = ""
    storage_class: str = ""
    sse: str = ""
    sse_kms_key_id: str = ""
    # Not supported: named so that a caller sending it is told, not ignored.
    tagging: str = ""

    def new_object(self, content_type: str = "") -> NewObject:
        """What storage is to create the object with (a copy has no ``content_type``)."""
        if self.tagging:
            raise RPCError(
                ErrorCode.INVALID_REQUEST,
                "field 'tagging' is not supported: this server sets no object tags; "
                "send the write without it",
            )
        return NewObject(
            metadata=self.config,
            visibility=self.visibility,
            content_type=content_type,
            headers=self.object_headers(),
            archival=Archival(self.storage_class, self.sse, self.sse_kms_key_id),
        )


@dataclass(slots=True, frozen=True)
class WriteRequest(NewObjectFields):
    pathname: str
    content: Binary
    bucket: str = ""
    content_type: str = ""


@dataclass(slots=True, frozen=True)
class ObjectWrittenResponse:
    success: bool
    pathname: str
    size: int
    last_modified: int
    # "<algorithm>:<hex>" of the object's bytes (a Copy of an object without one has none).
    checksum: str = omitempty("")


@dataclass(slots=True, frozen=True)
class ReadRequest:
    pathname: str
    bucket: str = ""
    offset: int = 0
    length: int | None = None
    # An ETag: the bytes must be of that version, else OBJECT_CHANGED.
    if_match: str = ""


@dataclass(slots=True, frozen=True)
class PathRequest:
    pathname: str
    bucket: str = ""


@dataclass(slots=True, frozen=True)
class ExistsResponse:
    exists: bool


@dataclass(slots=True, frozen=True)
class SuccessResponse:
    success: bool


@dataclass(slots=True, frozen=True)
class CopyRequest(NewObjectFields):
    source_pathname: str
    dest_pathname: str
    source_bucket: str = ""
    dest_bucket: str = ""


@dataclass(slots=True, frozen=True)
class MetadataResponse:
    size: int
    mime_type: str
    last_modified: int
    visibility: str
    etag: str = omitempty("")
    checksum: str = omitempty("")
    storage_class: str = omitempty("")
    sse: str = omitempty("")
    sse_kms_key_id: str = omitempty("")
    cache_control: str = omitempty("")
    content_disposition: str = omitempty("")
    content_encoding: str = omitempty("")
    content_language: str = omitempty("")
    expires: int = omitempty(0)
    # User metadata, as a write's ``config`` set it.
    config: dict[str, str] = omitempty(None)


@dataclass(slots=True, frozen=True)
class SetVisibilityRequest:
    pathname: str
    visibility: str
    bucket: str = ""


@dataclass(slots=True, frozen=True)
class PublicURLRequest:
    pathname: str
    bucket: str = ""
    expires_in: int = 0
    response_content_type: str = ""
    response_content_disposition: str = ""


@dataclass(slots=True, frozen=True)
class PublicURLResponse:
    url: str
    expires_at: int = omitempty(0)


@dataclass(slots=True, frozen=True)
class UploadURLRequest:
    pathname: str
    bucket: str = ""
    expires_in: int = 3600
    content_type: str = ""
    visibility: str = ""


@dataclass(slots=True, frozen=True)
class UploadURLResponse:
    url: str
    headers: dict[str, str]
    expires_at: int


@dataclass(slots=True, frozen=True)
class UploadFormRequest:
    max_size: int
    bucket: str = ""
    key_prefix: str = ""
    min_size: int = 0
    content_type_prefix: str = ""
    expires_in: int = 3600
    visibility: str = ""


@dataclass(slots=True, frozen=True)
class UploadFormResponse:
    url: str
    fields: dict[str, str]
    expires_at: int


@dataclass(slots=True, frozen=True)
class ListObjectsRequest:
    bucket: str = ""
    prefix: str = ""
    delimiter: str = ""
    max_keys: int = 1000
    continuation_token: str = ""


@dataclass(slots=True, frozen=True)
class PrefixEntry:
    prefix: str


@dataclass(slots=True, frozen=True)
class ObjectEntry:
    """One object of an ``s3.ListObjects`` answer; ``key`` is its pathname (the
    bucket's prefix taken off)."""

    key: str
    size: int
    last_modified: int
    etag: str
    storage_class: str = omitempty("")


@dataclass(slots=True, frozen=True)
class ListObjectsResponse:
    objects: list[ObjectEntry]
    is_truncated: bool
    key_count: int
    common_prefixes: list[PrefixEntry] = omitempty(None)
    next_continuation_token: str = omitempty("")


# -- large files and chunked uploads ---------------------------------------


@dataclass(slots=True, frozen=True)
class WriteFileRequest(NewObjectFields):
    pathname: str
    source_path: str
    bucket: str = ""
    content_type: str = ""
    resume: bool = False


@dataclass(slots=True, frozen=True)
class ReadFileRequest:
    pathname: str
    destination_path: str
    bucket: str = ""
    # The new file's permission bits (within s3.local_file_mode); unset: a replaced
    # file's, or 0600 less the umask.
    mode: int | None = None


@dataclass(slots=True, frozen=True)
class ReadFileResponse:
    success: bool
    size: int
    mime_type: str
    last_modified: int
    # The stored checksum the file's bytes were verified against, when the object has one.
    checksum: str = omitempty("")


@dataclass(slots=True, frozen=True)
class UploadStartRequest(NewObjectFields):
    pathname: str
    bucket: str = ""
    content_type: str = ""


@dataclass(slots=True, frozen=True)
class UploadStartResponse:
    upload_id: str


@dataclass(slots=True, frozen=True)
class UploadChunkRequest:
    upload_id: str
    content: Binary
    offset: int | None = None


@dataclass(slots=True, frozen=True)
class UploadChunkResponse:
    success: bool
    size: int


@dataclass(slots=True, frozen=True)
class UploadIdRequest:
    upload_id: str


@dataclass(slots=True, frozen=True)
class UploadFinishRequest:
    upload_id: str
    # The total bytes the client sent: a finish completes only with every one of them.
    size: int | None = None


@dataclass(slots=True, frozen=True)
class UploadStatusResponse:
    committed_bytes: int
    parts: int


@dataclass(slots=True, frozen=True)
class UploadFinishResponse:
    success: bool
    pathname: str
    size: int
    last_modified: int
    checksum: str = omitempty("")


@dataclass(slots=True, frozen=True)
class DeleteManyRequest:
    pathnames: list[str]
    bucket: str = ""


@dataclass(slots=True, frozen=True)
class TransferIdRequest:
    transfer_id: str


@dataclass(slots=True, frozen=True)
class TransferStatusResponse:
    state: str
    bytes_done: int
    bytes_total: int
    parts_done: int
    parts_total: int
    started_at: int
    method: str
    finished_at: int = omitempty(0)


@dataclass(slots=True, frozen=True)
class CancelResponse:
    success: bool
    state: str
