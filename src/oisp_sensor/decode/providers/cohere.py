"""Cohere v2 Chat (`POST /v2/chat`) and Embed (`POST /v2/embed`).

Wire format: https://docs.cohere.com/reference/chat and .../chat-stream (and the
cohere-python v2 types). Messages are OpenAI-like — `tool_calls` on assistant
turns, `role: tool` results with `tool_call_id` — and `documents` are RAG context.
A stream is SSE whose JSON `type` says what it carries: `message-start`,
`content-delta`, `tool-plan-delta`, `tool-call-start`/`-delta`/`-end`, and
`message-end` with the finish reason and usage.

Usage: Cohere bills `usage.billed_units`, which can differ from the raw
`usage.tokens` (those include the prompt template). prompt/completion tokens are the
billed units, so cost follows the bill; the raw counts go to attrs.raw_tokens.
`cached_tokens` is read when present (it is part of the input, as with OpenAI).
"""

from __future__ import annotations

from typing import Any

from oisp_sensor.decode.providers.base import (
    ApiDecoder,
    DecodedRequest,
    HttpRequest,
    ResponseAssembler,
    ResponseBuilder,
    as_int,
    compact_usage,
    copy_parameters,
    error_from_body,
    event_name,
)
from oisp_sensor.decode.providers.common import (
    RequestBuilder,
    compact_json,
    not_an_object,
    record_embeddings_in,
    text_of,
)
from oisp_sensor.decode.providers.openai_chat import (
    content_text,
    function_tools,
    history_tool_calls,
)
from oisp_sensor.decode.providers.openai_legacy import input_count
from oisp_sensor.events.data import Usage

PARAMETERS = {
    "temperature": "temperature",
    "p": "top_p",
    "k": "top_k",
    "max_tokens": "max_tokens",
    "stop_sequences": "stop",
    "seed": "seed",
    "frequency_penalty": "frequency_penalty",
    "presence_penalty": "presence_penalty",
}


def cohere_usage(raw: Any, builder: ResponseBuilder | None = None) -> Usage | None:
    if not isinstance(raw, dict):
        return None
    billed: dict[str, Any] = raw.get("billed_units") or {}
    tokens: dict[str, Any] = raw.get("tokens") or {}
    if tokens and builder is not None:
        builder.attrs["raw_tokens"] = tokens
    prompt = as_int(billed.get("input_tokens", tokens.get("input_tokens")))
    completion = as_int(billed.get("output_tokens", tokens.get("output_tokens")))
    return compact_usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + (completion or 0) if prompt is not None else None,
        cached_tokens=as_int(raw.get("cached_tokens")),
    )


def _tool_content(content: Any) -> str:
    """A tool message's content: text, or `document` parts whose data is JSON."""
    if not isinstance(content, list):
        return text_of(content)
    texts = []
    for part in content:
        if isinstance(part, dict):
            doc = part.get("document")
            texts.append(
                text_of(part.get("text")) or compact_json(doc.get("data", doc))
                if isinstance(doc, dict)
                else text_of(part.get("text"))
            )
    return "\n".join(texts)


