"""The S3 service under test: the embedded SeaweedFS, a private Ceph RGW, or an endpoint
the user names.

:func:`open_target` yields an :class:`S3Target` (where the service answers,
its credentials, the bucket, and a key prefix private to this run) and stops
what it started on exit: the embedded SeaweedFS, or the RGW cluster (one mon,
one memstore OSD, radosgw: ``tests/support/rgw.py``, as the test suite starts
it), is terminated with its data directory; on a user's endpoint only the
objects under the run's prefix are deleted, never the bucket.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import boto3  # type: ignore[import-untyped]
import botocore.config

from tests.support.rgw import RadosGateway
from trio_s3rpc.embedded import EmbeddedSeaweedFS

EMBEDDED_BUCKET = "bench"
BACKENDS = ("seaweedfs", "rgw")
# The OSD keeps every object in RAM: enough for the small cells, 1 GiB large files and
# what the gateway's garbage collector has not freed yet.
RGW_MEMORY_BYTES = 4 << 30


@dataclass(slots=True, frozen=True)
class S3Target:
    """One bucket on one S3 service, and the key prefix this run writes under."""

    kind: str  # "seaweedfs" (embedded), "rgw" (started here) or "external"
    endpoint: str
    region: str
    bucket: str
    path_style: bool
    prefix: str
    visibility_mode: str
    access_key: str = field(repr=False)
    secret_key: str = field(repr=False)
    storage_pids: tuple[int, ...] = ()  # the service's processes, when started here

    def describe(self) -> dict[str, Any]:
        """Everything but the credentials, for the results file."""
        return {
            "kind": self.kind,
            "endpoint": self.endpoint,
            "region": self.region,
            "bucket": self.bucket,
            "path_style": self.path_style,
            "prefix": self.prefix,
            "visibility_mode": self.visibility_mode,
        }

    def object_url(self, key: str) -> str:
        """The object's URL, path-style or virtual-hosted as configured."""
        path = quote(key, safe="/~")
        if self.path_style:
            return f"{self.endpoint.rstrip('/')}/{self.bucket}/{path}"
        parts = urlsplit(self.endpoint)
        return f"{parts.scheme}://{self.bucket}.{parts.netloc}{parts.path.rstrip('/')}/{path}"

    def boto3_client(self, max_pool_connections: int = 10) -> Any:
        """A boto3 S3 client for this service with boto3's defaults otherwise."""
        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=self.region,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            config=botocore.config.Config(
                max_pool_connections=max_pool_connections,
                s3={"addressing_style": "path" if self.path_style else "virtual"},
            ),
        )


@dataclass(slots=True, frozen=True)
class ExternalService:
    """What the user gave on the command line for a service of their own."""

    endpoint: str
    access_key: str
    secret_key: str = field(repr=False)
    bucket: str
    region: str = "us-east-1"
    path_style: bool = True
    visibility_mode: str = "none"


@contextmanager
def open_target(
    workdir: Path, external: ExternalService | None, backend: str = "seaweedfs"
) -> Iterator[S3Target]:
    """Start (or reach) the service and yield it; stop it or clean the run's prefix on exit."""
    prefix = f"trio-s3rpc-bench/{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}/"
    if external is None and backend == "rgw":
        gateway = RadosGateway(
            workdir / "rgw", user_names=("bench",), memory_bytes=RGW_MEMORY_BYTES
        )
        with gateway as endpoint:
            target = _local_target("rgw", endpoint, prefix, tuple(gateway.pids.values()))
            ensure_bucket(target)
            yield target
        return
    if external is None:
        seaweed = EmbeddedSeaweedFS(workdir / "seaweedfs", buckets=[EMBEDDED_BUCKET])
        with seaweed as endpoint:
            yield _local_target(
                "seaweedfs", endpoint, prefix, (seaweed.pid,) if seaweed.pid else ()
            )
        return
    target = S3Target(
        kind="external",
        endpoint=external.endpoint,
        region=external.region,
        bucket=external.bucket,
        path_style=external.path_style,
        prefix=prefix,
        visibility_mode=external.visibility_mode,
        access_key=external.access_key,
        secret_key=external.secret_key,
    )
    ensure_bucket(target)
    try:
        yield target
    finally:
        delete_prefix(target)


def ensure_bucket(target: S3Target) -> None:
    """Create the bucket if the service does not have it yet."""
    client = target.boto3_client()
    try:
        client.head_bucket(Bucket=target.bucket)
    except client.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket", "NotFound"):
            raise
        client.create_bucket(Bucket=target.bucket)


def delete_prefix(target: S3Target) -> int:
    """Delete every object under the run's prefix; the number deleted."""
    client = target.boto3_client()
    deleted = 0
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=target.bucket, Prefix=target.prefix):
        keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
        if keys:
            client.delete_objects(Bucket=target.bucket, Delete={"Objects": keys, "Quiet": True})
            deleted += len(keys)
    return deleted


def put_fixtures(target: S3Target, keys: list[str], content: bytes) -> None:
    """Write the objects the Read and Exists cells read."""
    client = target.boto3_client()
    for key in keys:
        client.put_object(Bucket=target.bucket, Key=target.prefix + key, Body=content)


def _local_target(kind: str, endpoint: Any, prefix: str, storage_pids: tuple[int, ...]) -> S3Target:
    """A store this run started: path style, the embedded bucket, and visibility_mode none
    on both kinds (SeaweedFS keeps no object ACLs; RGW does, but both get the same requests)."""
    return S3Target(
        kind=kind,
        endpoint=endpoint.endpoint,
        region=endpoint.region,
        bucket=EMBEDDED_BUCKET,
        path_style=True,
        prefix=prefix,
        visibility_mode="none",
        access_key=endpoint.access_key,
        secret_key=endpoint.secret_key,
        storage_pids=storage_pids,
    )
