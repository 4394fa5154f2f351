"""What tests of WriteFile ``resume`` share: the marker part, and a retry while one runs.

A resumable WriteFile marks its upload with part 10,000, which holds no data
(``trio_s3rpc/storage/resumable.py``). After a server is killed mid-upload,
its marker says "running" until its lease ends, and a retry is refused with
``... is in progress``: a client retries, as these tests do.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import trio

from trio_s3rpc.client import RemoteError, RPCClient
from trio_s3rpc.storage.resumable import LEASE, MARKER_PART


def data_parts(listed: Mapping[str, Any]) -> int:
    """How many of a boto3 ``list_parts`` answer's parts hold data (not the marker)."""
    return sum(1 for part in listed.get("Parts", []) if part["PartNumber"] != MARKER_PART)


async def write_file_retrying(rpc: RPCClient, args: Mapping[str, Any]) -> Any:
    """``s3.WriteFile`` retried while a killed transfer's marker still says it runs."""
    with trio.fail_after(5 * LEASE):
        while True:
            try:
                return await rpc.call("s3.WriteFile", args)
            except RemoteError as error:
                if "in progress" not in error.text:
                    raise
                await trio.sleep(0.5)
