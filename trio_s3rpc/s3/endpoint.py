"""One S3 server as the S3 layer is told it: where it is, how to sign for it, what it checks.

These records are the S3 layer's own, so that ``s3/`` needs nothing from the
configuration above it: ``config/`` builds them from the ``s3.servers``
section (and re-exports them as part of its model), the storage layer hands
them to :class:`~trio_s3rpc.s3.transport.S3Transport`. They import nothing
heavier than ``dataclasses``, since loading the configuration loads them.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True, frozen=True)
class Credentials:
    key: str
    secret: str = field(repr=False)
    token: str = field(default="", repr=False)


@dataclass(slots=True, frozen=True)
class ServerConfig:
    name: str
    region: str
    endpoint: str = ""  # "" = AWS
    credentials: Credentials = field(kw_only=True)
    force_path_style: bool | None = None  # None: path style iff endpoint set
    checksums: str = "when_required"
    # The endpoint presigned and public URLs name, when browsers reach the service elsewhere.
    public_endpoint: str = ""

    @property
    def path_style(self) -> bool:
        if self.force_path_style is not None:
            return self.force_path_style
        return bool(self.endpoint)
