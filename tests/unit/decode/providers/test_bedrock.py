"""AWS Bedrock Runtime: Converse, ConverseStream, InvokeModel (+ stream), eventstream framing."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import quote

from hypothesis import given, settings
from hypothesis import strategies as st

from oisp_sensor.decode.eventstream import encode_message
from tests.helpers import http_request, http_response
from tests.unit.decode.providers.exchange import comparable, one, run

HOST = "bedrock-runtime.us-east-1.amazonaws.com"
CLAUDE = "anthropic.claude-3-5-sonnet-20240620-v1:0"
QUESTION = {"role": "user", "content": [{"text": "Weather in Paris?"}]}
TOOL_CONFIG = {
    "tools": [
        {
            "toolSpec": {
                "name": "get_weather",
                "description": "Weather",
                "inputSchema": {"json": {"type": "object"}},
            }
        }
    ],
    "toolChoice": {"auto": {}},
}
SIGV4 = {
    "Authorization": "AWS4-HMAC-SHA256 Credential=AKIAEXAMPLE/20260101/us-east-1/bedrock/"
    "aws4_request, SignedHeaders=host, Signature=abc"
}


def request(model: str, op: str, body: dict[str, Any]) -> bytes:
    return http_request(f"/model/{quote(model, safe='')}/{op}", body, host=HOST, headers=SIGV4)


def event(name: str, payload: dict[str, Any]) -> bytes:
    return encode_message(
        {":event-type": name, ":content-type": "application/json", ":message-type": "event"},
        json.dumps({**payload, "p": "abcdefgh"}).encode(),
    )


def eventstream(*frames: bytes) -> bytes:
    return http_response(content_type="application/vnd.amazon.eventstream", chunks=list(frames))


def bedrock(exchanges: list[tuple[bytes, bytes]], splits: list[int] | None = None) -> Any:
    return run(exchanges, host=HOST, splits=splits)


USAGE = {
    "inputTokens": 20,
    "outputTokens": 15,
    "totalTokens": 35,
    "cacheReadInputTokens": 100,
    "cacheWriteInputTokens": 50,
}
NORMALISED = {
    "prompt_tokens": 170,
    "completion_tokens": 15,
    "total_tokens": 185,
    "cached_tokens": 100,
    "cache_creation_tokens": 50,
}
STREAM_REQUEST = request(
    CLAUDE, "converse-stream", {"messages": [QUESTION], "toolConfig": TOOL_CONFIG}
)
CONVERSE_STREAM = eventstream(
    event("messageStart", {"role": "assistant"}),
    event(
        "contentBlockDelta",
        {"contentBlockIndex": 0, "delta": {"reasoningContent": {"text": "Use the tool."}}},
    ),
    event("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"text": "Checking"}}),
    event("contentBlockStop", {"contentBlockIndex": 1}),
    event(
        "contentBlockStart",
        {
            "contentBlockIndex": 2,
            "start": {"toolUse": {"toolUseId": "tooluse_1", "name": "get_weather"}},
        },
    ),
    event(
        "contentBlockDelta", {"contentBlockIndex": 2, "delta": {"toolUse": {"input": '{"city":'}}}
    ),
    event(
        "contentBlockDelta", {"contentBlockIndex": 2, "delta": {"toolUse": {"input": '"Paris"}'}}}
    ),
    event("contentBlockStop", {"contentBlockIndex": 2}),
    event("messageStop", {"stopReason": "tool_use"}),
    event("metadata", {"usage": USAGE, "metrics": {"latencyMs": 812}}),
)


def test_converse_request_and_response() -> None:
    body = {
        "system": [{"text": "Be brief."}, {"cachePoint": {"type": "default"}}],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"text": "What is this?"},
                    {"image": {"format": "png", "source": {"bytes": "iVBOR"}}},
                ],
            }
        ],
        "toolConfig": TOOL_CONFIG,
        "inferenceConfig": {
            "maxTokens": 512,
            "temperature": 0.5,
            "topP": 0.9,
            "stopSequences": ["X"],
        },
    }
    reply = {
        "output": {
            "message": {
                "role": "assistant",
                "content": [
                    {"text": "A cat."},
                    {
                        "toolUse": {
                            "toolUseId": "tooluse_9",
                            "name": "get_weather",
                            "input": {"city": "Oslo"},
                        }
                    },
                ],
            }
        },
        "stopReason": "tool_use",
        "usage": USAGE,
        "metrics": {"latencyMs": 420},
    }
    events = bedrock([(request(CLAUDE, "converse", body), http_response(reply))])
    req = one(events, "ai.request")
    data = req["data"]
    assert req["attrs"]["api"] == "bedrock.converse"
    assert data["model"] == {"id": CLAUDE, "family": "claude-3.5"}
    assert data["provider"]["name"] == "aws_bedrock" and data["provider"]["region"] == "us-east-1"
    assert [(m["role"], m["content"]) for m in data["messages"]] == [
        ("system", "Be brief."),
        ("user", "What is this?"),
    ]
    assert data["image_count"] == 1
    assert data["tools"] == [{"type": "function", "name": "get_weather", "description": "Weather"}]
    assert data["tool_choice"] == "auto"
    assert data["parameters"] == {
        "max_tokens": 512,
        "temperature": 0.5,
        "top_p": 0.9,
        "stop": ["X"],
    }
    response = one(events, "ai.response")
    resp = response["data"]
    assert resp["choices"][0]["message"]["content"] == "A cat."
    assert resp["tool_calls"][0]["id"] == "tooluse_9"
    assert resp["finish_reason"] == "tool_calls"
    assert resp["usage"] == NORMALISED
    assert response["attrs"]["provider_latency_ms"] == 420


def test_converse_stream_events() -> None:
    events = bedrock([(STREAM_REQUEST, CONVERSE_STREAM)])
    response = one(events, "ai.response")
    resp = response["data"]
    assert response["attrs"]["http"]["stream_format"] == "eventstream"
    assert resp["choices"][0]["message"]["content"] == "Checking"
    assert resp["choices"][0]["message"]["thinking"] == "Use the tool."
    assert resp["tool_calls"][0]["id"] == "tooluse_1"
    assert resp["tool_calls"][0]["arguments"] == '{"city":"Paris"}'
    assert resp["finish_reason"] == "tool_calls" and resp["usage"] == NORMALISED
    assert response["attrs"]["provider_latency_ms"] == 812
    assert one(events, "agent.tool_call")["data"]["arguments"] == {"city": "Paris"}


def test_tool_result_round_trip() -> None:
    history = [
        QUESTION,
        {
            "role": "assistant",
            "content": [
                {
                    "toolUse": {
                        "toolUseId": "tooluse_1",
                        "name": "get_weather",
                        "input": {"city": "Paris"},
                    }
                }
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "toolResult": {
                        "toolUseId": "tooluse_1",
                        "content": [{"json": {"temp": 21}}],
                        "status": "success",
                    }
                }
            ],
        },
    ]
    second = request(CLAUDE, "converse", {"messages": history, "toolConfig": TOOL_CONFIG})
    answer = http_response(
        {
            "output": {"message": {"role": "assistant", "content": [{"text": "21C"}]}},
            "stopReason": "end_turn",
            "usage": USAGE,
        }
    )
    events = bedrock([(STREAM_REQUEST, CONVERSE_STREAM), (second, answer)])
    call, result = one(events, "agent.tool_call"), one(events, "agent.tool_result")
    assert result["data"]["call_id"] == "tooluse_1" and result["data"]["success"] is True
    assert result["data"]["result"] == '{"temp":21}'
    assert {"event_id": call["event_id"], "relationship": "parent"} in result["related_events"]


def test_stream_exception_and_bad_crc_message() -> None:
    good = event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Hi"}})
    corrupt = bytearray(
        event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "XX"}})
    )
    corrupt[-6] ^= 0xFF  # payload byte: the message CRC no longer matches
    throttled = encode_message(
        {
            ":message-type": "exception",
            ":exception-type": "throttlingException",
            ":content-type": "application/json",
        },
        b'{"message":"Too many requests, please wait before trying again."}',
    )
    events = bedrock([(STREAM_REQUEST, eventstream(good, bytes(corrupt), throttled))])
    response = one(events, "ai.response")
    assert response["data"]["choices"][0]["message"]["content"] == "Hi"
    assert response["data"]["success"] is False
    assert response["data"]["error"] == {
        "type": "throttlingException",
        "message": "Too many requests, please wait before trying again.",
    }
    assert response["confidence"]["completeness"] == "partial"
    assert any("CRC" in r for r in response["confidence"]["limitations"])


def test_http_error_with_amzn_error_type() -> None:
    err = http_response(
        {"message": "The provided model identifier is invalid."},
        status=400,
        reason="Bad Request",
        headers={"x-amzn-ErrorType": "ValidationException:http://internal.amazon.com/"},
    )
    events = bedrock([(request("nope", "converse", {"messages": [QUESTION]}), err)])
    resp = one(events, "ai.response")["data"]
    assert resp["error"] == {
        "message": "The provided model identifier is invalid.",
        "type": "ValidationException",
    }


ANTHROPIC_BODY = {
    "anthropic_version": "bedrock-2023-05-31",
    "max_tokens": 256,
    "system": "Be brief.",
    "messages": [{"role": "user", "content": "Hello"}],
}


def anthropic_chunk(obj: dict[str, Any]) -> bytes:
    return event("chunk", {"bytes": base64.b64encode(json.dumps(obj).encode()).decode()})


INVOKE_STREAM_REQUEST = request(CLAUDE, "invoke-with-response-stream", ANTHROPIC_BODY)
INVOKE_STREAM = eventstream(
    anthropic_chunk(
        {
            "type": "message_start",
            "message": {
                "id": "msg_bdrk_1",
                "model": "claude-3-5-sonnet-20240620",
                "role": "assistant",
                "content": [],
                "usage": {"input_tokens": 12, "output_tokens": 1},
            },
        }
    ),
    anthropic_chunk(
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
    ),
    anthropic_chunk(
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi!"}}
    ),
    anthropic_chunk({"type": "content_block_stop", "index": 0}),
    anthropic_chunk(
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn"},
            "usage": {"output_tokens": 4},
        }
    ),
    anthropic_chunk(
        {
            "type": "message_stop",
            "amazon-bedrock-invocationMetrics": {
                "inputTokenCount": 12,
                "outputTokenCount": 4,
                "invocationLatency": 700,
                "firstByteLatency": 300,
            },
        }
    ),
)


def test_invoke_model_anthropic_whole_and_streamed() -> None:
    reply = {
        "id": "msg_bdrk_2",
        "type": "message",
        "role": "assistant",
        "model": "claude-3-5-sonnet-20240620",
        "content": [{"type": "text", "text": "Hello there."}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 12, "output_tokens": 5},
    }
    events = bedrock(
        [
            (request(CLAUDE, "invoke", ANTHROPIC_BODY), http_response(reply)),
            (INVOKE_STREAM_REQUEST, INVOKE_STREAM),
        ]
    )
    first_req, second_req = (e for e in events if e["event_type"] == "ai.request")
    assert first_req["attrs"]["api"] == "bedrock.invoke"
    assert first_req["data"]["model"]["id"] == CLAUDE
    assert first_req["data"]["has_system_prompt"] is True
    assert (first_req["data"]["streaming"], second_req["data"]["streaming"]) == (False, True)
    whole, streamed = (e["data"] for e in events if e["event_type"] == "ai.response")
    assert whole["choices"][0]["message"]["content"] == "Hello there."
    assert whole["usage"] == {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}
    assert streamed["choices"][0]["message"]["content"] == "Hi!"
    assert streamed["provider_request_id"] == "msg_bdrk_1" and streamed["finish_reason"] == "stop"
    assert streamed["usage"] == {"prompt_tokens": 12, "completion_tokens": 4, "total_tokens": 16}


def test_invoke_model_other_vendors() -> None:
    llama = request(
        "meta.llama3-1-70b-instruct-v1:0",
        "invoke",
        {"prompt": "<|begin_of_text|>Hi", "max_gen_len": 64, "temperature": 0.2},
    )
    llama_reply = http_response(
        {
            "generation": "Hello!",
            "prompt_token_count": 9,
            "generation_token_count": 3,
            "stop_reason": "stop",
        }
    )
    titan = request(
        "amazon.titan-embed-text-v2:0", "invoke", {"inputText": "hello", "dimensions": 4}
    )
    titan_reply = http_response(
        {"embedding": [0.1, 0.2, 0.3, 0.4], "inputTextTokenCount": 2},
        headers={"X-Amzn-Bedrock-Input-Token-Count": "2"},
    )
    mistral = request(
        "mistral.mistral-7b-instruct-v0:2", "invoke", {"prompt": "<s>[INST] Hi [/INST]"}
    )
    mistral_reply = http_response(
        {"outputs": [{"text": "Bonjour", "stop_reason": "length"}]},
        headers={"X-Amzn-Bedrock-Input-Token-Count": "7", "X-Amzn-Bedrock-Output-Token-Count": "2"},
    )
    events = bedrock([(llama, llama_reply), (titan, titan_reply), (mistral, mistral_reply)])
    requests = [e for e in events if e["event_type"] == "ai.request"]
    assert requests[0]["data"]["parameters"] == {"max_tokens": 64, "temperature": 0.2}
    assert requests[0]["data"]["model"]["family"] == "llama-3.1"
    assert requests[1]["data"]["request_type"] == "embedding"
    l_resp, t_resp, m_resp = (e for e in events if e["event_type"] == "ai.response")
    assert l_resp["data"]["choices"][0]["message"]["content"] == "Hello!"
    assert l_resp["data"]["usage"] == {
        "prompt_tokens": 9,
        "completion_tokens": 3,
        "total_tokens": 12,
    }
    assert t_resp["attrs"]["embedding"] == {"count": 1, "dimensions": 4}
    assert t_resp["data"]["usage"]["prompt_tokens"] == 2
    assert m_resp["data"]["finish_reason"] == "length"
    assert m_resp["data"]["usage"] == {
        "prompt_tokens": 7,
        "completion_tokens": 2,
        "total_tokens": 9,
    }
    assert m_resp["attrs"]["usage_source"] == "bedrock_metrics"


def test_invoke_nova_stream_reuses_converse_events() -> None:
    nova = "us.amazon.nova-lite-v1:0"
    req = request(
        nova,
        "invoke-with-response-stream",
        {
            "schemaVersion": "messages-v1",
            "messages": [QUESTION],
            "inferenceConfig": {"maxTokens": 100},
        },
    )
    stream = eventstream(
        anthropic_chunk({"messageStart": {"role": "assistant"}}),
        anthropic_chunk(
            {"contentBlockDelta": {"delta": {"text": "Sunny"}, "contentBlockIndex": 0}}
        ),
        anthropic_chunk({"messageStop": {"stopReason": "end_turn"}}),
        anthropic_chunk({"metadata": {"usage": {"inputTokens": 5, "outputTokens": 1}}}),
    )
    events = bedrock([(req, stream)])
    assert one(events, "ai.request")["data"]["parameters"] == {"max_tokens": 100}
    resp = one(events, "ai.response")["data"]
    assert resp["choices"][0]["message"]["content"] == "Sunny"
    assert resp["model"]["family"] == "amazon-nova"
    assert resp["usage"] == {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}


WHOLE = comparable(bedrock([(STREAM_REQUEST, CONVERSE_STREAM)]))
INVOKE_WHOLE = comparable(bedrock([(INVOKE_STREAM_REQUEST, INVOKE_STREAM)]))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=len(CONVERSE_STREAM) - 1), max_size=16))
def test_any_chunk_split_of_converse_stream(offsets: list[int]) -> None:
    assert comparable(bedrock([(STREAM_REQUEST, CONVERSE_STREAM)], splits=offsets)) == WHOLE


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=len(INVOKE_STREAM) - 1), max_size=16))
def test_any_chunk_split_of_invoke_stream(offsets: list[int]) -> None:
    assert (
        comparable(bedrock([(INVOKE_STREAM_REQUEST, INVOKE_STREAM)], splits=offsets))
        == INVOKE_WHOLE
    )
