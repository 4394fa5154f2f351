"""Loading, expanding and validating the RoadRunner config."""

from __future__ import annotations

import copy
import dataclasses
import ipaddress
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_s3rpc.config import (
    DEFAULT_LISTEN,
    GIB,
    KIB,
    MIB,
    BucketConfig,
    ConfigError,
    Credentials,
    ListenAddress,
    RegisterScope,
    RelaySettings,
    RPCSettings,
    S3Settings,
    ServerConfig,
    describe,
    expand_vars,
    exposure_warning,
    load_config,
    parse_bucket,
    parse_config,
    parse_duration,
    parse_listen,
    parse_size,
)
from trio_s3rpc.errors import ErrorCode

ROOT = Path(__file__).resolve().parent.parent
SECRET = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"
TOKEN = "FwoGZXIvYXdzEXAMPLESESSIONTOKEN"
ACCESS_KEY = "AKIAIOSFODNN7EXAMPLE"


def minimal() -> dict[str, Any]:
    return {
        "s3": {
            "servers": {
                "minio": {
                    "region": "us-east-1",
                    "endpoint": "http://localhost:9000",
                    "credentials": {"key": ACCESS_KEY, "secret": SECRET},
                }
            },
            "buckets": {"uploads": {"server": "minio", "bucket": "dev-bucket"}},
        }
    }


def with_bucket(**settings: Any) -> dict[str, Any]:
    data = minimal()
    data["s3"]["buckets"]["uploads"].update(settings)
    return data


def with_server(**settings: Any) -> dict[str, Any]:
    data = minimal()
    data["s3"]["servers"]["minio"].update(settings)
    return data


def error_of(data: Any, env: dict[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        parse_config(data, env or {})
    assert caught.value.code is ErrorCode.INVALID_CONFIG
    return caught.value


# -- defaults ------------------------------------------------------------------


def test_minimal_config_gets_every_default() -> None:
    config = parse_config(minimal(), {})
    assert config.rpc.listen == parse_listen(DEFAULT_LISTEN)
    assert str(config.rpc.listen) == "tcp://127.0.0.1:6001"
    assert config.rpc.socket_mode == 0o600
    assert config.rpc.max_frame_size == 256 * MIB
    assert config.rpc.max_in_flight == 64
    s3 = config.s3
    assert s3.default == "uploads"  # the only bucket
    assert s3.shutdown_timeout == 30.0
    assert s3.local_roots == (tempfile.gettempdir(),)
    assert s3.upload_idle_timeout == 600.0
    assert s3.abort_stale_after == 86400.0
    assert s3.buckets["uploads"] == BucketConfig("uploads", "minio", "dev-bucket")
    bucket = s3.buckets["uploads"]
    assert (bucket.prefix, bucket.visibility, bucket.visibility_mode) == ("", "private", "acl")
    assert (bucket.part_size, bucket.concurrency) == (5 * MIB, 5)
    assert (bucket.max_concurrent_operations, bucket.multipart_copy_threshold) == (100, 5 * GIB)
    server = s3.servers["minio"]
    assert server == ServerConfig(
        "minio",
        "us-east-1",
        "http://localhost:9000",
        credentials=Credentials(ACCESS_KEY, SECRET),
    )
    assert server.checksums == "when_required"
    assert config.warnings == ()


def test_path_style_follows_endpoint_unless_forced() -> None:
    credentials = Credentials("k", "s")
    assert ServerConfig("a", "r", "http://h:9000", credentials=credentials).path_style
    assert not ServerConfig("a", "r", credentials=credentials).path_style
    assert ServerConfig("a", "r", credentials=credentials, force_path_style=True).path_style
    forced_off = ServerConfig("a", "r", "http://h", credentials=credentials, force_path_style=False)
    assert not forced_off.path_style


def test_null_and_empty_values_take_defaults() -> None:
    data = with_bucket(prefix=None, visibility="", part_size=None)
    data["rpc"] = None
    config = parse_config(data, {})
    assert config.s3.buckets["uploads"] == BucketConfig("uploads", "minio", "dev-bucket")
    assert str(config.rpc.listen) == DEFAULT_LISTEN


def test_every_setting_is_read() -> None:
    data = with_bucket(
        prefix="up/",
        visibility="public",
        max_concurrent_operations="20",
        part_size="8MiB",
        concurrency=16,
        public_url="https://cdn.example.com/files",
        visibility_mode="auto",
        multipart_copy_threshold="1GiB",
        storage_class="GLACIER_IR",
        sse="aws:kms",
        sse_kms_key_id="alias/backups",
    )
    data["s3"]["servers"]["minio"].update(force_path_style="false", checksums="when_supported")
    data["s3"]["servers"]["minio"]["credentials"]["token"] = TOKEN
    data["s3"].update(
        shutdown_timeout="1m30s",
        local_roots=[str(ROOT)],
        upload_idle_timeout=5,
        abort_stale_after="2h",
        listen="unix:///run/s3.sock",
        socket_mode="0660",
        socket_owner=os.getuid(),
        socket_group=str(os.getgid()),
        max_frame_size="64MiB",
        max_in_flight=8,
        relay="tcp://127.0.0.1:6001",
        relay_timeout="5s",
        relay_connections=3,
    )
    data["rpc"] = {"listen": "tcp://127.0.0.1:6001"}
    data["server"] = {"env": [{"rr_rpc": "unix:///run/s3.sock"}]}
    config = parse_config(data, {})
    assert config.s3.buckets["uploads"] == BucketConfig(
        "uploads",
        "minio",
        "dev-bucket",
        prefix="up/",
        visibility="public",
        max_concurrent_operations=20,
        part_size=8 * MIB,
        concurrency=16,
        public_url="https://cdn.example.com/files",
        visibility_mode="auto",
        multipart_copy_threshold=GIB,
        storage_class="GLACIER_IR",
        sse="aws:kms",
        sse_kms_key_id="alias/backups",
    )
    server = config.s3.servers["minio"]
    assert server.force_path_style is False
    assert not server.path_style
    assert server.checksums == "when_supported"
    assert server.credentials.token == TOKEN
    assert config.s3.shutdown_timeout == 90.0
    assert config.s3.local_roots == (str(ROOT),)
    assert config.s3.upload_idle_timeout == 5.0
    assert config.s3.abort_stale_after == 7200.0
    assert config.rpc.listen == ListenAddress("unix", path="/run/s3.sock")
    assert config.rpc.socket_mode == 0o660
    assert config.rpc.max_frame_size == 64 * MIB
    assert config.rpc.max_in_flight == 8
    assert (config.rpc.socket_owner, config.rpc.socket_group) == (os.getuid(), os.getgid())
    assert config.rpc.relay == RelaySettings(parse_listen("tcp://127.0.0.1:6001"), 5.0, 3)
    assert config.rpc.listen_key == "s3.listen"
    assert config.rpc.roadrunner_listen == parse_listen("tcp://127.0.0.1:6001")
    assert config.rpc.workers_rpc == "unix:///run/s3.sock"
    assert config.warnings == ()


def test_default_names_a_bucket_among_several() -> None:
    data = minimal()
    data["s3"]["buckets"]["avatars"] = {"server": "minio", "bucket": "bkt2"}
    data["s3"]["default"] = "avatars"
    config = parse_config(data, {})
    assert config.s3.default == "avatars"
    assert list(config.s3.buckets) == ["uploads", "avatars"]  # file order


def test_endpoint_trailing_slash_is_dropped() -> None:
    config = parse_config(with_server(endpoint="HTTP://minio.local:9000/"), {})
    assert config.s3.servers["minio"].endpoint == "http://minio.local:9000"


def test_example_config_loads_and_spells_out_the_defaults() -> None:
    env = {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET}
    config = load_config(ROOT / "config.example.yaml", env)
    assert config.warnings == ()
    # Beside RoadRunner: its own address, RoadRunner's relayed to, loopback only.
    assert str(config.rpc.listen) == "tcp://127.0.0.1:6002"
    assert config.rpc.roadrunner_listen == parse_listen(DEFAULT_LISTEN)
    assert config.rpc.relay == RelaySettings(parse_listen(DEFAULT_LISTEN))
    assert config.rpc.allow_from == (
        ipaddress.ip_network("127.0.0.0/8"),
        ipaddress.ip_network("::1/128"),
    )
    defaults = parse_config(minimal(), {})
    rpc, default_rpc = config.rpc, defaults.rpc
    assert (rpc.socket_mode, rpc.socket_owner, rpc.socket_group) == (
        default_rpc.socket_mode,
        default_rpc.socket_owner,
        default_rpc.socket_group,
    )
    assert (rpc.max_frame_size, rpc.max_in_flight) == (
        default_rpc.max_frame_size,
        default_rpc.max_in_flight,
    )
    s3, default_s3 = config.s3, defaults.s3
    assert (s3.shutdown_timeout, s3.upload_idle_timeout, s3.abort_stale_after) == (
        default_s3.shutdown_timeout,
        default_s3.upload_idle_timeout,
        default_s3.abort_stale_after,
    )
    # The "uploads" bucket lists every key at its default.
    assert s3.buckets["uploads"] == BucketConfig("uploads", "minio-dev", "dev-bucket")
    minio = s3.servers["minio-dev"]
    assert minio.endpoint == "http://localhost:9000"
    assert minio.credentials == Credentials("minioadmin", "minioadmin")
    assert (minio.force_path_style, minio.checksums) == (None, "when_required")
    aws = s3.servers["aws"]
    assert (aws.endpoint, aws.region, aws.path_style) == ("", "eu-central-1", False)
    assert aws.credentials == Credentials(ACCESS_KEY, SECRET)
    avatars = s3.buckets["avatars"]
    assert (avatars.server, avatars.bucket, avatars.visibility) == (
        "aws",
        "my-company-avatars",
        "public",
    )
    assert (avatars.part_size, avatars.public_url) == (16 * MIB, "https://cdn.example.com")


def test_example_config_takes_values_from_the_environment() -> None:
    env = {
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "S3RPC_LISTEN": "unix:///run/rr.sock",
        "UPLOADS_PART_SIZE": "10485760",
        "MINIO_ENDPOINT": "https://minio.internal",
    }
    config = load_config(str(ROOT / "config.example.yaml"), env)
    assert str(config.rpc.listen) == "unix:///run/rr.sock"
    assert config.s3.buckets["uploads"].part_size == 10 * MIB
    assert config.s3.servers["minio-dev"].endpoint == "https://minio.internal"


# -- ${VAR} expansion ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${HOST}", "example.org"),
        ("http://${HOST}:${PORT}", "http://example.org:9000"),
        ("${MISSING}", ""),
        ("${MISSING:-fallback}", "fallback"),
        ("${EMPTY:-fallback}", "fallback"),  # empty counts as unset, as in RoadRunner
        ("${HOST:-fallback}", "example.org"),
        ("${MISSING:-}", ""),
        ("${MISSING:-${HOST}}", "example.org"),
        ("${MISSING:-${ALSO_MISSING:-deep}}-x", "deep-x"),
        ("tcp://127.0.0.1:${RPC_PORT:-6001}", "tcp://127.0.0.1:6001"),
        ("${MISSING:-a:b/c}", "a:b/c"),
        # Only ${...} is a reference; other dollars are text.
        ("pa$$word", "pa$$word"),
        ("$HOST", "$HOST"),
        ("cost 5$", "cost 5$"),
        ("${1}", "${1}"),
        ("${HOST", "${HOST"),
        ("${MISSING:-unclosed", "${MISSING:-unclosed"),
    ],
)
def test_expand_vars(text: str, expected: str) -> None:
    env = {"HOST": "example.org", "PORT": "9000", "EMPTY": ""}
    assert expand_vars(text, env) == expected


