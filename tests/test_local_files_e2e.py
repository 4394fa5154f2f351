"""WriteFile and ReadFile against a hostile caller, end to end against SeaweedFS.

Each test is an attack a PHP caller could make on the server's machine:
swapping a directory for a symlink while a call runs, naming a FIFO, a
socket or a device as the source, ReadFile into someone's private file,
the leftovers of a killed download. What must hold: no byte outside
``s3.local_roots`` is read or written, nothing a caller names blocks the
server, and a file's permissions are never widened.
"""

from __future__ import annotations

import base64
import os
import secrets
import socket
import stat
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio

from tests.support.proxy import TCPProxy
from tests.support.server import config_dict, endpoint_server, running_app
from tests.support.services import admin_client, open_uploads
from tests.support.swap import swapping
from trio_s3rpc.client import RemoteError, RPCClient

pytestmark = pytest.mark.integration

# Bounds of each race: the attack on the code before handle-based paths won
# within a few attempts (ReadFile) or a few hundred (WriteFile).
RACE_ATTEMPTS = 3000
RACE_SECONDS = 3.0
# What a call that lost the race may answer: a refusal, never an escape.
REFUSED = {"PERMISSION_DENIED", "FILE_NOT_FOUND"}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    root.mkdir()
    return root


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    outside = tmp_path / "outside"
    outside.mkdir()
    return outside


def local_config(
    seaweedfs: Any, *roots: Path, listen: str = "tcp://127.0.0.1:0", **s3: Any
) -> dict[str, Any]:
    return config_dict(
        endpoint_server(seaweedfs),
        {
            "uploads": {
                "bucket": "test-bucket",
                "prefix": f"local-{secrets.token_hex(4)}/",
                "visibility_mode": "none",
            }
        },
        listen=listen,
        s3={"local_roots": [str(r) for r in roots], **s3},
    )


@pytest.fixture
async def rpc(seaweedfs: Any, root: Path) -> AsyncIterator[RPCClient]:
    async with (
        running_app(local_config(seaweedfs, root)) as (_, address),
        await RPCClient.connect(address) as client,
    ):
        yield client


def race_directory(root: Path, outside: Path) -> tuple[Path, Path]:
    """``ROOT/race/d``, a directory, and ``ROOT/race/link``, a symlink to ``outside``."""
    race = root / "race"
    race.mkdir()
    directory = race / "d"
    directory.mkdir()
    link = race / "link"
    link.symlink_to(outside)
    return directory, link


def real_directory(first: Path, second: Path) -> Path:
    return first if not first.is_symlink() else second


async def test_read_file_never_writes_outside_the_root_while_a_directory_is_swapped(
    rpc: RPCClient, root: Path, outside: Path
) -> None:
    await rpc.call("s3.Write", {"pathname": "keys", "content": "c3NoLXJzYSBBQUFB"})
    directory, link = race_directory(root, outside)
    written = 0
    refusals: set[str] = set()
    deadline = time.monotonic() + RACE_SECONDS
    with swapping(directory, link, RACE_SECONDS):
        for _ in range(RACE_ATTEMPTS):
            if time.monotonic() > deadline or list(outside.iterdir()):
                break
            try:
                await rpc.call(
                    "s3.ReadFile",
                    {"pathname": "keys", "destination_path": str(directory / "authorized_keys")},
                )
                written += 1
            except RemoteError as error:
                refusals.add(error.code)
    assert list(outside.iterdir()) == []
    assert refusals <= REFUSED
    assert written > 0 and refusals  # the race was run, both ways
    landed = real_directory(directory, link)
    assert sorted(p.name for p in landed.iterdir()) == ["authorized_keys"]
    assert (landed / "authorized_keys").read_bytes() == b"ssh-rsa AAAA"


async def test_write_file_never_reads_outside_the_root_while_a_directory_is_swapped(
    rpc: RPCClient, root: Path, outside: Path
) -> None:
    directory, link = race_directory(root, outside)
    (directory / "secret").write_bytes(b"inside")
    (outside / "secret").write_bytes(b"the server's private key")
    sizes: set[int] = set()
    refusals: set[str] = set()
    deadline = time.monotonic() + RACE_SECONDS
    with swapping(directory, link, RACE_SECONDS):
        for _ in range(RACE_ATTEMPTS):
            if time.monotonic() > deadline or len(sizes) > 1:
                break
            try:
                answer = await rpc.call(
                    "s3.WriteFile",
                    {
                        "pathname": "race.txt",
                        "source_path": str(directory / "secret"),
                        "content_type": "text/plain",
                    },
                )
                sizes.add(answer["size"])
            except RemoteError as error:
                refusals.add(error.code)
    # Only the file inside the root was ever uploaded, never the one outside.
    assert sizes == {len(b"inside")}
    assert refusals <= REFUSED
    assert refusals  # the race was run, both ways


