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

from oisp_sensor.decode.http1 import ResponseHead
from oisp_sensor.decode.providers.base import (
    ApiDecoder,
    DecodedRequest,
    HttpRequest,
    ResponseAssembler,
    ResponseBuilder,
    ToolResultRef,
    as_int,
    as_str,
    compact_usage,
    copy_parameters,
    error_from_body,
    estimate_tokens,
)
from oisp_sensor.decode.providers.openai_chat import make_message
from oisp_sensor.decode.sse import SseMessage
from oisp_sensor.events.data import AiRequestData, Message, ToolCall, ToolDefinition, Usage

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


class AnthropicMessages(ApiDecoder):
    name = "anthropic.messages"
    request_type = "chat"

    def matches(self, req: HttpRequest) -> bool:
        return req.method == "POST" and req.path.rstrip("/").endswith("/v1/messages")

    def decode_request(self, req: HttpRequest) -> DecodedRequest:
        body = req.json()
        if not isinstance(body, dict):
            return DecodedRequest(
                data={"request_type": "chat"}, partial_reason="request body is not a JSON object"
            )
        data: AiRequestData = {"request_type": "chat"}
        messages: list[Message] = []
        results: list[ToolResultRef] = []
        system_text, _ = blocks_text(body.get("system"))
        if system_text:
            messages.append(make_message("system", system_text))
        first_user: str | None = None
        images = 0
        chars = len(system_text)
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
                    call: ToolCall = {
                        "type": "function",
                        "arguments": args if isinstance(args, dict) else {},
                    }
                    if isinstance(block.get("id"), str):
                        call["id"] = block["id"]
                    if isinstance(block.get("name"), str):
                        call["name"] = block["name"]
                    calls.append(call)
                elif btype == "thinking" and isinstance(block.get("thinking"), str):
                    thinking.append(block["thinking"])
                elif btype == "tool_result":
                    text, r_img = blocks_text(block.get("content"))
                    call_id = block.get("tool_use_id")
                    msg = make_message("tool", text, r_img)
                    chars += len(text)
                    if isinstance(call_id, str):
                        msg["tool_call_id"] = call_id
                        results.append(
                            ToolResultRef(call_id, text, is_error=block.get("is_error") is True)
                        )
                    messages.append(msg)
            if texts or calls or n_img or thinking:
                text = "\n".join(texts)
                chars += len(text)
                images += n_img
                msg = make_message(role, text, n_img)
                if calls:
                    msg["tool_calls"] = calls
                if thinking:
                    msg["thinking"] = "\n".join(thinking)
                messages.append(msg)
                if role == "user" and first_user is None and texts:
                    first_user = text
        data["messages"] = messages
        data["messages_count"] = len(messages)
        data["has_system_prompt"] = bool(system_text)
        tools = _tools(body.get("tools"))
        if tools:
            data["tools"] = tools
            data["tools_count"] = len(tools)
        tc = body.get("tool_choice")
        if isinstance(tc, dict) and isinstance(tc.get("type"), str) and tc["type"] in _TOOL_CHOICE:
            data["tool_choice"] = _TOOL_CHOICE[tc["type"]]
        params = copy_parameters(body, PARAMETERS)
        thinking_cfg = body.get("thinking")
        if isinstance(thinking_cfg, dict) and as_int(thinking_cfg.get("budget_tokens")):
            params["thinking_budget_tokens"] = thinking_cfg["budget_tokens"]
        if params:
            data["parameters"] = params
        if images:
            data["has_images"] = True
            data["image_count"] = images
        data["estimated_tokens"] = estimate_tokens(chars)
        streaming = body.get("stream") is True
        data["streaming"] = streaming
        return DecodedRequest(
            data=data,
            model=body.get("model") if isinstance(body.get("model"), str) else None,
            streaming=streaming,
            system_prompt=system_text or None,
            first_user_message=first_user,
            tool_results=results,
        )

    def assembler(
        self,
        req: HttpRequest,
        decoded: DecodedRequest,
        head: ResponseHead,
        builder: ResponseBuilder,
    ) -> ResponseAssembler:
        return MessagesAssembler(head, builder)


class MessagesAssembler(ResponseAssembler):
    def on_json(self, obj: Any) -> None:
        self._message(obj)
        for i, block in enumerate(obj.get("content") or []):
            self._block(i, block)
            if block.get("type") == "tool_use" and isinstance(block.get("input"), dict):
                self.builder.tool_call(i).arguments_obj = block["input"]
        self.builder.choice(0).finish_reason = as_str(obj.get("stop_reason"))

    def on_sse(self, msg: SseMessage) -> None:
        if msg.event == "ping":
            return
        obj = self.sse_json(msg)
        b = self.builder
        etype = obj.get("type", msg.event)
        if etype == "content_block_delta":  # first: one per streamed token
            delta = obj.get("delta") or {}
            dtype = delta.get("type")
            if dtype == "text_delta":
                b.add_text(as_str(delta.get("text")) or "")
            elif dtype == "input_json_delta":
                index = as_int(obj.get("index")) or 0
                b.add_tool_arguments(index, as_str(delta.get("partial_json")) or "")
            elif dtype == "thinking_delta":
                b.add_thinking(as_str(delta.get("thinking")) or "")
        elif etype == "message_start":
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
        if isinstance(message.get("id"), str):
            b.provider_request_id = message["id"]
        if isinstance(message.get("model"), str):
            b.model = message["model"]
        b.set_usage(anthropic_usage(message.get("usage"), b.usage))
        b.choice(0)

    def _block(self, index: int, block: dict[str, Any]) -> None:
        b = self.builder
        btype = block.get("type")
        if btype == "text":
            b.add_text(as_str(block.get("text")) or "")
        elif btype in ("tool_use", "server_tool_use"):
            call = b.tool_call(index)
            call.id, call.name = as_str(block.get("id")), as_str(block.get("name"))
            call.type = "function" if btype == "tool_use" else "server_tool"
            # A streamed tool_use starts with `input: {}` and its JSON arrives in deltas.
            if btype == "server_tool_use" and isinstance(block.get("input"), dict):
                call.parts.append(json.dumps(block["input"], separators=(",", ":")))
        elif btype == "thinking":
            b.add_thinking(as_str(block.get("thinking")) or "")
        elif btype == "redacted_thinking":
            b.attrs["redacted_thinking_blocks"] = b.attrs.get("redacted_thinking_blocks", 0) + 1
