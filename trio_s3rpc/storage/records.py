"""What storage operations are asked and answer, and how objects' headers are read
and written.

:class:`NewObject` is what a write or copy asks the new object to be created
with. The other records are the answers of the operations. Those whose fields
are the contract's wire names (:class:`ObjectContent`, :class:`DeleteManyResult`
and its :class:`DeleteError`) are answered as they are by ``rpc/methods.py``, not
copied, as are a listing's ``s3/xml.py`` entries; so are the standard
headers' names (:class:`StandardHeaderFields`), which the write requests take
as their fields. The helpers translate between an object's HTTP headers and
what they mean: dates, user metadata, the stored checksum.
"""

from __future__ import annotations

import base64
import email.utils
import functools
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from trio_s3rpc import checksums
from trio_s3rpc.errors import ChecksumMismatchError, ErrorCode, RPCError
from trio_s3rpc.s3.limits import MAX_METADATA_BYTES
from trio_s3rpc.s3.multipart import CompletedUpload
from trio_s3rpc.storage.archival import Archival

log = logging.getLogger("trio_s3rpc.storage")

_METADATA_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
# S3's limit on user metadata: the UTF-8 bytes of every key and value, together.
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")


# 9999-12-31T23:59:59Z: an HTTP date has a four-digit year.
LAST_HTTP_DATE = 253402300799

# The standard headers an object is stored with and served with: request field -> HTTP header.
STANDARD_HEADERS = {
    "cache_control": "Cache-Control",
    "content_disposition": "Content-Disposition",
    "content_encoding": "Content-Encoding",
    "content_language": "Content-Language",
    "expires": "Expires",
}


@dataclass(slots=True, frozen=True, kw_only=True)
class StandardHeaderFields:
    """The standard headers by their wire names, declared once: the request fields of
    every call that writes an object (``rpc/methods.py``) and :class:`ObjectHeaders`.
    Empty (or 0 for ``expires``) means not set."""

    cache_control: str = ""
    content_disposition: str = ""
    content_encoding: str = ""
    content_language: str = ""
    expires: int = 0  # Unix seconds

    def object_headers(self) -> ObjectHeaders:
        """These fields as the headers of an object (to store, merge or compare)."""
        return ObjectHeaders(**{name: getattr(self, name) for name in STANDARD_HEADERS})


@dataclass(slots=True, frozen=True, kw_only=True)
class ObjectHeaders(StandardHeaderFields):
    """An object's standard headers, as a write asks for them or HeadObject answers them."""

    def __bool__(self) -> bool:
        return any(getattr(self, name) for name in STANDARD_HEADERS)

    def over(self, stored: ObjectHeaders) -> ObjectHeaders:
        """These headers, and for those not set here the ``stored`` ones."""
        return ObjectHeaders(
            **{name: getattr(self, name) or getattr(stored, name) for name in STANDARD_HEADERS}
        )

    def http(self) -> dict[str, str]:
        """The HTTP headers to store; a value no header can carry is ``INVALID_REQUEST``."""
        headers: dict[str, str] = {}
        for name, header in STANDARD_HEADERS.items():
            value = getattr(self, name)
            if name == "expires":
                if not 0 <= value <= LAST_HTTP_DATE:
                    raise RPCError(
                        ErrorCode.INVALID_REQUEST,
                        f"field 'expires' must be Unix seconds from 0 (none) to "
                        f"{LAST_HTTP_DATE} (the last second of year 9999, the latest an HTTP "
                        f"date can carry), got {value}",
                    )
                if value:
                    headers[header] = email.utils.formatdate(value, usegmt=True)
                continue
            if not value:
                continue
            if not value.isascii() or _CONTROL_CHARS.search(value):
                raise RPCError(
                    ErrorCode.INVALID_REQUEST,
                    f"field '{name}' must be printable ASCII (an HTTP header value); "
                    "encode a non-ASCII file name as filename*=UTF-8''<percent-encoded>",
                    repr(value),
                )
            headers[header] = value.strip()
        return headers

    @classmethod
    def from_response(cls, headers: Mapping[str, str]) -> ObjectHeaders:
        return cls(
            cache_control=headers.get("cache-control", ""),
            content_disposition=headers.get("content-disposition", ""),
            content_encoding=headers.get("content-encoding", ""),
            content_language=headers.get("content-language", ""),
            expires=http_date(headers.get("expires")),
        )


@dataclass(slots=True, frozen=True)
class ObjectInfo:
    size: int
    last_modified: int
    mime_type: str = ""
    etag: str = ""
    # User metadata as the service sent it (x-amz-meta-* headers, names lowercased).
    metadata: Mapping[str, str] = field(default_factory=dict)
    # "<algorithm>:<hex>" of the object's bytes, when known (see checksums.py).
    checksum: str = ""
    # As HeadObject answers them (see archival.py); "" where not read.
    archival: Archival = Archival()
    headers: ObjectHeaders = ObjectHeaders()

    def user_metadata(self) -> dict[str, str]:
        """The user metadata as headers, without the checksum (which is set apart)."""
        return {
            name: value
            for name, value in self.metadata.items()
            if name != checksums.METADATA_HEADER
        }

    def user_fields(self) -> dict[str, str]:
        """The user metadata as a write's ``config`` gave it: names without
        ``x-amz-meta-``, values as written (a non-ASCII one travels RFC 2047-encoded)."""
        prefix = len("x-amz-meta-")
        return {name[prefix:]: _from_rfc2047(value) for name, value in self.user_metadata().items()}

    @classmethod
    def uploaded(
        cls, done: CompletedUpload, headers: Mapping[str, str], checksum: str | None = None
    ) -> ObjectInfo:
        """The object a multipart upload created with ``headers`` completed as; its
        checksum is the one those headers store unless ``checksum`` is given."""
        return cls(
            size=done.size,
            last_modified=int(time.time()),
            mime_type=headers.get("Content-Type", ""),
            etag=done.etag,
            checksum=headers.get(checksums.METADATA_HEADER, "") if checksum is None else checksum,
        )