def test_expand_vars_reports_unset_names_only_where_no_default_applies() -> None:
    unset: list[str] = []
    expand_vars("${A}/${B:-b}/${C:-${D}}/${E}", {"E": ""}, unset)
    assert unset == ["A", "D"]


@given(st.text().filter(lambda text: "$" not in text))
def test_text_without_dollar_is_unchanged(text: str) -> None:
    assert expand_vars(text, {"X": "y"}) == text


def test_expansion_happens_everywhere_before_conversion() -> None:
    data = {
        "rpc": {"listen": "tcp://127.0.0.1:${RPC_PORT:-6001}"},
        "s3": {
            "max_in_flight": "${INFLIGHT}",
            "default": "${DEFAULT_BUCKET:-uploads}",
            "shutdown_timeout": "${STOP:-45s}",
            "local_roots": ["${ROOT_DIR}"],
            "servers": {
                "minio": {
                    "region": "${REGION:-us-east-1}",
                    "endpoint": "${ENDPOINT:-http://localhost:9000}",
                    "force_path_style": "${PATH_STYLE:-true}",
                    "credentials": {"key": "${KEY}", "secret": "${SECRET}"},
                }
            },
            "buckets": {
                "uploads": {
                    "server": "minio",
                    "bucket": "${BUCKET}",
                    "part_size": "${PART_SIZE:-5242880}",
                    "concurrency": "${CONCURRENCY:-7}",
                }
            },
        },
    }
    env = {
        "INFLIGHT": "12",
        "ROOT_DIR": str(ROOT),
        "KEY": ACCESS_KEY,
        "SECRET": SECRET,
        "BUCKET": "from-env",
        "PART_SIZE": "",
    }
    config = parse_config(data, env)
    assert config.rpc.listen == ListenAddress("tcp", "127.0.0.1", 6001)
    assert config.rpc.max_in_flight == 12
    assert config.s3.shutdown_timeout == 45.0
    assert config.s3.local_roots == (str(ROOT),)
    server = config.s3.servers["minio"]
    assert (server.region, server.endpoint, server.force_path_style) == (
        "us-east-1",
        "http://localhost:9000",
        True,
    )
    assert server.credentials == Credentials(ACCESS_KEY, SECRET)
    bucket = config.s3.buckets["uploads"]
    assert (bucket.bucket, bucket.part_size, bucket.concurrency) == ("from-env", 5 * MIB, 7)
    assert config.warnings == ()


def test_unset_variable_expands_to_empty_with_a_warning() -> None:
    config = parse_config(with_bucket(prefix="${PREFIX}"), {})
    assert config.s3.buckets["uploads"].prefix == ""
    assert config.warnings == (
        "s3.buckets.uploads.prefix: ${PREFIX} not set; expanded to an empty string",
    )


