"""Session-wide S3 services, started only when a test asks for one.

``seaweedfs`` is the embedded SeaweedFS that ``serve --embedded`` ships, with
buckets ``test-bucket`` and ``test-bucket-2``; ``moto`` is a moto server with
``acl-bucket`` (ACLs enabled); ``rgw`` is Ceph's RADOS Gateway (one mon, one
memstore OSD, radosgw: ``tests/support/rgw.py``) with ``acl-bucket`` too,
owned by its first user, and ``rgw_other_user`` a second S3 user of the same
gateway. All are sync, session-scoped fixtures, which pytest-trio's
trio_mode leaves alone. When the session ends, any multipart upload left open
on SeaweedFS or RGW fails the run: every code path must complete or abort
what it starts. Where Ceph is not installed the RGW tests skip, saying so;
under ``CI=true`` they fail instead (``.ci/install-rgw`` installs it).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.rgw import RadosGateway, require_rgw
from tests.support.services import MotoServer, admin_client, open_multipart_uploads
from trio_s3rpc.embedded import EmbeddedSeaweedFS, S3Endpoint

SEAWEEDFS_BUCKETS = ("test-bucket", "test-bucket-2")
MOTO_ACL_BUCKET = "acl-bucket"
RGW_ACL_BUCKET = "acl-bucket"
RGW_STARTED_IN = pytest.StashKey[float]()


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Endpoint]:
    server = EmbeddedSeaweedFS(tmp_path_factory.mktemp("seaweedfs"), buckets=SEAWEEDFS_BUCKETS)
    endpoint = server.start()
    try:
        yield endpoint
        fail_on_open_uploads("SeaweedFS", endpoint)
    finally:
        server.stop()


def fail_on_open_uploads(service: str, endpoint: S3Endpoint) -> None:
    left_open = open_multipart_uploads(endpoint)
    if left_open:
        pytest.fail(
            f"multipart uploads left open on {service} at the end of the session:\n  "
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


@pytest.fixture(scope="session")
def rgw_gateway(
    tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config
) -> Iterator[RadosGateway]:
    require_rgw()
    gateway = RadosGateway(tmp_path_factory.mktemp("rgw"))
    endpoint = gateway.start()
    pytestconfig.stash[RGW_STARTED_IN] = gateway.started_in
    try:
        admin_client(endpoint).create_bucket(Bucket=RGW_ACL_BUCKET)
        yield gateway
        fail_on_open_uploads("RGW", endpoint)
    finally:
        gateway.stop()


@pytest.fixture(scope="session")
def rgw(rgw_gateway: RadosGateway) -> S3Endpoint:
    """The gateway as its first user, who owns ``acl-bucket``."""
    return rgw_gateway.endpoint_for(rgw_gateway.users[0])


@pytest.fixture(scope="session")
def rgw_other_user(rgw_gateway: RadosGateway) -> S3Endpoint:
    """The gateway as a second user, who owns nothing and is granted nothing."""
    return rgw_gateway.endpoint_for(rgw_gateway.users[1])


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    started_in = config.stash.get(RGW_STARTED_IN, None)
    if started_in is not None:
        terminalreporter.write_line(
            f"RGW (mon, memstore OSD, radosgw) started in {started_in:.1f} s"
        )
