"""The HTTP side: ``/metrics``, ``/health`` and ``/ready``, and the readiness prober.

A small HTTP/1.1 server (h11 over trio streams) answers GET and HEAD on a
fixed set of paths; a route may be async (the metrics exposition is rendered
in a worker thread, so a scrape never holds up the RPC traffic). A probe
always gets through: a request head must arrive within ``HEADER_TIMEOUT``, a
kept-alive connection may idle ``IDLE_TIMEOUT`` between requests, and when
``MAX_CONNECTIONS`` are open a new one closes the connection that has waited
longest for its next request instead of being refused (only connections whose
answer is being made are never evicted). :class:`Readiness`
probes every configured bucket's service with one cheap request (a
ListObjectsV2 of at most one key under the bucket's prefix) every
``probe_interval``; ``/ready`` is 200 only while every bucket's last probe
succeeded recently, and turns 503 at once when a graceful stop begins.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial

import h11
import trio

from trio_s3rpc.config import Config, ListenAddress
from trio_s3rpc.errors import ErrorCode, RPCError
from trio_s3rpc.storage import objects
from trio_s3rpc.storage.buckets import Storage

log = logging.getLogger("trio_s3rpc.status")

MAX_REQUEST_HEAD = 16 * 1024
# A request head must be whole this long after its connection opened, or after
# its first byte on a kept-alive connection.
HEADER_TIMEOUT = 10.0
# A kept-alive connection that sends no next request for this long is closed
# (Prometheus scrapes every 15 s or more and reconnects; kubelet probes do not
# keep connections alive).
IDLE_TIMEOUT = 5.0
MAX_CONNECTIONS = 256
JSON = "application/json"
TEXT = "text/plain; charset=utf-8"


@dataclass(slots=True, frozen=True)
class Page:
    """What a route answers: a status, a content type and the whole body."""

    status: int
    content_type: str
    body: bytes


Route = Callable[[], Page | Awaitable[Page]]


def json_response(status: int, document: object) -> Page:
    return Page(status, JSON, json.dumps(document, sort_keys=True).encode() + b"\n")


class _Waiting:
    """The connections waiting for a request, longest-waiting first, by their cancel scope."""

    def __init__(self) -> None:
        self._scopes: dict[object, trio.CancelScope] = {}

    def enter(self, key: object, scope: trio.CancelScope) -> None:
        self._scopes.pop(key, None)
        self._scopes[key] = scope

    def leave(self, key: object) -> None:
        self._scopes.pop(key, None)

    def evict_oldest(self) -> bool:
        """Close the longest-waiting connection (False: none is waiting)."""
        for key, scope in self._scopes.items():
            del self._scopes[key]
            scope.cancel()
            return True
        return False


class HTTPServer:
    """Serves ``routes`` (path -> handler) on one TCP address until cancelled."""

    def __init__(self, address: ListenAddress, routes: Mapping[str, Route]) -> None:
        self.address = address
        self.routes = dict(routes)
        self.bound: ListenAddress | None = None
        self.open_connections = 0
        self._waiting = _Waiting()

    async def run(
        self, *, task_status: trio.TaskStatus[ListenAddress] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Listen, report the bound address (the real port for port 0), serve until cancelled."""
        try:
            listeners = await trio.open_tcp_listeners(
                self.address.port, host=self.address.host or None
            )
        except OSError as exc:
            raise RPCError(
                ErrorCode.INVALID_CONFIG,
                f"cannot listen on {self.address.host}:{self.address.port}: {exc.strerror}",
            ) from None
        port = listeners[0].socket.getsockname()[1]
        self.bound = ListenAddress("tcp", host=self.address.host, port=port)
        paths = ",".join(sorted(self.routes))
        log.info("event=http_listening address=%s:%d paths=%s", self.address.host, port, paths)
        task_status.started(self.bound)
        await trio.serve_listeners(self._serve, listeners)

    def url(self, path: str) -> str:
        """``http://host:port/path`` on the bound address (loopback for all interfaces)."""
        assert self.bound is not None, "not listening yet"
        host = self.bound.host or "127.0.0.1"
        return f"http://{f'[{host}]' if ':' in host else host}:{self.bound.port}{path}"

    async def _serve(self, stream: trio.SocketStream) -> None:
        if self.open_connections >= MAX_CONNECTIONS and not self._waiting.evict_oldest():
            await stream.aclose()  # every connection is being answered: come back later
            return
        self.open_connections += 1
        try:
            await serve_connection(stream, self.routes, self._waiting)
        except (trio.BrokenResourceError, trio.ClosedResourceError, h11.ProtocolError):
            pass
        finally:
            self.open_connections -= 1
            with trio.CancelScope(shield=True):
                await stream.aclose()


