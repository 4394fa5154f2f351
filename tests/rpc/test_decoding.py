"""Typed requests and answers: what the shortcuts of the hot path give is what the
converters and :func:`_plain` give for the same values."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pytest

from trio_s3rpc.errors import RPCError
from trio_s3rpc.rpc.decoding import RequestDecoder, ResponseEncoder, omitempty


@dataclass(slots=True, frozen=True)
class Entry:
    key: str
    size: int = 0


@dataclass(slots=True, frozen=True)
class Mixed:
    name: str
    entries: list[Entry]
    tags: list[str]
    meta: Mapping[str, str]
    size: int
    note: str = omitempty("")
    children: list[Entry] | None = omitempty(None)


def test_an_answer_keeps_its_field_order_and_turns_only_records_into_mappings() -> None:
    answer = Mixed("a", [Entry("x", 1)], ["t"], {"k": "v"}, 7, "n", [Entry("y")])
    encoded = ResponseEncoder(Mixed).encode(answer)
    assert list(encoded) == ["name", "entries", "tags", "meta", "size", "note", "children"]
    assert encoded == {
        "name": "a",
        "entries": [{"key": "x", "size": 1}],
        "tags": ["t"],
        "meta": {"k": "v"},
        "size": 7,
        "note": "n",
        "children": [{"key": "y", "size": 0}],
    }


def test_empty_omitempty_fields_are_left_out() -> None:
    encoded = ResponseEncoder(Mixed).encode(Mixed("a", [], [], {}, 0))
    assert encoded == {"name": "a", "entries": [], "tags": [], "meta": {}, "size": 0}


@dataclass(slots=True, frozen=True)
class One:
    only: str


def test_an_answer_of_one_field() -> None:
    assert ResponseEncoder(One).encode(One("v")) == {"only": "v"}


@dataclass(slots=True, frozen=True)
class Fields:
    text: str
    count: int = 0
    flag: bool = False


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"text": "a\udcffb"}, "field 'text' must be valid UTF-8 text"),
        ({"text": 5}, "field 'text' must be a string, got integer"),
        ({"text": "a", "count": True}, "field 'count' must be an integer, got boolean"),
        ({"text": "a", "count": "5"}, "field 'count' must be an integer, got string"),
        ({"text": "a", "flag": 1}, "field 'flag' must be a boolean, got integer"),
    ],
)
def test_a_mistyped_field_is_named_whatever_path_it_takes(
    args: dict[str, object], message: str
) -> None:
    with pytest.raises(RPCError) as caught:
        RequestDecoder(Fields).decode(args, False)
    assert caught.value.message == message


def test_values_that_need_no_conversion_are_taken_as_they_are() -> None:
    decoded = RequestDecoder(Fields).decode({"text": "é", "count": 3.0, "flag": True}, False)
    assert decoded == Fields("é", 3, True)
    assert type(decoded.count) is int


@dataclass(slots=True, frozen=True)
class NoFields:
    pass


def test_a_request_of_no_fields_ignores_its_arguments() -> None:
    decoder = RequestDecoder(NoFields)
    assert decoder.decode({}, False) == NoFields()
    assert decoder.decode({"extra": 1}, True) == NoFields()
