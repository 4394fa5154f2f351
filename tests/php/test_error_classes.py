"""The PHP client has an exception class for every error code the server can answer."""

import re
from pathlib import Path

from trio_s3rpc.errors import ErrorCode

PHP_EXCEPTIONS = Path(__file__).parents[2] / "php" / "src" / "Exception"


def test_every_server_error_code_has_its_php_exception_class() -> None:
    table = (PHP_EXCEPTIONS / "RpcError.php").read_text()
    mapped = dict(re.findall(r"'([A-Z0-9_]+)' => (\w+)::class", table))
    assert set(mapped) == {code.value for code in ErrorCode}
    for name in mapped.values():
        assert (PHP_EXCEPTIONS / f"{name}.php").is_file(), name
