"""ResponseBuilder is the one place that guarantees types, whatever JSON a server sends.

Unit tests of the builder's setters, then a property test per API decoder: valid
golden exchanges (goldens.py) with values swapped, at random paths, for lists,
objects, numbers, null and huge strings. Only events may come out — valid OISP,
one ai.request and one ai.response from the decoder under test — never an
exception: the pipeline's `decode.internal_errors` counter stays at zero.
"""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oisp_sensor.counters import Counters
from oisp_sensor.decode.decoder import Decoder
from oisp_sensor.decode.providers.base import ResponseBuilder
from oisp_sensor.enrich.pricing import PricingEnricher
from oisp_sensor.events import Event
from oisp_sensor.pipeline import Pipeline
from tests.conformance import assert_valid_events
from tests.helpers import HASHER, captures
from tests.unit.decode.providers.goldens import GOLDENS, Golden, request_bytes, response_bytes

# --- the builder's setters ------------------------------------------------------------------

WRONG = [["x"], {"a": 1}, 7, 1.5, True, None, ""]


@pytest.mark.parametrize("value", WRONG, ids=repr)
def test_values_of_the_wrong_type_are_ignored(value: Any) -> None:
    b = ResponseBuilder()
    b.model, b.provider_request_id, b.finish_reason = "m", "id-1", "stop"
    call = b.tool_call(0)
    call.id, call.name, call.type = "c1", "f", "function"
    b.model = b.provider_request_id = b.finish_reason = value
    call.id = call.name = call.type = value
    b.choice(0).finish_reason = value
    assert (b.model, b.provider_request_id, b.finish_reason) == ("m", "id-1", "stop")
    assert (call.id, call.name, call.type) == ("c1", "f", "function")
    b.add_text(value)
    b.add_thinking(value)
    b.add_tool_arguments(0, value)
    assert b.choices_data() == [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "",
                "tool_calls": [{"type": "function", "id": "c1", "name": "f", "arguments": ""}],
            },
        }
    ]


def test_a_new_call_keeps_only_string_names_and_ids() -> None:
    b = ResponseBuilder()
    call = b.tool_call(0)
    call.id, call.name, call.type = ["id"], {"n": 1}, 3
    assert b.tool_calls() == [{"type": "function", "arguments": ""}]


def test_choice_indexes_and_call_keys_of_any_type() -> None:
    b = ResponseBuilder()
    b.add_text("a", ["x"])  # type: ignore[arg-type]
    b.add_text("b", 1.0)  # type: ignore[arg-type]
    b.add_text("c", "1")  # type: ignore[arg-type]
    b.add_tool_arguments([1], '{"a"')
    b.add_tool_arguments([1], ":1}")
    b.add_tool_arguments(2.0, "{}")
    # unhashable and non-numeric indexes are choice 0; 1.0 is choice 1
    assert [(c["index"], c["message"]["content"]) for c in b.choices_data()] == [
        (0, "ac"),
        (1, "b"),
    ]
    assert [c["arguments"] for c in b.tool_calls()] == ['{"a":1}', "{}"]


def test_pieces_of_text_at_once() -> None:
    b = ResponseBuilder()
    b.add_texts(["He", "llo", [" "], None, "!"])  # what is not text is left out
    b.add_texts([])
    assert b.choices_data()[0]["message"]["content"] == "Hello!"
    recording = ResponseBuilder(record_deltas=True)
    recording.add_texts(["He", "llo"])
    assert recording.deltas == [{"index": 0, "content": "He"}, {"index": 0, "content": "llo"}]


def test_whole_arguments_as_text_or_object_only() -> None:
    b = ResponseBuilder()
    b.set_tool_arguments(0, '{"a":1}')
    b.set_tool_arguments(1, {"b": 2})
    b.set_tool_arguments(2, ["not", "arguments"])
    b.set_tool_arguments(3, 42)
    assert [c["arguments"] for c in b.tool_calls()] == ['{"a":1}', '{"b":2}']


def test_usage_keeps_integers_only() -> None:
    b = ResponseBuilder()
    b.set_usage({"prompt_tokens": 5, "completion_tokens": "7", "total_tokens": True})  # type: ignore[typeddict-item]
    assert b.usage == {"prompt_tokens": 5}
    b.set_usage({"prompt_tokens": [1]})  # type: ignore[typeddict-item]
    assert b.usage == {"prompt_tokens": 5}  # nothing usable: the earlier usage stands


def test_error_keeps_string_fields_only() -> None:
    b = ResponseBuilder()
    b.error = {"type": ["x"], "message": "m" * 3000, "code": 500}  # type: ignore[typeddict-item]
    assert b.error == {"message": "m" * 2000}
    b.error = {"type": 1}  # type: ignore[typeddict-item]
    assert b.error is None


@pytest.mark.parametrize(
    ("total", "parts", "expected"),
    [
        (
            0.5,
            (0.1, 0.4),
            {
                "reported_cost_usd": 0.5,
                "reported_input_cost_usd": 0.1,
                "reported_output_cost_usd": 0.4,
            },
        ),
        (0, (None, None), {"reported_cost_usd": 0.0}),
        (2, ("0.1", -1), {"reported_cost_usd": 2.0}),
        ("0.5", (0.1, 0.2), {}),
        (-1, (None, None), {}),
        (float("inf"), (None, None), {}),
        (True, (None, None), {}),
    ],
)
def test_reported_cost_takes_finite_non_negative_numbers(
    total: Any, parts: tuple[Any, Any], expected: dict[str, float]
) -> None:
    b = ResponseBuilder()
    b.report_cost(total, *parts)
    assert b.attrs == expected


