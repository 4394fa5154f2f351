"""The RPC server's settings: listen, relay and peer addresses, how they clash, and
the exposure warning."""

from __future__ import annotations

import grp
import ipaddress
import os
import pwd
import re
from collections.abc import Callable, Mapping
from typing import Any

from trio_s3rpc.config.expansion import expand_vars
from trio_s3rpc.config.model import (
    _RELAY_ENTRY,
    DEFAULT_LISTEN,
    DEFAULT_RELAY_SERVICES,
    MAX_FRAME_SIZE,
    MIN_FRAME_SIZE,
    MIN_MEMORY_LIMIT,
    RELAY_EVERYTHING,
    ConfigError,
    IPNetwork,
    ListenAddress,
    RelaySettings,
    RPCSettings,
    default,
)
from trio_s3rpc.config.scalars import (
    _Context,
    _format_size,
    _parse_tcp,
    _Section,
    _show,
    parse_listen,
)

# This server's own settings, once under rpc, now under s3 (rpc is RoadRunner's).
MOVED_KEYS = ("socket_mode", "max_frame_size", "max_in_flight")


def _parse_rpc(rpc: _Section, s3: _Section, workers_rpc: str) -> RPCSettings:
    """The RPC server's settings: ``s3.listen`` and friends, falling back to ``rpc.*``."""
    listen, listen_key, roadrunner = _listen(rpc, s3)
    mode_section = _own_setting(rpc, s3, "socket_mode")
    frame_section = _own_setting(rpc, s3, "max_frame_size")
    settings = RPCSettings(
        listen=listen,
        socket_mode=_file_mode(
            mode_section.get("socket_mode"),
            mode_section.where("socket_mode"),
            default(RPCSettings, "socket_mode"),
        ),
        max_frame_size=frame_section.size(
            "max_frame_size", default(RPCSettings, "max_frame_size"), MIN_FRAME_SIZE, MAX_FRAME_SIZE
        ),
        max_in_flight=_own_setting(rpc, s3, "max_in_flight").integer(
            "max_in_flight", default(RPCSettings, "max_in_flight"), minimum=1
        ),
        socket_owner=_socket_owner(s3, "socket_owner", pwd.getpwnam, "user"),
        socket_group=_socket_owner(s3, "socket_group", grp.getgrnam, "group"),
        allow_from=_allow_from(s3, listen),
        relay=_relay(s3, listen, listen_key, roadrunner),
        **_connection_limits(s3),
        listen_key=listen_key,
        roadrunner_listen=roadrunner,
        workers_rpc=workers_rpc,
    )
    _check_workers_rpc(settings, s3.context)
    return settings


def _connection_limits(s3: _Section) -> dict[str, Any]:
    """``s3.memory_limit`` and the other bounds on what connections may hold and take."""
    memory_limit = s3.size("memory_limit", default(RPCSettings, "memory_limit"), 0, 2**62)
    if 0 < memory_limit < MIN_MEMORY_LIMIT:
        raise ConfigError(
            f"s3.memory_limit: must be at least {_format_size(MIN_MEMORY_LIMIT)}, "
            f"got {_format_size(memory_limit)}"
        )
    connection_memory = s3.size(
        "connection_memory", default(RPCSettings, "connection_memory"), 0, 2**62
    )
    if memory_limit and connection_memory > memory_limit:
        raise ConfigError(
            f"s3.connection_memory: {_format_size(connection_memory)} is more than "
            f"s3.memory_limit ({_format_size(memory_limit)})"
        )
    return {
        "memory_limit": memory_limit,
        "connection_memory": connection_memory,
        "max_connections": s3.integer(
            "max_connections", default(RPCSettings, "max_connections"), minimum=1, maximum=1_000_000
        ),
        "frame_timeout": s3.duration(
            "frame_timeout", default(RPCSettings, "frame_timeout"), positive=True
        ),
        "idle_timeout": s3.duration("idle_timeout", default(RPCSettings, "idle_timeout")),
    }


def _address(section: _Section, key: str, default: str = "") -> ListenAddress | None:
    text = section.text(key, default)
    if not text:
        return None
    try:
        return parse_listen(text)
    except ConfigError as exc:
        raise ConfigError(f"{section.where(key)}: {exc.message}") from None