class CohereAssembler(ResponseAssembler):
    def on_json(self, obj: Any) -> None:
        b = self.builder
        b.provider_request_id = obj.get("id")
        message = obj.get("message") or {}
        self._content(message.get("content"))
        if isinstance(message.get("tool_plan"), str):
            b.add_thinking(message["tool_plan"])
        for i, tc in enumerate(message.get("tool_calls") or []):
            self._call(i, tc)
        b.choice(0).finish_reason = obj.get("finish_reason")
        b.set_usage(cohere_usage(obj.get("usage"), b))

    def on_sse(self, event: bytes, data: bytes) -> None:
        obj = self.sse_json(event, data)
        b = self.builder
        etype = obj.get("type") or event_name(event)
        index = as_int(obj.get("index")) or 0
        delta = obj.get("delta") or {}
        message = delta.get("message") or {}
        if etype == "message-start":
            b.provider_request_id = obj.get("id")
            b.choice(0)
        elif etype in ("content-start", "content-delta"):
            self._content([message.get("content") or {}])
        elif etype == "tool-plan-delta":
            b.add_thinking(message.get("tool_plan"))
        elif etype == "tool-call-start":
            self._call(index, message.get("tool_calls") or {})
        elif etype == "tool-call-delta":
            fn = (message.get("tool_calls") or {}).get("function") or {}
            b.add_tool_arguments(index, fn.get("arguments"))
        elif etype == "message-end":
            b.choice(0).finish_reason = delta.get("finish_reason")
            b.set_usage(cohere_usage(delta.get("usage"), b))
            if delta.get("error"):
                b.error = {"type": "stream_error", "message": str(delta["error"])[:2000]}
        elif etype == "error":
            b.error = error_from_body(obj)

    def _content(self, content: Any) -> None:
        b = self.builder
        if isinstance(content, str):
            b.add_text(content)
            return
        for part in content if isinstance(content, list) else []:
            b.add_text(part.get("text"))
            b.add_thinking(part.get("thinking"))

    def _call(self, index: int, tc: dict[str, Any]) -> None:
        fn = tc.get("function") or {}
        call = self.builder.tool_call(index)
        call.id, call.name = tc.get("id"), fn.get("name")
        self.builder.add_tool_arguments(index, fn.get("arguments"))


class CohereChat(ApiDecoder):
    name = "cohere.chat"
    request_type = "chat"
    assembler_class = CohereAssembler

    def matches(self, req: HttpRequest) -> bool:
        return req.method == "POST" and req.path.rstrip("/") == "/v2/chat"

    def decode_request(self, req: HttpRequest) -> DecodedRequest:
        body = req.json()
        if not isinstance(body, dict):
            return not_an_object()
        rb = RequestBuilder()
        for raw in body.get("messages") or []:
            if not isinstance(raw, dict):
                continue
            role = str(raw.get("role") or "user")
            if role == "tool":
                call_id = raw.get("tool_call_id")
                rb.tool_result(
                    call_id if isinstance(call_id, str) else None, _tool_content(raw.get("content"))
                )
                continue
            text, images = content_text(raw.get("content"))
            msg = rb.message(role if role in ("system", "assistant") else "user", text, images)
            calls = history_tool_calls(raw.get("tool_calls"))
            if calls:
                msg["tool_calls"] = calls
            if isinstance(raw.get("tool_plan"), str):
                msg["thinking"] = raw["tool_plan"]
        choice = body.get("tool_choice")
        decoded = rb.build(
            model=body.get("model"),
            streaming=body.get("stream") is True,
            tools=function_tools(body.get("tools")),
            tool_choice=choice.lower() if isinstance(choice, str) else None,
            parameters=copy_parameters(body, PARAMETERS),
        )
        if body.get("documents"):
            decoded.data["has_rag_context"] = True
        return decoded


class CohereEmbedAssembler(ResponseAssembler):
    def on_json(self, obj: Any) -> None:
        b = self.builder
        b.provider_request_id = obj.get("id")
        record_embeddings_in(b, obj)
        b.set_usage(cohere_usage(obj.get("meta"), b))


class CohereEmbed(ApiDecoder):
    name = "cohere.embed"
    request_type = "embedding"
    assembler_class = CohereEmbedAssembler

    def matches(self, req: HttpRequest) -> bool:
        return req.method == "POST" and req.path.rstrip("/") == "/v2/embed"

    def decode_request(self, req: HttpRequest) -> DecodedRequest:
        body = req.json()
        if not isinstance(body, dict):
            return not_an_object(self.request_type)
        rb = RequestBuilder(self.request_type)
        inputs = body.get("texts") or body.get("inputs") or body.get("images")
        texts = body.get("texts")
        rb.chars = (
            sum(len(t) for t in texts if isinstance(t, str)) if isinstance(texts, list) else 0
        )
        rb.attrs["input_count"] = input_count(inputs)
        params: dict[str, Any] = {}
        if as_int(body.get("output_dimension")):
            params["dimensions"] = body["output_dimension"]
        if isinstance(body.get("input_type"), str):
            params["input_type"] = body["input_type"]
        return rb.build(model=body.get("model"), streaming=False, parameters=params)
