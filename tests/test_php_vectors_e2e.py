"""The frames captured from PHP's goridge client, sent byte for byte to a running server.

What an unmodified PHP application sees: each answer carries its request's seq
and method length (the PHP client checks both), no error flag, and decodes
with the request's codec; the writes land on SeaweedFS exactly as sent.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

import msgpack
import pytest

from tests.goridge.vectors import VECTORS
from tests.support.server import config_dict, endpoint_server, running_app
from tests.support.services import admin_client
from trio_s3rpc.client import open_stream
from trio_s3rpc.goridge.frame import CODEC_JSON, CODEC_MSGPACK, FLAG_ERROR, FrameDecoder

pytestmark = pytest.mark.integration


async def test_captured_php_frames_get_the_answers_php_expects(seaweedfs: Any) -> None:
    prefix = f"php-{secrets.token_hex(4)}/"
    # The captured Write asks for visibility "public": a bucket with ACLs takes it
    # (SeaweedFS accepts the canned ACL header).
    config = config_dict(
        endpoint_server(seaweedfs),
        {"uploads": {"bucket": "test-bucket", "prefix": prefix, "visibility_mode": "acl"}},
    )
    async with running_app(config) as (_, address):
        stream = await open_stream(address)
        decoder = FrameDecoder()
        answers: dict[int, Any] = {}
        for vector in VECTORS:
            await stream.send_all(vector.frame)
            while (frame := decoder.next_frame()) is None:
                decoder.receive_data(await stream.receive_some(65536))
            seq, method_length = frame.options
            assert seq == vector.seq
            body = frame.payload[method_length:]
            assert not frame.flags & FLAG_ERROR, body
            if frame.flags & CODEC_JSON:
                answers[seq] = json.loads(body)
            else:
                assert frame.flags & CODEC_MSGPACK
                answers[seq] = msgpack.unpackb(body)
        await stream.aclose()
    assert answers[1] == {"buckets": ["uploads"], "default": "uploads"}
    assert answers[2] == {"exists": False}
    assert answers[3]["success"] is True and answers[3]["pathname"] == "a.bin"
    assert answers[4] == answers[1]
    assert answers[5] == {"exists": False}
    assert answers[7]["size"] == 8
    # The last write wins: msgpack str content with invalid UTF-8, stored byte-exact.
    stored = admin_client(seaweedfs).get_object(Bucket="test-bucket", Key=prefix + "a.bin")
    assert stored["Body"].read() == b"\x00\xff\xfehello"