def test_required_value_from_unset_variable_names_the_variable() -> None:
    data = minimal()
    data["s3"]["servers"]["minio"]["credentials"]["secret"] = "${MINIO_SECRET}"
    error = error_of(data)
    assert error.message == "s3.servers.minio.credentials.secret: required"
    assert error.details == "${MINIO_SECRET} not set"


def test_other_sections_and_keys_are_not_expanded_or_checked() -> None:
    data = minimal()
    data.update(
        version="3",
        server={"command": "php ${UNSET_WORKER}.php"},
        http={"address": "${UNSET_HTTP}"},
        logs=["anything"],
    )
    data["s3"]["buckets"]["${NAME}"] = {"server": "minio", "bucket": "bkt"}
    data["s3"]["default"] = "uploads"
    # Names are keys, never expanded: "${NAME}" stays itself, which no bucket may be named.
    error = error_of(data, {"NAME": "expanded"})
    assert error.message.startswith("s3.buckets: '${NAME}' is not a bucket name")
    del data["s3"]["buckets"]["${NAME}"]
    assert parse_config(data, {}).warnings == ()


def test_env_defaults_to_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIO_S3RPC_TEST_BUCKET", "from-process-env")
    config = parse_config(with_bucket(bucket="${TRIO_S3RPC_TEST_BUCKET}"))
    assert config.s3.buckets["uploads"].bucket == "from-process-env"


# -- validation ----------------------------------------------------------------


def drop(path: str) -> Any:
    def mutate(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = data
        for key in parents:
            node = node[key]
        del node[last]

    return mutate


def put(path: str, value: Any) -> Any:
    def mutate(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = data
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value

    return mutate


BUCKET = "s3.buckets.uploads"
SERVER = "s3.servers.minio"


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (drop("s3"), "s3: section missing; it needs servers and buckets"),
        (put("s3", "yes"), "s3: must be a mapping, got a string"),
        (put("s3.servers", {}), "s3.servers: at least one server is required"),
        (drop("s3.servers"), "s3.servers: at least one server is required"),
        (put("s3.buckets", {}), "s3.buckets: at least one bucket is required"),
        (put("s3.buckets", ["uploads"]), "s3.buckets: must be a mapping of bucket names"),
        (put("s3.servers", {1: {}}), "s3.servers: server names must be non-empty strings"),
        (put(f"{SERVER}.region", ""), f"{SERVER}.region: required"),
        (drop(f"{SERVER}.region"), f"{SERVER}.region: required"),
        (put(f"{SERVER}.region", 5), f"{SERVER}.region: must be a string, got a number"),
        (drop(f"{SERVER}.credentials"), f"{SERVER}.credentials.key: required"),
        (drop(f"{SERVER}.credentials.key"), f"{SERVER}.credentials.key: required"),
        (drop(f"{SERVER}.credentials.secret"), f"{SERVER}.credentials.secret: required"),
        (put(f"{SERVER}.credentials", "k:s"), f"{SERVER}.credentials: must be a mapping"),
        (
            put(f"{SERVER}.endpoint", "localhost:9000"),
            f"{SERVER}.endpoint: must be an http:// or https:// URL with a host",
        ),
        (
            put(f"{SERVER}.endpoint", "ftp://h"),
            f"{SERVER}.endpoint: must be an http:// or https:// URL with a host, got 'ftp://h'",
        ),
        (
            put(f"{SERVER}.endpoint", "http://h:9000/bucket"),
            f"{SERVER}.endpoint: must be http(s)://host[:port] without a path",
        ),
        (put(f"{SERVER}.endpoint", "http://h:99999"), f"{SERVER}.endpoint: invalid URL"),
        (put(f"{SERVER}.endpoint", "http://h?x=1"), f"{SERVER}.endpoint: must not have a query"),
        (
            put(f"{SERVER}.force_path_style", "sometimes"),
            f"{SERVER}.force_path_style: must be true or false, got 'sometimes'",
        ),
        (
            put(f"{SERVER}.checksums", "always"),
            f"{SERVER}.checksums: must be when_required or when_supported, got 'always'",
        ),
        (drop(f"{BUCKET}.server"), f"{BUCKET}.server: required"),
        (
            put(f"{BUCKET}.server", "x"),
            f"{BUCKET}.server: unknown server 'x' (known: minio)",
        ),
        (drop(f"{BUCKET}.bucket"), f"{BUCKET}.bucket: required"),
        (put(f"{BUCKET}.bucket", "a/b"), f"{BUCKET}.bucket: 'a/b' is not an S3 bucket name"),
        (put(f"{BUCKET}", "dev-bucket"), f"{BUCKET}: must be a mapping, got a string"),
        (
            put(f"{BUCKET}.visibility", "publik"),
            f"{BUCKET}.visibility: must be public or private, got 'publik'",
        ),
        (
            put(f"{BUCKET}.visibility_mode", "ACL"),
            f"{BUCKET}.visibility_mode: must be acl, none or auto, got 'ACL'",
        ),
        (put(f"{BUCKET}.prefix", "/uploads/"), f"{BUCKET}.prefix: must not start with '/'"),
        (
            put(f"{BUCKET}.max_concurrent_operations", 0),
            f"{BUCKET}.max_concurrent_operations: must be at least 1, got 0",
        ),
        (
            put(f"{BUCKET}.max_concurrent_operations", "many"),
            f"{BUCKET}.max_concurrent_operations: must be a whole number, got 'many'",
        ),
        (
            put(f"{BUCKET}.max_concurrent_operations", True),
            f"{BUCKET}.max_concurrent_operations: must be a whole number, got True",
        ),
        (
            put(f"{BUCKET}.concurrency", 65),
            f"{BUCKET}.concurrency: must be at most 64, got 65",
        ),
        (
            put(f"{BUCKET}.concurrency", 2.5),
            f"{BUCKET}.concurrency: must be a whole number, got 2.5",
        ),
        (
            put(f"{BUCKET}.part_size", "4MiB"),
            f"{BUCKET}.part_size: must be at least 5 MiB, got 4 MiB",
        ),
        (
            put(f"{BUCKET}.part_size", 6 * GIB),
            f"{BUCKET}.part_size: must be at most 5 GiB, got 6 GiB",
        ),
        (put(f"{BUCKET}.part_size", "lots"), f"{BUCKET}.part_size: invalid size 'lots'"),
        (
            put(f"{BUCKET}.multipart_copy_threshold", "6GiB"),
            f"{BUCKET}.multipart_copy_threshold: must be at most 5 GiB",
        ),
        (
            put(f"{BUCKET}.storage_class", "standard_ia"),
            f"{BUCKET}.storage_class: must be one of S3's storage classes (STANDARD, "
            "REDUCED_REDUNDANCY, STANDARD_IA, ONEZONE_IA, INTELLIGENT_TIERING, GLACIER, "
            "GLACIER_IR, DEEP_ARCHIVE, OUTPOSTS, SNOW, EXPRESS_ONEZONE), got 'standard_ia'; "
            "did you mean STANDARD_IA?",
        ),
        (
            put(f"{BUCKET}.storage_class", "COLD"),
            f"{BUCKET}.storage_class: must be one of S3's storage classes",
        ),
        (put(f"{BUCKET}.sse", "aes256"), f"{BUCKET}.sse: must be AES256 or aws:kms, got 'aes256'"),
        (
            put(f"{BUCKET}.sse_kms_key_id", "alias/x"),
            f"{BUCKET}.sse_kms_key_id: is only used with sse: aws:kms",
        ),
        (
            put(f"{BUCKET}.public_url", "cdn.example.com"),
            f"{BUCKET}.public_url: must be an http:// or https:// URL with a host",
        ),
        (
            put("s3.default", "avatars"),
            "s3.default: unknown bucket 'avatars' (known: uploads)",
        ),
        (put("s3.shutdown_timeout", "soon"), "s3.shutdown_timeout: invalid duration 'soon'"),
        (put("s3.shutdown_timeout", -1), "s3.shutdown_timeout: must be a duration >= 0"),
        (put("s3.upload_idle_timeout", "0s"), "s3.upload_idle_timeout: must be longer than 0"),
        (put("s3.local_roots", ["tmp"]), "s3.local_roots[0]: must be an absolute path"),
        (put("s3.local_roots", {"a": 1}), "s3.local_roots: must be a list of absolute"),
        (put("rpc", "tcp://x"), "rpc: must be a mapping, got a string"),
        (put("rpc.listen", "localhost:6001"), "rpc.listen: invalid listen address"),
        (put("rpc.listen", "tcp://h:70000"), "rpc.listen: invalid listen address"),
        (put("rpc.socket_mode", 660), "rpc.socket_mode: must be a file mode between"),
        (put("rpc.socket_mode", "rw"), "rpc.socket_mode: must be an octal file mode"),
        (put("rpc.max_frame_size", "1KiB"), "rpc.max_frame_size: must be at least 64 KiB"),
        (put("rpc.max_in_flight", 0), "rpc.max_in_flight: must be at least 1, got 0"),
    ],
)
def test_each_invalid_setting_is_named(mutate: Any, message: str) -> None:
    data = minimal()
    mutate(data)
    assert error_of(data).message.startswith(message)