@pytest.fixture
def unblock_after() -> Any:
    """A safety valve for the FIFO test on a server whose loop blocks: after
    ``seconds``, open the FIFO for writing so that the server goes on (and
    the test fails instead of hanging). Answers whether it had to."""
    fired = threading.Event()
    stop = threading.Event()
    threads: list[threading.Thread] = []

    def arm(fifo: Path, seconds: float) -> threading.Event:
        def valve() -> None:
            if stop.wait(seconds):
                return
            while not stop.is_set():
                try:
                    fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
                except OSError:  # no reader yet
                    time.sleep(0.01)
                    continue
                fired.set()
                os.close(fd)
                return

        thread = threading.Thread(target=valve, daemon=True)
        thread.start()
        threads.append(thread)
        return fired

    yield arm
    stop.set()
    for thread in threads:
        thread.join()


async def test_a_fifo_socket_or_device_source_is_refused_and_blocks_no_one(
    seaweedfs: Any, root: Path, unblock_after: Any
) -> None:
    fifo = root / "fifo"
    os.mkfifo(fifo)
    fired = unblock_after(fifo, 10.0)
    listening = socket.socket(socket.AF_UNIX)
    listening.bind(str(root / "sock"))
    (root / "dir").mkdir()
    config = local_config(seaweedfs, root, Path("/dev"))
    try:
        async with (
            running_app(config) as (_, address),
            await RPCClient.connect(address) as first,
            await RPCClient.connect(address) as second,
        ):
            answers: dict[str, Any] = {}

            async def write_fifo() -> None:
                with pytest.raises(RemoteError) as error:
                    await first.call("s3.WriteFile", {"pathname": "f", "source_path": str(fifo)})
                answers["fifo"] = error.value

            async def meanwhile() -> None:
                answers["other"] = await second.call("s3.ListBuckets", {})

            async with trio.open_nursery() as nursery:
                nursery.start_soon(write_fifo)
                nursery.start_soon(meanwhile)
            assert not fired.is_set(), "the server waited for a writer on the FIFO"
            assert answers["fifo"].code == "INVALID_REQUEST"
            assert "FIFO" in answers["fifo"].text
            assert answers["other"]["buckets"]
            for path, kind in [
                (root / "sock", "a socket"),
                (Path("/dev/zero"), "a character device"),
                (root / "dir", "a directory"),
            ]:
                with pytest.raises(RemoteError) as error:
                    await first.call("s3.WriteFile", {"pathname": "f", "source_path": str(path)})
                assert error.value.code == "INVALID_REQUEST", path
                assert kind in error.value.text
                assert str(path) in error.value.text
            exists = await first.call("s3.Exists", {"pathname": "f"})
            assert exists == {"exists": False}
    finally:
        listening.close()


async def test_read_file_keeps_a_private_files_mode_and_a_new_file_is_private(
    rpc: RPCClient, root: Path
) -> None:
    await rpc.call("s3.Write", {"pathname": "m.txt", "content": "bmV3"})
    private = root / "php-tempnam-Ab12Cd"
    private.write_bytes(b"old")
    private.chmod(0o600)
    group_readable = root / "shared.txt"
    group_readable.write_bytes(b"old")
    group_readable.chmod(0o640)
    before = {path: path.stat() for path in (private, group_readable)}
    for path in before:
        await rpc.call("s3.ReadFile", {"pathname": "m.txt", "destination_path": str(path)})
        after = path.stat()
        assert path.read_bytes() == b"new"
        assert stat.S_IMODE(after.st_mode) == stat.S_IMODE(before[path].st_mode), path
        assert (after.st_uid, after.st_gid) == (before[path].st_uid, before[path].st_gid)
    umask = os.umask(0o022)
    os.umask(umask)
    fresh = root / "fresh.txt"
    await rpc.call("s3.ReadFile", {"pathname": "m.txt", "destination_path": str(fresh)})
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o600 & ~umask
    assert sorted(p.name for p in root.iterdir()) == [
        "fresh.txt",
        "php-tempnam-Ab12Cd",
        "shared.txt",
    ]


