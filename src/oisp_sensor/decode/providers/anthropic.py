"""Anthropic Messages API (`POST /v1/messages`), streaming and not.

Wire format: https://docs.anthropic.com/en/api/messages and .../messages-streaming.
Tool results travel inside user messages as `tool_result` blocks; we split them into
`role: tool` messages so conversations read the same across providers. Token usage:
`input_tokens` excludes cached input, so prompt_tokens = input + cache_creation +
cache_read, and cached_tokens = cache_read.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

from oisp_sensor.decode.providers.base import (
    ORJSON_MAX,
    SHAPE_ERRORS,
    ApiDecoder,
    DecodedRequest,
    HttpRequest,
    ResponseAssembler,
    ToolResultRef,
    as_int,
    as_str,
    compact_usage,
    copy_parameters,
    error_from_body,
    event_name,
    loads,
    sse_json_slow,
)
from oisp_sensor.decode.providers.common import (
    RequestBuilder,
    history_call,
    make_message,
    not_an_object,
)
from oisp_sensor.decode.sse import RawEvent
from oisp_sensor.errors import DecodeError
from oisp_sensor.events.data import ToolCall, ToolDefinition, Usage

PARAMETERS = {
    "temperature": "temperature",
    "top_p": "top_p",
    "top_k": "top_k",
    "max_tokens": "max_tokens",
    "stop_sequences": "stop",
}
_TOOL_CHOICE = {"auto": "auto", "any": "required", "tool": "specific", "none": "none"}
_IMAGE_BLOCKS = ("image",)


def blocks_text(content: Any) -> tuple[str, int]:
    """Text of a string or a list of content blocks, and the number of images in it."""
    if isinstance(content, str):
        return content, 0
    texts: list[str] = []
    images = 0
    for block in content if isinstance(content, list) else []:
        if not isinstance(block, dict):
            continue
        btype = block.get("type")
        if btype in _IMAGE_BLOCKS:
            images += 1
        elif btype == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif btype == "tool_result":
            text, n = blocks_text(block.get("content"))
            texts.append(text)
            images += n
    return "\n".join(texts), images


def anthropic_usage(raw: Any, base: Usage | None = None) -> Usage | None:
    """Anthropic usage -> OISP usage; `base` carries what message_start already said."""
    if not isinstance(raw, dict):
        return base
    prev: Usage = base or {}
    fresh = as_int(raw.get("input_tokens"))
    write = as_int(raw.get("cache_creation_input_tokens"))
    read = as_int(raw.get("cache_read_input_tokens"))
    output = as_int(raw.get("output_tokens"))
    if fresh is None and write is None and read is None:
        prompt = prev.get("prompt_tokens")
        read = prev.get("cached_tokens")
        write = prev.get("cache_creation_tokens")
    else:
        prompt = (fresh or 0) + (write or 0) + (read or 0)
    if output is None:
        output = prev.get("completion_tokens")
    usage = compact_usage(
        prompt_tokens=prompt,
        completion_tokens=output,
        total_tokens=prompt + output if prompt is not None and output is not None else None,
        cached_tokens=read,
    )
    if usage is not None and write is not None:
        usage["cache_creation_tokens"] = write
    return usage


def _tools(raw: Any) -> list[ToolDefinition]:
    out: list[ToolDefinition] = []
    for tool in raw if isinstance(raw, list) else []:
        if not isinstance(tool, dict):
            continue
        ttype = tool.get("type")
        td: ToolDefinition = {
            "type": "function" if ttype in (None, "custom") else _server_tool(ttype)
        }
        if isinstance(tool.get("name"), str):
            td["name"] = tool["name"]
        if isinstance(tool.get("description"), str):
            td["description"] = tool["description"]
        out.append(td)
    return out


def _server_tool(ttype: Any) -> str:
    text = str(ttype)
    if text.startswith("computer"):
        return "computer_use"
    if text.startswith("code_execution"):
        return "code_interpreter"
    return "other"


class MessagesAssembler(ResponseAssembler):
    def on_json(self, obj: Any) -> None:
        self._message(obj)
        for i, block in enumerate(obj.get("content") or []):
            self._block(i, block)
            if block.get("type") == "tool_use":
                self.builder.set_tool_arguments(i, block.get("input"))
        self.builder.choice(0).finish_reason = as_str(obj.get("stop_reason"))

    def on_sse(self, event: bytes, data: bytes) -> None:
        self.on_sse_events([(event, data, None, None)])

    def on_sse_events(self, events: list[RawEvent]) -> None:
        # One `content_block_delta` per streamed token: told by its `event:` line, parsed
        # from bytes, and its text kept to be handed over once for the whole read.
        b = self.builder
        texts: list[object] = []
        for event, data, _, _ in events:
            try:
                if event == b"content_block_delta":
                    try:  # `sse_json`, inlined
                        obj = orjson.loads(data) if len(data) <= ORJSON_MAX else loads(data)
                    except orjson.JSONDecodeError:
                        obj = sse_json_slow(event, data)
                    etype = obj.get("type", "content_block_delta")
                elif event == b"ping":
                    continue
                else:
                    obj = self.sse_json(event, data)
                    etype = obj.get("type", event_name(event))
                if etype == "content_block_delta":
                    delta = obj.get("delta") or {}
                    if delta.get("type") == "text_delta":
                        texts.append(delta.get("text"))
                        continue
                if texts:  # the text before this event comes first
                    b.add_texts(texts)
                    texts = []
                if etype == "content_block_delta":
                    self._delta(obj, delta)
                else:
                    self._event(etype, obj)
            except (DecodeError, *SHAPE_ERRORS) as e:
                self._message_problem(e)
        if texts:
            b.add_texts(texts)

    def _delta(self, obj: dict[str, Any], delta: dict[str, Any]) -> None:
        dtype = delta.get("type")
        if dtype == "input_json_delta":
            index = as_int(obj.get("index")) or 0
            self.builder.add_tool_arguments(index, delta.get("partial_json"))
        elif dtype == "thinking_delta":
            self.builder.add_thinking(delta.get("thinking"))

    def _event(self, etype: Any, obj: dict[str, Any]) -> None:
        b = self.builder
        if etype == "message_start":
            self._message(obj.get("message") or {})
        elif etype == "content_block_start":
            self._block(as_int(obj.get("index")) or 0, obj.get("content_block") or {})
        elif etype == "message_delta":
            delta = obj.get("delta") or {}
            reason = as_str(delta.get("stop_reason"))
            if reason:
                b.choice(0).finish_reason = reason
            b.set_usage(anthropic_usage(obj.get("usage"), b.usage))
        elif etype == "error":
            b.error = error_from_body(obj)

    def _message(self, message: dict[str, Any]) -> None:
        b = self.builder
        b.provider_request_id = message.get("id")
        b.model = message.get("model")
        b.set_usage(anthropic_usage(message.get("usage"), b.usage))
        b.choice(0)

    def _block(self, index: int, block: dict[str, Any]) -> None:
        b = self.builder
        btype = block.get("type")
        if btype == "text":
            b.add_text(block.get("text"))
        elif btype in ("tool_use", "server_tool_use"):
            call = b.tool_call(index)
            call.id, call.name = as_str(block.get("id")), as_str(block.get("name"))
            call.type = "function" if btype == "tool_use" else "server_tool"
            # A streamed tool_use starts with `input: {}` and its JSON arrives in deltas.
            if btype == "server_tool_use" and isinstance(block.get("input"), dict):
                b.set_tool_arguments(index, json.dumps(block["input"], separators=(",", ":")))
        elif btype == "thinking":
            b.add_thinking(block.get("thinking"))
        elif btype == "redacted_thinking":
            b.attrs["redacted_thinking_blocks"] = b.attrs.get("redacted_thinking_blocks", 0) + 1


class AnthropicMessages(ApiDecoder):
    name = "anthropic.messages"
    request_type = "chat"
    assembler_class = MessagesAssembler

    def matches(self, req: HttpRequest) -> bool:
        return req.method == "POST" and req.path.rstrip("/").endswith("/v1/messages")

    def decode_request(self, req: HttpRequest) -> DecodedRequest:
        body = req.json()
        if not isinstance(body, dict):
            return not_an_object()
        rb = RequestBuilder()
        system_text, _ = blocks_text(body.get("system"))
        if system_text:
            rb.messages.append(make_message("system", system_text))
            rb.system.append(system_text)
        rb.chars = len(system_text)
        raw_messages = body.get("messages")
        for raw in raw_messages if isinstance(raw_messages, list) else []:
            if not isinstance(raw, dict):
                continue
            role = "assistant" if raw.get("role") == "assistant" else "user"
            content = raw.get("content")
            if isinstance(content, str):
                content = [{"type": "text", "text": content}]
            if not isinstance(content, list):
                continue
            texts: list[str] = []
            calls: list[ToolCall] = []
            thinking: list[str] = []
            n_img = 0
            for block in content:
                if not isinstance(block, dict):
                    continue
                btype = block.get("type")
                if btype == "text" and isinstance(block.get("text"), str):
                    texts.append(block["text"])
                elif btype in _IMAGE_BLOCKS:
                    n_img += 1
                elif btype == "tool_use":
                    args = block.get("input")
                    args = args if isinstance(args, dict) else {}
                    calls.append(history_call(block.get("id"), block.get("name"), args))
                elif btype == "thinking" and isinstance(block.get("thinking"), str):
                    thinking.append(block["thinking"])
                elif btype == "tool_result":
                    text, r_img = blocks_text(block.get("content"))
                    call_id = block.get("tool_use_id")
                    msg = make_message("tool", text, r_img)
                    rb.chars += len(text)
                    if isinstance(call_id, str):
                        msg["tool_call_id"] = call_id
                        rb.tool_results.append(
                            ToolResultRef(call_id, text, is_error=block.get("is_error") is True)
                        )
                    rb.messages.append(msg)
            if texts or calls or n_img or thinking:
                text = "\n".join(texts)
                rb.chars += len(text)
                rb.images += n_img
                msg = make_message(role, text, n_img)
                if calls:
                    msg["tool_calls"] = calls
                if thinking:
                    msg["thinking"] = "\n".join(thinking)
                rb.messages.append(msg)
                if role == "user" and rb.first_user is None and texts:
                    rb.first_user = text
        tc = body.get("tool_choice")
        choice = tc.get("type") if isinstance(tc, dict) else None
        params = copy_parameters(body, PARAMETERS)
        thinking_cfg = body.get("thinking")
        if isinstance(thinking_cfg, dict) and as_int(thinking_cfg.get("budget_tokens")):
            params["thinking_budget_tokens"] = thinking_cfg["budget_tokens"]
        return rb.build(
            model=body.get("model"),
            streaming=body.get("stream") is True,
            tools=_tools(body.get("tools")),
            tool_choice=_TOOL_CHOICE.get(choice) if isinstance(choice, str) else None,
            parameters=params,
        )