def _listen(rpc: _Section, s3: _Section) -> tuple[ListenAddress, str, ListenAddress | None]:
    """This server's address, the key it came from, and RoadRunner's (when both are set)."""
    own = _address(s3, "listen")
    if own is None:
        # Standalone: rpc.listen is ours, as before s3.listen existed.
        listen = _address(rpc, "listen", DEFAULT_LISTEN)
        assert listen is not None
        return listen, "rpc.listen", None
    roadrunner = _address(rpc, "listen")
    if roadrunner is not None and same_address(own, roadrunner):
        raise ConfigError(
            f"s3.listen: {own} clashes with rpc.listen ({roadrunner}), RoadRunner's own RPC "
            "address; give this server an address of its own, e.g. tcp://127.0.0.1:6002"
        )
    return own, "s3.listen", roadrunner


def _own_setting(rpc: _Section, s3: _Section, key: str) -> _Section:
    """The section to read ``key`` from: s3, or rpc (the old place) with a warning."""
    in_s3, in_rpc = s3.get(key) is not None, rpc.get(key) is not None
    if in_rpc and in_s3:
        s3.context.warnings.append(f"rpc.{key} is ignored: s3.{key} is set and takes precedence")
    elif in_rpc:
        s3.context.warnings.append(
            f"rpc.{key}: read for compatibility; move it to s3.{key}, where RoadRunner's rpc "
            "section cannot clash with it"
        )
        return rpc
    return s3


def _socket_owner(section: _Section, key: str, lookup: Callable[[str], Any], what: str) -> int:
    """A user or group for the unix socket file, by name or number; -1 when unset."""
    value = section.get(key)
    if value is None:
        return -1
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    if not isinstance(value, str):
        raise ConfigError(f"{section.where(key)}: must be a {what} name or id, got {_show(value)}")
    try:
        entry = lookup(value.strip())
    except KeyError:
        raise ConfigError(f"{section.where(key)}: no {what} named {value.strip()!r}") from None
    number: int = entry[2]  # pw_uid / gr_gid
    return number


def _allow_from(section: _Section, listen: ListenAddress) -> tuple[IPNetwork, ...]:
    where = section.where("allow_from")
    value = section.get("allow_from")
    if value is None:
        return ()
    ranges = [value] if isinstance(value, str) else value
    if not isinstance(ranges, list) or not all(isinstance(item, str) for item in ranges):
        raise ConfigError(f'{where}: must be a list of CIDR ranges such as ["10.0.0.0/8"]')
    networks: list[IPNetwork] = []
    for index, text in enumerate(ranges):
        try:
            network = ipaddress.ip_network(text.strip(), strict=False)
        except ValueError:
            raise ConfigError(
                f"{where}[{index}]: {_show(text)} is not a CIDR range such as 10.0.0.0/8, "
                "192.168.1.7 or fd00::/8"
            ) from None
        networks.append(_unmapped(network, text.strip(), f"{where}[{index}]", section.context))
    if listen.scheme == "unix":
        section.context.warnings.append(
            f"{where}: has no effect on a unix socket; its file mode, owner and group "
            "(s3.socket_mode, s3.socket_owner, s3.socket_group) say who may connect"
        )
    return tuple(networks)


_IPV4_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")


def _unmapped(network: IPNetwork, text: str, where: str, context: _Context) -> IPNetwork:
    """An IPv4-mapped IPv6 range (``::ffff:127.0.0.1/128``) as the IPv4 range it means.

    IPv6 listening sockets are IPv6-only here, so an IPv4 peer always arrives
    as an IPv4 address: the mapped form would never match anyone.
    """
    if not isinstance(network, ipaddress.IPv6Network) or not network.subnet_of(_IPV4_MAPPED):
        if isinstance(network, ipaddress.IPv6Network) and network.overlaps(_IPV4_MAPPED):
            context.warnings.append(
                f"{where}: {text} covers IPv4-mapped addresses (::ffff:0:0/96), which "
                "never match: IPv4 peers arrive as IPv4; add the IPv4 range too"
            )
        return network
    mapped = network.network_address.ipv4_mapped
    assert mapped is not None
    normalised = ipaddress.IPv4Network((mapped, network.prefixlen - 96))
    context.warnings.append(
        f"{where}: {text} is an IPv4-mapped IPv6 range, which never matches (IPv4 peers "
        f"arrive as IPv4); read as {normalised}"
    )
    return normalised


