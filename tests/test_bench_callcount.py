"""What benchmarks/callcount.py reads from callgrind and strace: per call, per function."""

from __future__ import annotations

from pathlib import Path

from benchmarks.callcount import differences, own_instructions, system_calls, total_instructions

# A first dump after start: "summary" is the span since the zero, "totals" also the start.
DUMP = """\
# callgrind format
version: 1
positions: line
events: Ir
summary: 1000

ob=(1) /lib/libpython3.11.so
fl=(1) ceval.c
fn=(1) _PyEval_EvalFrameDefault
0 600
cfl=(2) obmalloc.c
cfn=(2) _PyObject_Malloc
calls=3 0
0 150
fn=(3) _PyEval_EvalFrameDefault'2
0 100
fl=(2)
fn=(2)
0 150
fn=(4) malloc
0 1200

totals: 2050
"""

STRACE = """\
% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ----------------
 60.00    0.000600           1       600           epoll_wait
 30.00    0.000300           1       300       100 recvfrom
 10.00    0.000100           1       100           sendto
------ ----------- ----------- --------- --------- ----------------
100.00    0.001000           1      1000       100 total
"""


def test_own_instructions_leave_out_callees_and_merge_recursion_levels(tmp_path: Path) -> None:
    dump = tmp_path / "server.callgrind.1"
    dump.write_text(DUMP)
    assert own_instructions(dump) == {
        "_PyEval_EvalFrameDefault": 700,
        "_PyObject_Malloc": 150,
        "malloc": 1200,
    }
    assert total_instructions(dump) == 1000


def test_system_calls_by_name_with_their_failures_apart(tmp_path: Path) -> None:
    table = tmp_path / "server.strace"
    table.write_text(STRACE)
    assert system_calls(table) == {
        "epoll_wait": 600,
        "recvfrom": 300,
        "recvfrom!": 100,
        "sendto": 100,
    }


def test_differences_per_call_largest_first_and_equal_ones_left_out() -> None:
    before = {"a": 100, "b": 50, "c": 10, "e": 30}
    after = {"a": 110, "b": 250, "d": 20, "e": 30}
    rows = differences(before, after, 10, 5)
    assert rows == [("b", 5.0, 25.0), ("d", 0.0, 2.0), ("a", 10.0, 11.0), ("c", 1.0, 0.0)]
