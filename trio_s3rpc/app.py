"""Assembling the server: config -> storage -> methods -> dispatcher -> listener.

:class:`Application` is what ``trio-s3rpc serve`` runs and what the tests
start in-process. It owns the storage (and so the HTTP pools) and the RPC
server, and turns SIGINT/SIGTERM into the graceful shutdown; a second signal
during the grace period stops at once. With ``s3.metrics.address`` or
``s3.status.address`` set it also owns the metrics, the readiness prober and
the HTTP servers that answer ``/metrics``, ``/health`` and ``/ready`` (under
``s3.workers`` those are the supervisor's, and each worker only records its
metrics, in the supervisor's multi-process directory).

Under ``s3.workers`` it is also what each worker process runs
(:func:`serve_worker`): the same application on listeners the supervisor
opened, with a :class:`WorkerLink` that makes the workers one service, and
an answer (:meth:`Application.answer_peer`) to what the others ask of it.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
from collections.abc import Sequence
from typing import Any

import trio

from trio_s3rpc import metrics as metrics_module
from trio_s3rpc.cluster import wire
from trio_s3rpc.cluster.worker import WorkerLink, watch_lifeline, worker_socket
from trio_s3rpc.config import Config, ListenAddress
from trio_s3rpc.errors import ErrorCode, RPCError
from trio_s3rpc.metrics import BucketLabels, CallMetrics, Metrics
from trio_s3rpc.rpc.connection import budget_for
from trio_s3rpc.rpc.control import CallControl
from trio_s3rpc.rpc.dispatch import Dispatcher
from trio_s3rpc.rpc.methods import (
    S3Methods,
    cancel_answer,
    register_control_methods,
    status_answer,
)
from trio_s3rpc.rpc.registry import MethodRegistry
from trio_s3rpc.rpc.relay import Relay
from trio_s3rpc.rpc.server import RPCServer
from trio_s3rpc.s3.multipart import BusyUploads, UploadBook
from trio_s3rpc.status import HTTPServer, Readiness, readiness_for, routes_for
from trio_s3rpc.storage.buckets import Storage, validate_pathname
from trio_s3rpc.storage.chunked import ChunkedUploads
from trio_s3rpc.storage.files import Files
from trio_s3rpc.storage.janitor import Janitor
from trio_s3rpc.trioutil import on_stop_signals

log = logging.getLogger("trio_s3rpc")


def build_registry(
    storage: Storage, files: Files, uploads: ChunkedUploads, link: WorkerLink | None = None
) -> MethodRegistry:
    registry = MethodRegistry()
    S3Methods(
        storage,
        files,
        uploads,
        register_everywhere=None if link is None else link.register_bucket,
    ).register(registry)
    return registry


class Application:
    def __init__(self, config: Config, link: WorkerLink | None = None) -> None:
        self.config = config
        self.link = link
        # Uploads in progress and aborts to retry: kept by storage, read by the janitor.
        book = UploadBook()
        # The bytes held for callers, counted by the RPC server and the chunked uploads.
        self.budget = budget_for(config.rpc, config.s3.workers)
        self.storage = Storage(
            config.s3, max_read_size=config.rpc.max_frame_size * 3 // 4, book=book
        )
        self.files = Files(config.s3.local_roots, config.s3.local_file_mode, config.s3.local_files)
        self.uploads = ChunkedUploads(
            self.storage,
            config.s3.upload_idle_timeout,
            budget=self.budget,
            max_uploads=config.s3.max_chunked_uploads,
        )
        # One stale-upload reaper per service: a lone process, or the worker in slot 0.
        reaps = link is None or link.place.runs_reaper
        self.janitor = Janitor(
            self.storage,
            config.s3.abort_stale_after if reaps else 0.0,
            self._busy_elsewhere,
            local_leftovers=self.files.paths.remove_leftover_parts,
        )
        self.registry = build_registry(self.storage, self.files, self.uploads, link)
        self.control = CallControl()
        register_control_methods(self.registry, self.control, link)
        relay = config.rpc.relay
        self.relay = Relay(relay, config.rpc.max_frame_size) if relay is not None else None
        observability = config.s3.observability
        self.metrics: Metrics | None = None
        if observability.metrics_address is not None or metrics_module.multiprocess_enabled():
            self.metrics = Metrics()
        self.bucket_labels = BucketLabels(self.storage.buckets, list(config.s3.buckets))
        self.server = RPCServer(
            config.rpc,
            Dispatcher(self.registry, self.control, self._call_metrics()),
            shutdown_timeout=config.s3.shutdown_timeout,
            relay=self.relay,
            budget=self.budget,
        )
        self.readiness: Readiness | None = None
        if observability.status_address is not None and link is None:
            self.readiness = readiness_for(config, self.storage)
        self._watch_state()
        # A worker's HTTP endpoints are the supervisor's.
        self.http_servers = [] if link is not None else self._http_servers()

    def _call_metrics(self) -> CallMetrics | None:
        if self.metrics is None:
            return None
        return CallMetrics(
            self.metrics,
            self.registry.get,
            self.storage.buckets,
            self.storage.default,
            upload_bucket=self.uploads.bucket_of,
            pathname_valid=_pathname_valid,
            labels=self.bucket_labels,
        )

    def _watch_state(self) -> None:
        """Connect the metrics to the state they sample and the requests they count."""
        metrics = self.metrics
        if metrics is None:
            return
        metrics.add_sampler(metrics_module.bucket_sampler(self.storage.buckets, self.bucket_labels))
        metrics.add_sampler(metrics_module.rpc_sampler(self.server))
        metrics.add_sampler(
            metrics_module.uploads_sampler(
                lambda: len(self.active_uploads().upload_ids),
                lambda: self.janitor.pending_aborts,
            )
        )
        transports = {b.server.name: b.transport for b in self.storage.buckets.values()}
        for name, transport in transports.items():
            transport.observer = metrics.request_observer(name)
        if self.readiness is not None:
            ready = metrics.bucket_ready
            self.readiness.on_change = lambda bucket, ok: ready.labels(bucket).set(int(ok))

    def _http_servers(self) -> list[HTTPServer]:
        """One server per address; metrics and status share one when their addresses match."""
        observability = self.config.s3.observability
        render = self.metrics.render_in_thread if self.metrics is not None else None
        by_address: dict[ListenAddress, dict[str, Any]] = {}
        if observability.metrics_address is not None:
            by_address.setdefault(observability.metrics_address, {})["metrics"] = render
        if observability.status_address is not None:
            by_address.setdefault(observability.status_address, {})["readiness"] = self.readiness
        return [
            HTTPServer(
                address,
                routes_for(
                    metrics=parts.get("metrics"),
                    readiness=parts.get("readiness"),
                    serving=lambda: not self.server.stopping,
                    content_type=metrics_module.CONTENT_TYPE_LATEST,
                ),
            )
            for address, parts in by_address.items()
        ]

    async def run(
        self, *, task_status: trio.TaskStatus[ListenAddress] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Serve until :meth:`request_shutdown`; report the bound address when listening."""
        try:
            await self.server.open()
            async with trio.open_nursery() as nursery:
                # Chunked uploads outlive single calls; their part tasks stop
                # only after the RPC server has drained (the uploads stay
                # resumable from any instance).
                await nursery.start(self.budget.run)
                await nursery.start(self.uploads.run)
                await nursery.start(self.janitor.run)
                if self.relay is not None:
                    # Outlives the drain too: relayed calls in flight finish first.
                    await nursery.start(self.relay.run)
                for http_server in self.http_servers:
                    await nursery.start(http_server.run)
                if self.readiness is not None:
                    await nursery.start(self.readiness.run)
                if self.metrics is not None and metrics_module.multiprocess_enabled():
                    await nursery.start(self.metrics.run_sampler)
                await self.server.serve(task_status=task_status)
                nursery.cancel_scope.cancel()
        finally:
            with trio.CancelScope(shield=True):
                await self.storage.aclose()

    def request_shutdown(self) -> None:
        if self.readiness is not None:
            self.readiness.stopping = True  # /ready is 503 from now on
        self.server.request_shutdown()

    @property
    def address(self) -> ListenAddress | None:
        return self.server.address

    def http_url(self, path: str) -> str:
        """``http://host:port/path`` of the HTTP server that answers ``path``, once bound."""
        for http_server in self.http_servers:
            if path in http_server.routes and http_server.bound is not None:
                return http_server.url(path)
        raise LookupError(f"no HTTP server answers {path}")

    def active_uploads(self) -> BusyUploads:
        """The service's uploads this process is working on or creating."""
        return self.storage.book.busy() | BusyUploads(frozenset(self.uploads.working_on()))

    async def _busy_elsewhere(self) -> BusyUploads | None:
        """For the reaper: uploads worked on here beyond the book, and by the other workers."""
        busy = BusyUploads(frozenset(self.uploads.working_on()))
        if self.link is None:
            return busy
        others = await self.link.active_uploads()
        return None if others is None else busy | others

    async def answer_peer(
        self,
        request: wire.TransferStatusQuery
        | wire.CancelQuery
        | wire.ActiveUploadsQuery
        | wire.ApplyBucket,
    ) -> wire.Found | wire.ActiveUploads | wire.Done:
        """Answer what the supervisor or another worker asks of this worker."""
        if isinstance(request, wire.TransferStatusQuery):
            try:
                return wire.Found(status=status_answer(self.control.status(request.transfer_id)))
            except RPCError:
                return wire.Found()
        if isinstance(request, wire.CancelQuery):
            try:
                return wire.Found(cancelled=cancel_answer(self.control, request.transfer_id))
            except RPCError:
                return wire.Found()
        if isinstance(request, wire.ActiveUploadsQuery):
            busy = self.active_uploads()
            return wire.ActiveUploads(
                sorted(busy.upload_ids),
                [wire.BeingCreated(bucket, key) for bucket, key in sorted(busy.creating)],
            )
        if isinstance(request, wire.ApplyBucket):
            if request.name not in self.storage.buckets:
                self.storage.register_bucket(request.name, request.settings)
            return wire.Done()
        raise RPCError(
            ErrorCode.INVALID_REQUEST, f"a worker does not answer {type(request).__name__}"
        )