def _relay(
    section: _Section,
    listen: ListenAddress,
    listen_key: str,
    roadrunner: ListenAddress | None,
) -> RelaySettings | None:
    timeout = section.duration("relay_timeout", default(RelaySettings, "timeout"), positive=True)
    connections = section.integer(
        "relay_connections", default(RelaySettings, "connections"), minimum=1, maximum=64
    )
    services = _relay_services(section)
    address = _address(section, "relay")
    if address is None:
        if section.get("relay_services") is not None:
            section.context.warnings.append(
                f"{section.where('relay_services')}: has no effect without s3.relay"
            )
        return None
    if same_address(address, listen):
        hint = "" if listen_key == "s3.listen" else "; set s3.listen to this server's own address"
        raise ConfigError(
            f"s3.relay: {address} is this server's own address ({listen_key}): relayed calls "
            f"would come back here{hint}"
        )
    if roadrunner is not None and not same_address(address, roadrunner):
        section.context.warnings.append(
            f"s3.relay: {address} is not rpc.listen ({roadrunner}): calls to RoadRunner's "
            "services will go to another RoadRunner than this file's"
        )
    return RelaySettings(address, timeout, connections, services)


def _relay_services(section: _Section) -> tuple[str, ...]:
    """``s3.relay_services``: RoadRunner services or ``service.Method`` names, or "*"."""
    where = section.where("relay_services")
    value = section.get("relay_services")
    if value is None:
        return DEFAULT_RELAY_SERVICES
    entries = [value] if isinstance(value, str) else value
    if not isinstance(entries, list) or not all(isinstance(item, str) for item in entries):
        raise ConfigError(
            f'{where}: must be a list of RoadRunner services or methods such as ["kv", '
            f'"informer.Workers"], or "{RELAY_EVERYTHING}" for all'
        )
    services: list[str] = []
    for index, entry in enumerate(item.strip() for item in entries):
        if entry == RELAY_EVERYTHING:
            services.append(entry)
            continue
        if entry.split(".")[0] == "s3":
            raise ConfigError(f"{where}[{index}]: 's3' is served here, never relayed")
        if not _RELAY_ENTRY.fullmatch(entry):
            raise ConfigError(
                f"{where}[{index}]: {_show(entry)} is not a service (kv) or a method "
                "(informer.Workers)"
            )
        services.append(entry)
    return tuple(sorted(set(services)))


def _workers_rpc(data: Mapping[str, Any], context: _Context) -> str:
    """``server.env.RR_RPC``, expanded; RoadRunner uppercases env keys, so any case counts."""
    server = data.get("server")
    env = server.get("env") if isinstance(server, Mapping) else None
    # server.env is a mapping, or a list of one-key mappings.
    items = [env] if isinstance(env, Mapping) else env if isinstance(env, list) else []
    found = ""
    for item in items:
        if not isinstance(item, Mapping):
            continue
        for key, value in item.items():
            if str(key).upper() == "RR_RPC" and isinstance(value, str):
                found = expand_vars(value, context.env)
    return found.strip()


def _check_workers_rpc(settings: RPCSettings, context: _Context) -> None:
    """Warn when the PHP workers' RR_RPC and this server's addresses disagree."""
    if not settings.workers_rpc:
        return
    where = "server.env.RR_RPC"
    try:
        workers = parse_listen(settings.workers_rpc)
    except ConfigError as exc:
        context.warnings.append(f"{where}: {exc.message}")
        return
    ours = same_address(workers, settings.listen)
    if ours and settings.relay is None:
        context.warnings.append(
            f"{where} points PHP workers at this server ({settings.listen}) but s3.relay is "
            "not set: their calls to RoadRunner's own services (informer, jobs, kv, ...) "
            "will answer METHOD_NOT_FOUND"
        )
    elif not ours and settings.relay is not None:
        context.warnings.append(
            f"{where} is {workers}, not this server ({settings.listen}): PHP workers "
            "will not reach s3.* through the relay"
        )