async def serve_connection(
    stream: trio.abc.Stream, routes: Mapping[str, Route], waiting: _Waiting | None = None
) -> None:
    """Answer the requests of one connection, keep-alive included, within the timeouts.

    While it waits for a request the connection is in ``waiting``, whose
    eviction cancels the wait and so ends the connection.
    """
    waiting = waiting or _Waiting()
    connection = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_REQUEST_HEAD)
    key = object()
    first = True
    while True:
        request: h11.Request | None = None
        # A new connection is there to send a request: its whole head is due at
        # once; a kept-alive one may idle, then has HEADER_TIMEOUT for its head.
        with trio.move_on_after(HEADER_TIMEOUT if first else IDLE_TIMEOUT) as scope:
            waiting.enter(key, scope)
            try:
                request = await _next_request(stream, connection, scope, started=first)
            finally:
                waiting.leave(key)
        if request is None:
            return
        first = False
        response = await _respond(request, routes)
        head_only = request.method == b"HEAD"
        headers = [
            ("content-type", response.content_type),
            ("content-length", str(len(response.body))),
            ("cache-control", "no-store"),
        ]
        await stream.send_all(
            connection.send(h11.Response(status_code=response.status, headers=headers)) or b""
        )
        body = b"" if head_only else response.body
        await stream.send_all(connection.send(h11.Data(data=body)) or b"")
        await stream.send_all(connection.send(h11.EndOfMessage()) or b"")
        if connection.our_state is not h11.DONE or connection.their_state is not h11.DONE:
            return
        # Reads the request's end before the next one: a GET has no body to skip.
        try:
            connection.start_next_cycle()
        except h11.LocalProtocolError:
            return


async def _next_request(
    stream: trio.abc.Stream, connection: h11.Connection, scope: trio.CancelScope, *, started: bool
) -> h11.Request | None:
    """The next request, or None when the client ends the connection.

    ``started``: the head's deadline already runs; otherwise it starts with
    the first byte received (the wait before it is idling).
    """
    request: h11.Request | None = None
    while True:
        event = connection.next_event()
        if event is h11.NEED_DATA:
            data = await stream.receive_some(64 * 1024)
            if data and not started:
                scope.deadline = trio.current_time() + HEADER_TIMEOUT
                started = True
            connection.receive_data(bytes(data))
            continue
        if isinstance(event, h11.Request):
            request = event
            continue
        if isinstance(event, h11.EndOfMessage):
            return request
        if isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
            return None
        # h11.Data: a request body, which none of our paths takes; skip it.


async def _respond(request: h11.Request, routes: Mapping[str, Route]) -> Page:
    path = request.target.decode("latin-1").partition("?")[0]
    route = routes.get(path)
    if route is None:
        return Page(404, TEXT, f"not found; paths: {', '.join(sorted(routes))}\n".encode())
    if request.method not in (b"GET", b"HEAD"):
        return Page(405, TEXT, b"only GET and HEAD\n")
    answer = route()
    if not isinstance(answer, Page):
        answer = await answer
    return answer


# -- readiness -------------------------------------------------------------------


@dataclass(slots=True)
class ProbeResult:
    ok: bool
    error: str
    finished_at: float  # trio.current_time()


