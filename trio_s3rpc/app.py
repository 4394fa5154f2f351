"""Assembling the server: config -> storage -> methods -> dispatcher -> listener.

:class:`Application` is what ``trio-s3rpc serve`` runs and what the tests
start in-process. It owns the storage (and so the HTTP pools) and the RPC
server, and turns SIGINT/SIGTERM into the graceful shutdown; a second signal
during the grace period stops at once.
"""

from __future__ import annotations

import logging
import signal
from typing import Any

import trio

from trio_s3rpc.config import Config, ListenAddress
from trio_s3rpc.rpc.control import CallControl
from trio_s3rpc.rpc.dispatch import Dispatcher
from trio_s3rpc.rpc.methods import S3Methods, register_control_methods
from trio_s3rpc.rpc.registry import MethodRegistry
from trio_s3rpc.rpc.relay import Relay
from trio_s3rpc.rpc.server import RPCServer
from trio_s3rpc.s3.multipart import UploadBook
from trio_s3rpc.storage.buckets import Storage
from trio_s3rpc.storage.chunked import ChunkedUploads
from trio_s3rpc.storage.files import Files
from trio_s3rpc.storage.janitor import Janitor

log = logging.getLogger("trio_s3rpc")


def build_registry(storage: Storage, files: Files, uploads: ChunkedUploads) -> MethodRegistry:
    registry = MethodRegistry()
    S3Methods(storage, files, uploads).register(registry)
    return registry


class Application:
    def __init__(self, config: Config) -> None:
        self.config = config
        # Uploads in progress and aborts to retry: kept by storage, read by the janitor.
        book = UploadBook()
        self.storage = Storage(
            config.s3, max_read_size=config.rpc.max_frame_size * 3 // 4, book=book
        )
        self.files = Files(config.s3.local_roots)
        self.uploads = ChunkedUploads(self.storage, config.s3.upload_idle_timeout)
        self.janitor = Janitor(self.storage, config.s3.abort_stale_after)
        self.registry = build_registry(self.storage, self.files, self.uploads)
        self.control = CallControl()
        register_control_methods(self.registry, self.control)
        relay = config.rpc.relay
        self.relay = Relay(relay, config.rpc.max_frame_size) if relay is not None else None
        self.server = RPCServer(
            config.rpc,
            Dispatcher(self.registry, self.control),
            shutdown_timeout=config.s3.shutdown_timeout,
            relay=self.relay,
        )

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Serve until :meth:`request_shutdown`; report the bound address when listening."""
        try:
            await self.server.open()
            async with trio.open_nursery() as nursery:
                # Chunked uploads outlive single calls; their part tasks stop
                # only after the RPC server has drained (the uploads stay
                # resumable from any instance).
                await nursery.start(self.uploads.run)
                await nursery.start(self.janitor.run)
                if self.relay is not None:
                    # Outlives the drain too: relayed calls in flight finish first.
                    await nursery.start(self.relay.run)
                await self.server.serve(task_status=task_status)
                nursery.cancel_scope.cancel()
        finally:
            with trio.CancelScope(shield=True):
                await self.storage.aclose()

    def request_shutdown(self) -> None:
        self.server.request_shutdown()

    @property
    def address(self) -> ListenAddress | None:
        return self.server.address


async def serve_until_signalled(
    app: Application, *, task_status: Any = trio.TASK_STATUS_IGNORED
) -> None:
    """Run the application; the first SIGINT/SIGTERM drains, a second one stops now."""
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:

            async def watch_signals() -> None:
                count = 0
                async for signum in signals:
                    count += 1
                    name = signal.Signals(signum).name
                    if count == 1:
                        log.info("event=signal name=%s action=graceful_shutdown", name)
                        app.request_shutdown()
                    else:
                        log.warning("event=signal name=%s action=stop_now", name)
                        nursery.cancel_scope.cancel()

            nursery.start_soon(watch_signals)
            await app.run(task_status=task_status)
            nursery.cancel_scope.cancel()
