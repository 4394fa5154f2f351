"""Session-wide S3 services, started only when a test asks for one.

``seaweedfs`` is the embedded SeaweedFS that ``serve --embedded`` ships, with
buckets ``test-bucket`` and ``test-bucket-2``; ``moto`` is a moto server with
``acl-bucket`` (ACLs enabled). Both are sync, session-scoped fixtures, which
pytest-trio's trio_mode leaves alone. When the session ends, any multipart
upload left open on SeaweedFS fails the run: every code path must complete
or abort what it starts.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.services import MotoServer, admin_client, open_multipart_uploads
from trio_s3rpc.embedded import EmbeddedSeaweedFS, S3Endpoint

SEAWEEDFS_BUCKETS = ("test-bucket", "test-bucket-2")
MOTO_ACL_BUCKET = "acl-bucket"


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Endpoint]:
    server = EmbeddedSeaweedFS(tmp_path_factory.mktemp("seaweedfs"), buckets=SEAWEEDFS_BUCKETS)
    endpoint = server.start()
    try:
        yield endpoint
        left_open = open_multipart_uploads(endpoint)
    finally:
        server.stop()
    if left_open:
        pytest.fail(
            "multipart uploads left open on SeaweedFS at the end of the session:\n  "
            + "\n  ".join(left_open),
            pytrace=False,
        )


@pytest.fixture(scope="session")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Endpoint]:
    server = MotoServer(tmp_path_factory.mktemp("moto") / "moto.log")
    endpoint = server.start()
    try:
        # ObjectWriter ownership keeps ACLs enabled, as an ACL-using AWS bucket must be.
        admin_client(endpoint).create_bucket(Bucket=MOTO_ACL_BUCKET, ObjectOwnership="ObjectWriter")
        yield endpoint
    finally:
        server.stop()
