"""OpenAI legacy Completions and Embeddings."""

from __future__ import annotations

import base64
import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers import http_request, http_response, sse_events
from tests.unit.decode.providers.exchange import comparable, one, run

COMPLETION_REQUEST = http_request(
    "/v1/completions",
    {
        "model": "gpt-3.5-turbo-instruct",
        "prompt": ["Say hi", "Say bye"],
        "max_tokens": 16,
        "temperature": 0,
        "stop": "\n",
        "stream": True,
        "stream_options": {"include_usage": True},
    },
)
COMPLETION_STREAM = http_response(
    content_type="text/event-stream",
    chunks=sse_events(
        {
            "id": "cmpl-1",
            "object": "text_completion",
            "model": "gpt-3.5-turbo-instruct",
            "choices": [{"index": 0, "text": "Hi", "finish_reason": None}],
        },
        {"id": "cmpl-1", "choices": [{"index": 1, "text": "Bye", "finish_reason": None}]},
        {"id": "cmpl-1", "choices": [{"index": 0, "text": "!", "finish_reason": "stop"}]},
        {"id": "cmpl-1", "choices": [{"index": 1, "text": "", "finish_reason": "length"}]},
        {
            "id": "cmpl-1",
            "choices": [],
            "usage": {"prompt_tokens": 6, "completion_tokens": 3, "total_tokens": 9},
        },
        "[DONE]",
    ),
)


def test_completion_request_and_stream() -> None:
    events = run([(COMPLETION_REQUEST, COMPLETION_STREAM)])
    req = one(events, "ai.request")
    assert req["attrs"]["api"] == "openai.completions"
    data = req["data"]
    assert data["request_type"] == "completion" and data["streaming"] is True
    assert [m["content"] for m in data["messages"]] == ["Say hi", "Say bye"]
    assert data["parameters"] == {"temperature": 0, "max_tokens": 16, "stop": ["\n"]}
    resp = one(events, "ai.response")["data"]
    assert [(c["index"], c["message"]["content"], c["finish_reason"]) for c in resp["choices"]] == [
        (0, "Hi!", "stop"),
        (1, "Bye", "length"),
    ]
    assert resp["usage"] == {"prompt_tokens": 6, "completion_tokens": 3, "total_tokens": 9}
    assert resp["provider_request_id"] == "cmpl-1"


def test_completion_json_token_prompt_and_error() -> None:
    tokens = http_request(
        "/v1/completions", {"model": "davinci-002", "prompt": [[1, 2, 3], [4, 5]], "n": 2}
    )
    body = {
        "id": "cmpl-2",
        "model": "davinci-002",
        "choices": [{"index": 0, "text": "ok", "finish_reason": "stop"}],
    }
    bad = http_response(
        {"error": {"message": "bad prompt", "type": "invalid_request_error"}},
        status=400,
        reason="Bad Request",
    )
    events = run([(tokens, http_response(body)), (tokens, bad)])
    first, second = (e for e in events if e["event_type"] == "ai.request")
    assert first["data"]["estimated_tokens"] == 5  # token ids are counted, not estimated
    assert first["attrs"]["prompt_token_ids"] == 5
    assert first["data"]["model"]["family"] == "gpt-3"
    ok, failed = (e["data"] for e in events if e["event_type"] == "ai.response")
    assert ok["choices"][0]["message"]["content"] == "ok" and "usage" not in ok
    assert failed["success"] is False and failed["error"]["message"] == "bad prompt"


def _b64_vector(values: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()


def test_embeddings_count_dimensions_and_usage_never_vectors() -> None:
    req = http_request(
        "/v1/embeddings",
        {
            "model": "text-embedding-3-small",
            "input": ["a cat", "a dog", "a bird"],
            "dimensions": 4,
            "encoding_format": "base64",
        },
    )
    body = {
        "object": "list",
        "model": "text-embedding-3-small",
        "data": [
            {"object": "embedding", "index": i, "embedding": _b64_vector([0.5] * 4)}
            for i in range(3)
        ],
        "usage": {"prompt_tokens": 6, "total_tokens": 6},
    }
    events = run([(req, http_response(body))])
    request = one(events, "ai.request")
    assert request["data"]["request_type"] == "embedding"
    assert "messages" not in request["data"]
    assert request["data"]["parameters"] == {"dimensions": 4, "encoding_format": "base64"}
    assert request["attrs"]["input_count"] == 3
    response = one(events, "ai.response")
    assert response["attrs"]["embedding"] == {"count": 3, "dimensions": 4}
    assert response["data"]["usage"] == {"prompt_tokens": 6, "total_tokens": 6}
    assert "choices" not in response["data"]
    assert _b64_vector([0.5] * 4) not in str(response)


def test_embeddings_float_vectors_single_input_and_error() -> None:
    req = http_request("/v1/embeddings", {"model": "text-embedding-3-large", "input": "hello"})
    body = {
        "data": [{"embedding": [0.1, 0.2, 0.3]}],
        "model": "text-embedding-3-large",
        "usage": {"prompt_tokens": 1, "total_tokens": 1},
    }
    err = http_response(
        {"error": {"message": "too long", "type": "invalid_request_error"}},
        status=400,
        reason="Bad Request",
    )
    events = run([(req, http_response(body)), (req, err)])
    assert one(events[:2], "ai.request")["attrs"]["input_count"] == 1
    ok, failed = (e for e in events if e["event_type"] == "ai.response")
    assert ok["attrs"]["embedding"] == {"count": 1, "dimensions": 3}
    assert failed["data"]["error"]["message"] == "too long"


WHOLE = comparable(run([(COMPLETION_REQUEST, COMPLETION_STREAM)]))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=len(COMPLETION_STREAM) - 1), max_size=12))
def test_any_chunk_split_gives_the_same_events(offsets: list[int]) -> None:
    assert comparable(run([(COMPLETION_REQUEST, COMPLETION_STREAM)], splits=offsets)) == WHOLE
