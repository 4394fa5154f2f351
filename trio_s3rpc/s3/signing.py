"""AWS Signature Version 4 for S3 requests: the Authorization header and presigned URLs.

Header signing is on the hot path (every S3 request), so it is computed here
directly with ``hashlib``/``hmac`` instead of through botocore's
``S3SigV4Auth``, which builds an ``AWSRequest``, header maps and re-parses the
URL on every call. The derived signing key is cached for the current date.
The output is exactly what botocore produces for the same request, time and
credentials; the tests hold it to that. Presigned URLs are rare and go through
botocore's ``S3SigV4QueryAuth`` itself. This module also owns the path and query encoding,
because what is signed must be byte-for-byte what is sent.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Mapping, MutableMapping, Sequence
from urllib.parse import quote

from botocore.auth import S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotocoreCredentials

from trio_s3rpc.s3.endpoint import Credentials

UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
EMPTY_PAYLOAD_SHA256 = hashlib.sha256(b"").hexdigest()
# Hashing a body costs in proportion to its size, so bodies up to the limit are
# signed and larger ones go as UNSIGNED-PAYLOAD unless the server's
# ``checksums`` setting is ``when_supported``.
SIGNED_PAYLOAD_LIMIT = 64 * 1024
MAX_PRESIGN_EXPIRES = 7 * 24 * 3600

_ALGORITHM = "AWS4-HMAC-SHA256"
_SERVICE = "s3"
_TIMESTAMP_FORMAT = "%Y%m%dT%H%M%SZ"
# The same headers botocore leaves out of the signature: hop-by-hop headers
# and ones that proxies and HTTP clients are free to rewrite.
_UNSIGNED_HEADERS = frozenset(
    {
        "authorization",
        "baggage",
        "connection",
        "expect",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "traceparent",
        "tracestate",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "user-agent",
        "x-amzn-trace-id",
    }
)


def payload_hash(body: bytes, *, sign_large: bool = False) -> str:
    """The ``x-amz-content-sha256`` value for a body held in memory.

    S3 checks a signed payload against what it received, so signing is also
    an integrity check; ``sign_large`` extends it past SIGNED_PAYLOAD_LIMIT.
    """
    if not body:
        return EMPTY_PAYLOAD_SHA256
    if len(body) > SIGNED_PAYLOAD_LIMIT and not sign_large:
        return UNSIGNED_PAYLOAD
    return hashlib.sha256(body).hexdigest()


def encode_key_path(key: str) -> str:
    """Percent-encode an object key for the URL path, as S3 expects.

    "/" stays literal; everything but unreserved characters is encoded as
    UTF-8 (space, ``+``, ``#``, ``?``, ``&``, ``%``...). Whole-segment "." and
    ".." are encoded too, because HTTP clients (httpx among them) otherwise
    drop them as dot segments and would address another key.
    """
    encoded = quote(key, safe="/~")
    if "." not in encoded:
        return encoded
    segments = encoded.split("/")
    for index, segment in enumerate(segments):
        if segment in (".", ".."):
            segments[index] = segment.replace(".", "%2E")
    return "/".join(segments)


def canonical_query(query: Mapping[str, str] | None) -> str:
    """The query string, encoded and sorted as SigV4 requires; also what goes on the wire."""
    if not query:
        return ""
    pairs = sorted(
        (quote(name, safe="-_.~"), quote(value, safe="-_.~")) for name, value in query.items()
    )
    return "&".join(f"{name}={value}" for name, value in pairs)


def amz_timestamp(now: float) -> str:
    """``YYYYMMDDTHHMMSSZ`` for a Unix time."""
    return time.strftime(_TIMESTAMP_FORMAT, time.gmtime(now))


class RequestSigner:
    """Signs S3 requests for one set of credentials and one region.

    Holds the derived signing key for the current date so that a request costs
    one HMAC for the signature instead of five. ``clock_offset`` (seconds) is
    added to the local clock; the transport sets it from a server's Date header
    after a RequestTimeTooSkewed answer.
    """

    __slots__ = (
        "_access_key",
        "_key_date",
        "_region",
        "_scope_tail",
        "_secret_key",
        "_signing_key",
        "_stamp",
        "_stamp_second",
        "_token",
        "clock_offset",
    )

    def __init__(self, credentials: Credentials, region: str) -> None:
        self._access_key = credentials.key
        self._secret_key = credentials.secret
        self._token = credentials.token
        self._region = region
        self._scope_tail = f"/{region}/{_SERVICE}/aws4_request"
        self._key_date = ""
        self._signing_key = b""
        self._stamp_second = -1
        self._stamp = ""
        self.clock_offset = 0.0

    def __repr__(self) -> str:
        return f"RequestSigner(access_key={self._access_key!r}, region={self._region!r})"

    def timestamp(self) -> str:
        """Now as ``YYYYMMDDTHHMMSSZ``, by the local clock corrected by ``clock_offset``."""
        second = int(time.time() + self.clock_offset)
        if second != self._stamp_second:
            # Formatting costs more than the rest of the date handling; once a second will do.
            self._stamp = amz_timestamp(second)
            self._stamp_second = second
        return self._stamp

    def sign_headers(
        self,
        method: str,
        path: str,
        query: str,
        headers: MutableMapping[str, str],
        content_sha256: str,
        *,
        timestamp: str | None = None,
    ) -> None:
        """Add ``x-amz-date``, ``x-amz-content-sha256``, the token and ``authorization``.

        ``headers`` must use lower-case names and include ``host``; ``path``
        and ``query`` are the encoded forms that will be sent. ``timestamp``
        (``YYYYMMDDTHHMMSSZ``) defaults to now.
        """
        amz_date = timestamp or self.timestamp()
        headers["x-amz-date"] = amz_date
        headers["x-amz-content-sha256"] = content_sha256
        if self._token:
            headers["x-amz-security-token"] = self._token
        headers.pop("authorization", None)

        # Lists, not generators: a generator is resumed (a call) once per header.
        names = sorted([name for name in headers if name not in _UNSIGNED_HEADERS])
        signed_names = ";".join(names)
        canonical_headers = "".join(
            [f"{name}:{' '.join(headers[name].split())}\n" for name in names]
        )
        canonical_request = (
            f"{method}\n{path}\n{query}\n{canonical_headers}\n{signed_names}\n{content_sha256}"
        )
        date = amz_date[:8]
        string_to_sign = (
            f"{_ALGORITHM}\n{amz_date}\n{date}{self._scope_tail}\n"
            f"{hashlib.sha256(canonical_request.encode()).hexdigest()}"
        )
        signature = hmac.new(
            self._key_for(date), string_to_sign.encode(), hashlib.sha256
        ).hexdigest()
        headers["authorization"] = (
            f"{_ALGORITHM} Credential={self._access_key}/{date}{self._scope_tail}, "
            f"SignedHeaders={signed_names}, Signature={signature}"
        )

    def presign(
        self,
        method: str,
        url: str,
        expires_in: int,
        headers: Mapping[str, str] | None = None,
    ) -> str:
        """A SigV4 query-authenticated URL valid for ``expires_in`` seconds (1..604800).

        ``url`` must already be encoded (as :func:`encode_key_path` does), its
        query included. ``headers`` are signed: whoever uses the URL must send
        them exactly. Raises ``ValueError`` for an expiry out of range.
        """
        if not 1 <= expires_in <= MAX_PRESIGN_EXPIRES:
            raise ValueError(f"expires_in must be 1..{MAX_PRESIGN_EXPIRES} seconds")
        credentials = BotocoreCredentials(self._access_key, self._secret_key, self._token or None)
        request = AWSRequest(method=method, url=url, headers=dict(headers or {}))
        S3SigV4QueryAuth(credentials, _SERVICE, self._region, expires=expires_in).add_auth(request)
        signed_url: str = request.url
        return signed_url

    def post_policy(self, conditions: Sequence[object], expires_in: int) -> dict[str, str]:
        """The signed form fields of a browser POST upload allowed by ``conditions``.

        SigV4 for POST: the policy document (its expiration and conditions,
        with the algorithm, credential and date added) is signed as it is
        sent, base64-encoded. Answers ``policy``, ``x-amz-algorithm``,
        ``x-amz-credential``, ``x-amz-date``, ``x-amz-signature`` and, with
        temporary credentials, ``x-amz-security-token``.
        """
        if not 1 <= expires_in <= MAX_PRESIGN_EXPIRES:
            raise ValueError(f"expires_in must be 1..{MAX_PRESIGN_EXPIRES} seconds")
        now = int(time.time() + self.clock_offset)
        amz_date = amz_timestamp(now)
        date = amz_date[:8]
        fields = {
            "x-amz-algorithm": _ALGORITHM,
            "x-amz-credential": f"{self._access_key}/{date}{self._scope_tail}",
            "x-amz-date": amz_date,
        }
        if self._token:
            fields["x-amz-security-token"] = self._token
        document = {
            "expiration": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + expires_in)),
            "conditions": [*conditions, *({name: value} for name, value in fields.items())],
        }
        policy = base64.b64encode(json.dumps(document).encode()).decode("ascii")
        fields["policy"] = policy
        fields["x-amz-signature"] = hmac.new(
            self._key_for(date), policy.encode(), hashlib.sha256
        ).hexdigest()
        return fields

    def _key_for(self, date: str) -> bytes:
        if date != self._key_date:
            key = hmac.digest(f"AWS4{self._secret_key}".encode(), date.encode(), "sha256")
            for part in (self._region, _SERVICE, "aws4_request"):
                key = hmac.digest(key, part.encode(), "sha256")
            self._signing_key = key
            self._key_date = date
        return self._signing_key
