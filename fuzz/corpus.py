"""Seed traffic for fuzzing: one valid exchange per API shape the decoder knows.

Mutating valid traffic reaches far deeper than random bytes (a random byte string
is almost never an HTTP request for a known host), so every fuzzer starts from
these: a request and its response as they cross the wire, with the host that
routes them to the provider decoder. Both the hypothesis tests
(tests/security/test_fuzz_*.py) and the atheris harnesses (fuzz/run.py) use them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from tests.helpers import chunk_body, http_request, http_response, sse_events

from oisp_sensor.decode.eventstream import encode_message


@dataclass(frozen=True, slots=True)
class Seed:
    name: str
    host: str
    port: int
    request: bytes
    response: bytes


def _sse(*events: Any) -> bytes:
    return b"".join(sse_events(*events))


def _chat_request(host: str = "api.openai.com", stream: bool = False, **extra: Any) -> bytes:
    body = {
        "model": "gpt-4o",
        "stream": stream,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image_url"}]},
            {
                "role": "assistant",
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "42"},
        ],
        "tools": [{"type": "function", "function": {"name": "f", "description": "d"}}],
        "temperature": 0.2,
        **extra,
    }
    return http_request(
        "/v1/chat/completions", body, host=host, headers={"Authorization": "Bearer sk-x"}
    )


def seeds() -> list[Seed]:
    out: list[Seed] = []
    chat_json = {
        "id": "chatcmpl-1",
        "model": "gpt-4o",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "Hello",
                    "tool_calls": [
                        {
                            "id": "c2",
                            "type": "function",
                            "function": {"name": "f", "arguments": '{"a":1}'},
                        }
                    ],
                },
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
    }
    out.append(
        Seed("openai.chat", "api.openai.com", 443, _chat_request(), http_response(chat_json))
    )
    chat_stream = _sse(
        {"id": "c", "model": "gpt-4o", "choices": [{"index": 0, "delta": {"role": "assistant"}}]},
        {"id": "c", "choices": [{"index": 0, "delta": {"content": "Hel"}}]},
        {
            "id": "c",
            "choices": [
                {
                    "index": 0,
                    "delta": {
                        "tool_calls": [
                            {"index": 0, "id": "c3", "function": {"name": "f", "arguments": '{"a'}}
                        ]
                    },
                }
            ],
        },
        {
            "id": "c",
            "choices": [
                {
                    "index": 0,
                    "delta": {"tool_calls": [{"index": 0, "function": {"arguments": '":2}'}}]},
                }
            ],
        },
        {
            "id": "c",
            "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 4},
        },
        "[DONE]",
    )
    out.append(
        Seed(
            "openai.chat.sse",
            "api.openai.com",
            443,
            _chat_request(stream=True),
            http_response(
                content_type="text/event-stream", chunks=[chat_stream[:40], chat_stream[40:]]
            ),
        )
    )
    responses_req = http_request(
        "/v1/responses",
        {
            "model": "gpt-4.1",
            "instructions": "x",
            "input": [{"role": "user", "content": "hi"}],
            "stream": True,
        },
    )
    responses_stream = _sse(
        (
            "response.created",
            {"type": "response.created", "response": {"id": "resp_1", "model": "gpt-4.1"}},
        ),
        ("response.output_text.delta", {"type": "response.output_text.delta", "delta": "Hi"}),
        (
            "response.completed",
            {
                "type": "response.completed",
                "response": {
                    "id": "resp_1",
                    "status": "completed",
                    "usage": {"input_tokens": 3, "output_tokens": 1, "total_tokens": 4},
                },
            },
        ),
    )
    out.append(
        Seed(
            "openai.responses",
            "api.openai.com",
            443,
            responses_req,
            http_response(responses_stream, content_type="text/event-stream"),
        )
    )
    anthropic_req = http_request(
        "/v1/messages",
        {
            "model": "claude-sonnet-4-5",
            "max_tokens": 100,
            "stream": True,
            "system": [{"type": "text", "text": "sys"}],
            "messages": [
                {"role": "user", "content": "hi"},
                {
                    "role": "assistant",
                    "content": [{"type": "tool_use", "id": "tu1", "name": "f", "input": {}}],
                },
                {
                    "role": "user",
                    "content": [{"type": "tool_result", "tool_use_id": "tu1", "content": "ok"}],
                },
            ],
        },
        host="api.anthropic.com",
        headers={"x-api-key": "sk-ant-x", "anthropic-version": "2023-06-01"},
    )
    anthropic_stream = _sse(
        (
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": "msg_1",
                    "model": "claude-sonnet-4-5",
                    "usage": {"input_tokens": 5},
                },
            },
        ),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "thinking", "thinking": ""},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "thinking_delta", "thinking": "hmm"},
            },
        ),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 1,
                "content_block": {"type": "tool_use", "id": "tu2", "name": "f", "input": {}},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 1,
                "delta": {"type": "input_json_delta", "partial_json": '{"q":'},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 1,
                "delta": {"type": "input_json_delta", "partial_json": "1}"},
            },
        ),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "tool_use"},
                "usage": {"output_tokens": 9},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    )
    out.append(
        Seed(
            "anthropic.messages",
            "api.anthropic.com",
            443,
            anthropic_req,
            http_response(content_type="text/event-stream", chunks=[anthropic_stream]),
        )
    )
    gemini_body = {
        "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
        "systemInstruction": {"parts": [{"text": "sys"}]},
        "tools": [{"functionDeclarations": [{"name": "f", "description": "d"}]}],
    }
    gemini_chunk = {
        "candidates": [
            {
                "content": {
                    "role": "model",
                    "parts": [{"text": "Hi"}, {"functionCall": {"name": "f", "args": {"a": 1}}}],
                },
                "finishReason": "STOP",
            }
        ],
        "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 2, "totalTokenCount": 5},
        "modelVersion": "gemini-2.0-flash",
    }
    out.append(
        Seed(
            "gemini.sse",
            "generativelanguage.googleapis.com",
            443,
            http_request(
                "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse&key=AIzaX",
                gemini_body,
                host="generativelanguage.googleapis.com",
            ),
            http_response(_sse(gemini_chunk, gemini_chunk), content_type="text/event-stream"),
        )
    )
    out.append(
        Seed(
            "gemini.json_array",
            "generativelanguage.googleapis.com",
            443,
            http_request(
                "/v1beta/models/gemini-2.0-flash:streamGenerateContent",
                gemini_body,
                host="generativelanguage.googleapis.com",
            ),
            http_response(
                content_type="application/json",
                chunks=[
                    b"[" + json.dumps(gemini_chunk).encode(),
                    b",\r\n" + json.dumps(gemini_chunk).encode() + b"]",
                ],
            ),
        )
    )
    ollama_lines = b"".join(
        json.dumps(x).encode() + b"\n"
        for x in (
            {"model": "llama3", "message": {"role": "assistant", "content": "Hi"}, "done": False},
            {
                "model": "llama3",
                "message": {"role": "assistant", "content": "!"},
                "done": True,
                "done_reason": "stop",
                "prompt_eval_count": 4,
                "eval_count": 2,
            },
        )
    )
    out.append(
        Seed(
            "ollama.chat",
            "localhost",
            11434,
            http_request(
                "/api/chat",
                {"model": "llama3", "messages": [{"role": "user", "content": "hi"}]},
                host="localhost:11434",
            ),
            http_response(content_type="application/x-ndjson", chunks=[ollama_lines]),
        )
    )
    bedrock_stream = b"".join(
        encode_message(
            {":message-type": "event", ":event-type": name, ":content-type": "application/json"},
            json.dumps(payload).encode(),
        )
        for name, payload in (
            ("messageStart", {"role": "assistant"}),
            ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Hi"}}),
            ("messageStop", {"stopReason": "end_turn"}),
            (
                "metadata",
                {
                    "usage": {"inputTokens": 3, "outputTokens": 1, "totalTokens": 4},
                    "metrics": {"latencyMs": 5},
                },
            ),
        )
    )
    out.append(
        Seed(
            "bedrock.converse_stream",
            "bedrock-runtime.us-east-1.amazonaws.com",
            443,
            http_request(
                "/model/anthropic.claude-3-haiku-20240307-v1:0/converse-stream",
                {
                    "messages": [{"role": "user", "content": [{"text": "hi"}]}],
                    "system": [{"text": "s"}],
                },
                host="bedrock-runtime.us-east-1.amazonaws.com",
                headers={
                    "Authorization": "AWS4-HMAC-SHA256 Credential=AKIAZ7QH4N2XK9P3M5TB/20250101"
                    "/us-east-1/bedrock/aws4_request, Signature=abc"
                },
            ),
            http_response(bedrock_stream, content_type="application/vnd.amazon.eventstream"),
        )
    )
    cohere_stream = _sse(
        {"type": "message-start", "id": "m1"},
        {"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": "Hi"}}}},
        {
            "type": "message-end",
            "delta": {
                "finish_reason": "COMPLETE",
                "usage": {"tokens": {"input_tokens": 2, "output_tokens": 1}},
            },
        },
    )
    out.append(
        Seed(
            "cohere.chat",
            "api.cohere.com",
            443,
            http_request(
                "/v2/chat",
                {
                    "model": "command-r",
                    "stream": True,
                    "messages": [{"role": "user", "content": "hi"}],
                },
                host="api.cohere.com",
            ),
            http_response(cohere_stream, content_type="text/event-stream"),
        )
    )
    out.append(
        Seed(
            "openai.chat.gzip_chunked_request",
            "api.openai.com",
            443,
            _gzip_chunked(_chat_request()),
            http_response(chat_json, headers={"Connection": "close"}),
        )
    )
    return out


def _gzip_chunked(request: bytes) -> bytes:
    """The same request with a gzip-encoded, chunked body (SDKs do send these)."""
    import gzip

    head, _, body = request.partition(b"\r\n\r\n")
    lines = [line for line in head.split(b"\r\n") if not line.lower().startswith(b"content-length")]
    lines += [b"Content-Encoding: gzip", b"Transfer-Encoding: chunked"]
    packed = gzip.compress(body)
    return b"\r\n".join(lines) + b"\r\n\r\n" + chunk_body([packed[:10], packed[10:]])


SEEDS = seeds()