def test_default_is_required_with_several_buckets() -> None:
    data = minimal()
    data["s3"]["buckets"]["avatars"] = {"server": "minio", "bucket": "bkt2"}
    assert error_of(data).message == (
        "s3.default: required when more than one bucket is configured (buckets: uploads, avatars)"
    )


def test_unknown_server_lists_the_known_ones() -> None:
    data = minimal()
    data["s3"]["servers"]["aws"] = {
        "region": "eu-west-1",
        "credentials": {"key": "k", "secret": "s"},
    }
    data["s3"]["buckets"]["uploads"]["server"] = "x"
    assert error_of(data).message == (
        "s3.buckets.uploads.server: unknown server 'x' (known: minio, aws)"
    )


@pytest.mark.parametrize("document", [None, [], "text"])
def test_document_must_be_a_mapping(document: Any) -> None:
    assert "the config" in error_of(document).message


def test_parse_bucket_for_register_bucket() -> None:
    servers = parse_config(minimal(), {}).s3.servers
    bucket = parse_bucket("docs", {"server": "minio", "bucket": "bkt3", "prefix": "d/"}, servers)
    assert bucket == BucketConfig("docs", "minio", "bkt3", prefix="d/")
    with pytest.raises(ConfigError) as caught:
        parse_bucket("docs", {"server": "nope", "bucket": "bkt3"}, servers)
    assert caught.value.wire_text() == (
        "INVALID_CONFIG: s3.buckets.docs.server: unknown server 'nope' (known: minio)"
    )
    with pytest.raises(ConfigError, match="visibility: must be public or private, got 'publik'"):
        parse_bucket("docs", {"server": "minio", "bucket": "bkt", "visibility": "publik"}, servers)


def test_endpoint_with_credentials_is_refused_without_echoing_them() -> None:
    error = error_of(with_server(endpoint=f"http://admin:{SECRET}@localhost:9000"))
    assert error.message == (
        "s3.servers.minio.endpoint: must not carry credentials; use the credentials section"
    )
    assert SECRET not in error.wire_text()


# -- warnings --------------------------------------------------------------------


def test_typos_warn_with_a_suggestion() -> None:
    data = with_bucket(partsize="8MiB")
    data["rpc"] = {"lisen": "tcp://127.0.0.1:7000"}
    data["s3"]["defualt"] = "uploads"
    data["s3"]["servers"]["minio"]["regoin"] = "eu-west-1"
    data["s3"]["servers"]["minio"]["credentials"]["tokn"] = "t"
    config = parse_config(data, {})
    assert set(config.warnings) == {
        "unknown key s3.buckets.uploads.partsize (did you mean part_size?)",
        "unknown key rpc.lisen (did you mean listen?)",
        "unknown key s3.defualt (did you mean default?)",
        "unknown key s3.servers.minio.regoin (did you mean region?)",
        "unknown key s3.servers.minio.credentials.tokn (did you mean token?)",
    }
    # A typo is not applied: the defaults stay.
    assert config.s3.buckets["uploads"].part_size == 5 * MIB
    assert str(config.rpc.listen) == DEFAULT_LISTEN


def test_unknown_key_without_a_close_match_lists_the_known_keys() -> None:
    data = minimal()
    data["rpc"] = {"zzz": 1}
    assert parse_config(data, {}).warnings == (
        "unknown key rpc.zzz (known: listen, max_frame_size, max_in_flight, socket_mode)",
    )


def test_prefix_without_trailing_slash_is_kept_with_a_warning() -> None:
    config = parse_config(with_bucket(prefix="uploads"), {})
    assert config.s3.buckets["uploads"].prefix == "uploads"
    (warning,) = config.warnings
    assert warning.startswith("s3.buckets.uploads.prefix: 'uploads' does not end with '/'")


def test_missing_local_root_warns(tmp_path: Path) -> None:
    data = minimal()
    data["s3"]["local_roots"] = [str(tmp_path), str(tmp_path / "gone")]
    config = parse_config(data, {})
    assert config.s3.local_roots == (str(tmp_path), str(tmp_path / "gone"))
    assert config.warnings == (f"s3.local_roots[1]: {tmp_path / 'gone'} is not a directory",)


def test_single_local_root_string_and_empty_list() -> None:
    data = minimal()
    data["s3"]["local_roots"] = str(ROOT)
    assert parse_config(data, {}).s3.local_roots == (str(ROOT),)
    data["s3"]["local_roots"] = []
    assert parse_config(data, {}).s3.local_roots == ()


# -- secrets -----------------------------------------------------------------------


def secret_config() -> dict[str, Any]:
    data = minimal()
    data["s3"]["servers"]["minio"]["credentials"]["token"] = TOKEN
    return data


def test_secrets_are_masked_in_repr_and_describe() -> None:
    config = parse_config(secret_config(), {})
    for text in (repr(config), str(config), describe(config), repr(config.s3.servers)):
        assert SECRET not in text
        assert TOKEN not in text
    summary = describe(config)
    assert "key AKIA****, secret ****, token ****" in summary
    assert ACCESS_KEY not in summary