_WILDCARD_HOSTS = ("", "0.0.0.0", "::")
_LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


def same_address(first: ListenAddress, second: ListenAddress) -> bool:
    """True when two addresses would collide: one cannot listen where the other does."""
    if first.scheme != second.scheme:
        return False
    if first.scheme == "unix":
        return os.path.abspath(first.path) == os.path.abspath(second.path)
    if first.port != second.port or first.port == 0:
        return False
    hosts = {first.host.lower(), second.host.lower()}
    return len(hosts) == 1 or bool(hosts & set(_WILDCARD_HOSTS)) or hosts <= set(_LOOPBACK_NAMES)


def is_loopback(address: ListenAddress) -> bool:
    """True for unix sockets and tcp addresses reachable only from this machine."""
    if address.scheme == "unix":
        return True
    host = address.host.lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # all interfaces (""), or a name that may resolve anywhere


def exposure_warning(settings: RPCSettings, address: ListenAddress | None = None) -> str:
    """The risk of a listen address beyond loopback, or "" for loopback and unix sockets."""
    address = address or settings.listen
    if is_loopback(address):
        return ""
    allowed = ", ".join(str(network) for network in settings.allow_from)
    who = f"peers in s3.allow_from ({allowed})" if allowed else "anyone who can reach it"
    return (
        f"{address} is reachable beyond this machine, and Goridge RPC has no "
        f"authentication: {who} can call every s3.* method with this server's storage "
        f"credentials (read, overwrite and delete objects){_relay_exposure(settings)}. "
        "Listen on 127.0.0.1 or a unix socket, or restrict s3.allow_from to the "
        "application's hosts"
    )


def _relay_exposure(settings: RPCSettings) -> str:
    """What an exposed listen address also hands out through the relay ("" without one)."""
    relay = settings.relay
    if relay is None:
        return ""
    roadrunner = settings.roadrunner_listen or relay.address
    wider = "s3.listen is wider than rpc.listen" if is_loopback(roadrunner) else "and"
    what = (
        "every service, including service.Create, which starts any command"
        if RELAY_EVERYTHING in relay.services
        else ", ".join(relay.services)
    )
    return (
        f"; {wider} ({roadrunner}): through s3.relay it hands them RoadRunner's RPC at "
        f"{relay.address} for {what} (s3.relay_services)"
    )


def _file_mode(value: Any, where: str, default: int) -> int:
    """A file mode: an int (YAML reads 0660 as octal) or an octal string like "0660"."""
    if value is None:
        return default
    if isinstance(value, str) and re.fullmatch(r"(0o?)?[0-7]{1,4}", value.strip()):
        mode = int(value.strip().removeprefix("0o"), 8)
    elif isinstance(value, int) and not isinstance(value, bool):
        mode = value
    else:
        raise ConfigError(f'{where}: must be an octal file mode such as "0660", got {_show(value)}')
    if not 0 <= mode <= 0o777:
        raise ConfigError(
            f"{where}: must be a file mode between 0000 and 0777, got {_show(value)}; "
            'write it as an octal string such as "0660"'
        )
    return mode


def _http_address(section: _Section, key: str) -> ListenAddress | None:
    """``host:port`` (as RoadRunner's metrics.address), or None when unset."""
    text = section.text(key)
    if not text:
        return None
    try:
        return parse_http_address(text)
    except ConfigError as exc:
        raise ConfigError(f"{section.where(key)}: {exc.message}") from None


def parse_http_address(text: str) -> ListenAddress:
    """``host:port`` or ``[v6]:port`` of an HTTP endpoint; ``tcp://`` may precede it."""
    hostport = text.strip().removeprefix("tcp://")
    try:
        if "://" in hostport or ":" not in hostport:
            raise ConfigError("no host:port")
        return _parse_tcp(hostport, text)
    except ConfigError:
        raise ConfigError(
            f"invalid address {_show(text)}: use host:port with a port 0-65535, such as "
            "127.0.0.1:2112 (IPv6 hosts in brackets: [::1]:2112)"
        ) from None