async def test_leftover_part_files_are_removed_at_start_within_the_roots_only(
    seaweedfs: Any, root: Path, outside: Path
) -> None:
    old = time.time() - 7200
    nested = root / "a" / "b"
    nested.mkdir(parents=True)
    stale = [
        root / ".db.tar.0123456789ab.trio-s3rpc-part",
        nested / ".x.abcdef012345.trio-s3rpc-part",
    ]
    kept = [
        root / ".fresh.0123456789ab.trio-s3rpc-part",  # being written by a live ReadFile
        root / "notes.trio-s3rpc-part",  # not a name a ReadFile gives
        outside / ".o.0123456789ab.trio-s3rpc-part",  # outside the roots
    ]
    for path in stale + kept:
        path.write_bytes(b"partial")
    for path in stale + kept[1:]:
        os.utime(path, (old, old))
    # A symlink with the temporary files' name: the link may go, its target never.
    (root / ".l.0123456789ab.trio-s3rpc-part").symlink_to(kept[2])
    async with running_app(local_config(seaweedfs, root, abort_stale_after="1h")):
        with trio.fail_after(10):
            while any(path.exists() for path in stale):
                await trio.sleep(0.02)
    assert all(path.read_bytes() == b"partial" for path in kept)


async def test_read_file_mode_is_asked_within_local_file_mode(seaweedfs: Any, root: Path) -> None:
    config = local_config(seaweedfs, root, local_file_mode="0640")
    async with running_app(config) as (_, address), await RPCClient.connect(address) as rpc:
        await rpc.call("s3.Write", {"pathname": "m.txt", "content": "bmV3"})
        shared = root / "shared.txt"
        await rpc.call(
            "s3.ReadFile", {"pathname": "m.txt", "destination_path": str(shared), "mode": 0o640}
        )
        assert stat.S_IMODE(shared.stat().st_mode) == 0o640
        for mode in (0o644, 0o4600, -1):
            with pytest.raises(RemoteError) as error:
                await rpc.call(
                    "s3.ReadFile",
                    {"pathname": "m.txt", "destination_path": str(root / "x"), "mode": mode},
                )
            assert error.value.code == "INVALID_REQUEST", mode
            assert "'mode'" in error.value.text
        assert sorted(p.name for p in root.iterdir()) == ["shared.txt"]


async def test_in_root_links_are_entries_never_followed(rpc: RPCClient, root: Path) -> None:
    await rpc.call("s3.Write", {"pathname": "n.txt", "content": "bmV3"})
    (root / "sub").mkdir()
    target = root / "target.txt"
    target.write_bytes(b"target")
    link = root / "link.txt"
    link.symlink_to(target)
    hard = root / "hard.txt"
    os.link(target, hard)
    # ReadFile onto an in-root symlink or a hard link replaces only that entry.
    for destination in (link, hard):
        await rpc.call("s3.ReadFile", {"pathname": "n.txt", "destination_path": str(destination)})
        assert not destination.is_symlink()
        assert destination.read_bytes() == b"new"
    assert target.read_bytes() == b"target"
    # '..' goes back where the walk came from, within the root.
    back = f"{root}/sub/../back.txt"
    await rpc.call("s3.ReadFile", {"pathname": "n.txt", "destination_path": back})
    assert (root / "back.txt").read_bytes() == b"new"
    # A symlink below the root is not followed as a source or a directory, even inside.
    (root / "sub-link").symlink_to(root / "sub")
    for field, method, path in [
        ("source_path", "s3.WriteFile", root / "link.txt.2"),
        ("source_path", "s3.WriteFile", root / "sub-link" / "x"),
        ("destination_path", "s3.ReadFile", root / "sub-link" / "x"),
    ]:
        if path.name == "link.txt.2":
            path.symlink_to(target)
        with pytest.raises(RemoteError) as error:
            await rpc.call(method, {"pathname": "n.txt", field: str(path)})
        assert error.value.code == "PERMISSION_DENIED", path
        assert "symbolic link" in error.value.text
    assert not (root / "sub" / "x").exists()


PEER_UID = 54321  # a user with no other files on the machine; no passwd entry needed


def connect_as(uid: int, path: Path) -> RPCClient:
    """A connection made by user ``uid``: the kernel records the effective ids at
    ``connect`` (what ``SO_PEERCRED`` answers), so this process takes them for that
    one system call."""
    sock = socket.socket(socket.AF_UNIX)
    os.setegid(uid)
    os.seteuid(uid)
    try:
        sock.connect(str(path))
    finally:
        os.seteuid(0)
        os.setegid(0)
    return RPCClient(trio.SocketStream(trio.socket.from_stdlib_socket(sock)))