class Readiness:
    """Probes each bucket's service; answers whether all answered recently.

    ``probe(name)`` is the cheap request for one bucket; it raises RPCError
    (whose wire text never carries a secret) when the service refuses or
    cannot be reached. A probe past ``timeout`` fails as unanswered.
    """

    def __init__(
        self,
        buckets: Sequence[str],
        probe: Callable[[str], Awaitable[object]],
        *,
        interval: float,
        timeout: float,
    ) -> None:
        self.buckets = tuple(buckets)
        self.interval = interval
        self.timeout = timeout
        self._probe = probe
        self.results: dict[str, ProbeResult] = {}
        self.stopping = False
        self.on_change: Callable[[str, bool], None] | None = None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Probe every bucket, every ``interval``, until cancelled."""
        task_status.started()
        while True:
            async with trio.open_nursery() as nursery:
                for name in self.buckets:
                    nursery.start_soon(self.probe_once, name)
            await trio.sleep(self.interval)

    async def probe_once(self, name: str) -> ProbeResult:
        error = ""
        with trio.move_on_after(self.timeout) as scope:
            try:
                await self._probe(name)
            except RPCError as exc:
                error = exc.wire_text()
        if scope.cancelled_caught:
            error = f"the storage service did not answer within {self.timeout:g} s"
        result = ProbeResult(not error, error, trio.current_time())
        previous = self.results.get(name)
        self.results[name] = result
        if previous is None or previous.ok != result.ok:
            if result.ok:
                log.info("event=bucket_ready bucket=%s ready=true", name)
            else:
                log.warning("event=bucket_ready bucket=%s ready=false error=%r", name, error)
            if self.on_change is not None:
                self.on_change(name, result.ok)
        return result

    def report(self) -> tuple[bool, list[dict[str, object]]]:
        """(ready, one entry per bucket: bucket, ready, error, checked_seconds_ago)."""
        now = trio.current_time()
        # A probe older than this means the prober itself is stuck.
        stale_after = 2 * self.interval + self.timeout
        entries: list[dict[str, object]] = []
        for name in self.buckets:
            result = self.results.get(name)
            if result is None:
                entries.append({"bucket": name, "ready": False, "error": "not probed yet"})
                continue
            age = now - result.finished_at
            error = result.error
            if not error and age > stale_after:
                error = f"last probe answered {age:.0f} s ago"
            entries.append(
                {
                    "bucket": name,
                    "ready": not error,
                    "error": error,
                    "checked_seconds_ago": round(age, 3),
                }
            )
        ready = not self.stopping and all(entry["ready"] for entry in entries)
        return ready, entries

    def ready_response(self) -> Page:
        if self.stopping:
            return json_response(503, {"status": "stopping", "buckets": []})
        ready, entries = self.report()
        return json_response(
            200 if ready else 503,
            {"status": "ready" if ready else "not_ready", "buckets": entries},
        )


def readiness_for(config: Config, storage: Storage) -> Readiness:
    """The prober of every configured bucket's service, through ``storage``."""
    observability = config.s3.observability

    async def probe(bucket: str) -> None:
        await objects.list_objects(storage.bucket(bucket), "", "", 1, "")

    return Readiness(
        list(config.s3.buckets),
        probe,
        interval=observability.probe_interval,
        timeout=observability.probe_timeout,
    )


def health_response(serving: Callable[[], bool]) -> Page:
    if serving():
        return json_response(200, {"status": "serving"})
    return json_response(503, {"status": "stopped"})


def routes_for(
    *,
    metrics: Callable[[], bytes | Awaitable[bytes]] | None,
    readiness: Readiness | None,
    serving: Callable[[], bool],
    content_type: str = "",
) -> dict[str, Route]:
    """The paths one address serves: ``/metrics`` and/or ``/health`` and ``/ready``."""
    routes: dict[str, Route] = {}
    if metrics is not None:
        render = metrics

        async def scrape() -> Page:
            exposition = render()
            if not isinstance(exposition, bytes):
                exposition = await exposition
            return Page(200, content_type, exposition)

        routes["/metrics"] = scrape
    if readiness is not None:
        routes["/health"] = partial(health_response, serving)
        routes["/ready"] = readiness.ready_response
    return routes
