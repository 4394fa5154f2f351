"""Beside RoadRunner: the shipped examples/roadrunner/.rr.yaml and the Go plugin's own example.

The example must load, its addresses must agree (server.env.RR_RPC is
s3.listen, s3.relay is rpc.listen, nothing shares a port), and it must serve:
s3.* from SeaweedFS and another service relayed to a stand-in RoadRunner.
``check-config`` on the Go plugin's example with ``s3.listen`` added prints
both addresses and no clash.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.support.server import endpoint_server, running_app
from tests.support.services import free_port
from tests.support.upstream import running_upstream
from trio_s3rpc.client import RPCClient
from trio_s3rpc.config import load_config, parse_listen, same_address
from trio_s3rpc.embedded import S3Endpoint

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "roadrunner" / ".rr.yaml"
GO_PLUGIN_EXAMPLE = Path(__file__).parent / "data" / "go-plugin.rr.yaml"


def example() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    return data


def test_the_example_loads_without_warnings_and_its_addresses_agree() -> None:
    config = load_config(EXAMPLE, {})
    assert config.warnings == ()
    rpc = config.rpc
    assert rpc.listen_key == "s3.listen"
    assert rpc.roadrunner_listen is not None and rpc.relay is not None
    # PHP workers reach this server; it relays to RoadRunner's own RPC.
    assert parse_listen(rpc.workers_rpc) == rpc.listen
    assert rpc.relay.address == rpc.roadrunner_listen
    # No two listeners in the file share an address.
    http = parse_listen("tcp://" + example()["http"]["address"])
    addresses = [rpc.listen, rpc.roadrunner_listen, http]
    for index, first in enumerate(addresses):
        for second in addresses[index + 1 :]:
            assert not same_address(first, second), (first, second)
    # Loopback only: the example does not expose the storage credentials.
    assert all(address.host == "127.0.0.1" for address in addresses)


def test_roadrunner_supervises_the_server_with_this_same_file() -> None:
    service = example()["service"]["s3rpc"]
    assert service["command"] == "trio-s3rpc serve --config .rr.yaml"
    assert service["remain_after_exit"] is True and service["restart_sec"] >= 1
    # RoadRunner waits longer than the server's own grace period before killing it.
    config = load_config(EXAMPLE, {})
    assert service["timeout_stop_sec"] > config.s3.shutdown_timeout
    worker = (EXAMPLE.parent / "worker.php").read_text()
    assert "Environment::fromGlobals()->getRPCAddress()" in worker
    assert example()["server"]["command"] == "php worker.php"


async def test_the_example_serves_s3_and_relays_the_rest(seaweedfs: S3Endpoint) -> None:
    # The example's wiring on free ports (the fixed ones may be taken on a shared machine).
    data = example()
    own, roadrunner = f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}"
    data["rpc"]["listen"] = data["s3"]["relay"] = roadrunner
    data["s3"]["listen"] = data["server"]["env"]["RR_RPC"] = own
    data["s3"]["servers"]["storage"] = endpoint_server(seaweedfs)
    data["s3"]["buckets"]["uploads"]["bucket"] = "test-bucket"
    async with running_upstream(roadrunner) as upstream, running_app(data) as (_, address):
        assert address == own
        async with await RPCClient.connect(data["server"]["env"]["RR_RPC"]) as rpc:
            await rpc.call("s3.Write", {"pathname": "example.txt", "content": "aGk="})
            assert (await rpc.call("s3.GetMetadata", {"pathname": "example.txt"}))["size"] == 2
            assert await rpc.call("informer.Workers", {"plugin": "http"}) == {"plugin": "http"}
    assert [request.method for request in upstream.dispatcher.received] == ["informer.Workers"]


def check_config(path: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "AKIAEXAMPLEKEY1",
        "AWS_SECRET_ACCESS_KEY": "secret-1",
        "AWS_SESSION_TOKEN": "",
        "AWS_EU_ACCESS_KEY_ID": "AKIAEXAMPLEKEY2",
        "AWS_EU_SECRET_ACCESS_KEY": "secret-2",
        "DO_SPACES_KEY": "DOEXAMPLEKEY",
        "DO_SPACES_SECRET": "secret-3",
        "B2_APPLICATION_KEY_ID": "B2EXAMPLEKEY",
        "B2_APPLICATION_KEY": "secret-4",
    }
    return subprocess.run(
        [sys.executable, "-m", "trio_s3rpc", "check-config", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def test_check_config_on_the_go_plugins_example_with_s3_listen_added(tmp_path: Path) -> None:
    original = GO_PLUGIN_EXAMPLE.read_text()
    # Unchanged, it is a standalone config: rpc.listen is ours.
    before = check_config(GO_PLUGIN_EXAMPLE)
    assert before.returncode == 0, before.stderr
    assert "listen: tcp://127.0.0.1:6001 (rpc.listen)" in before.stdout
    # The one line a user adds to run beside RoadRunner.
    assert original.count("\ns3:\n") == 1
    edited = tmp_path / ".rr.yaml"
    edited.write_text(original.replace("\ns3:\n", "\ns3:\n  listen: tcp://127.0.0.1:6002\n"))
    result = check_config(edited)
    assert result.returncode == 0, result.stderr
    assert "listen: tcp://127.0.0.1:6002 (s3.listen)" in result.stdout
    assert (
        "RoadRunner rpc.listen: tcp://127.0.0.1:6001 (RoadRunner's own; no clash with "
        "s3.listen tcp://127.0.0.1:6002)" in result.stdout
    )
    assert "clashes" not in result.stdout + result.stderr
    assert result.stdout.rstrip().endswith("config OK")
    # RoadRunner's own sections (server, http, logs) draw no warnings.
    assert "warning:" not in result.stdout


def test_check_config_refuses_s3_listen_on_roadrunners_address(tmp_path: Path) -> None:
    edited = tmp_path / ".rr.yaml"
    edited.write_text(
        GO_PLUGIN_EXAMPLE.read_text().replace("\ns3:\n", "\ns3:\n  listen: tcp://127.0.0.1:6001\n")
    )
    result = check_config(edited)
    assert result.returncode == 1
    assert "s3.listen: tcp://127.0.0.1:6001 clashes with rpc.listen" in result.stderr


def test_serve_listen_override_on_roadrunners_address_is_refused() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "trio_s3rpc",
            "serve",
            "--config",
            str(EXAMPLE),
            "--listen",
            "tcp://127.0.0.1:6001",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "--listen: tcp://127.0.0.1:6001 clashes with s3.relay (tcp://127.0.0.1:6001)" in (
        result.stderr
    )


def test_check_config_warns_about_a_listen_address_beyond_loopback(tmp_path: Path) -> None:
    edited = tmp_path / ".rr.yaml"
    edited.write_text(
        GO_PLUGIN_EXAMPLE.read_text().replace(
            "\ns3:\n", '\ns3:\n  listen: tcp://0.0.0.0:6002\n  allow_from: ["10.0.0.0/8"]\n'
        )
    )
    result = check_config(edited)
    assert result.returncode == 0, result.stderr
    assert (
        "warning: s3.listen: tcp://0.0.0.0:6002 is reachable beyond this machine, and Goridge "
        "RPC has no authentication: peers in s3.allow_from (10.0.0.0/8) can call every s3.* "
        "method with this server's storage credentials" in result.stdout
    )
    assert "allow_from: 10.0.0.0/8" in result.stdout