@pytest.mark.parametrize(
    "mutate",
    [
        put(f"{SERVER}.credentials.key", ""),
        put(f"{SERVER}.credentials.secret", 12345),
        put(f"{SERVER}.credentials.secret", [SECRET]),
        put(f"{SERVER}.credentials.token", {"value": TOKEN}),
        put(f"{SERVER}.region", ""),
        put(f"{SERVER}.endpoint", f"https://{SECRET}:{TOKEN}@host"),
        put(f"{BUCKET}.server", "nope"),
    ],
)
def test_secrets_never_appear_in_errors(mutate: Any) -> None:
    data = secret_config()
    mutate(data)
    error = error_of(data)
    assert SECRET not in error.wire_text()
    assert TOKEN not in error.wire_text()
    assert "12345" not in error.wire_text()


def test_secrets_never_appear_in_warnings() -> None:
    data = secret_config()
    data["s3"]["servers"]["minio"]["credentials"]["secert"] = SECRET
    data["s3"]["servers"]["minio"]["credentials"]["token"] = "${UNSET_TOKEN}"
    config = parse_config(data, {})
    assert len(config.warnings) == 2
    for warning in config.warnings:
        assert SECRET not in warning
        assert TOKEN not in warning


def test_short_keys_are_masked_entirely() -> None:
    data = minimal()
    data["s3"]["servers"]["minio"]["credentials"]["key"] = "admin"
    summary = describe(parse_config(data, {}))
    assert "key ****," in summary
    assert "admin" not in summary


def test_describe_shows_every_bucket_setting() -> None:
    data = with_bucket(
        prefix="up/", visibility="public", part_size="16MiB", concurrency=3, sse="AES256"
    )
    summary = describe(parse_config(data, {}))
    for expected in (
        "storage_class: (the service default)",
        "sse: AES256",
        "listen: tcp://127.0.0.1:6001",
        "buckets (default: uploads):",
        "server: minio",
        "bucket: dev-bucket",
        "prefix: 'up/'",
        "visibility: public",
        "visibility_mode: acl",
        "max_concurrent_operations: 100",
        "part_size: 16 MiB",
        "concurrency: 3",
        "multipart_copy_threshold: 5 GiB",
        "endpoint: http://localhost:9000",
        "region: us-east-1",
        "url style: path",
        "shutdown_timeout: 30s",
        "upload_idle_timeout: 10m",
        "abort_stale_after: 24h",
    ):
        assert expected in summary


# -- sizes and durations ------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (5242880, 5 * MIB),
        ("5242880", 5 * MIB),
        ("8MiB", 8 * MIB),
        ("8MB", 8 * MIB),
        ("8 mib", 8 * MIB),
        ("8M", 8 * MIB),
        ("512KiB", 512 * KIB),
        ("1.5GiB", 3 * GIB // 2),
        ("5GB", 5 * GIB),
        ("1TiB", 1024 * GIB),
        ("100B", 100),
        (0, 0),
        (1024.0, 1024),
    ],
)
def test_parse_size(value: Any, expected: int) -> None:
    assert parse_size(value, "f") == expected


@pytest.mark.parametrize("value", ["", "MiB", "8 XB", "-1", -1, "0.5B", 1.5, True, None, [1]])
def test_parse_size_rejects(value: Any) -> None:
    with pytest.raises(ConfigError, match=r"^INVALID_CONFIG: s3\.x\.part_size: "):
        parse_size(value, "s3.x.part_size")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (30, 30.0),
        (2.5, 2.5),
        ("30", 30.0),
        ("30s", 30.0),
        ("1m30s", 90.0),
        ("500ms", 0.5),
        ("1h", 3600.0),
        ("1.5h", 5400.0),
        ("2h45m", 9900.0),
        ("100us", 0.0001),
        ("100µs", 0.0001),
        ("0", 0.0),
        ("0s", 0.0),
    ],
)
def test_parse_duration(value: Any, expected: float) -> None:
    assert parse_duration(value, "f") == pytest.approx(expected)


@pytest.mark.parametrize("value", ["", "soon", "30 s", "-5s", "1d", "s", -1, True, None, {}])
def test_parse_duration_rejects(value: Any) -> None:
    with pytest.raises(ConfigError, match=r"^INVALID_CONFIG: s3\.shutdown_timeout: "):
        parse_duration(value, "s3.shutdown_timeout")


# -- listen addresses --------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected", "canonical"),
    [
        ("tcp://127.0.0.1:6001", ListenAddress("tcp", "127.0.0.1", 6001), None),
        ("tcp://localhost:0", ListenAddress("tcp", "localhost", 0), None),
        ("tcp://:6001", ListenAddress("tcp", "", 6001), None),
        ("tcp://[::1]:6001", ListenAddress("tcp", "::1", 6001), None),
        ("TCP://0.0.0.0:80", ListenAddress("tcp", "0.0.0.0", 80), "tcp://0.0.0.0:80"),
        (" tcp://127.0.0.1:1 ", ListenAddress("tcp", "127.0.0.1", 1), "tcp://127.0.0.1:1"),
        ("unix:///var/run/rr.sock", ListenAddress("unix", path="/var/run/rr.sock"), None),
        ("unix://rr.sock", ListenAddress("unix", path="rr.sock"), None),
    ],
)
def test_parse_listen(text: str, expected: ListenAddress, canonical: str | None) -> None:
    address = parse_listen(text)
    assert address == expected
    assert str(address) == (canonical or text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "127.0.0.1:6001",
        "http://127.0.0.1:6001",
        "tcp://127.0.0.1",
        "tcp://127.0.0.1:",
        "tcp://127.0.0.1:65536",
        "tcp://127.0.0.1:port",
        "tcp://::1:6001",
        "tcp://[::1]",
        "tcp://[localhost]:1",
        "tcp://host:1/path",
        "tcp://bad host:1",
        "unix://",
        "unix:///" + "x" * 200,
    ],
)
def test_parse_listen_rejects(text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_listen(text)
    assert caught.value.code is ErrorCode.INVALID_CONFIG
    assert "listen address" in caught.value.message


@given(
    st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)),
    st.integers(min_value=0, max_value=65535),
)
def test_tcp_listen_round_trips(
    host: ipaddress.IPv4Address | ipaddress.IPv6Address, port: int
) -> None:
    address = ListenAddress("tcp", str(host), port)
    assert parse_listen(str(address)) == address


@pytest.mark.parametrize(("value", "mode"), [(0o660, 0o660), ("0660", 0o660), ("644", 0o644)])
def test_socket_mode(value: Any, mode: int) -> None:
    data = minimal()
    data["rpc"] = {"socket_mode": value}
    assert parse_config(data, {}).rpc.socket_mode == mode


# -- files -------------------------------------------------------------------------


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / ".rr.yaml"
    path.write_text(text)
    return path


def test_yaml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "rpc:\n  listen: tcp://127.0.0.1:6001\ns3:\n  servers: [unclosed\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, {})
    assert caught.value.message.startswith(f"{path}, line ")
    assert "invalid YAML" in caught.value.message