async def calls_as(uid: int, path: Path, calls: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """Make ``calls`` as user ``uid``; the answers: "ok" or the error text."""
    answers = []
    async with connect_as(uid, path) as rpc:
        for method, args in calls:
            try:
                await rpc.call(method, args)
                answers.append("ok")
            except RemoteError as error:
                answers.append(error.text)
    return answers


@pytest.mark.skipif(os.geteuid() != 0, reason="making calls as a second user needs root")
async def test_a_unix_socket_caller_has_its_own_rights_under_local_files_peer(
    seaweedfs: Any,
) -> None:
    import shutil
    import tempfile

    # Under /tmp, not pytest's 0700 directory, so that the second user can reach it.
    base = Path(tempfile.mkdtemp(prefix="peer-"))
    try:
        base.chmod(0o755)
        shared = base / "root"
        shared.mkdir(mode=0o755)
        private = shared / "private.txt"  # the server's user's, 0600
        private.write_bytes(b"secret")
        private.chmod(0o600)
        mine = shared / "mine.txt"
        mine.write_bytes(b"mine")
        mine.chmod(0o600)
        os.chown(mine, PEER_UID, PEER_UID)
        home = shared / "home"  # the second user's directory
        home.mkdir()
        os.chown(home, PEER_UID, PEER_UID)
        sticky = shared / "sticky"  # like /tmp: anyone may write, only owners replace
        sticky.mkdir()
        sticky.chmod(0o1777)
        (sticky / "theirs.txt").write_bytes(b"root's")
        socket_path = base / "rpc.sock"
        read = ("s3.WriteFile", "source_path")
        write = ("s3.ReadFile", "destination_path")
        calls = [
            (read, private),
            (read, mine),
            (write, shared / "planted.txt"),
            (write, home / "restored.txt"),
            (write, sticky / "theirs.txt"),
            (write, sticky / "new.txt"),
        ]
        wire = [
            (method, {"pathname": "p.txt", field: str(path)}) for (method, field), path in calls
        ]
        answers: dict[str, list[str]] = {}
        owners: dict[str, tuple[int, int, int]] = {}
        for local_files in ("peer", "server"):
            config = local_config(
                seaweedfs,
                shared,
                listen=f"unix://{socket_path}",
                socket_mode="0666",
                local_files=local_files,
            )
            async with running_app(config) as (_, address):
                async with await RPCClient.connect(address) as rpc:
                    await rpc.call("s3.Write", {"pathname": "p.txt", "content": "bmV3"})
                answers[local_files] = await calls_as(PEER_UID, socket_path, wire)
            restored = (home / "restored.txt").stat()
            owners[local_files] = (restored.st_uid, restored.st_gid, stat.S_IMODE(restored.st_mode))
            for path in (shared / "planted.txt", home / "restored.txt", sticky / "new.txt"):
                path.unlink(missing_ok=True)
        peer = answers["peer"]
        assert peer[0].startswith("PERMISSION_DENIED: source_path is not readable by the calling")
        assert "uid 54321" in peer[0]
        assert peer[1] == "ok"
        assert peer[2].startswith("PERMISSION_DENIED: the directory of destination_path is not")
        assert peer[3] == "ok"
        # A file the second user had restored is that user's, as if it had written it.
        assert owners["peer"] == (PEER_UID, PEER_UID, 0o600)
        assert peer[4].startswith("PERMISSION_DENIED: destination_path is another user's file")
        assert peer[5] == "ok"
        # Under "server" the caller has the server's rights over the roots, as over tcp.
        assert answers["server"] == ["ok"] * 6
    finally:
        shutil.rmtree(base)


MIB = 1024 * 1024
PART = 5 * MIB


def resume_config(server: dict[str, Any], root: Path, prefix: str) -> dict[str, Any]:
    return config_dict(
        server,
        {
            "uploads": {
                "bucket": "test-bucket",
                "prefix": prefix,
                "visibility_mode": "none",
                "part_size": PART,
                "concurrency": 1,
            }
        },
        s3={"local_roots": [str(root)]},
    )


async def test_write_file_resume_never_adopts_a_live_chunked_upload(
    seaweedfs: Any, root: Path
) -> None:
    prefix = f"hijack-{secrets.token_hex(4)}/"
    theirs = secrets.token_bytes(2 * PART + 100)
    mine = root / "mine.bin"
    mine.write_bytes(secrets.token_bytes(2 * PART + 7))
    config = resume_config(endpoint_server(seaweedfs), root, prefix)
    async with running_app(config) as (_, address), await RPCClient.connect(address) as rpc:
        upload_id = (await rpc.call("s3.UploadStart", {"pathname": "shared.bin"}))["upload_id"]
        first = PART + 10
        await rpc.call(
            "s3.UploadChunk",
            {
                "upload_id": upload_id,
                "offset": 0,
                "content": base64.b64encode(theirs[:first]).decode(),
            },
        )
        with trio.fail_after(20):
            while (await rpc.call("s3.UploadStatus", {"upload_id": upload_id}))[
                "committed_bytes"
            ] < PART:
                await trio.sleep(0.02)
        written = await rpc.call(
            "s3.WriteFile", {"pathname": "shared.bin", "source_path": str(mine), "resume": True}
        )
        assert written["size"] == mine.stat().st_size
        # The chunked upload's caller goes on as if nothing had happened, and finishes.
        rest = base64.b64encode(theirs[first:]).decode()
        await rpc.call("s3.UploadChunk", {"upload_id": upload_id, "offset": first, "content": rest})
        status = await rpc.call("s3.UploadStatus", {"upload_id": upload_id})
        assert status["committed_bytes"] >= PART
        finished = await rpc.call("s3.UploadFinish", {"upload_id": upload_id, "size": len(theirs)})
        assert finished["size"] == len(theirs)
        read = await rpc.call("s3.Read", {"pathname": "shared.bin"})
        assert base64.b64decode(read["content"]) == theirs
    assert open_uploads(seaweedfs, prefix) == []


async def test_two_resumable_write_files_of_one_pathname_one_wins_one_is_refused(
    seaweedfs: Any, root: Path
) -> None:
    prefix = f"twice-{secrets.token_hex(4)}/"
    data = secrets.token_bytes(4 * PART + 3)
    source = root / "backup.tar"
    source.write_bytes(data)
    call = {"pathname": "backup.tar", "source_path": str(source), "resume": True}
    admin = admin_client(seaweedfs)
    key = prefix + "backup.tar"

    def marked_parts() -> int:
        """Parts of the upload being sent, once its resume marker (part 10,000) is there."""
        uploads = admin.list_multipart_uploads(Bucket="test-bucket", Prefix=key)
        for upload in uploads.get("Uploads", []):
            listed = admin.list_parts(Bucket="test-bucket", Key=key, UploadId=upload["UploadId"])
            numbers = [part["PartNumber"] for part in listed.get("Parts", [])]
            if 10000 in numbers:
                return len(numbers) - 1
        return 0

    host, port = seaweedfs.endpoint.removeprefix("http://").split(":")
    proxy = TCPProxy(host, int(port))
    outcomes: dict[str, Any] = {}
    async with trio.open_nursery() as nursery:
        proxied = endpoint_server(seaweedfs)
        proxied["endpoint"] = f"http://127.0.0.1:{await proxy.start(nursery)}"
        # Two instances of one configuration: one reaches the service through the proxy.
        async with (
            running_app(resume_config(proxied, root, prefix)) as (_, first_address),
            running_app(resume_config(endpoint_server(seaweedfs), root, prefix)) as (
                _,
                second_address,
            ),
            await RPCClient.connect(first_address) as first,
            await RPCClient.connect(second_address) as second,
            await RPCClient.connect(second_address) as third,
        ):

            async def first_write() -> None:
                outcomes["first"] = await first.call("s3.WriteFile", call)

            async def refused(rpc: RPCClient) -> str:
                with pytest.raises(RemoteError) as error:
                    await rpc.call("s3.WriteFile", call)
                return error.value.text

            async with trio.open_nursery() as calls:
                calls.start_soon(first_write)
                with trio.fail_after(20):
                    while await trio.to_thread.run_sync(marked_parts) < 1:
                        await trio.sleep(0.01)
                proxy.held = trio.Event()  # the first instance's transfer is stalled, alive
                # Another instance: the upload's marker says it is running.
                outcomes["second"] = await refused(second)
                proxy.held.set()
                proxy.held = None
            # The same instance, both at once: one goes on, the other is refused.
            async with trio.open_nursery() as calls:

                async def again(name: str, rpc: RPCClient) -> None:
                    try:
                        outcomes[name] = await rpc.call("s3.WriteFile", call)
                    except RemoteError as error:
                        outcomes[name] = error.text

                calls.start_soon(again, "third", second)
                calls.start_soon(again, "fourth", third)
        nursery.cancel_scope.cancel()
    assert outcomes["first"]["size"] == len(data)
    assert outcomes["second"].startswith("INVALID_REQUEST: another WriteFile with resume")
    answers = [outcomes["third"], outcomes["fourth"]]
    assert sum(isinstance(answer, dict) and answer["size"] == len(data) for answer in answers) == 1
    assert sum(isinstance(answer, str) and "in progress" in answer for answer in answers) == 1
    body = admin.get_object(Bucket="test-bucket", Key=key)["Body"].read()
    assert body == data
    assert open_uploads(seaweedfs, prefix) == []
