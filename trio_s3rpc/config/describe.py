"""A human summary of a config, secrets masked."""

from __future__ import annotations

import grp
import pwd
from collections.abc import Callable
from typing import Any

from trio_s3rpc.config.buckets import describe_bucket
from trio_s3rpc.config.model import (
    MASK,
    Config,
    RegisterScope,
    RPCSettings,
    ServerConfig,
)
from trio_s3rpc.config.scalars import _format_duration, _format_size


def describe(config: Config) -> str:
    """A human summary of what the config serves; secrets masked, the key shown in part."""
    rpc, s3 = config.rpc, config.s3
    lines = [
        *_describe_rpc(rpc),
        f"shutdown_timeout: {_format_duration(s3.shutdown_timeout)}",
        f"upload_idle_timeout: {_format_duration(s3.upload_idle_timeout)}",
        f"abort_stale_after: {_format_duration(s3.abort_stale_after)}",
        f"workers: {s3.workers}",
        f"local_roots: {', '.join(s3.local_roots) or '(none: local file transfers disabled)'}",
        f"  local_files: {s3.local_files}",
        f"  local_file_mode: {s3.local_file_mode:04o}",
        f"register_buckets: {_describe_scopes(s3.register_scopes)}",
        "servers:",
    ]
    for server in s3.servers.values():
        lines += _describe_server(server)
    lines.append(f"buckets (default: {s3.default}):")
    for bucket in s3.buckets.values():
        lines += describe_bucket(bucket)
    return "\n".join(lines)


def _describe_scopes(scopes: tuple[RegisterScope, ...] | None) -> str:
    if scopes is None:
        return "on (s3.RegisterBucket may name any prefix of any configured server's bucket)"
    if not scopes:
        return "off (s3.RegisterBucket is refused)"
    return ", ".join(map(str, scopes))


def _describe_rpc(rpc: RPCSettings) -> list[str]:
    lines = [f"listen: {rpc.listen} ({rpc.listen_key})"]
    if rpc.listen.scheme == "unix":
        lines.append(f"  socket_mode: {rpc.socket_mode:04o}")
        lines.append(f"  socket_owner: {_id_name(rpc.socket_owner, pwd.getpwuid)}")
        lines.append(f"  socket_group: {_id_name(rpc.socket_group, grp.getgrgid)}")
    else:
        allowed = ", ".join(str(network) for network in rpc.allow_from)
        lines.append(f"  allow_from: {allowed or '(any peer)'}")
    lines += [
        f"  max_frame_size: {_format_size(rpc.max_frame_size)}",
        f"  max_in_flight: {rpc.max_in_flight}",
        "  memory_limit: "
        + (_format_size(rpc.memory_limit) if rpc.memory_limit else "(a quarter of the memory)"),
        "  connection_memory: "
        + (
            _format_size(rpc.connection_memory)
            if rpc.connection_memory
            else "(a quarter of memory_limit)"
        ),
        f"  max_connections: {rpc.max_connections}",
        f"  frame_timeout: {_format_duration(rpc.frame_timeout)}",
        f"  idle_timeout: {_format_duration(rpc.idle_timeout) if rpc.idle_timeout else 'off'}",
    ]
    relay = rpc.relay
    if relay is None:
        lines.append("relay: (none: calls to services other than s3 answer METHOD_NOT_FOUND)")
    else:
        lines += [
            f"relay: {relay.address} (s3.relay: calls to services other than s3 go there)",
            f"  relay_timeout: {_format_duration(relay.timeout)}",
            f"  relay_connections: {relay.connections}",
            f"  relay_services: {', '.join(relay.services)}",
        ]
    if rpc.roadrunner_listen is not None:
        lines.append(
            f"RoadRunner rpc.listen: {rpc.roadrunner_listen} (RoadRunner's own; no clash with "
            f"s3.listen {rpc.listen})"
        )
    if rpc.workers_rpc:
        ours = rpc.workers_rpc == str(rpc.listen)
        lines.append(
            f"PHP workers' RR_RPC (server.env): {rpc.workers_rpc}"
            + (" (this server)" if ours else "")
        )
    return lines


def _id_name(number: int, lookup: Callable[[int], Any]) -> str:
    if number < 0:
        return "(unchanged: the server's user and group)"
    try:
        return f"{lookup(number)[0]} ({number})"
    except KeyError:
        return str(number)


def _describe_server(server: ServerConfig) -> list[str]:
    credentials = server.credentials
    return [
        f"  {server.name}:",
        f"    endpoint: {server.endpoint or '(AWS)'}",
        f"    region: {server.region}",
        f"    url style: {'path' if server.path_style else 'virtual-hosted'}",
        f"    checksums: {server.checksums}",
        f"    credentials: key {mask_key(credentials.key)}, secret {MASK}, "
        f"token {MASK if credentials.token else '(none)'}",
    ]


def mask_key(key: str) -> str:
    """An access key with only its first four characters shown (``AKIA****``)."""
    return key[:4] + MASK if len(key) >= 8 else MASK