def test_yaml_error_does_not_quote_the_offending_line(tmp_path: Path) -> None:
    path = write(tmp_path, f"s3:\n  servers:\n    m:\n      secret: {SECRET}: oops\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, {})
    assert caught.value.message.startswith(f"{path}, line 4, column ")
    assert SECRET not in caught.value.wire_text()


def test_duplicate_keys_are_an_error(tmp_path: Path) -> None:
    text = (
        "s3:\n  buckets:\n    uploads: {server: a, bucket: one}\n"
        "    uploads: {server: a, bucket: two}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text), {})
    assert "line 4" in caught.value.message
    assert "duplicate key 'uploads'" in caught.value.message


def test_yaml_merge_keys_still_work(tmp_path: Path) -> None:
    text = """
s3:
  servers:
    minio:
      region: us-east-1
      endpoint: http://localhost:9000
      credentials: {key: k, secret: s}
  buckets:
    base: &base {server: minio, bucket: shared, part_size: 8MiB}
    other:
      <<: *base
      bucket: other
  default: base
"""
    config = load_config(write(tmp_path, text), {})
    assert config.s3.buckets["other"].bucket == "other"
    assert config.s3.buckets["other"].part_size == 8 * MIB


def test_validation_errors_from_a_file_name_it(tmp_path: Path) -> None:
    path = write(tmp_path, "s3:\n  servers: {}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, {})
    assert caught.value.message == "s3.servers: at least one server is required"
    assert caught.value.details == f"in {path}"


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read config file .*No such file"):
        load_config(tmp_path / "missing.yaml", {})


def test_config_objects_are_immutable() -> None:
    config = parse_config(minimal(), {})
    with pytest.raises(AttributeError):
        config.s3.default = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.s3.buckets["new"] = copy.copy(config.s3.buckets["uploads"])  # type: ignore[index]


def test_abort_stale_after_zero_turns_the_reaper_off() -> None:
    data = {
        "s3": {
            "abort_stale_after": 0,
            "servers": {"m": {"region": "r", "credentials": {"key": "k", "secret": "s"}}},
            "buckets": {"b": {"server": "m", "bucket": "xxx"}},
        }
    }
    assert parse_config(data, {}).s3.abort_stale_after == 0


# -- s3.metrics, s3.status, s3.logs ------------------------------------------------


def test_observability_is_off_unless_configured() -> None:
    observability = parse_config(minimal(), {}).s3.observability
    assert observability.metrics_address is None and observability.status_address is None
    assert observability.log_format == "text"


def test_observability_addresses_and_probe_settings() -> None:
    data = minimal()
    data["s3"]["metrics"] = {"address": "127.0.0.1:2112"}
    data["s3"]["status"] = {"address": "[::1]:2114", "probe_interval": "2s", "probe_timeout": "1s"}
    data["s3"]["logs"] = {"format": "json"}
    config = parse_config(data, {})
    observability = config.s3.observability
    assert observability.metrics_address == ListenAddress("tcp", host="127.0.0.1", port=2112)
    assert observability.status_address == ListenAddress("tcp", host="::1", port=2114)
    assert (observability.probe_interval, observability.probe_timeout) == (2.0, 1.0)
    assert observability.log_format == "json"
    assert config.warnings == ()


@pytest.mark.parametrize("address", ["2112", "http://127.0.0.1:2112", "127.0.0.1:99999", "a b:1"])
def test_a_bad_metrics_address_names_the_field(address: str) -> None:
    data = minimal()
    data["s3"]["metrics"] = {"address": address}
    error = error_of(data)
    assert error.message.startswith("s3.metrics.address: invalid address")
    assert "host:port" in error.message


def test_a_bad_log_format_and_an_unknown_key_are_named() -> None:
    data = minimal()
    data["s3"]["logs"] = {"format": "yaml"}
    assert "s3.logs.format: must be" in error_of(data).message
    data["s3"]["logs"] = {"format": "json"}
    data["s3"]["status"] = {"adress": "127.0.0.1:1"}
    warnings = parse_config(data, {}).warnings
    assert any("s3.status.adress" in w and "address" in w for w in warnings)


# -- beside RoadRunner: s3.listen, s3.relay, moved settings ----------------------


def beside(rpc: dict[str, Any] | None = None, **s3: Any) -> dict[str, Any]:
    data = minimal()
    data["rpc"] = rpc if rpc is not None else {"listen": "tcp://127.0.0.1:6001"}
    data["s3"].update(s3)
    return data


def test_s3_listen_is_this_servers_address_and_rpc_listen_stays_roadrunners() -> None:
    config = parse_config(beside(listen="tcp://127.0.0.1:6002"), {})
    assert config.rpc.listen == ListenAddress("tcp", "127.0.0.1", 6002)
    assert config.rpc.listen_key == "s3.listen"
    assert config.rpc.roadrunner_listen == ListenAddress("tcp", "127.0.0.1", 6001)
    assert config.warnings == ()
    text = describe(config)
    assert "listen: tcp://127.0.0.1:6002 (s3.listen)" in text
    assert "RoadRunner rpc.listen: tcp://127.0.0.1:6001 (RoadRunner's own; no clash" in text


def test_without_s3_listen_rpc_listen_is_used_as_before() -> None:
    config = parse_config(beside(), {})
    assert config.rpc.listen == ListenAddress("tcp", "127.0.0.1", 6001)
    assert (config.rpc.listen_key, config.rpc.roadrunner_listen) == ("rpc.listen", None)
    assert "listen: tcp://127.0.0.1:6001 (rpc.listen)" in describe(config)


@pytest.mark.parametrize(
    ("own", "roadrunner"),
    [
        ("tcp://127.0.0.1:6001", "tcp://127.0.0.1:6001"),
        ("tcp://localhost:6001", "tcp://127.0.0.1:6001"),
        ("tcp://:6001", "tcp://127.0.0.1:6001"),
        ("tcp://10.1.2.3:6001", "tcp://0.0.0.0:6001"),
        ("unix:///run/rr.sock", "unix:///run/../run/rr.sock"),
    ],
)
def test_s3_listen_clashing_with_rpc_listen_is_refused(own: str, roadrunner: str) -> None:
    error = error_of(beside({"listen": roadrunner}, listen=own))
    assert error.message.startswith(f"s3.listen: {parse_listen(own)} clashes with rpc.listen")
    assert "RoadRunner's own RPC address" in error.message


@pytest.mark.parametrize(
    ("own", "roadrunner"),
    [
        ("tcp://127.0.0.1:6002", "tcp://127.0.0.1:6001"),
        ("tcp://10.1.2.3:6001", "tcp://127.0.0.1:6001"),
        ("tcp://127.0.0.1:0", "tcp://127.0.0.1:0"),
        ("unix:///run/s3.sock", "unix:///run/rr.sock"),
        ("unix:///run/s3.sock", "tcp://127.0.0.1:6001"),
    ],
)
def test_distinct_addresses_do_not_clash(own: str, roadrunner: str) -> None:
    assert parse_config(beside({"listen": roadrunner}, listen=own), {}).warnings == ()


def test_relay_settings_and_their_defaults() -> None:
    config = parse_config(beside(listen="tcp://127.0.0.1:6002", relay="tcp://127.0.0.1:6001"), {})
    assert config.rpc.relay == RelaySettings(ListenAddress("tcp", "127.0.0.1", 6001), 60.0, 2)
    text = describe(config)
    assert (
        "relay: tcp://127.0.0.1:6001 (s3.relay: calls to services other than s3 go there)" in text
    )
    assert "relay_timeout: 1m" in text and "relay_connections: 2" in text
    assert parse_config(beside(), {}).rpc.relay is None
    assert "relay: (none: calls to services other than s3 answer METHOD_NOT_FOUND)" in describe(
        parse_config(beside(), {})
    )


def test_relay_services_default_leaves_out_what_starts_processes() -> None:
    config = parse_config(beside(listen="tcp://127.0.0.1:6002", relay="tcp://127.0.0.1:6001"), {})
    relay = config.rpc.relay
    assert relay is not None
    for allowed in ("informer.Workers", "informer.List", "jobs.Push", "kv.Get", "lock.Lock"):
        assert relay.allows(allowed), allowed
    # service.Create starts any command; resetter and informer.AddWorker start workers.
    for refused in ("service.Create", "service.Restart", "resetter.Reset", "informer.AddWorker"):
        assert not relay.allows(refused), refused
    assert "relay_services: informer.List, informer.Workers, jobs, kv, lock, metrics" in (
        describe(config)
    )
    everything = parse_config(
        beside(listen="tcp://127.0.0.1:6002", relay="tcp://127.0.0.1:6001", relay_services="*"),
        {},
    ).rpc.relay
    assert everything is not None and everything.allows("service.Create")


@pytest.mark.parametrize(
    ("services", "message"),
    [
        (["s3"], "s3.relay_services[0]: 's3' is served here, never relayed"),
        (["kv", "service Create"], "s3.relay_services[1]: 'service Create' is not a service"),
        ([""], "s3.relay_services[0]: '' is not a service"),
        ({"kv": 1}, "s3.relay_services: must be a list of RoadRunner services"),
    ],
)
def test_bad_relay_services_name_the_entry(services: Any, message: str) -> None:
    data = beside(listen="tcp://127.0.0.1:6002", relay="tcp://127.0.0.1:6001")
    data["s3"]["relay_services"] = services
    assert error_of(data).message.startswith(message)


def test_relay_services_without_a_relay_warns() -> None:
    config = parse_config(beside(relay_services=["kv"]), {})
    assert config.warnings == ("s3.relay_services: has no effect without s3.relay",)


def test_exposure_warning_names_the_relay_and_what_it_allows() -> None:
    config = parse_config(
        beside(listen="tcp://0.0.0.0:6002", relay="tcp://127.0.0.1:6001", relay_services=["kv"]),
        {},
    )
    risk = exposure_warning(config.rpc)
    assert "every s3.* method" in risk
    assert (
        "s3.listen is wider than rpc.listen (tcp://127.0.0.1:6001): through s3.relay it hands "
        "them RoadRunner's RPC at tcp://127.0.0.1:6001 for kv (s3.relay_services)"
    ) in risk


def test_a_relay_to_this_servers_own_address_is_refused() -> None:
    # Without s3.listen, rpc.listen is ours: relaying there would loop.
    error = error_of(beside(relay="tcp://127.0.0.1:6001"))
    assert error.message == (
        "s3.relay: tcp://127.0.0.1:6001 is this server's own address (rpc.listen): relayed "
        "calls would come back here; set s3.listen to this server's own address"
    )
    error = error_of(beside(listen="tcp://127.0.0.1:6002", relay="tcp://localhost:6002"))
    assert error.message.startswith("s3.relay: tcp://localhost:6002 is this server's own address")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"relay": "localhost:6001"}, "s3.relay: invalid listen address"),
        ({"listen": "6002"}, "s3.listen: invalid listen address"),
        ({"relay": "tcp://127.0.0.1:6001", "relay_timeout": "0s"}, "s3.relay_timeout: must be"),
        ({"relay": "tcp://127.0.0.1:6001", "relay_connections": 0}, "s3.relay_connections: must"),
        ({"allow_from": ["10.0.0.0/33"]}, "s3.allow_from[0]: '10.0.0.0/33' is not a CIDR range"),
        ({"allow_from": {"a": 1}}, "s3.allow_from: must be a list of CIDR ranges"),
        ({"max_in_flight": 0}, "s3.max_in_flight: must be at least 1, got 0"),
        ({"socket_mode": "rw"}, "s3.socket_mode: must be an octal file mode"),
    ],
)
def test_bad_relay_and_access_settings_name_the_key(settings: dict[str, Any], message: str) -> None:
    data = beside(listen="tcp://127.0.0.1:6002")
    data["s3"].update(settings)
    assert error_of(data).message.startswith(message)


