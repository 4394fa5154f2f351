"""S3's XML: error bodies, the answers the storage layer reads, the requests it sends.

Every parser takes the raw response body and returns a small dataclass; a body
that is not the XML it should be raises :class:`S3Error` with code
``MalformedResponse`` instead of an ``ElementTree`` exception, so callers
handle one exception type. Namespaces are ignored (S3 uses
``http://s3.amazonaws.com/doc/2006-03-01/``, some compatible services none).
:class:`S3Error` lives here, beside the parsing of the error bodies it is
built from; ``transport`` re-exports it.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import unquote_plus
from xml.sax.saxutils import escape

from trio_s3rpc.s3.limits import MAX_DELETE_KEYS

S3_NAMESPACE = "http://s3.amazonaws.com/doc/2006-03-01/"
ALL_USERS_URI = "http://acs.amazonaws.com/groups/global/AllUsers"

# Codes for error answers without an XML body (HEAD answers never have one).
_BODILESS_CODES = {
    301: "PermanentRedirect",
    304: "NotModified",
    307: "TemporaryRedirect",
    400: "BadRequest",
    403: "AccessDenied",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    411: "MissingContentLength",
    412: "PreconditionFailed",
    416: "InvalidRange",
    429: "SlowDown",
    500: "InternalError",
    501: "NotImplemented",
    502: "BadGateway",
    503: "ServiceUnavailable",
    504: "GatewayTimeout",
}
_MESSAGE_LIMIT = 300


class S3Error(Exception):
    """A failed S3 request: which operation, the HTTP status and S3's code and message.

    ``status`` is 0 for failures without an HTTP answer (``ConnectionError``,
    ``Timeout``). The text never carries credentials or signatures: it is
    built only from the operation name and what the service answered.
    """

    def __init__(
        self, operation: str, status: int, code: str, message: str, request_id: str = ""
    ) -> None:
        super().__init__(operation, status, code, message, request_id)
        self.operation = operation
        self.status = status
        self.code = code
        self.message = message
        self.request_id = request_id

    def __str__(self) -> str:
        text = f"{self.operation} failed: {self.code}: {self.message}"
        return f"{text} (HTTP {self.status})" if self.status else text

    def __repr__(self) -> str:
        return (
            f"S3Error(operation={self.operation!r}, status={self.status}, code={self.code!r}, "
            f"message={self.message!r}, request_id={self.request_id!r})"
        )


@dataclass(slots=True, frozen=True)
class ErrorBody:
    code: str
    message: str
    request_id: str


@dataclass(slots=True, frozen=True)
class ObjectEntry:
    """One ``<Contents>`` of a listing (``storage_class`` empty when the service
    did not name one)."""

    key: str
    size: int
    last_modified: int
    etag: str
    storage_class: str = ""


@dataclass(slots=True, frozen=True)
class ListObjectsResult:
    contents: list[ObjectEntry]
    common_prefixes: list[str]
    is_truncated: bool
    next_continuation_token: str
    key_count: int


@dataclass(slots=True, frozen=True)
class PartEntry:
    part_number: int
    etag: str
    size: int
    last_modified: int


@dataclass(slots=True, frozen=True)
class ListPartsResult:
    upload_id: str
    parts: list[PartEntry]
    is_truncated: bool
    next_part_number_marker: int


@dataclass(slots=True, frozen=True)
class UploadEntry:
    key: str
    upload_id: str
    initiated: int


@dataclass(slots=True, frozen=True)
class ListUploadsResult:
    uploads: list[UploadEntry]
    common_prefixes: list[str]
    is_truncated: bool
    next_key_marker: str
    next_upload_id_marker: str


@dataclass(slots=True, frozen=True)
class DeleteFailure:
    key: str
    code: str
    message: str


@dataclass(slots=True, frozen=True)
class DeleteResult:
    deleted: list[str]
    errors: list[DeleteFailure]


# --- errors -----------------------------------------------------------------


def parse_error_body(content: bytes) -> ErrorBody | None:
    """The ``<Error>`` document in ``content``, or None if it is not one."""
    stripped = content.lstrip()
    if not stripped.startswith(b"<"):
        return None
    try:
        root = _strip_namespaces(ET.fromstring(stripped))
    except ET.ParseError:
        return None
    if root.tag != "Error":
        return None
    return ErrorBody(
        code=_text(root, "Code"),
        message=_text(root, "Message"),
        request_id=_text(root, "RequestId"),
    )


def error_from_response(
    operation: str, method: str, status: int, content: bytes, request_id: str = ""
) -> S3Error:
    """The S3Error for a failed answer, from its XML body or, lacking one, its status.

    A bodiless 404 (always the case for HEAD) is ``NoSuchKey``, or
    ``NoSuchBucket`` for a bucket operation; a bodiless 403 is ``AccessDenied``.
    """
    body = parse_error_body(content)
    if body is not None and body.code:
        return S3Error(
            operation, status, body.code, body.message or body.code, body.request_id or request_id
        )
    code = _BODILESS_CODES.get(status, f"HTTP{status}")
    if status == 404:
        code = "NoSuchBucket" if operation.endswith("Bucket") else "NoSuchKey"
    message = _snippet(content) if method != "HEAD" and content else ""
    return S3Error(operation, status, code, message or _describe(code), request_id)


def error_in_body(content: bytes, operation: str, status: int = 200) -> S3Error | None:
    """The failure a 2xx body reports when it is an ``<Error>``, else None: CopyObject,
    UploadPartCopy and CompleteMultipartUpload may answer 200 and fail in the body."""
    # Long copies are kept alive with whitespace before the document.
    content = content.lstrip()
    if b"<Error" not in content[:512]:
        return None
    body = parse_error_body(content)
    if body is None:
        return None
    return S3Error(operation, status, body.code or "InternalError", body.message, body.request_id)


def raise_if_error_body(content: bytes, operation: str, status: int = 200) -> None:
    """Raise the :func:`error_in_body` of a 2xx answer, if it has one."""
    error = error_in_body(content, operation, status)
    if error is not None:
        raise error


# --- answers ----------------------------------------------------------------


def parse_list_objects_v2(content: bytes) -> ListObjectsResult:
    """A ListObjectsV2 page; keys are decoded when the request asked for ``encoding-type=url``."""
    root = _parse(content, "ListObjectsV2", "ListBucketResult")
    decode = _decoder(root)
    contents = [
        ObjectEntry(
            key=decode(_required(item, "Key", "ListObjectsV2")),
            size=_int(_text(item, "Size"), "ListObjectsV2"),
            last_modified=iso_to_unix(_text(item, "LastModified")),
            etag=_text(item, "ETag"),
            storage_class=_text(item, "StorageClass"),
        )
        for item in root.iterfind("Contents")
    ]
    prefixes = [decode(_text(item, "Prefix")) for item in root.iterfind("CommonPrefixes")]
    key_count_text = _text(root, "KeyCount")
    return ListObjectsResult(
        contents=contents,
        common_prefixes=prefixes,
        is_truncated=_bool(_text(root, "IsTruncated")),
        next_continuation_token=_text(root, "NextContinuationToken"),
        key_count=(
            _int(key_count_text, "ListObjectsV2")
            if key_count_text
            else len(contents) + len(prefixes)
        ),
    )


def parse_initiate_multipart(content: bytes) -> str:
    """The upload id from a CreateMultipartUpload answer."""
    root = _parse(content, "CreateMultipartUpload", "InitiateMultipartUploadResult")
    return _required(root, "UploadId", "CreateMultipartUpload")


def parse_copy_result(content: bytes, operation: str = "CopyObject") -> tuple[str, int]:
    """``(etag, last_modified)`` from a CopyObject or UploadPartCopy answer; an ``<Error>``
    in a 200 body raises S3Error. ``last_modified`` is 0 when the answer has none."""
    raise_if_error_body(content, operation)
    root = _parse(content, operation, None)
    return _required(root, "ETag", operation), iso_to_unix(_text(root, "LastModified"))


def parse_complete_multipart(content: bytes) -> str:
    """The ETag of a CompleteMultipartUpload answer: "" when the answer carries an empty
    ``<ETag></ETag>`` or none (Ceph RGW 16 does); an ``<Error>`` in a 200 body raises S3Error."""
    operation = "CompleteMultipartUpload"
    raise_if_error_body(content, operation)
    return _text(_parse(content, operation, None), "ETag")


def parse_list_parts(content: bytes) -> ListPartsResult:
    # moto (5.2) names the root ListPartsResponse; the document inside is the same.
    root = _parse(content, "ListParts", ("ListPartsResult", "ListPartsResponse"))
    parts = [
        PartEntry(
            part_number=_int(_required(item, "PartNumber", "ListParts"), "ListParts"),
            etag=_text(item, "ETag"),
            size=_int(_text(item, "Size"), "ListParts"),
            last_modified=iso_to_unix(_text(item, "LastModified")),
        )
        for item in root.iterfind("Part")
    ]
    marker = _text(root, "NextPartNumberMarker")
    return ListPartsResult(
        upload_id=_text(root, "UploadId"),
        parts=parts,
        is_truncated=_bool(_text(root, "IsTruncated")),
        next_part_number_marker=_int(marker, "ListParts") if marker else 0,
    )


def parse_list_multipart_uploads(content: bytes) -> ListUploadsResult:
    operation = "ListMultipartUploads"
    root = _parse(content, operation, "ListMultipartUploadsResult")
    decode = _decoder(root)
    uploads = [
        UploadEntry(
            key=decode(_required(item, "Key", operation)),
            upload_id=_required(item, "UploadId", operation),
            initiated=iso_to_unix(_text(item, "Initiated")),
        )
        for item in root.iterfind("Upload")
    ]
    return ListUploadsResult(
        uploads=uploads,
        common_prefixes=[decode(_text(item, "Prefix")) for item in root.iterfind("CommonPrefixes")],
        is_truncated=_bool(_text(root, "IsTruncated")),
        next_key_marker=decode(_text(root, "NextKeyMarker")),
        next_upload_id_marker=_text(root, "NextUploadIdMarker"),
    )


def parse_acl_is_public(content: bytes) -> bool:
    """Whether an AccessControlPolicy lets everyone read (AllUsers with READ or FULL_CONTROL)."""
    root = _parse(content, "GetObjectAcl", "AccessControlPolicy")
    for grant in root.iter("Grant"):
        grantee = grant.find("Grantee")
        if grantee is None or _text(grantee, "URI") != ALL_USERS_URI:
            continue
        if _text(grant, "Permission") in ("READ", "FULL_CONTROL"):
            return True
    return False


def parse_delete_result(content: bytes) -> DeleteResult:
    root = _parse(content, "DeleteObjects", "DeleteResult")
    return DeleteResult(
        deleted=[_text(item, "Key") for item in root.iterfind("Deleted")],
        errors=[
            DeleteFailure(_text(item, "Key"), _text(item, "Code"), _text(item, "Message"))
            for item in root.iterfind("Error")
        ],
    )


# --- requests ---------------------------------------------------------------


def build_complete_multipart(parts: Sequence[tuple[int, str]]) -> bytes:
    """The CompleteMultipartUpload body for ``(part_number, etag)`` pairs in order."""
    items = "".join(
        f"<Part><PartNumber>{number}</PartNumber><ETag>{escape(etag)}</ETag></Part>"
        for number, etag in parts
    )
    return _document("CompleteMultipartUpload", items)


def build_delete_objects(keys: Iterable[str], *, quiet: bool = True) -> bytes:
    """The DeleteObjects body for at most 1000 keys; quiet answers list only failures."""
    key_list = list(keys)
    if not 1 <= len(key_list) <= MAX_DELETE_KEYS:
        raise ValueError(f"DeleteObjects takes 1..{MAX_DELETE_KEYS} keys, got {len(key_list)}")
    items = "".join(f"<Object><Key>{escape(key)}</Key></Object>" for key in key_list)
    return _document("Delete", f"<Quiet>{'true' if quiet else 'false'}</Quiet>{items}")


# --- helpers ----------------------------------------------------------------


def iso_to_unix(text: str) -> int:
    """Unix seconds for S3's ISO 8601 (``2024-05-01T10:00:00.000Z``) or, as some services
    send, RFC 1123 timestamps; 0 for an empty or unreadable one."""
    text = text.strip()
    if not text:
        return 0
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        try:
            moment = parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return 0
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


def _document(root: str, inner: str) -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<{root} xmlns="{S3_NAMESPACE}">{inner}</{root}>'
    ).encode()


def _parse(
    content: bytes, operation: str, expected_root: str | tuple[str, ...] | None
) -> ET.Element:
    try:
        root = _strip_namespaces(ET.fromstring(content.lstrip()))
    except ET.ParseError as exc:
        raise S3Error(
            operation, 200, "MalformedResponse", f"the answer is not XML: {exc}"
        ) from None
    if root.tag == "Error":
        raise S3Error(
            operation,
            200,
            _text(root, "Code") or "InternalError",
            _text(root, "Message"),
            _text(root, "RequestId"),
        )
    accepted = (expected_root,) if isinstance(expected_root, str) else expected_root
    if accepted is not None and root.tag not in accepted:
        raise S3Error(
            operation, 200, "MalformedResponse", f"expected <{accepted[0]}>, got <{root.tag}>"
        )
    return root


def _strip_namespaces(root: ET.Element) -> ET.Element:
    for element in root.iter():
        tag = element.tag
        if isinstance(tag, str) and tag[:1] == "{":
            element.tag = tag.partition("}")[2]
    return root


def _text(element: ET.Element, name: str) -> str:
    child = element.find(name)
    if child is None or child.text is None:
        return ""
    # Not stripped: keys and prefixes are data and may begin or end with spaces.
    return child.text


def _required(element: ET.Element, name: str, operation: str) -> str:
    child = element.find(name)
    if child is None or not child.text:
        raise S3Error(operation, 200, "MalformedResponse", f"<{element.tag}> has no <{name}>")
    return child.text


def _int(text: str, operation: str) -> int:
    if not text:
        return 0
    try:
        return int(text)
    except ValueError:
        raise S3Error(operation, 200, "MalformedResponse", f"not a number: {text[:40]!r}") from None


def _bool(text: str) -> bool:
    return text.strip().lower() == "true"


def _decoder(root: ET.Element) -> Callable[[str], str]:
    """Keys as stored: URL-decoded when the request asked for ``encoding-type=url``."""
    return unquote_plus if _text(root, "EncodingType").lower() == "url" else _identity


def _identity(text: str) -> str:
    return text


def _snippet(content: bytes) -> str:
    text = content.decode("utf-8", "replace").strip()
    text = " ".join(text.split())
    return text[:_MESSAGE_LIMIT]


def _describe(code: str) -> str:
    """A readable message for a code that came without one."""
    words: list[str] = []
    for char in code:
        if char.isupper() and words:
            words.append(" ")
        words.append(char.lower() if words else char)
    return "".join(words)