def _pathname_valid(pathname: str) -> bool:
    try:
        validate_pathname(pathname)
    except RPCError:
        return False
    return True


async def serve_until_signalled(
    app: Application, *, task_status: trio.TaskStatus[ListenAddress] = trio.TASK_STATUS_IGNORED
) -> None:
    """Run the application; the first SIGINT/SIGTERM drains, a second one stops now."""
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(
                on_stop_signals, signals, app.request_shutdown, nursery.cancel_scope.cancel
            )
            await app.run(task_status=task_status)
            nursery.cancel_scope.cancel()


async def serve_worker(config: Config, link: WorkerLink, listen_fds: Sequence[int]) -> None:
    """One worker of a supervised service, until signalled (or orphaned).

    The worker answers its peers before it joins, joins (getting the buckets
    registered so far), then serves RPC and tells the supervisor it is ready.
    """
    app = Application(config, link)
    sockets = [socket.socket(fileno=fd) for fd in listen_fds]
    for sock in sockets:
        # Bound by the supervisor; listening starts with the first worker that can serve.
        sock.listen(socket.SOMAXCONN)
    listeners = [trio.SocketListener(trio.socket.from_stdlib_socket(s)) for s in sockets]
    app.server.adopt(listeners, config.rpc.listen)

    def orphaned() -> None:
        # The supervisor is gone (killed): the service stops at once, as it would have.
        log.error("event=supervisor_lost slot=%d action=exit_now", link.place.slot)
        os._exit(70)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch_lifeline, orphaned)
        await nursery.start(
            wire.serve, worker_socket(link.place.run_dir, link.place.slot), app.answer_peer
        )
        for registration in await link.hello():
            if registration.name not in app.storage.buckets:
                app.storage.register_bucket(registration.name, registration.settings)

        async def serve(
            *, task_status: trio.TaskStatus[ListenAddress] = trio.TASK_STATUS_IGNORED
        ) -> None:
            await serve_until_signalled(app, task_status=task_status)
            nursery.cancel_scope.cancel()  # drained: the peer socket and lifeline go too

        address = await nursery.start(serve)
        await link.ready(str(address))
