"""Object headers built from caller fields: every value no header can carry is refused clearly."""

from __future__ import annotations

import pytest

from trio_s3rpc.errors import ErrorCode, RPCError
from trio_s3rpc.storage.records import ObjectHeaders


@pytest.mark.parametrize("expires", [10**12, 253402300800, 2**63, 10**20, -1])
def test_an_expires_no_http_date_can_carry_is_invalid_request_naming_the_field(
    expires: int,
) -> None:
    with pytest.raises(RPCError) as caught:
        ObjectHeaders(expires=expires).http()
    assert caught.value.code is ErrorCode.INVALID_REQUEST
    assert "'expires'" in caught.value.message and str(expires) in caught.value.message


def test_the_last_second_an_http_date_can_carry_is_accepted() -> None:
    headers = ObjectHeaders(expires=253402300799).http()
    assert headers == {"Expires": "Fri, 31 Dec 9999 23:59:59 GMT"}
