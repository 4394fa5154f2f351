"""Where an S3 request goes: endpoint, path-style or virtual-hosted, and the URLs of objects.

:class:`Addressing` turns a server's endpoint (``""`` is AWS in its region)
into the origin, Host header and path of each request for a bucket or key,
and into the public URLs that presigned and permanent links start from
(``public_endpoint``, when browsers reach the service elsewhere). Buckets are
addressed virtual-hosted unless the server asks for path style, its endpoint
is an IP address or ``localhost``, or the bucket's name is not a plain DNS
label. The key and query are encoded here exactly as signing.py signs them.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from trio_s3rpc.s3.endpoint import ServerConfig
from trio_s3rpc.s3.signing import canonical_query, encode_key_path

_DNS_BUCKET = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(slots=True)
class Target:
    """Where one request goes: its URL, Host header, path and query (as signed)."""

    url: str
    host: str
    path: str
    query: str
    origin: tuple[bytes, bytes, int]
    """(scheme, host without port, port): where the connection goes."""

    @property
    def target(self) -> bytes:
        return (f"{self.path}?{self.query}" if self.query else self.path).encode("ascii")


class Addressing:
    """The URLs of one server's buckets and objects, for requests and for browsers."""

    __slots__ = (
        "_base_path",
        "_bases",
        "_netloc",
        "_path_style",
        "_public",
        "_public_path_style",
        "_scheme",
    )

    def __init__(self, server: ServerConfig) -> None:
        """Raises ``ValueError`` for an endpoint that is not an http(s) URL."""
        self._scheme, self._netloc, self._base_path = _parse_endpoint(
            server.endpoint, server.region
        )
        self._path_style = server.path_style or _is_ip_address(self._netloc)
        # Presigned and public URLs may name another host than the one this server reaches
        # (a service inside a container network, published to browsers elsewhere).
        self._public = (
            _parse_endpoint(server.public_endpoint, server.region)
            if server.public_endpoint
            else (self._scheme, self._netloc, self._base_path)
        )
        self._public_path_style = self._path_style or _is_ip_address(self._public[1])
        self._bases: dict[str, tuple[str, str, str, tuple[bytes, bytes, int]]] = {}

    @property
    def endpoint(self) -> str:
        """``scheme://host[:port]`` that requests go to."""
        return f"{self._scheme}://{self._netloc}"

    @property
    def netloc(self) -> str:
        return self._netloc

    def public_url(self, bucket: str, key: str | None, query: Mapping[str, str] | None) -> str:
        """The unsigned URL of a bucket or object at the public endpoint (presigned URLs
        start from it); the query encoded and sorted."""
        scheme, netloc, base_path = self._public
        if self._public_path_style or not _DNS_BUCKET.match(bucket):
            origin, path = f"{scheme}://{netloc}", f"{base_path}/{quote(bucket, safe='')}"
        else:
            origin, path = f"{scheme}://{bucket}.{netloc}", base_path
        if key is not None:
            path = f"{path}/{encode_key_path(key)}"
        elif not path:
            path = "/"
        query_string = canonical_query(query)
        return f"{origin}{path}?{query_string}" if query_string else f"{origin}{path}"

    def target(self, bucket: str, key: str | None, query: Mapping[str, str] | None) -> Target:
        """Where a request for a bucket or object goes, path-style or virtual-hosted; the
        key percent-encoded as S3 expects ("/" kept), the query encoded and sorted."""
        base = self._bases.get(bucket)
        if base is None:
            base = self._bases[bucket] = self._base_for(bucket)
        origin, host, prefix, address = base
        path = prefix or "/"
        if key is not None:
            path = f"{prefix}/{encode_key_path(key)}"
        query_string = canonical_query(query) if query else ""
        url = f"{origin}{path}?{query_string}" if query_string else f"{origin}{path}"
        return Target(url, host, path, query_string, address)

    def _base_for(self, bucket: str) -> tuple[str, str, str, tuple[bytes, bytes, int]]:
        """``(origin, host, path prefix, (scheme, hostname, port))`` for a bucket's requests."""
        # Buckets that are not plain DNS labels (dots break TLS wildcard
        # certificates) are addressed path-style, as the AWS SDKs do.
        if self._path_style or not _DNS_BUCKET.match(bucket):
            host, prefix = self._netloc, f"{self._base_path}/{quote(bucket, safe='')}"
        else:
            host, prefix = f"{bucket}.{self._netloc}", self._base_path
        return f"{self._scheme}://{host}", host, prefix, _address(self._scheme, host)


def _parse_endpoint(endpoint: str, region: str) -> tuple[str, str, str]:
    """``(scheme, netloc, base path)`` of a configured endpoint; "" means AWS."""
    if not endpoint:
        return "https", f"s3.{region}.amazonaws.com", ""
    if "://" not in endpoint:
        endpoint = f"https://{endpoint}"
    parts = urlsplit(endpoint)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ValueError(f"endpoint must be an http(s) URL: {endpoint!r}")
    host = parts.hostname
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    netloc = host if port is None or port == _DEFAULT_PORTS[scheme] else f"{host}:{port}"
    return scheme, netloc, parts.path.rstrip("/")


def _address(scheme: str, netloc: str) -> tuple[bytes, bytes, int]:
    """``(scheme, hostname, port)`` of a netloc, as httpcore connects to it."""
    if netloc.startswith("["):
        hostname, _, rest = netloc[1:].partition("]")
        port_text = rest.removeprefix(":")
    else:
        hostname, _, port_text = netloc.partition(":")
    port = int(port_text) if port_text else _DEFAULT_PORTS[scheme]
    return scheme.encode("ascii"), hostname.encode("ascii"), port


def _is_ip_address(netloc: str) -> bool:
    host = netloc.rsplit(":", 1)[0] if not netloc.startswith("[") else netloc[1:].split("]")[0]
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return host == "localhost"
    return True
