"""What the chat-like decoders share beyond the framework: messages in the spec's shape, a
"stopped to call tools" rule, and the shape of embedding vectors.

Every API names things differently but a request always reduces to the same
summary (messages, system prompt, tools, parameters, images, a size estimate), so
decoders add what they find to a `RequestBuilder` and let it write the summary.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from oisp_sensor.decode.providers.base import (
    DecodedRequest,
    ResponseBuilder,
    ToolResultRef,
    estimate_tokens,
    normalize_finish_reason,
)
from oisp_sensor.events.data import AiRequestData, Message, ToolCall, ToolDefinition


def make_message(role: str, text: str, images: int = 0) -> Message:
    msg: Message = {"role": role, "content": text, "content_length": len(text)}
    if images:
        msg["has_images"] = True
        msg["image_count"] = images
    return msg


def not_an_object(request_type: str = "chat") -> DecodedRequest:
    return DecodedRequest(
        data={"request_type": request_type}, partial_reason="request body is not a JSON object"
    )


def compact_json(value: Any) -> str:
    """A value as the compact JSON text tools and results travel as."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def text_of(value: Any) -> str:
    return value if isinstance(value, str) else ""


class RequestBuilder:
    """Collects messages, tool results and sizes; `build()` writes the ai.request summary."""

    def __init__(self, request_type: str = "chat") -> None:
        self.request_type = request_type
        self.messages: list[Message] = []
        self.system: list[str] = []
        self.first_user: str | None = None
        self.tool_results: list[ToolResultRef] = []
        self.images = 0
        self.chars = 0
        self.attrs: dict[str, Any] = {}

    def message(self, role: str, text: str, images: int = 0) -> Message:
        msg = make_message(role, text, images)
        self.messages.append(msg)
        self.chars += len(text)
        self.images += images
        if role == "system":
            self.system.append(text)
        elif role == "user" and self.first_user is None and text:
            self.first_user = text
        return msg

    def tool_result(
        self,
        call_id: str | None,
        content: str,
        *,
        name: str | None = None,
        is_error: bool = False,
        images: int = 0,
    ) -> Message:
        """A tool's result handed back to the model, as a `role: tool` message."""
        msg = self.message("tool", content, images)
        if name:
            msg["name"] = name
        if call_id:
            msg["tool_call_id"] = call_id
            self.tool_results.append(ToolResultRef(call_id, content, is_error, name))
        return msg

    def turn(
        self,
        assistant: bool,
        texts: list[str],
        *,
        images: int = 0,
        thinking: list[str] | None = None,
        calls: list[ToolCall] | None = None,
    ) -> None:
        """One turn gathered from content blocks/parts; a user turn with nothing left
        once its tool results were taken out (they are `tool` messages) adds nothing."""
        if assistant:
            msg = self.message("assistant", "\n".join(texts), images)
            if thinking:
                msg["thinking"] = "\n".join(thinking)
            if calls:
                msg["tool_calls"] = calls
        elif texts or images:
            self.message("user", "\n".join(texts), images)

    def build(
        self,
        *,
        model: Any,
        streaming: bool,
        tools: list[ToolDefinition] | None = None,
        tool_choice: str | None = None,
        parameters: dict[str, Any] | None = None,
        extra_tokens: int = 0,
    ) -> DecodedRequest:
        """`extra_tokens`: input given as token ids, counted exactly rather than estimated."""
        data: AiRequestData = {"request_type": self.request_type}
        if self.request_type != "embedding":
            data["messages"] = self.messages
            data["messages_count"] = len(self.messages)
            data["has_system_prompt"] = bool(self.system)
        if tools:
            data["tools"] = tools
            data["tools_count"] = len(tools)
        if tool_choice:
            data["tool_choice"] = tool_choice
        if parameters:
            data["parameters"] = parameters
        if self.images:
            data["has_images"] = True
            data["image_count"] = self.images
        data["estimated_tokens"] = estimate_tokens(self.chars) + extra_tokens
        data["streaming"] = streaming
        system = "\n".join(self.system) if self.system else None
        return DecodedRequest(
            data=data,
            model=model if isinstance(model, str) and model else None,
            streaming=streaming,
            system_prompt=system,
            first_user_message=self.first_user,
            tool_results=self.tool_results,
            attrs=self.attrs,
        )


def history_call(call_id: Any, name: Any, arguments: Any, kind: Any = "function") -> ToolCall:
    """A call an assistant turn of the history made, in the spec's shape."""
    call: ToolCall = {"type": kind if isinstance(kind, str) and kind else "function"}
    if isinstance(call_id, str):
        call["id"] = call_id
    if isinstance(name, str):
        call["name"] = name
    if isinstance(arguments, (str, dict)):
        call["arguments"] = arguments
    return call


def stopped_for_tools(builder: ResponseBuilder) -> None:
    """Gemini, Ollama and the Responses API say "stop" when the model called tools.

    The spec's finish_reason for that is `tool_calls` (as OpenAI Chat and Anthropic
    report it); the provider's own value stays in attrs.finish_reason_raw.
    """
    for choice in builder.choices.values():
        client_calls = any(tc.type != "server_tool" for tc in choice.tool_calls.values())
        if client_calls and normalize_finish_reason(choice.finish_reason) in (None, "stop"):
            if choice.finish_reason:
                builder.attrs["finish_reason_raw"] = choice.finish_reason
            choice.finish_reason = "tool_calls"


def vector_size(vector: Any) -> int | None:
    """Dimensions of one embedding: a list of numbers, or base64 of little-endian float32."""
    if isinstance(vector, list):
        return len(vector)
    if isinstance(vector, dict):  # Gemini {"values": [...]}
        return vector_size(vector.get("values") or vector.get("embedding"))
    if isinstance(vector, str):
        try:
            return len(base64.b64decode(vector, validate=True)) // 4
        except (binascii.Error, ValueError):
            return None
    return None


def record_embeddings(builder: ResponseBuilder, vectors: Any) -> None:
    """How many vectors came back and their size — never the vectors themselves."""
    if not isinstance(vectors, list):
        return
    info: dict[str, int] = {"count": len(vectors)}
    size = vector_size(vectors[0]) if vectors else None
    if size is not None:
        info["dimensions"] = size
    builder.attrs["embedding"] = info


def record_embeddings_in(builder: ResponseBuilder, obj: dict[str, Any]) -> None:
    """The vectors of a response object: `embeddings` — a list, or Cohere's by-type object
    `{"float": [[...]], ...}` — or a single `embedding` (Gemini, Ollama, Titan)."""
    vectors = obj.get("embeddings")
    if isinstance(vectors, dict):
        vectors = next(iter(vectors.values()), None)
    if isinstance(vectors, list):
        record_embeddings(builder, vectors)
    elif "embedding" in obj:
        record_embeddings(builder, [obj["embedding"]])
