"""The Grafana dashboard: importable, in sync with its generator, and querying real metrics."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from trio_s3rpc.metrics import Metrics

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "examples" / "grafana" / "trio-s3rpc-dashboard.json"
METRIC_NAME = re.compile(r"\b((?:rr_s3|trio_s3rpc)_[a-z_]+)")
# Queries of the RoadRunner S3 plugin's metrics.md, verbatim.
GO_GUIDE_QUERIES = [
    "sum(rate(rr_s3_operations_total[5m]))",
    "sum by (operation) (rate(rr_s3_operations_total[5m]))",
    "sum by (bucket) (rate(rr_s3_operations_total[5m]))",
    'sum(rate(rr_s3_operations_total{status="success"}[5m])) / '
    "sum(rate(rr_s3_operations_total[5m])) * 100",
    "sum(rate(rr_s3_errors_total[5m]))",
    "sum by (error_type) (rate(rr_s3_errors_total[5m]))",
    "topk(10, sum by (bucket) (rate(rr_s3_errors_total[5m])))",
    "sum by (bucket, error_type) (rate(rr_s3_errors_total[5m]))",
    'sum by (bucket) (rate(rr_s3_operations_total{status="error"}[5m])) / '
    "sum by (bucket) (rate(rr_s3_operations_total[5m])) * 100",
]


def load() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return document


def exported_names() -> set[str]:
    """Every sample name a server's /metrics can carry."""
    metrics = Metrics()
    names = set()
    for family in text_string_to_metric_families(metrics.render().decode()):
        names.add(family.name)
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_count", "_sum"]}
        for suffix in suffixes.get(family.type, []):
            names.add(family.name + suffix)
    names.add("trio_s3rpc_worker_restarts_total")  # served by a supervisor of workers
    return names


def test_the_dashboard_is_what_its_generator_writes() -> None:
    spec = importlib.util.spec_from_file_location(
        "build_dashboard", ROOT / "examples" / "grafana" / "build_dashboard.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.dashboard() == load()


def test_the_dashboard_is_importable_and_laid_out() -> None:
    document = load()
    assert [i["name"] for i in document["__inputs"]] == ["DS_PROMETHEUS"]
    panels = document["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24
        area = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"])
                for y in range(grid["y"], grid["y"] + grid["h"])}  # fmt: skip
        assert not area & cells, f"{panel['title']} overlaps another panel"
        cells |= area
        if panel["type"] != "row":
            assert panel["targets"] and all(t["expr"] for t in panel["targets"])
            assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}"


def test_every_query_names_metrics_the_server_exports() -> None:
    exported = exported_names()
    expressions = [t["expr"] for p in load()["panels"] for t in p.get("targets", [])]
    used = {name for expr in expressions for name in METRIC_NAME.findall(expr)}
    assert used <= exported, used - exported
    # Every metric of ours has a panel.
    ours = {n.removesuffix("_bucket") for n in used if n.startswith("trio_s3rpc_")}
    families = {n for n in exported if n.startswith("trio_s3rpc_") and not n.endswith(
        ("_count", "_sum", "_bucket"))}  # fmt: skip
    assert {f.removesuffix("_total") for f in families} <= {u.removesuffix("_total") for u in ours}


def test_the_go_plugin_guides_queries_are_there_verbatim() -> None:
    expressions = {t["expr"] for p in load()["panels"] for t in p.get("targets", [])}
    for query in GO_GUIDE_QUERIES:
        assert query in expressions, query
