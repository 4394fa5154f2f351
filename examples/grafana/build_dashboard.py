"""Writes trio-s3rpc-dashboard.json: python examples/grafana/build_dashboard.py

The first rows are the panels of the RoadRunner S3 plugin's metrics.md guide,
with its queries verbatim (they run unchanged on this server's metrics); the
rows after them are trio-s3rpc's own metrics. Import the JSON in Grafana
(Dashboards -> New -> Import) and pick a Prometheus data source.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DATASOURCE = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
OPS = "ops"
ERRORS = "short"

_ids = iter(range(1, 1000))
_y = 0


def target(expr: str, legend: str = "", ref: str = "A", instant: bool = False) -> dict[str, Any]:
    found: dict[str, Any] = {
        "datasource": DATASOURCE,
        "expr": expr,
        "legendFormat": legend,
        "refId": ref,
        "interval": "15s",
    }
    if instant:
        found.update({"instant": True, "format": "table"})
    return found


def panel(
    title: str,
    targets: list[dict[str, Any]],
    *,
    kind: str = "timeseries",
    unit: str = OPS,
    width: int = 12,
    height: int = 8,
    x: int = 0,
    description: str = "",
    thresholds: list[tuple[str, float | None]] | None = None,
    stack: bool = False,
) -> dict[str, Any]:
    steps = [{"color": color, "value": value} for color, value in (thresholds or [])]
    defaults: dict[str, Any] = {"unit": unit}
    if steps:
        defaults["thresholds"] = {"mode": "absolute", "steps": steps}
    if stack:
        defaults["custom"] = {"stacking": {"mode": "normal"}, "fillOpacity": 30}
    return {
        "id": next(_ids),
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "gridPos": {"x": x, "y": _y, "w": width, "h": height},
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {},
        "targets": targets,
    }


def row(title: str, panels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A row header and its panels laid out left to right, wrapping at 24 columns."""
    global _y
    header = {
        "id": next(_ids),
        "type": "row",
        "title": title,
        "collapsed": False,
        "gridPos": {"x": 0, "y": _y, "w": 24, "h": 1},
        "panels": [],
    }
    _y += 1
    x, line_height = 0, 0
    for item in panels:
        grid = item["gridPos"]
        if x + grid["w"] > 24:
            _y += line_height
            x, line_height = 0, 0
        grid.update({"x": x, "y": _y})
        x += grid["w"]
        line_height = max(line_height, grid["h"])
    _y += line_height
    return [header, *panels]


SUCCESS = "sum(rate(rr_s3_operations_total{status=\"success\"}[5m])) / sum(rate(rr_s3_operations_total[5m])) * 100"  # noqa: E501
ERROR_PCT_BY_BUCKET = "sum by (bucket) (rate(rr_s3_operations_total{status=\"error\"}[5m])) / sum by (bucket) (rate(rr_s3_operations_total[5m])) * 100"  # noqa: E501
GREEN_HIGH = [("red", None), ("yellow", 95), ("green", 99)]
GREEN_LOW = [("green", None), ("yellow", 1), ("red", 5)]


def success_rate(operation: str, ref: str) -> dict[str, Any]:
    return target(
        f'sum(rate(rr_s3_operations_total{{operation="{operation}",status="success"}}[5m])) / '
        f'sum(rate(rr_s3_operations_total{{operation="{operation}"}}[5m])) * 100',
        operation.capitalize(),
        ref,
        instant=True,
    )


def quantile(q: str, by: str) -> str:
    return (
        f"histogram_quantile({q}, sum by ({by}, le) "
        "(rate(trio_s3rpc_call_duration_seconds_bucket[5m])))"
    )