@dataclass(slots=True, frozen=True, kw_only=True)
class NewObject:
    """What a call that creates an object asks it to be created with: built once by the
    method from its request and handed down unchanged (Write, WriteFile, UploadStart,
    Copy, Move).

    Empty means the default: a content type from the pathname's extension or the
    content's first bytes, the bucket's visibility, storage class and encryption.
    A copy keeps its source's content type, user metadata (unless ``metadata`` is
    given: it replaces all of it) and standard headers (each one ``headers`` sets
    replaces the source's).
    """

    metadata: Mapping[str, str] = field(default_factory=dict)
    visibility: str = ""
    content_type: str = ""
    headers: ObjectHeaders = ObjectHeaders()
    archival: Archival = Archival()

    def __post_init__(self) -> None:
        # Built by the method before any request: metadata S3 would refuse (HTTP
        # 400 or 431) is refused here, whatever the call does first.
        check_metadata_size(self.metadata)


def check_metadata_size(metadata: Mapping[str, str]) -> None:
    """Refuse user metadata above S3's 2 KB (keys and values, UTF-8)."""
    if not metadata:
        return
    total = 0
    for name, value in metadata.items():
        total += len(name.encode("utf-8", "surrogateescape"))
        total += len(value.encode("utf-8", "surrogateescape"))
        if total > MAX_METADATA_BYTES:
            raise RPCError(
                ErrorCode.INVALID_REQUEST,
                f"user metadata (config) of {len(metadata)} entries is more than the "
                f"{MAX_METADATA_BYTES} bytes S3 allows (the UTF-8 bytes of every key and value)",
                "store larger data in the object, or in an object of its own",
            )


@dataclass(slots=True, frozen=True)
class ObjectContent:
    content: bytes
    size: int
    mime_type: str
    last_modified: int
    # The version these bytes are of: a later ranged Read passes it as ``if_match``.
    etag: str = ""


@dataclass(slots=True, frozen=True)
class DeleteError:
    """A pathname DeleteMany did not delete: a contract code and why."""

    pathname: str
    code: str
    message: str


@dataclass(slots=True, frozen=True)
class DeleteManyResult:
    deleted: list[str]
    errors: list[DeleteError]


def stored_checksum(headers: Mapping[str, str]) -> str:
    """The checksum an object's metadata carries ("" when it has none)."""
    return headers.get(checksums.METADATA_HEADER, "").strip()


def verify_checksum(stored: str, actual: int, bucket: str, pathname: str) -> None:
    """Refuse bytes that do not match the checksum stored with them.

    An object without a checksum (written by something else) or with one of
    an algorithm this server does not compute passes unverified.
    """
    expected = checksums.parse_checksum(stored)
    if expected is None or expected == actual:
        return
    read = checksums.format_checksum(actual)
    log.error(
        "event=checksum_mismatch bucket=%s pathname=%r stored=%s read=%s",
        bucket,
        pathname,
        stored,
        read,
    )
    raise ChecksumMismatchError(
        ErrorCode.S3_OPERATION_FAILED,
        "checksum mismatch: the bytes the storage service returned are not the bytes "
        "that were written",
        f"bucket: {bucket}, pathname: {pathname}, stored checksum {stored}, "
        f"checksum of the bytes read {read}",
    )


@functools.lru_cache(maxsize=1024)
def http_date(value: str | None) -> int:
    """Unix seconds of an HTTP date header (0 when absent or unreadable).

    Cached: the same objects' Last-Modified come back again and again, and
    parsing one costs 2.9 µs against 0.1 µs for a hit.
    """
    if not value:
        return 0
    try:
        return int(email.utils.parsedate_to_datetime(value).timestamp())
    except (TypeError, ValueError):
        return 0


_RFC2047_UTF8 = re.compile(r"^=\?UTF-8\?B\?([A-Za-z0-9+/=]*)\?=$", re.IGNORECASE)


def _from_rfc2047(value: str) -> str:
    """A value :func:`metadata_headers` encoded, decoded back; any other as it is."""
    match = _RFC2047_UTF8.match(value)
    if match is None:
        return value
    try:
        return base64.b64decode(match[1], validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return value


def metadata_headers(metadata: Mapping[str, str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in metadata.items():
        if not _METADATA_NAME.match(name):
            raise RPCError(
                ErrorCode.INVALID_REQUEST,
                f"config key {name!r} is not a valid metadata name "
                "(letters, digits, '-' and '_' only)",
            )
        if name.lower() == checksums.METADATA_NAME:
            raise RPCError(
                ErrorCode.INVALID_REQUEST,
                f"config key {name!r} is reserved: it holds the checksum this server "
                "computes for every object it writes",
            )
        if not value.isascii() or _CONTROL_CHARS.search(value):
            # As the AWS SDKs do: RFC 2047 keeps non-ASCII values intact in a header.
            encoded = base64.b64encode(value.encode("utf-8")).decode("ascii")
            value = f"=?UTF-8?B?{encoded}?="
        headers[f"x-amz-meta-{name.lower()}"] = value
    return headers