def test_allow_from_takes_cidr_ranges_and_single_addresses() -> None:
    config = parse_config(beside(allow_from=["10.0.0.0/8", "192.168.1.7", "fd00::/8"]), {})
    assert config.rpc.allow_from == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("192.168.1.7/32"),
        ipaddress.ip_network("fd00::/8"),
    )
    assert "allow_from: 10.0.0.0/8, 192.168.1.7/32, fd00::/8" in describe(config)
    on_unix = parse_config(beside(listen="unix:///run/s3.sock", allow_from="10.0.0.0/8"), {})
    assert on_unix.warnings == (
        "s3.allow_from: has no effect on a unix socket; its file mode, owner and group "
        "(s3.socket_mode, s3.socket_owner, s3.socket_group) say who may connect",
    )


def test_the_old_rpc_places_are_still_read_with_a_warning() -> None:
    config = parse_config(
        beside({"listen": "tcp://127.0.0.1:6001", "max_frame_size": "1MiB", "max_in_flight": 4}),
        {},
    )
    assert (config.rpc.max_frame_size, config.rpc.max_in_flight) == (MIB, 4)
    assert config.warnings == (
        "rpc.max_frame_size: read for compatibility; move it to s3.max_frame_size, where "
        "RoadRunner's rpc section cannot clash with it",
        "rpc.max_in_flight: read for compatibility; move it to s3.max_in_flight, where "
        "RoadRunner's rpc section cannot clash with it",
    )
    # An error in the old place names the old place.
    assert error_of(beside({"max_in_flight": 0})).message.startswith("rpc.max_in_flight:")


def test_s3_settings_win_over_the_old_rpc_places() -> None:
    config = parse_config(beside({"socket_mode": "0600"}, socket_mode="0660"), {})
    assert config.rpc.socket_mode == 0o660
    assert config.warnings == (
        "rpc.socket_mode is ignored: s3.socket_mode is set and takes precedence",
    )


def test_workers_rr_rpc_is_checked_against_s3_listen() -> None:
    def warnings(env: Any, **s3: Any) -> tuple[str, ...]:
        data = beside(listen="tcp://127.0.0.1:6002", **s3)
        data["server"] = {"command": "php worker.php", "env": env}
        return parse_config(data, {"PORT": "6002"}).warnings

    relay = {"relay": "tcp://127.0.0.1:6001"}
    assert warnings({"RR_RPC": "tcp://127.0.0.1:${PORT}"}, **relay) == ()
    assert warnings([{"rr_rpc": "tcp://127.0.0.1:6002"}], **relay) == ()
    assert warnings({"RR_RPC": "tcp://127.0.0.1:6001"}, **relay) == (
        "server.env.RR_RPC is tcp://127.0.0.1:6001, not this server (tcp://127.0.0.1:6002): "
        "PHP workers will not reach s3.* through the relay",
    )
    assert warnings({"RR_RPC": "tcp://127.0.0.1:6002"}) == (
        "server.env.RR_RPC points PHP workers at this server (tcp://127.0.0.1:6002) but "
        "s3.relay is not set: their calls to RoadRunner's own services (informer, jobs, kv, "
        "...) will answer METHOD_NOT_FOUND",
    )


