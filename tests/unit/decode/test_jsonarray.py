"""The top-level JSON array splitter behind Gemini's default streaming."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oisp_sensor.decode.jsonarray import MAX_ITEM, JsonArraySplitter
from oisp_sensor.errors import DecodeError
from tests.helpers import split

TRICKY = b'[{"a": "x\\"]}\\\\", "b": [1, {"c": "}"}]},\r\n {"n": null}\n, 3 , "s,]" , [] ] \n'


def items(data: bytes, offsets: list[int] | None = None) -> list[bytes]:
    splitter = JsonArraySplitter()
    out: list[bytes] = []
    for piece in split(data, offsets):
        splitter.feed(piece)
        while (item := splitter.next_item()) is not None:
            out.append(item)
    splitter.close()
    return out


def test_elements_with_strings_escapes_and_nesting() -> None:
    got = items(TRICKY)
    assert [json.loads(i) for i in got] == [
        {"a": 'x"]}\\', "b": [1, {"c": "}"}]},
        {"n": None},
        3,
        "s,]",
        [],
    ]


def test_an_object_is_out_as_soon_as_it_closes() -> None:
    splitter = JsonArraySplitter()
    splitter.feed(b'[{"a": 1}')
    assert splitter.next_item() == b'{"a": 1}'  # not held back until the next comma
    assert splitter.next_item() is None


def test_a_body_that_is_not_an_array_is_one_item() -> None:
    assert items(b' {"error": {"code": 400}} ') == [b'{"error": {"code": 400}}']
    assert items(b"[]") == []


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b'[{"a":1} {"b":2}]', "not separated"),
        (b"[,1]", "empty element"),
        (b"[1]x", "after the end"),
        (b'[{"a":1}}]', "not separated"),
        (b"[1}", "unbalanced"),
    ],
)
def test_bad_framing_raises_once_after_the_good_items(data: bytes, message: str) -> None:
    splitter = JsonArraySplitter()
    splitter.feed(data)
    good: list[bytes] = []
    with pytest.raises(DecodeError, match=message):
        while (item := splitter.next_item()) is not None:
            good.append(item)
    assert splitter.next_item() is None  # ignores the rest from then on
    assert len(good) <= 1


def test_unfinished_array_at_close() -> None:
    splitter = JsonArraySplitter()
    splitter.feed(b'[{"a": 1}, {"b": ')
    assert splitter.next_item() == b'{"a": 1}'
    assert splitter.next_item() is None
    with pytest.raises(DecodeError, match="ended inside"):
        splitter.close()


def test_oversized_element_is_refused() -> None:
    splitter = JsonArraySplitter()
    splitter.feed(b'[{"a": "' + b"x" * (MAX_ITEM + 10))
    with pytest.raises(DecodeError, match="larger than"):
        splitter.next_item()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=len(TRICKY) - 1), max_size=20))
def test_any_split_gives_the_same_items(offsets: list[int]) -> None:
    assert items(TRICKY, offsets) == items(TRICKY)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=100, deadline=None)
@given(st.lists(json_values, max_size=5), st.data())
def test_round_trips_any_json_array(values: list[object], data: st.DataObject) -> None:
    body = json.dumps(values, indent=data.draw(st.sampled_from([None, 1]))).encode()
    offsets = data.draw(
        st.lists(st.integers(min_value=1, max_value=max(1, len(body) - 1)), max_size=8)
    )
    assert [json.loads(i) for i in items(body, offsets)] == values
