"""What the ``s3.*`` methods do to storage, one module per concern.

- ``buckets``: the registry (:class:`Storage`), :class:`Bucket` with the one
  request path (limiter, error mapping) and :class:`ObjectRef`, a resolved
  pathname;
- ``records``: what the operations are asked (:class:`NewObject`, what a write
  or copy creates) and answer, object headers and checksums;
- ``visibility``, ``objects``, ``copies``, ``deletes``: the operations on
  resolved objects;
- ``files`` (WriteFile, ReadFile), ``chunked`` and ``tokens`` (chunked
  uploads), ``janitor`` (retried aborts, stale uploads).

Operations take a resolved :class:`Bucket` or :class:`ObjectRef`: a name is
resolved once, by the caller, with :meth:`Storage.resolve`.
"""

from trio_s3rpc.storage.buckets import (
    Bucket,
    ObjectRef,
    Storage,
    StorageError,
    StorageErrors,
    map_s3_error,
    validate_pathname,
)
from trio_s3rpc.storage.records import (
    DeleteError,
    DeleteManyResult,
    NewObject,
    ObjectContent,
    ObjectInfo,
    metadata_headers,
    verify_checksum,
)

__all__ = [
    "Bucket",
    "DeleteError",
    "DeleteManyResult",
    "NewObject",
    "ObjectContent",
    "ObjectInfo",
    "ObjectRef",
    "Storage",
    "StorageError",
    "StorageErrors",
    "map_s3_error",
    "metadata_headers",
    "validate_pathname",
    "verify_checksum",
]
