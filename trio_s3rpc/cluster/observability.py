"""A supervisor's metrics, health and readiness: one address for every worker.

With ``s3.workers`` the supervisor serves ``s3.metrics.address`` and
``s3.status.address``; its workers serve neither. Before the first worker
starts, :class:`SupervisorObservability` switches the service to
prometheus-client's multi-process mode (a fresh directory, handed to every
worker through its environment), so one scrape sums every worker's
metrics, and a dead worker's counters stay in the sum while its live gauges
go. ``/ready`` is probed from the supervisor, through a storage of its own,
and turns 503 at the first stop signal; ``/health`` is 200 while the
supervisor serves.
"""

from __future__ import annotations

import shutil
import tempfile
from typing import Any

import trio

from trio_s3rpc.cluster.supervisor import Supervisor
from trio_s3rpc.config import Config, ListenAddress
from trio_s3rpc.metrics import CONTENT_TYPE_LATEST, MULTIPROC_ENV, SupervisorMetrics
from trio_s3rpc.status import HTTPServer, Readiness, readiness_for, routes_for
from trio_s3rpc.storage.buckets import Storage


class SupervisorObservability:
    """Attaches to a supervisor (call before it runs); :meth:`run` serves until cancelled."""

    def __init__(self, config: Config, supervisor: Supervisor) -> None:
        self.config = config
        self.supervisor = supervisor
        observability = config.s3.observability
        self.metrics: SupervisorMetrics | None = None
        self._directory = ""
        if observability.metrics_address is not None:
            self._directory = tempfile.mkdtemp(prefix="trio-s3rpc-metrics-")  # mode 0700
            self.metrics = SupervisorMetrics(self._directory)
            supervisor.worker_env[MULTIPROC_ENV] = self._directory
            metrics = self.metrics
            supervisor.on_worker_exit.append(
                lambda slot, pid, returncode: metrics.worker_exited(pid, restarted=False)
            )
        self.storage: Storage | None = None
        self.readiness: Readiness | None = None
        if observability.status_address is not None:
            self.storage = Storage(config.s3)
            self.readiness = readiness_for(config, self.storage)
            if self.metrics is not None:
                ready = self.metrics.bucket_ready
                self.readiness.on_change = lambda bucket, ok: ready.labels(bucket).set(int(ok))
        self.http_servers = self._http_servers()

    async def _render(self) -> bytes:
        assert self.metrics is not None
        self.metrics.count_restarts(self.supervisor.restarts)
        return await self.metrics.render_in_thread()

    def _serving(self) -> bool:
        if self.readiness is not None and self.supervisor.stopping:
            self.readiness.stopping = True
        return not self.supervisor.stopping

    def _ready(self) -> Any:
        self._serving()  # /ready turns 503 with the first stop signal
        assert self.readiness is not None
        return self.readiness.ready_response()

    def _http_servers(self) -> list[HTTPServer]:
        observability = self.config.s3.observability
        by_address: dict[ListenAddress, dict[str, Any]] = {}
        if observability.metrics_address is not None:
            by_address.setdefault(observability.metrics_address, {})["metrics"] = self._render
        if observability.status_address is not None:
            by_address.setdefault(observability.status_address, {})["readiness"] = True
        servers = []
        for address, parts in by_address.items():
            routes = routes_for(
                metrics=parts.get("metrics"),
                readiness=self.readiness if parts.get("readiness") else None,
                serving=self._serving,
                content_type=CONTENT_TYPE_LATEST,
            )
            if "/ready" in routes:
                routes["/ready"] = self._ready
            servers.append(HTTPServer(address, routes))
        return servers

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            async with trio.open_nursery() as nursery:
                for server in self.http_servers:
                    await nursery.start(server.run)
                if self.readiness is not None:
                    await nursery.start(self.readiness.run)
                task_status.started()
                await trio.sleep_forever()
        finally:
            with trio.CancelScope(shield=True):
                if self.storage is not None:
                    await self.storage.aclose()
            if self._directory:
                shutil.rmtree(self._directory, ignore_errors=True)
