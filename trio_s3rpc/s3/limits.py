"""S3's own limits, written once: every layer that checks one imports it from here.

These are the service's rules (AWS's, which MinIO, SeaweedFS and Ceph RGW
follow), not settings: a request that breaks one is refused before it is sent,
with an error that names the limit.
"""

from __future__ import annotations

from typing import Final

MIB: Final = 1024 * 1024
GIB: Final = 1024 * MIB

#: Every part of a multipart upload but the last is at least this long...
MIN_PART_SIZE: Final = 5 * MIB
#: ... and none is longer than this.
MAX_PART_SIZE: Final = 5 * GIB
#: Parts in one multipart upload.
MAX_PARTS: Final = 10_000
#: The largest object (5 TiB).
MAX_OBJECT_SIZE: Final = 5 * 1024 * GIB
#: The most a single CopyObject copies; larger objects are copied in parts.
MAX_COPY_SIZE: Final = 5 * GIB
#: An object key, in UTF-8 bytes.
MAX_KEY_BYTES: Final = 1024
#: User metadata of one object: the UTF-8 bytes of every key and value.
MAX_METADATA_BYTES: Final = 2048
#: Keys in one DeleteObjects request.
MAX_DELETE_KEYS: Final = 1000
#: Keys in one page of ListObjectsV2.
MAX_LIST_KEYS: Final = 1000