# --- every API decoder, fed JSON of any shape ----------------------------------------------

EXAMPLES = int(os.environ.get("OISP_FUZZ_EXAMPLES", "60"))
HUGE = "x" * 300_000
FIELD_NAMES = [
    "type",
    "text",
    "name",
    "id",
    "index",
    "content",
    "delta",
    "arguments",
    "usage",
    "model",
    "role",
    "finish_reason",
    "stop_reason",
    "input",
    "parts",
    "message",
]
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.sampled_from([HUGE, "", "\x00", "-1", "STOP", "tool_use", -1, 2**70, 1e308, 0.5]),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(FIELD_NAMES) | st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*prefix, i))
    return out


def _mutate(data: st.DataObject, doc: Any) -> Any:
    """`doc` with one path replaced (by any JSON, or the value wrapped in a list) or removed."""
    path = data.draw(st.sampled_from(_paths(doc)), label="path")
    op = data.draw(st.sampled_from(["replace", "replace", "wrap", "remove"]), label="op")
    if not path:
        return [doc] if op == "wrap" else data.draw(VALUES, label="value")
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    key = path[-1]
    if op == "remove":
        del parent[key]
    elif op == "wrap":
        parent[key] = [parent[key]]
    else:
        parent[key] = data.draw(VALUES, label="value")
    return doc


@contextmanager
def _internal_errors(counters: Counters) -> Iterator[list[str]]:
    """Tracebacks the pipeline logs when a decoder raises: the assertion message."""
    found: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            found.append(self.format(record))

    handler = Keep()
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("oisp_sensor.pipeline")
    logger.addHandler(handler)
    try:
        yield found
    finally:
        logger.removeHandler(handler)


def decode_through_pipeline(
    g: Golden, request: Any, items: list[Any]
) -> tuple[list[Event], Counters]:
    """The exchange through the pipeline as `record` wires it (decoder with streaming
    chunks on, the pricing enricher), so an exception would be counted, not raised."""
    counters = Counters()
    pipeline = Pipeline(
        decoder=Decoder(hasher=HASHER, counters=counters, record_chunks=True),
        enrichers=[PricingEnricher(counters=counters)],
        counters=counters,
    )
    raws = captures(
        [(request_bytes(g, request), response_bytes(g, items))], host=g.host, port=g.port
    )
    events: list[Event] = []
    with _internal_errors(counters) as tracebacks:
        for raw in raws:
            events += pipeline.process(raw)
        events += pipeline.finish(pipeline.decoder.close_all())
    assert counters.get("decode.internal_errors") == 0, "\n".join(tracebacks)
    assert counters.get("enrich.errors") == 0, "\n".join(tracebacks)
    return events, counters


def check(g: Golden, events: list[Event], counters: Counters) -> list[dict[str, Any]]:
    dicts = [e.to_dict() for e in events]
    assert_valid_events(dicts)
    types = [e["event_type"] for e in dicts]
    assert types.count("ai.request") == 1 and types.count("ai.response") == 1, types
    for event in dicts:
        if event["event_type"] in ("ai.request", "ai.response"):
            assert event["attrs"]["api"] == g.api
    assert counters.get("decode.errors") == 0  # the framing stayed valid: nothing broke
    response = next(e for e in dicts if e["event_type"] == "ai.response")
    assert types.count("agent.tool_call") == response["data"]["tool_calls_count"]
    return dicts


ALL = [g for goldens in GOLDENS.values() for g in goldens]


@pytest.mark.parametrize("g", ALL, ids=lambda g: f"{g.api}/{g.name}")
def test_each_golden_decodes_completely(g: Golden) -> None:
    """The starting points are meaningful: each decodes in full, by its decoder."""
    events, counters = decode_through_pipeline(g, g.request, list(g.items))
    dicts = check(g, events, counters)
    for event in dicts:
        assert event["confidence"]["completeness"] == "full", event["confidence"]
    assert counters.get("decode.message_problems") == 0


@pytest.mark.parametrize("api", sorted(GOLDENS))
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_json_of_any_shape_yields_only_valid_events(api: str, data: st.DataObject) -> None:
    g = data.draw(st.sampled_from(GOLDENS[api]), label="golden")
    request, items = copy.deepcopy(g.request), copy.deepcopy(list(g.items))
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        target = data.draw(st.integers(-1, len(items) - 1), label="target")  # -1: the request
        if target < 0:
            request = _mutate(data, request)
        else:
            items[target] = _mutate(data, items[target])
    events, counters = decode_through_pipeline(g, request, items)
    check(g, events, counters)


def test_gemini_function_call_named_by_a_list() -> None:
    """The fuzz case that once crashed a connection ("'list' object has no attribute
    'lower'"): the call survives with a derived id, its name is dropped, nothing breaks."""
    (g,) = [g for g in GOLDENS["gemini"] if g.name == "sse"]
    chunk = copy.deepcopy(g.items[1])
    chunk["candidates"][0]["content"]["parts"][2]["functionCall"]["name"] = ["get_weather"]
    events, counters = decode_through_pipeline(g, g.request, [chunk])
    dicts = check(g, events, counters)
    (call,) = [e for e in dicts if e["event_type"] == "agent.tool_call"]
    assert call["data"]["tool"] == {"name": "unknown", "type": "other"}
    assert call["data"]["call_id"] == "oisp_call_3_0_unknown"
    assert call["data"]["arguments"] == {"city": "Rome"}
    response = next(e for e in dicts if e["event_type"] == "ai.response")
    assert response["confidence"]["completeness"] == "full"
