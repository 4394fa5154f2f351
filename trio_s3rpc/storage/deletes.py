"""DeleteMany: up to 1000 keys per DeleteObjects request, batches in parallel.

The pathnames are validated a thousand at a time between checkpoints, so a
list of hundreds of thousands never holds the event loop.
"""

from __future__ import annotations

from collections.abc import Sequence

import trio

from trio_s3rpc.errors import ErrorCode, RPCError
from trio_s3rpc.s3 import xml as s3xml
from trio_s3rpc.s3.limits import MAX_DELETE_KEYS
from trio_s3rpc.storage.buckets import Bucket
from trio_s3rpc.storage.records import DeleteError, DeleteManyResult
from trio_s3rpc.trioutil import first_error

# Pathnames validated between two checkpoints: a few milliseconds of work.
CHECK_BATCH = 1000


def _refused(pathname: str, exc: RPCError) -> DeleteError:
    message = f"{exc.message} ({exc.details})" if exc.details else exc.message
    return DeleteError(pathname, str(exc.code), message)


async def delete_many(bucket: Bucket, pathnames: Sequence[str]) -> DeleteManyResult:
    """Delete many objects of ``bucket``.

    Each pathname succeeds or fails on its own: an invalid one, one the
    service refuses, or one in a batch whose request failed is reported in
    ``errors`` (in request order); the rest are ``deleted``. Repeated
    pathnames are deleted (and reported) once.
    """
    errors: list[DeleteError] = []
    keys: dict[str, str] = {}  # key -> pathname, in request order
    for index, pathname in enumerate(pathnames):
        if index % CHECK_BATCH == CHECK_BATCH - 1:
            await trio.lowlevel.checkpoint()  # a long list must not hold the event loop
        try:
            ref = bucket.ref(pathname)
        except RPCError as exc:
            errors.append(_refused(pathname, exc))
            continue
        keys.setdefault(ref.key, pathname)
    items = list(keys.items())
    batches = [
        items[start : start + MAX_DELETE_KEYS] for start in range(0, len(items), MAX_DELETE_KEYS)
    ]
    results: list[DeleteManyResult] = [DeleteManyResult([], [])] * len(batches)
    in_flight = trio.CapacityLimiter(bucket.config.concurrency)

    async def run(index: int, batch: list[tuple[str, str]]) -> None:
        async with in_flight:
            results[index] = await _delete_batch(bucket, batch)

    with first_error():
        async with trio.open_nursery() as nursery:
            for index, batch in enumerate(batches):
                nursery.start_soon(run, index, batch)
    refused = [error for result in results for error in result.errors]
    if refused:
        # Invalid pathnames are in request order already; refusals of the service
        # are merged in among them.
        await trio.lowlevel.checkpoint()
        order = {pathname: position for position, pathname in enumerate(pathnames)}
        await trio.lowlevel.checkpoint()
        errors += refused
        errors.sort(key=lambda error: order.get(error.pathname, len(order)))
    return DeleteManyResult([p for result in results for p in result.deleted], errors)


async def _delete_batch(bucket: Bucket, batch: list[tuple[str, str]]) -> DeleteManyResult:
    """One DeleteObjects request (the transport adds the Content-MD5 S3 requires)."""
    body = s3xml.build_delete_objects([key for key, _ in batch], quiet=True)
    try:
        response = await bucket.request(
            "DeleteObjects",
            "POST",
            None,
            query={"delete": ""},
            headers={"Content-Type": "application/xml"},
            body=body,
        )
        with bucket.errors():
            result = s3xml.parse_delete_result(response.content)
    except RPCError as exc:
        # The whole request failed: no key of this batch is known to be deleted.
        return DeleteManyResult([], [_refused(pathname, exc) for _, pathname in batch])
    pathnames = dict(batch)
    refused: dict[str, DeleteError] = {}
    for failure in result.errors:
        if failure.code in ("NoSuchKey", "NotFound"):
            continue  # deleting what is not there succeeds, as DeleteObject does
        denied = failure.code == "AccessDenied"
        code = ErrorCode.PERMISSION_DENIED if denied else ErrorCode.S3_OPERATION_FAILED
        pathname = pathnames.get(failure.key, bucket.pathname(failure.key))
        refused[pathname] = DeleteError(
            pathname,
            str(code),
            f"DeleteObjects refused this key: {failure.code}: {failure.message}",
        )
    deleted = [pathname for _, pathname in batch if pathname not in refused]
    return DeleteManyResult(deleted, list(refused.values()))