def test_a_relay_elsewhere_than_rpc_listen_warns() -> None:
    config = parse_config(beside(listen="tcp://127.0.0.1:6002", relay="tcp://127.0.0.1:7001"), {})
    assert config.warnings == (
        "s3.relay: tcp://127.0.0.1:7001 is not rpc.listen (tcp://127.0.0.1:6001): calls to "
        "RoadRunner's services will go to another RoadRunner than this file's",
    )


# -- names from callers and config: registered bucket names, S3 bucket names --------


@pytest.mark.parametrize(
    "name",
    ["a\nlevel=ERROR forged", "x\x1b[2J", "a b", "caf\u00e9", "line\u2028break", "n" * 65, "a/b"],
)
def test_registered_bucket_names_follow_one_rule(name: str) -> None:
    data = minimal()
    data["s3"]["buckets"] = {name: {"server": "minio", "bucket": "test-bucket"}}
    data["s3"].pop("default", None)
    error = error_of(data)
    assert error.message == (
        f"s3.buckets: {name!r} is not a bucket name: use 1 to 64 letters, digits, '-', '_' and '.'"
    )
    assert "\n" not in error.message and "\x1b" not in error.message  # shown as repr
    servers = parse_config(minimal(), {}).s3.servers
    with pytest.raises(ConfigError, match=r"^INVALID_CONFIG: name: .* is not a bucket name"):
        parse_bucket(name, {"server": "minio", "bucket": "test-bucket"}, servers)


def test_registered_bucket_names_may_use_letters_digits_dashes_underscores_dots() -> None:
    servers = parse_config(minimal(), {}).s3.servers
    for name in ("a", "Avatars_2024.v-1", "n" * 64):
        assert (
            parse_bucket(name, {"server": "minio", "bucket": "test-bucket"}, servers).name == name
        )


@pytest.mark.parametrize(
    ("bucket", "why"),
    [
        ("x" * 10_000, "must be 3 to 63 characters long, not 10000"),
        ("ab", "must be 3 to 63 characters long, not 2"),
        ("Uploads", "may hold only lowercase letters, digits, '.' and '-'"),
        ("my_bucket", "may hold only lowercase letters"),
        ("-bucket", "must begin and end with a letter or digit"),
        ("bucket-", "must begin and end with a letter or digit"),
        ("my..bucket", "must not have two adjacent periods"),
        ("192.168.1.7", "must not be formatted as an IP address"),
        ("bucket/folder", "has a '/'; use prefix for a folder inside the bucket"),
        ("my bucket", "may hold only lowercase letters"),
    ],
)
def test_s3_bucket_names_follow_s3s_rules(bucket: str, why: str) -> None:
    data = minimal()
    data["s3"]["buckets"]["uploads"]["bucket"] = bucket
    error = error_of(data)
    assert error.message.startswith("s3.buckets.uploads.bucket: ")
    assert "is not an S3 bucket name: it " in error.message and why in error.message
    assert len(error.message) < 300  # the 10,000 characters are not echoed
    servers = parse_config(minimal(), {}).s3.servers
    with pytest.raises(ConfigError, match="is not an S3 bucket name"):
        parse_bucket("docs", {"server": "minio", "bucket": bucket}, servers)


def test_ipv4_mapped_allow_from_entries_are_read_as_ipv4() -> None:
    config = parse_config(
        beside(allow_from=["::ffff:127.0.0.1/128", "::ffff:10.0.0.0/104", "::1"]), {}
    )
    assert config.rpc.allow_from == (
        ipaddress.ip_network("127.0.0.1/32"),
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("::1/128"),
    )
    assert config.warnings[0] == (
        "s3.allow_from[0]: ::ffff:127.0.0.1/128 is an IPv4-mapped IPv6 range, which never "
        "matches (IPv4 peers arrive as IPv4); read as 127.0.0.1/32"
    )
    assert len(config.warnings) == 2


def test_register_buckets_on_off_or_scopes() -> None:
    assert parse_config(minimal(), {}).s3.register_scopes is None
    assert "register_buckets: on (s3.RegisterBucket may name any prefix" in describe(
        parse_config(minimal(), {})
    )
    for off in (False, "off"):
        data = minimal()
        data["s3"]["register_buckets"] = off
        assert parse_config(data, {}).s3.register_scopes == ()
    data = minimal()
    data["s3"]["register_buckets"] = [
        {"server": "minio", "bucket": "tenant-bucket", "prefix": "tenants/"}
    ]
    config = parse_config(data, {})
    assert config.s3.register_scopes == (RegisterScope("minio", "tenant-bucket", "tenants/"),)
    assert "register_buckets: minio:tenant-bucket/tenants/" in describe(config)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("sometimes", "s3.register_buckets: must be on, off, or a list of {server, bucket"),
        ([{"server": "nope", "bucket": "abc"}], "s3.register_buckets[0].server: unknown server"),
        ([{"server": "minio", "bucket": "A_B"}], "s3.register_buckets[0].bucket: 'A_B' is not"),
    ],
)
def test_bad_register_buckets_name_the_key(value: Any, message: str) -> None:
    data = minimal()
    data["s3"]["register_buckets"] = value
    assert error_of(data).message.startswith(message)


@pytest.mark.parametrize(
    ("model", "name", "changed", "read"),
    [
        (BucketConfig, "part_size", 7 * 1024 * 1024, lambda c: c.s3.buckets["uploads"].part_size),
        (
            BucketConfig,
            "visibility_mode",
            "none",
            lambda c: c.s3.buckets["uploads"].visibility_mode,
        ),
        (BucketConfig, "storage_class", "GLACIER", lambda c: c.s3.buckets["uploads"].storage_class),
        (S3Settings, "upload_idle_timeout", 123.0, lambda c: c.s3.upload_idle_timeout),
        (ServerConfig, "checksums", "when_supported", lambda c: c.s3.servers["minio"].checksums),
        (RPCSettings, "max_in_flight", 9, lambda c: c.rpc.max_in_flight),
        (RPCSettings, "idle_timeout", 5.0, lambda c: c.rpc.idle_timeout),
    ],
)
def test_the_parser_takes_each_default_from_the_model(
    monkeypatch: pytest.MonkeyPatch, model: type, name: str, changed: Any, read: Any
) -> None:
    """A default is written once, on the model's field: change it there and the
    parser's default follows."""
    [declared] = [item for item in dataclasses.fields(model) if item.name == name]
    assert read(parse_config(minimal(), {})) == declared.default != changed
    monkeypatch.setattr(declared, "default", changed)
    assert read(parse_config(minimal(), {})) == changed


@pytest.mark.parametrize(("cores", "workers"), [(1, 1), (2, 1), (3, 2), (8, 7), (1024, 256)])
def test_workers_default_to_a_worker_per_core_but_one(
    monkeypatch: pytest.MonkeyPatch, cores: int, workers: int
) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cores)))
    assert parse_config(minimal()).s3.workers == workers
    explicit = minimal()
    explicit["s3"]["workers"] = 2
    assert parse_config(explicit).s3.workers == 2
