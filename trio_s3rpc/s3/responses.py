"""S3's answers as the transport hands them on: whole, or with a body read as it arrives.

:class:`S3Response` is a whole answer (status, headers, body, or the failure
it was asked to answer); :class:`HTTPResponse` is one whose body the caller
reads as it arrives, the part of ``httpx.Response`` that S3 needs; both carry
:class:`ResponseHeaders`, looked up in any case as httpx's are.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from trio_s3rpc.s3.http11 import Response
from trio_s3rpc.s3.xml import S3Error


class ResponseHeaders(Mapping[str, str]):
    """An answer's headers by lower-case name (repeated ones joined with ", "), looked up
    in any case: what httpx.Headers gives S3, without its per-header model objects.
    tests/s3/test_transport.py holds it to httpx.Headers.

    Values are ASCII, else UTF-8, else Latin-1, as httpx decodes them.
    """

    __slots__ = ("_values",)

    def __init__(self, raw: Iterable[tuple[bytes, bytes]]) -> None:
        values: dict[str, str] = {}
        for raw_name, raw_value in raw:
            name = raw_name.decode("latin-1").lower()
            try:  # _header_text's first try, inline: nearly every value is ASCII
                value = raw_value.decode("ascii")
            except UnicodeDecodeError:
                value = _header_text(raw_value)
            values[name] = f"{values[name]}, {value}" if name in values else value
        self._values = values

    def __getitem__(self, name: str) -> str:
        return self._values[name.lower()]

    def get(self, name: str, default: Any = None) -> Any:
        return self._values.get(name.lower(), default)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._values

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"ResponseHeaders({self._values!r})"


def _header_text(raw: bytes) -> str:
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError:
        pass
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


@dataclass(slots=True)
class S3Response:
    status: int
    headers: ResponseHeaders
    content: bytes
    """The whole body; empty for streamed responses."""
    error: S3Error | None = None
    """Why the request failed, when it was asked to answer its failure (``raise_errors``)."""

    @classmethod
    def failed(cls, error: S3Error) -> S3Response:
        return cls(error.status, ResponseHeaders(()), b"", error)


class HTTPResponse:
    """An answer whose body is read as it arrives (what :meth:`S3Transport.stream` yields).

    The part of ``httpx.Response`` that S3 needs: ``status_code``, ``headers``
    (case-insensitive), ``aiter_raw()``, ``aread()``, ``aclose()``. Reading the
    body to its end, or closing it, gives the connection back to the pool.
    """

    __slots__ = ("_consumed", "_response", "headers", "status_code")

    def __init__(self, response: Response) -> None:
        self._response = response
        self._consumed = False
        self.status_code = response.status
        self.headers = ResponseHeaders(response.headers)

    async def aiter_raw(self, chunk_size: int | None = None) -> AsyncIterator[bytes]:
        """The body as it arrives; with ``chunk_size``, in pieces of at least that many
        bytes (the last may be shorter), each joined once from what the socket gave.

        Unlike httpx's, the pieces are not cut to exactly ``chunk_size``: cutting
        copies every byte twice more, for callers that only want large pieces.
        """
        if self._consumed:
            raise RuntimeError("the body was read already")
        self._consumed = True
        stream: AsyncIterable[bytes] = self._response.stream
        if chunk_size is None:
            async for chunk in stream:
                if chunk:
                    yield chunk
        else:
            pieces: list[bytes] = []
            pending = 0
            async for chunk in stream:
                pieces.append(chunk)
                pending += len(chunk)
                if pending >= chunk_size:
                    yield pieces[0] if len(pieces) == 1 else b"".join(pieces)
                    pieces.clear()
                    pending = 0
            if pending:
                yield b"".join(pieces)
        await self.aclose()

    async def aread(self) -> bytes:
        """The whole body (read without an async generator: this is the small reads' path)."""
        if self._consumed:
            raise RuntimeError("the body was read already")
        self._consumed = True
        try:
            return b"".join([chunk async for chunk in self._response.stream])
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        await self._response.aclose()
