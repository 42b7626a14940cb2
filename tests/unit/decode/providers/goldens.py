"""Valid traffic of every API shape, kept as JSON values so tests can mutate it field by field.

A `Golden` is one exchange: the request body and the response body's JSON values in
order (one for a JSON body; one per SSE event, NDJSON line, array element or event
stream message otherwise), plus how the server frames them. `request_bytes` and
`response_bytes` turn a (possibly mutated) golden back into the bytes a capture
would see, with framing that stays valid whatever the JSON became — so a test of
"JSON of any shape" reaches the provider decoders instead of breaking HTTP.

The bodies copy the providers' documented wire formats and touch every field the
decoders read (messages, tools, tool results, parameters; text, thinking, tool calls,
finish reasons, usage, ids, errors, costs).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

from oisp_sensor.decode.eventstream import encode_message
from tests.helpers import chunk_body

Framing = str  # "json" | "sse" | "ndjson" | "json_array" | "eventstream" | "invoke_stream"


@dataclass(frozen=True)
class Golden:
    name: str
    api: str  # the decoder that must read it (attrs.api of its events)
    host: str
    path: str
    request: Any
    framing: Framing
    items: tuple[Any, ...]
    names: tuple[str | None, ...] = ()  # SSE `event:` / event stream `:event-type`, per item
    port: int = 443
    sse_done: bool = False  # OpenAI's `data: [DONE]` at the end
    headers: dict[str, str] = field(default_factory=dict)

    def name_of(self, i: int) -> str | None:
        return self.names[i] if i < len(self.names) else None


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def request_bytes(g: Golden, body: Any) -> bytes:
    raw = _json(body)
    authority = g.host if g.port == 443 else f"{g.host}:{g.port}"
    lines = [f"POST {g.path} HTTP/1.1", f"Host: {authority}", "Content-Type: application/json"]
    lines += [f"{k}: {v}" for k, v in g.headers.items()]
    lines.append(f"Content-Length: {len(raw)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + raw


def response_bytes(g: Golden, items: list[Any]) -> bytes:
    """The response as its server frames it: chunked, one chunk per streamed message."""
    if g.framing == "json":
        return _head("application/json", f"Content-Length: {len(_json(items[0]))}") + _json(
            items[0]
        )
    if g.framing == "sse":
        frames = []
        for i, item in enumerate(items):
            name = g.name_of(i)
            event = f"event: {name}\n".encode() if name else b""
            frames.append(event + b"data: " + _json(item) + b"\n\n")
        if g.sse_done:
            frames.append(b"data: [DONE]\n\n")
        return _chunked("text/event-stream", frames)
    if g.framing == "ndjson":
        return _chunked("application/x-ndjson", [_json(item) + b"\n" for item in items])
    if g.framing == "json_array":
        pieces = [(b"[" if i == 0 else b",\r\n") + _json(item) for i, item in enumerate(items)]
        pieces[-1] += b"]"
        return _chunked("application/json", pieces)
    if g.framing == "eventstream":
        return _chunked(
            "application/vnd.amazon.eventstream",
            [_event(g.name_of(i) or "message", _json(item)) for i, item in enumerate(items)],
        )
    if g.framing == "invoke_stream":  # vendor events, base64 inside `chunk` events
        return _chunked(
            "application/vnd.amazon.eventstream",
            [
                _event("chunk", _json({"bytes": base64.b64encode(_json(item)).decode()}))
                for item in items
            ],
        )
    raise ValueError(g.framing)


def _head(content_type: str, framing: str) -> bytes:
    return f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\n{framing}\r\n\r\n".encode()


def _chunked(content_type: str, frames: list[bytes]) -> bytes:
    return _head(content_type, "Transfer-Encoding: chunked") + chunk_body(frames)


def _event(name: str, payload: bytes) -> bytes:
    headers = {":message-type": "event", ":event-type": name, ":content-type": "application/json"}
    return encode_message(headers, payload)


# --- OpenAI Chat and the servers that copy it ----------------------------------------------

TOOLS = [
    {
        "type": "function",
        "function": {"name": "get_weather", "description": "Weather", "parameters": {}},
    }
]
CHAT_REQUEST = {
    "model": "gpt-4o",
    "stream": True,
    "messages": [
        {"role": "developer", "content": "Be brief."},
        {
            "role": "user",
            "name": "ann",
            "content": [
                {"type": "text", "text": "Weather in Paris?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "name": "get_weather", "content": "18C"},
    ],
    "tools": TOOLS,
    "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
    "temperature": 0.2,
    "max_completion_tokens": 300,
    "stop": ["END"],
    "n": 1,
}
CHAT_USAGE = {
    "prompt_tokens": 40,
    "completion_tokens": 12,
    "total_tokens": 52,
    "prompt_tokens_details": {"cached_tokens": 8},
    "completion_tokens_details": {"reasoning_tokens": 4},
}
CHAT_JSON = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "model": "gpt-4o-2024-08-06",
    "system_fingerprint": "fp_1",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "It is 18C.",
                "reasoning_content": "Look it up.",
                "tool_calls": [
                    {
                        "id": "call_2",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'},
                    }
                ],
                "function_call": {"name": "legacy", "arguments": "{}"},
            },
            "finish_reason": "tool_calls",
        },
        {"index": 1, "message": {"role": "assistant", "refusal": "No."}, "finish_reason": "stop"},
    ],
    "usage": CHAT_USAGE,
}


def _chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-2",
        "object": "chat.completion.chunk",
        "model": "gpt-4o-2024-08-06",
        "system_fingerprint": "fp_1",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        **extra,
    }


CHAT_STREAM = (
    _chunk({"role": "assistant", "content": ""}),
    _chunk({"reasoning": "Think."}),
    _chunk({"content": "It is"}),
    _chunk({"content": " 18C.", "refusal": None}),
    _chunk(
        {
            "tool_calls": [
                {
                    "index": 0,
                    "id": "call_3",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"ci'},
                }
            ]
        }
    ),
    _chunk({"tool_calls": [{"index": 0, "function": {"arguments": 'ty":"Oslo"}'}}]}),
    _chunk({}, "tool_calls"),
    {**_chunk({}), "choices": [], "usage": CHAT_USAGE, "x_groq": {"usage": CHAT_USAGE}},
    {"error": {"message": "overloaded", "type": "server_error", "code": 529}},
)

COMPAT_EXTRAS = {
    "citations": ["https://example.com/a", "https://example.com/b"],
    "search_results": [{"title": "A", "url": "https://example.com/a"}],
}
XAI_USAGE = {
    "prompt_tokens": 30,
    "completion_tokens": 10,
    "total_tokens": 45,
    "completion_tokens_details": {"reasoning_tokens": 5},
}
PERPLEXITY_USAGE = {
    "prompt_tokens": 30,
    "completion_tokens": 10,
    "total_tokens": 40,
    "search_context_size": "low",
    "citation_tokens": 3,
    "num_search_queries": 1,
    "cost": {
        "input_tokens_cost": 0.00003,
        "output_tokens_cost": 0.00015,
        "request_cost": 0.006,
        "total_cost": 0.00618,
    },
}
OPENROUTER_USAGE = {
    **CHAT_USAGE,
    "cost": 0.00042,
    "is_byok": False,
    "cost_details": {"upstream_inference_cost": None},
}

# --- OpenAI Responses -----------------------------------------------------------------------

RESPONSES_REQUEST = {
    "model": "gpt-4.1",
    "stream": True,
    "instructions": "Be brief.",
    "input": [
        {"role": "user", "content": [{"type": "input_text", "text": "Weather?"}]},
        {"type": "reasoning", "summary": [{"type": "summary_text", "text": "Use the tool."}]},
        {
            "type": "function_call",
            "call_id": "call_1",
            "name": "get_weather",
            "arguments": '{"city":"Paris"}',
        },
        {"type": "function_call_output", "call_id": "call_1", "output": "18C"},
        {"type": "message", "role": "assistant", "content": "It is 18C."},
    ],
    "tools": [{"type": "function", "name": "get_weather", "description": "Weather"}],
    "tool_choice": "auto",
    "reasoning": {"effort": "low"},
    "max_output_tokens": 200,
    "previous_response_id": "resp_0",
}
RESPONSES_USAGE = {
    "input_tokens": 20,
    "output_tokens": 10,
    "total_tokens": 30,
    "input_tokens_details": {"cached_tokens": 4, "cache_write_tokens": 2},
    "output_tokens_details": {"reasoning_tokens": 3},
}
RESPONSE_OBJECT = {
    "id": "resp_1",
    "model": "gpt-4.1-2025-04-14",
    "status": "completed",
    "output": [
        {"type": "reasoning", "summary": [{"type": "summary_text", "text": "Think."}]},
        {"type": "message", "content": [{"type": "output_text", "text": "Calling."}]},
        {
            "type": "function_call",
            "id": "fc_1",
            "call_id": "call_2",
            "name": "get_weather",
            "arguments": '{"city":"Rome"}',
        },
        {"type": "web_search_call", "id": "ws_1", "action": {"query": "rome"}},
    ],
    "usage": RESPONSES_USAGE,
    "incomplete_details": None,
    "error": None,
}
RESPONSES_STREAM = (
    {"type": "response.created", "response": {**RESPONSE_OBJECT, "status": "in_progress"}},
    {"type": "response.reasoning_summary_text.delta", "output_index": 0, "delta": "Think."},
    {"type": "response.output_text.delta", "output_index": 1, "delta": "Calling."},
    {
        "type": "response.output_item.added",
        "output_index": 2,
        "item": {"type": "function_call", "call_id": "call_2", "name": "get_weather"},
    },
    {"type": "response.function_call_arguments.delta", "output_index": 2, "delta": '{"city":'},
    {"type": "response.function_call_arguments.delta", "output_index": 2, "delta": '"Rome"}'},
    {"type": "response.output_item.done", "output_index": 2, "item": RESPONSE_OBJECT["output"][2]},
    {"type": "response.completed", "response": RESPONSE_OBJECT},
    {"type": "error", "code": "server_error", "message": "boom"},
)

# --- OpenAI Completions and Embeddings -------------------------------------------------------

COMPLETION_REQUEST = {
    "model": "gpt-3.5-turbo-instruct",
    "prompt": ["Say hi", [1, 2, 3]],
    "suffix": "!",
    "stream": True,
    "max_tokens": 20,
    "best_of": 2,
}
COMPLETION_CHUNK = {
    "id": "cmpl-1",
    "object": "text_completion",
    "model": "gpt-3.5-turbo-instruct",
    "choices": [{"index": 0, "text": "Hi", "finish_reason": None}],
}
EMBEDDING_RESPONSE = {
    "object": "list",
    "model": "text-embedding-3-small",
    "data": [
        {"object": "embedding", "index": 0, "embedding": [0.1, 0.2, 0.3]},
        {"object": "embedding", "index": 1, "embedding": "AACAPwAAAEA="},
    ],
    "usage": {"prompt_tokens": 5, "total_tokens": 5},
}

# --- Anthropic Messages ---------------------------------------------------------------------

ANTHROPIC_REQUEST = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 1024,
    "stream": True,
    "system": [{"type": "text", "text": "Be brief."}],
    "messages": [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Weather?"},
                {"type": "image", "source": {"type": "base64", "data": "AAAA"}},
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "Use the tool.", "signature": "sig"},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"c": 1}},
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_1",
                    "content": [{"type": "text", "text": "18C"}],
                    "is_error": False,
                }
            ],
        },
    ],
    "tools": [
        {"name": "get_weather", "description": "Weather", "input_schema": {}},
        {"type": "computer_20250124", "name": "computer"},
    ],
    "tool_choice": {"type": "any"},
    "thinking": {"type": "enabled", "budget_tokens": 2000},
    "temperature": 0.5,
    "stop_sequences": ["END"],
}
ANTHROPIC_USAGE = {
    "input_tokens": 10,
    "cache_creation_input_tokens": 5,
    "cache_read_input_tokens": 20,
    "output_tokens": 7,
}
ANTHROPIC_JSON = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-5-20250929",
    "content": [
        {"type": "thinking", "thinking": "Hmm.", "signature": "sig"},
        {"type": "redacted_thinking", "data": "xx"},
        {"type": "text", "text": "Calling."},
        {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {"city": "Rome"}},
        {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"q": "x"}},
    ],
    "stop_reason": "tool_use",
    "usage": ANTHROPIC_USAGE,
}
ANTHROPIC_STREAM = (
    {
        "type": "message_start",
        "message": {**ANTHROPIC_JSON, "content": [], "stop_reason": None, "usage": ANTHROPIC_USAGE},
    },
    {"type": "ping"},
    {
        "type": "content_block_start",
        "index": 0,
        "content_block": {"type": "thinking", "thinking": ""},
    },
    {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "thinking_delta", "thinking": "Hmm"},
    },
    {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}},
    {
        "type": "content_block_delta",
        "index": 1,
        "delta": {"type": "text_delta", "text": "Calling."},
    },
    {"type": "content_block_stop", "index": 1},
    {
        "type": "content_block_start",
        "index": 2,
        "content_block": {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {}},
    },
    {
        "type": "content_block_delta",
        "index": 2,
        "delta": {"type": "input_json_delta", "partial_json": '{"city":"Rome"}'},
    },
    {
        "type": "message_delta",
        "delta": {"stop_reason": "tool_use", "stop_sequence": None},
        "usage": {"output_tokens": 9},
    },
    {"type": "message_stop"},
    {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
)

# --- Gemini ------------------------------------------------------------------------------

GEMINI_REQUEST = {
    "systemInstruction": {"parts": [{"text": "Be brief."}]},
    "contents": [
        {
            "role": "user",
            "parts": [
                {"text": "Weather?"},
                {"inlineData": {"mimeType": "image/png", "data": "AAAA"}},
            ],
        },
        {
            "role": "model",
            "parts": [
                {"text": "Hmm", "thought": True},
                {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
            ],
        },
        {
            "role": "user",
            "parts": [{"functionResponse": {"name": "get_weather", "response": {"t": 18}}}],
        },
    ],
    "tools": [
        {"functionDeclarations": [{"name": "get_weather", "description": "Weather"}]},
        {"codeExecution": {}},
    ],
    "toolConfig": {"functionCallingConfig": {"mode": "ANY"}},
    "generationConfig": {
        "temperature": 0.3,
        "maxOutputTokens": 100,
        "stopSequences": ["END"],
        "thinkingConfig": {"thinkingBudget": 512, "thinkingLevel": "low"},
    },
    "cachedContent": "cachedContents/abc",
}
GEMINI_CHUNK = {
    "candidates": [
        {
            "index": 0,
            "content": {
                "role": "model",
                "parts": [
                    {"text": "Think", "thought": True},
                    {"text": "Calling."},
                    {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}},
                ],
            },
            "finishReason": "STOP",
        }
    ],
    "usageMetadata": {
        "promptTokenCount": 10,
        "toolUsePromptTokenCount": 2,
        "candidatesTokenCount": 5,
        "thoughtsTokenCount": 3,
        "cachedContentTokenCount": 4,
        "totalTokenCount": 20,
    },
    "modelVersion": "gemini-2.5-flash",
    "responseId": "resp_g1",
    "promptFeedback": {"blockReason": "SAFETY"},
}
GEMINI_STREAM = (
    {**GEMINI_CHUNK, "promptFeedback": {}},
    GEMINI_CHUNK,
    {"error": {"code": 503, "message": "overloaded", "status": "UNAVAILABLE"}},
)
GEMINI_EMBED_REQUEST = {
    "requests": [
        {"model": "models/text-embedding-004", "content": {"parts": [{"text": "a"}]}},
        {"content": {"parts": [{"text": "b"}]}, "outputDimensionality": 3},
    ]
}
GEMINI_EMBED_RESPONSE = {"embeddings": [{"values": [0.1, 0.2, 0.3]}, {"values": [0.4, 0.5, 0.6]}]}

# --- Bedrock ------------------------------------------------------------------------------

BEDROCK_HOST = "bedrock-runtime.us-east-1.amazonaws.com"
CLAUDE_ID = "anthropic.claude-3-5-sonnet-20240620-v1:0"
CONVERSE_REQUEST = {
    "system": [{"text": "Be brief."}, {"cachePoint": {"type": "default"}}],
    "messages": [
        {
            "role": "user",
            "content": [{"text": "Weather?"}, {"image": {"format": "png", "source": {}}}],
        },
        {
            "role": "assistant",
            "content": [
                {"reasoningContent": {"reasoningText": {"text": "Use the tool."}}},
                {"toolUse": {"toolUseId": "tu_1", "name": "get_weather", "input": {"c": 1}}},
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "toolResult": {
                        "toolUseId": "tu_1",
                        "content": [{"text": "18C"}, {"json": {"t": 18}}],
                        "status": "success",
                    }
                }
            ],
        },
    ],
    "toolConfig": {
        "tools": [{"toolSpec": {"name": "get_weather", "description": "Weather"}}],
        "toolChoice": {"auto": {}},
    },
    "inferenceConfig": {"maxTokens": 100, "temperature": 0.5, "stopSequences": ["END"]},
}
CONVERSE_USAGE = {
    "inputTokens": 10,
    "outputTokens": 5,
    "totalTokens": 15,
    "cacheReadInputTokens": 2,
    "cacheWriteInputTokens": 1,
}
CONVERSE_JSON = {
    "output": {
        "message": {
            "role": "assistant",
            "content": [
                {"reasoningContent": {"reasoningText": {"text": "Hmm."}}},
                {"text": "Calling."},
                {"toolUse": {"toolUseId": "tu_2", "name": "get_weather", "input": {"c": 2}}},
            ],
        }
    },
    "stopReason": "tool_use",
    "usage": CONVERSE_USAGE,
    "metrics": {"latencyMs": 420},
}
CONVERSE_STREAM = (
    ("messageStart", {"role": "assistant"}),
    ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"reasoningContent": {"text": "Hm"}}}),
    ("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"text": "Calling."}}),
    (
        "contentBlockStart",
        {
            "contentBlockIndex": 2,
            "start": {"toolUse": {"toolUseId": "tu_2", "name": "get_weather"}},
        },
    ),
    ("contentBlockDelta", {"contentBlockIndex": 2, "delta": {"toolUse": {"input": '{"c":2}'}}}),
    ("contentBlockStop", {"contentBlockIndex": 2}),
    ("messageStop", {"stopReason": "tool_use"}),
    ("metadata", {"usage": CONVERSE_USAGE, "metrics": {"latencyMs": 420}}),
)
INVOKE_ANTHROPIC_REQUEST = {
    "anthropic_version": "bedrock-2023-05-31",
    "max_tokens": 256,
    "system": "Be brief.",
    "messages": [{"role": "user", "content": "Hello"}],
}
INVOKE_ANTHROPIC_STREAM = (
    *ANTHROPIC_STREAM[:-2],
    {
        "type": "message_stop",
        "amazon-bedrock-invocationMetrics": {"inputTokenCount": 12, "outputTokenCount": 4},
    },
)
NOVA_REQUEST = {
    "schemaVersion": "messages-v1",
    "system": [{"text": "Be brief."}],
    "messages": [{"role": "user", "content": [{"text": "Hi"}]}],
    "inferenceConfig": {"max_new_tokens": 50, "topP": 0.9},
}
NOVA_STREAM = (
    {"messageStart": {"role": "assistant"}},
    {"contentBlockDelta": {"delta": {"text": "Hello"}, "contentBlockIndex": 0}},
    {"messageStop": {"stopReason": "end_turn"}},
    {"metadata": {"usage": {"inputTokens": 3, "outputTokens": 1}}},
)
LLAMA_REQUEST = {"prompt": "<|begin_of_text|>Hi", "max_gen_len": 64, "temperature": 0.2}
LLAMA_JSON = {
    "generation": "Hello!",
    "prompt_token_count": 9,
    "generation_token_count": 3,
    "stop_reason": "stop",
}
TITAN_EMBED_JSON = {"embedding": [0.1, 0.2, 0.3, 0.4], "inputTextTokenCount": 2}

# --- Ollama -------------------------------------------------------------------------------

OLLAMA_CHAT_REQUEST = {
    "model": "llama3.2",
    "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather?", "images": ["AAAA"]},
        {
            "role": "assistant",
            "content": "",
            "thinking": "Use the tool.",
            "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}],
        },
        {"role": "tool", "tool_name": "get_weather", "content": "18C"},
    ],
    "tools": TOOLS,
    "think": True,
    "options": {"temperature": 0.1, "num_predict": 50, "num_ctx": 4096, "stop": ["END"]},
}
OLLAMA_DONE = {
    "done": True,
    "done_reason": "stop",
    "total_duration": 5_000_000,
    "load_duration": 1_000,
    "prompt_eval_count": 26,
    "prompt_eval_duration": 2_000,
    "eval_count": 9,
    "eval_duration": 3_000,
}
OLLAMA_CHAT_STREAM = (
    {"model": "llama3.2", "message": {"role": "assistant", "content": "", "thinking": "Hm"}},
    {"model": "llama3.2", "message": {"role": "assistant", "content": "Calling."}},
    {
        "model": "llama3.2",
        "message": {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"id": "call_o1", "function": {"name": "get_weather", "arguments": {"c": 1}}},
                {"function": {"name": "get_weather", "arguments": '{"c":2}'}},
            ],
        },
        "done": False,
    },
    {"model": "llama3.2", "message": {"role": "assistant", "content": ""}, **OLLAMA_DONE},
    {"error": "model crashed"},
)
OLLAMA_GENERATE_REQUEST = {
    "model": "llama3.2",
    "system": "Be brief.",
    "prompt": "Hi",
    "images": ["AAAA"],
    "context": [1, 2, 3],
    "stream": False,
}
OLLAMA_GENERATE_JSON = {"model": "llama3.2", "response": "Hello", **OLLAMA_DONE}
OLLAMA_EMBED_REQUEST = {"model": "nomic-embed-text", "input": ["a", "b"], "dimensions": 3}
OLLAMA_EMBED_JSON = {
    "model": "nomic-embed-text",
    "embeddings": [[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]],
    "total_duration": 1000,
    "prompt_eval_count": 4,
}

# --- Cohere --------------------------------------------------------------------------------

COHERE_REQUEST = {
    "model": "command-r-plus",
    "stream": True,
    "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Weather?"}]},
        {
            "role": "assistant",
            "tool_plan": "Use the tool.",
            "tool_calls": [
                {
                    "id": "tc_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"c":1}'},
                }
            ],
        },
        {
            "role": "tool",
            "tool_call_id": "tc_1",
            "content": [{"type": "document", "document": {"data": {"t": 18}}}],
        },
    ],
    "tools": TOOLS,
    "tool_choice": "REQUIRED",
    "documents": [{"data": {"text": "doc"}}],
    "p": 0.9,
    "k": 40,
    "max_tokens": 100,
}
COHERE_USAGE = {
    "billed_units": {"input_tokens": 10, "output_tokens": 5},
    "tokens": {"input_tokens": 70, "output_tokens": 5},
    "cached_tokens": 2,
}
COHERE_STREAM = (
    {"type": "message-start", "id": "m_1", "delta": {"message": {"role": "assistant"}}},
    {"type": "tool-plan-delta", "delta": {"message": {"tool_plan": "Use it."}}},
    {
        "type": "tool-call-start",
        "index": 0,
        "delta": {
            "message": {
                "tool_calls": {
                    "id": "tc_2",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": ""},
                }
            }
        },
    },
    {
        "type": "tool-call-delta",
        "index": 0,
        "delta": {"message": {"tool_calls": {"function": {"arguments": '{"c":2}'}}}},
    },
    {
        "type": "content-delta",
        "index": 0,
        "delta": {"message": {"content": {"type": "text", "text": "Calling."}}},
    },
    {"type": "message-end", "delta": {"finish_reason": "TOOL_CALL", "usage": COHERE_USAGE}},
    {"type": "error", "message": "boom"},
)
COHERE_JSON = {
    "id": "m_1",
    "finish_reason": "COMPLETE",
    "message": {
        "role": "assistant",
        "content": [{"type": "text", "text": "Hi"}, {"type": "thinking", "thinking": "Hm"}],
        "tool_plan": "Plan.",
        "tool_calls": [
            {"id": "tc_3", "type": "function", "function": {"name": "f", "arguments": "{}"}}
        ],
    },
    "usage": COHERE_USAGE,
}
COHERE_EMBED_REQUEST = {
    "model": "embed-v4.0",
    "texts": ["a", "b"],
    "input_type": "search_document",
    "output_dimension": 256,
    "embedding_types": ["float"],
}
COHERE_EMBED_JSON = {
    "id": "e_1",
    "embeddings": {"float": [[0.1, 0.2], [0.3, 0.4]]},
    "meta": {"billed_units": {"input_tokens": 2}},
}


def _g(
    name: str, api: str, host: str, path: str, request: Any, framing: Framing, items: Any, **kw: Any
) -> Golden:
    return Golden(name, api, host, path, request, framing, tuple(items), **kw)


GOLDENS: dict[str, list[Golden]] = {
    "openai.chat": [
        _g(
            "json",
            "openai.chat",
            "api.openai.com",
            "/v1/chat/completions",
            {**CHAT_REQUEST, "stream": False},
            "json",
            [CHAT_JSON],
        ),
        _g(
            "sse",
            "openai.chat",
            "api.openai.com",
            "/v1/chat/completions",
            CHAT_REQUEST,
            "sse",
            CHAT_STREAM,
            sse_done=True,
        ),
        _g(
            "openrouter",
            "openai.chat",
            "openrouter.ai",
            "/api/v1/chat/completions",
            {**CHAT_REQUEST, "stream": False},
            "json",
            [{**CHAT_JSON, "usage": OPENROUTER_USAGE}],
        ),
    ],
    "openai.responses": [
        _g(
            "sse",
            "openai.responses",
            "api.openai.com",
            "/v1/responses",
            RESPONSES_REQUEST,
            "sse",
            RESPONSES_STREAM,
            names=tuple(e["type"] for e in RESPONSES_STREAM),
        ),
        _g(
            "json",
            "openai.responses",
            "api.openai.com",
            "/v1/responses",
            {**RESPONSES_REQUEST, "stream": False},
            "json",
            [RESPONSE_OBJECT],
        ),
    ],
    "openai.completions": [
        _g(
            "sse",
            "openai.completions",
            "api.openai.com",
            "/v1/completions",
            COMPLETION_REQUEST,
            "sse",
            [
                COMPLETION_CHUNK,
                {
                    **COMPLETION_CHUNK,
                    "choices": [{"index": 0, "text": "!", "finish_reason": "length"}],
                    "usage": CHAT_USAGE,
                },
            ],
            sse_done=True,
        ),
        _g(
            "json",
            "openai.completions",
            "api.openai.com",
            "/v1/completions",
            {**COMPLETION_REQUEST, "stream": False},
            "json",
            [{**COMPLETION_CHUNK, "usage": CHAT_USAGE}],
        ),
    ],
    "openai.embeddings": [
        _g(
            "json",
            "openai.embeddings",
            "api.openai.com",
            "/v1/embeddings",
            {
                "model": "text-embedding-3-small",
                "input": ["a", "b"],
                "dimensions": 3,
                "encoding_format": "float",
            },
            "json",
            [EMBEDDING_RESPONSE],
        ),
    ],
    "xai.chat": [
        _g(
            "json",
            "xai.chat",
            "api.x.ai",
            "/v1/chat/completions",
            {**CHAT_REQUEST, "model": "grok-3", "stream": False},
            "json",
            [{**CHAT_JSON, "usage": XAI_USAGE}],
        ),
        _g(
            "sse",
            "xai.chat",
            "api.x.ai",
            "/v1/chat/completions",
            {**CHAT_REQUEST, "model": "grok-3"},
            "sse",
            [*CHAT_STREAM[:-2], {**_chunk({}), "choices": [], "usage": XAI_USAGE}],
            sse_done=True,
        ),
    ],
    "perplexity.chat": [
        _g(
            "json",
            "perplexity.chat",
            "api.perplexity.ai",
            "/chat/completions",
            {**CHAT_REQUEST, "model": "sonar", "stream": False},
            "json",
            [{**CHAT_JSON, **COMPAT_EXTRAS, "usage": PERPLEXITY_USAGE}],
        ),
        _g(
            "sse",
            "perplexity.chat",
            "api.perplexity.ai",
            "/chat/completions",
            {**CHAT_REQUEST, "model": "sonar"},
            "sse",
            [*CHAT_STREAM[:3], {**_chunk({}, "stop"), **COMPAT_EXTRAS, "usage": PERPLEXITY_USAGE}],
        ),
    ],
    "anthropic.messages": [
        _g(
            "sse",
            "anthropic.messages",
            "api.anthropic.com",
            "/v1/messages",
            ANTHROPIC_REQUEST,
            "sse",
            ANTHROPIC_STREAM,
            names=tuple(e["type"] for e in ANTHROPIC_STREAM),
        ),
        _g(
            "json",
            "anthropic.messages",
            "api.anthropic.com",
            "/v1/messages",
            {**ANTHROPIC_REQUEST, "stream": False},
            "json",
            [ANTHROPIC_JSON],
        ),
    ],
    "gemini": [
        _g(
            "sse",
            "gemini",
            "generativelanguage.googleapis.com",
            "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
            GEMINI_REQUEST,
            "sse",
            GEMINI_STREAM,
        ),
        _g(
            "json_array",
            "gemini",
            "generativelanguage.googleapis.com",
            "/v1beta/models/gemini-2.5-flash:streamGenerateContent",
            GEMINI_REQUEST,
            "json_array",
            GEMINI_STREAM[:2],
        ),
        _g(
            "json",
            "gemini",
            "us-central1-aiplatform.googleapis.com",
            "/v1/projects/p/locations/us-central1/publishers/google/models/gemini-2.5-pro:generateContent",
            GEMINI_REQUEST,
            "json",
            [GEMINI_CHUNK],
        ),
        _g(
            "embed",
            "gemini",
            "generativelanguage.googleapis.com",
            "/v1beta/models/text-embedding-004:batchEmbedContents",
            GEMINI_EMBED_REQUEST,
            "json",
            [GEMINI_EMBED_RESPONSE],
        ),
    ],
    "bedrock.converse": [
        _g(
            "json",
            "bedrock.converse",
            BEDROCK_HOST,
            f"/model/{CLAUDE_ID}/converse",
            CONVERSE_REQUEST,
            "json",
            [CONVERSE_JSON],
        ),
        _g(
            "stream",
            "bedrock.converse",
            BEDROCK_HOST,
            f"/model/{CLAUDE_ID}/converse-stream",
            CONVERSE_REQUEST,
            "eventstream",
            [p for _, p in CONVERSE_STREAM],
            names=tuple(n for n, _ in CONVERSE_STREAM),
        ),
    ],
    "bedrock.invoke": [
        _g(
            "anthropic",
            "bedrock.invoke",
            BEDROCK_HOST,
            f"/model/{CLAUDE_ID}/invoke-with-response-stream",
            INVOKE_ANTHROPIC_REQUEST,
            "invoke_stream",
            INVOKE_ANTHROPIC_STREAM,
        ),
        _g(
            "anthropic.json",
            "bedrock.invoke",
            BEDROCK_HOST,
            f"/model/{CLAUDE_ID}/invoke",
            INVOKE_ANTHROPIC_REQUEST,
            "json",
            [ANTHROPIC_JSON],
        ),
        _g(
            "openai",
            "bedrock.invoke",
            BEDROCK_HOST,
            "/model/openai.gpt-oss-120b-1:0/invoke",
            {**CHAT_REQUEST, "stream": False},
            "json",
            [CHAT_JSON],
        ),
        _g(
            "nova",
            "bedrock.invoke",
            BEDROCK_HOST,
            "/model/amazon.nova-lite-v1:0/invoke-with-response-stream",
            NOVA_REQUEST,
            "invoke_stream",
            NOVA_STREAM,
        ),
        _g(
            "llama",
            "bedrock.invoke",
            BEDROCK_HOST,
            "/model/meta.llama3-1-70b-instruct-v1:0/invoke",
            LLAMA_REQUEST,
            "json",
            [LLAMA_JSON],
        ),
        _g(
            "titan.embed",
            "bedrock.invoke",
            BEDROCK_HOST,
            "/model/amazon.titan-embed-text-v2:0/invoke",
            {"inputText": "hello", "dimensions": 4},
            "json",
            [TITAN_EMBED_JSON],
        ),
    ],
    "ollama.chat": [
        _g(
            "ndjson",
            "ollama.chat",
            "localhost",
            "/api/chat",
            OLLAMA_CHAT_REQUEST,
            "ndjson",
            OLLAMA_CHAT_STREAM,
            port=11434,
        ),
        _g(
            "json",
            "ollama.chat",
            "localhost",
            "/api/chat",
            {**OLLAMA_CHAT_REQUEST, "stream": False},
            "json",
            [
                {
                    "model": "llama3.2",
                    "message": {"role": "assistant", "content": "Hi"},
                    **OLLAMA_DONE,
                }
            ],
            port=11434,
        ),
    ],
    "ollama.generate": [
        _g(
            "json",
            "ollama.generate",
            "localhost",
            "/api/generate",
            OLLAMA_GENERATE_REQUEST,
            "json",
            [OLLAMA_GENERATE_JSON],
            port=11434,
        ),
        _g(
            "ndjson",
            "ollama.generate",
            "localhost",
            "/api/generate",
            {**OLLAMA_GENERATE_REQUEST, "stream": True},
            "ndjson",
            [{"model": "llama3.2", "response": "Hel", "done": False}, OLLAMA_GENERATE_JSON],
            port=11434,
        ),
    ],
    "ollama.embed": [
        _g(
            "json",
            "ollama.embed",
            "localhost",
            "/api/embed",
            OLLAMA_EMBED_REQUEST,
            "json",
            [OLLAMA_EMBED_JSON],
            port=11434,
        ),
    ],
    "cohere.chat": [
        _g(
            "sse",
            "cohere.chat",
            "api.cohere.com",
            "/v2/chat",
            COHERE_REQUEST,
            "sse",
            COHERE_STREAM,
            names=tuple(e["type"] for e in COHERE_STREAM),
        ),
        _g(
            "json",
            "cohere.chat",
            "api.cohere.com",
            "/v2/chat",
            {**COHERE_REQUEST, "stream": False},
            "json",
            [COHERE_JSON],
        ),
    ],
    "cohere.embed": [
        _g(
            "json",
            "cohere.embed",
            "api.cohere.com",
            "/v2/embed",
            COHERE_EMBED_REQUEST,
            "json",
            [COHERE_EMBED_JSON],
        ),
    ],
}