def dashboard() -> dict[str, Any]:
    panels: list[dict[str, Any]] = []
    # -- the Go plugin's guide, section 7 "Dashboard Layout Recommendations" --------
    panels += row(
        "Key metrics (RoadRunner S3 plugin guide)",
        [
            panel("Total Operations/sec", [target("sum(rate(rr_s3_operations_total[5m]))",
                  "Total OPS")], kind="stat", width=6),  # fmt: skip
            panel("Success Rate %", [target(SUCCESS, "Success Rate")], kind="gauge",
                  unit="percent", width=6, thresholds=GREEN_HIGH),  # fmt: skip
            panel("Total Errors/sec", [target("sum(rate(rr_s3_errors_total[5m]))", "Errors/sec")],
                  kind="stat", unit=ERRORS, width=6,
                  thresholds=[("green", None), ("red", 0.001)]),  # fmt: skip
            panel("Active Buckets", [target("count(sum by (bucket) "
                  "(rate(rr_s3_operations_total[5m])) > 0)", "Buckets")], kind="stat",
                  unit="short", width=6),  # fmt: skip
        ],
    )
    panels += row(
        "Operations",
        [
            panel("Operations by Type", [target(
                "sum by (operation) (rate(rr_s3_operations_total[5m]))", "{{operation}}")],
                stack=True),  # fmt: skip
            panel("Operations by Bucket", [target(
                "sum by (bucket) (rate(rr_s3_operations_total[5m]))", "{{bucket}}")]),  # fmt: skip
            panel("Success vs Error Rate", [
                target('sum(rate(rr_s3_operations_total{status="success"}[5m]))', "Success"),
                target('sum(rate(rr_s3_operations_total{status="error"}[5m]))', "Error", "B"),
            ], stack=True),  # fmt: skip
            panel("Operation Success Rate by Type", [success_rate(op, ref) for op, ref in
                  (("write", "A"), ("read", "B"), ("delete", "C"), ("list", "D"))],
                  kind="table", unit="percent"),  # fmt: skip
        ],
    )
    panels += row(
        "Errors",
        [
            panel("Errors by Type", [target(
                "sum by (error_type) (rate(rr_s3_errors_total[5m]))", "{{error_type}}")],
                unit=ERRORS, stack=True),  # fmt: skip
            panel("Most Error-Prone Buckets", [target(
                "topk(10, sum by (bucket) (rate(rr_s3_errors_total[5m])))", "{{bucket}}")],
                kind="bargauge", unit=ERRORS),  # fmt: skip
            panel("Error Rate %", [target(
                'sum(rate(rr_s3_operations_total{status="error"}[5m])) / '
                "sum(rate(rr_s3_operations_total[5m])) * 100", "Error Rate")],
                kind="gauge", unit="percent", thresholds=GREEN_LOW, width=8),  # fmt: skip
            panel("Error Heatmap (Bucket vs Error Type)", [target(
                "sum by (bucket, error_type) (rate(rr_s3_errors_total[5m]))",
                "{{bucket}} {{error_type}}")], unit=ERRORS, width=16),  # fmt: skip
        ],
    )
    panels += row(
        "Buckets",
        [
            panel("Bucket Performance Table", [
                target("sum by (bucket) (rate(rr_s3_operations_total[5m]))", "Total OPS", "A",
                       instant=True),
                target('sum by (bucket) (rate(rr_s3_operations_total{operation="write"}[5m]))',
                       "Write OPS", "B", instant=True),
                target('sum by (bucket) (rate(rr_s3_operations_total{operation="read"}[5m]))',
                       "Read OPS", "C", instant=True),
                target(ERROR_PCT_BY_BUCKET, "Error Rate %", "D", instant=True),
            ], kind="table", width=16),  # fmt: skip
            panel("Read/Write Ratio by Bucket", [target(
                'sum by (bucket) (rate(rr_s3_operations_total{operation="read"}[5m])) / '
                'sum by (bucket) (rate(rr_s3_operations_total{operation="write"}[5m]))',
                "{{bucket}}")], kind="bargauge", unit="short", width=8),  # fmt: skip
        ],
    )
    # -- trio-s3rpc's own ---------------------------------------------------------
    panels += row(
        "Latency (trio-s3rpc)",
        [
            panel("p99 latency by bucket", [target(quantile("0.99", "bucket"), "{{bucket}}")],
                  unit="s", width=8),  # fmt: skip
            panel("p99 latency by method", [target(quantile("0.99", "method"), "{{method}}")],
                  unit="s", width=8),  # fmt: skip
            panel("p50 latency by method", [target(quantile("0.5", "method"), "{{method}}")],
                  unit="s", width=8),  # fmt: skip
            panel("Error ratio by bucket", [target(
                'sum by (bucket) (rate(rr_s3_operations_total{status="error"}[5m])) / '
                "sum by (bucket) (rate(rr_s3_operations_total[5m]))", "{{bucket}}")],
                unit="percentunit"),  # fmt: skip
            panel("Bytes per second by bucket", [
                target("sum by (bucket) (rate(trio_s3rpc_bytes_written_total[5m]))",
                       "written {{bucket}}"),
                target("sum by (bucket) (rate(trio_s3rpc_bytes_read_total[5m]))",
                       "read {{bucket}}", "B"),
            ], unit="Bps"),  # fmt: skip
        ],
    )
    panels += row(
        "Buckets and storage requests (trio-s3rpc)",
        [
            panel("Limiter use: in flight / max_concurrent_operations", [target(
                "sum by (bucket) (trio_s3rpc_bucket_operations_in_flight) / "
                "sum by (bucket) (trio_s3rpc_bucket_max_concurrent_operations)", "{{bucket}}")],
                unit="percentunit", width=8),  # fmt: skip
            panel("Requests waiting for a slot", [target(
                "sum by (bucket) (trio_s3rpc_bucket_operations_waiting)", "{{bucket}}")],
                unit="short", width=8),  # fmt: skip
            panel("Buckets ready", [target("min by (bucket) (trio_s3rpc_bucket_ready)",
                  "{{bucket}}")], kind="stat", unit="bool", width=8,
                  thresholds=[("red", None), ("green", 1)]),  # fmt: skip
            panel("S3 requests by operation and status", [target(
                "sum by (operation, status) (rate(trio_s3rpc_storage_requests_total[5m]))",
                "{{operation}} {{status}}")], width=8),  # fmt: skip
            panel("S3 request p99 by operation", [target(
                "histogram_quantile(0.99, sum by (operation, le) "
                "(rate(trio_s3rpc_storage_request_duration_seconds_bucket[5m])))",
                "{{operation}}")], unit="s", width=8),  # fmt: skip
            panel("S3 retries", [target(
                "sum by (server, operation) (rate(trio_s3rpc_storage_retries_total[5m]))",
                "{{server}} {{operation}}")], width=8),  # fmt: skip
        ],
    )
    panels += row(
        "Uploads, integrity, RPC (trio-s3rpc)",
        [
            panel("Multipart uploads open", [target("sum(trio_s3rpc_multipart_uploads_open)",
                  "open")], unit="short", width=6),  # fmt: skip
            panel("Aborts and aborts pending", [
                target("sum by (result) (rate(trio_s3rpc_multipart_aborts_total[5m]))",
                       "aborts {{result}}"),
                target("sum(trio_s3rpc_multipart_aborts_pending)", "pending", "B"),
            ], unit="short", width=6),  # fmt: skip
            panel("Checksum mismatches", [target(
                "sum by (bucket) (increase(trio_s3rpc_checksum_mismatches_total[1h]))",
                "{{bucket}}")], unit="short", width=6,
                thresholds=[("green", None), ("red", 1)]),  # fmt: skip
            panel("Worker restarts", [target("sum(increase(trio_s3rpc_worker_restarts_total[1h]))",
                  "restarts")], kind="stat", unit="short", width=6),  # fmt: skip
            panel("RPC connections and calls in flight", [
                target("sum(trio_s3rpc_rpc_connections_open)", "connections open"),
                target("sum(trio_s3rpc_rpc_calls_in_flight)", "calls in flight", "B"),
            ], unit="short"),  # fmt: skip
            panel("RPC connections accepted and frames refused", [
                target("sum(rate(trio_s3rpc_rpc_connections_total[5m]))", "connections/s"),
                target("sum(rate(trio_s3rpc_rpc_frames_refused_total[5m]))", "refused/s", "B"),
            ]),  # fmt: skip
        ],
    )
    return {
        "__inputs": [
            {
                "name": "DS_PROMETHEUS",
                "label": "Prometheus",
                "type": "datasource",
                "pluginId": "prometheus",
                "pluginName": "Prometheus",
            }
        ],
        "__requires": [
            {"type": "grafana", "id": "grafana", "name": "Grafana", "version": "10.0.0"},
            {"type": "datasource", "id": "prometheus", "name": "Prometheus", "version": "1.0.0"},
        ],
        "title": "trio-s3rpc",
        "uid": "trio-s3rpc",
        "description": "RoadRunner S3 plugin metrics (its guide's panels) and trio-s3rpc's own",
        "tags": ["roadrunner", "s3", "trio-s3rpc"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": []},
        "annotations": {"list": []},
        "panels": panels,
    }


if __name__ == "__main__":
    path = HERE / "trio-s3rpc-dashboard.json"
    path.write_text(json.dumps(dashboard(), indent=2) + "\n")
    print(f"wrote {path}")
