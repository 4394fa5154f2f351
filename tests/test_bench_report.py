"""The run's plan and report: ListBuckets from one and from every client process, each
paired only with the peer's cell of the same process count, and issue 27's check."""

from __future__ import annotations

from benchmarks.report import RunReport, comparisons, render, target_checks
from benchmarks.results import CellResult
from benchmarks.runner import CellSettings, plan

GO = "peer:go"


def cell(
    workload: str, client: str, ops: float, cores: float, processes: int = 2, size: int = 0
) -> CellResult:
    return CellResult(
        workload=workload, client=client, size=size, connections=16, seconds=3.0,
        operations=int(ops * 3), ops_per_second=ops, p50_ms=1.0, p99_ms=2.0, mean_ms=1.0,
        errors=0, first_error="", server_cores=cores, storage_cores=None, client_cores=1.0,
        other_cores=0.0, kernel_cores=0.0, server_rss_mib=40.0, client_processes=processes,
    )  # fmt: skip


def report(cells: list[CellResult]) -> RunReport:
    return RunReport("run", [], "now", {}, {}, {}, cells=cells)


def test_listbuckets_runs_from_every_client_process_and_from_one_alone() -> None:
    settings = CellSettings([16], [4096], ["rpc", GO], 0.1, 1.0, 4, client_processes=2)
    listbuckets = [(c.client, c.processes) for c in plan(settings) if c.workload == "listbuckets"]
    assert listbuckets == [("rpc", 0), (GO, 0), ("rpc", 1), (GO, 1)]
    names = {c.name for c in plan(settings)}
    assert {"listbuckets@16", "listbuckets@16/1", "read:4KiB@16"} <= names
    alone = CellSettings([16], [4096], ["rpc", GO], 0.1, 1.0, 4, client_processes=1)
    assert [c.processes for c in plan(alone) if c.workload == "listbuckets"] == [0, 0]


def test_each_process_count_is_compared_with_the_peers_cell_of_that_count() -> None:
    cells = [
        cell("listbuckets", "rpc", 30_000, 0.45),
        cell("listbuckets", GO, 25_000, 0.60),
        cell("listbuckets", "rpc", 20_000, 0.40, processes=1),
        cell("listbuckets", GO, 22_000, 0.33, processes=1),
    ]
    rows = {row["client_processes"]: row for row in comparisons(cells, [])}
    assert rows[2]["ratio"] == 1.2
    assert round(rows[1]["ratio"], 3) == round(20_000 / 22_000, 3)
    assert round(rows[1]["ours_us_per_op"], 1) == 20.0
    assert round(rows[1]["theirs_us_per_op"], 1) == 15.0
    text = render(report(cells))
    assert "its us/call" in text and "cli procs" in text


def test_issue_27_fails_a_faster_cell_that_spends_more_cpu_per_op() -> None:
    cells = [
        cell("listbuckets", "rpc", 30_000, 0.45),
        cell("listbuckets", GO, 25_000, 0.60),
        cell("listbuckets", "rpc", 23_000, 0.46, processes=1),  # 20 us
        cell("listbuckets", GO, 22_000, 0.33, processes=1),  # 15 us
        cell("read", "rpc", 3_000, 0.50, size=4096),
        cell("read", GO, 3_100, 0.75, size=4096),
    ]
    checks = {c.target: c.met for c in target_checks(report(cells)) if "issue 27" in c.target}
    assert checks == {
        "issue 27: ListBuckets x16 2 client processes >= 1.0x go at <= its CPU/op": True,
        "issue 27: ListBuckets x16 1 client process >= 1.0x go at <= its CPU/op": False,
        "issue 27: Read 4KiB x16 >= 1.0x go at <= its CPU/op": False,
    }
