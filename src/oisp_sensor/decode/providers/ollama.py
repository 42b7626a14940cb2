"""Ollama's native API: `POST /api/chat`, `/api/generate`, `/api/embed` (and `/api/embeddings`).

Wire format: https://github.com/ollama/ollama/blob/main/docs/api.md. Streaming is
the default (only `"stream": false` turns it off) and comes as NDJSON, one object
per line, the last with `"done": true`, `done_reason` and the counters.
Tool calls carry their arguments as JSON objects and, in older servers, no id; tool
results are `role: tool` messages naming the tool (`tool_name`) or not at all, so
ids are derived from the conversation where missing (see providers/toolids.py).

Usage: `prompt_eval_count` -> prompt_tokens, `eval_count` -> completion_tokens,
their sum -> total_tokens. Ollama leaves a counter out when it is zero (a prompt
entirely served from its cache has no `prompt_eval_count`); what is absent stays
absent. The `*_duration` values (nanoseconds) go to attrs.durations_ns.
"""

from __future__ import annotations

from typing import Any

from oisp_sensor.decode.http1 import ResponseHead
from oisp_sensor.decode.providers.base import (
    ApiDecoder,
    DecodedRequest,
    HttpRequest,
    ResponseAssembler,
    ResponseBuilder,
    as_int,
    as_str,
    compact_usage,
    copy_parameters,
    error_from_body,
)
from oisp_sensor.decode.providers.common import (
    RequestBuilder,
    compact_json,
    history_call,
    not_an_object,
    record_embeddings_in,
    stopped_for_tools,
    text_of,
)
from oisp_sensor.decode.providers.openai_chat import function_tools
from oisp_sensor.decode.providers.openai_legacy import input_count, prompts
from oisp_sensor.decode.providers.toolids import CallNumbering, HistoryCalls
from oisp_sensor.events.data import ToolCall, Usage

OPTIONS = {
    "temperature": "temperature",
    "top_p": "top_p",
    "top_k": "top_k",
    "num_predict": "max_tokens",
    "stop": "stop",
    "seed": "seed",
    "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty",
    "num_ctx": "num_ctx",
}
_DURATIONS = ("total_duration", "load_duration", "prompt_eval_duration", "eval_duration")


def ollama_usage(obj: dict[str, Any]) -> Usage | None:
    prompt = as_int(obj.get("prompt_eval_count"))
    completion = as_int(obj.get("eval_count"))
    total = prompt + (completion or 0) if prompt is not None else None  # embed: no completion
    return compact_usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=total)


def _parameters(body: dict[str, Any]) -> dict[str, Any]:
    options = body.get("options")
    params = copy_parameters(options, OPTIONS) if isinstance(options, dict) else {}
    if isinstance(body.get("think"), (bool, str)):
        params["think"] = body["think"]
    return params


def _streaming(body: dict[str, Any]) -> bool:
    return body.get("stream") is not False  # Ollama streams unless told not to


class _Native(ApiDecoder):
    path = ""

    def matches(self, req: HttpRequest) -> bool:
        return req.method == "POST" and req.path.rstrip("/") == self.path

    def assembler(
        self,
        req: HttpRequest,
        decoded: DecodedRequest,
        head: ResponseHead,
        builder: ResponseBuilder,
    ) -> ResponseAssembler:
        body = req.json()
        turn = len(body.get("messages") or []) if isinstance(body, dict) else 0
        return OllamaAssembler(head, builder, CallNumbering(turn))


class OllamaChat(_Native):
    name = "ollama.chat"
    request_type = "chat"
    path = "/api/chat"

    def decode_request(self, req: HttpRequest) -> DecodedRequest:
        body = req.json()
        if not isinstance(body, dict):
            return not_an_object()
        rb = RequestBuilder()
        history = HistoryCalls()
        raw_messages = body.get("messages")
        for index, raw in enumerate(raw_messages if isinstance(raw_messages, list) else []):
            if not isinstance(raw, dict):
                continue
            role = str(raw.get("role") or "user")
            text = text_of(raw.get("content"))
            images = len(raw["images"]) if isinstance(raw.get("images"), list) else 0
            if role == "tool":
                name = raw.get("tool_name") or raw.get("name")
                name = name if isinstance(name, str) else None
                call_id = raw.get("tool_call_id")
                call_id = history.result(name, call_id if isinstance(call_id, str) else None)
                rb.tool_result(call_id, text, name=name, images=images)
                continue
            msg = rb.message(role if role in ("system", "assistant") else "user", text, images)
            if role != "assistant":
                continue
            history.assistant_entry(index)
            if isinstance(raw.get("thinking"), str) and raw["thinking"]:
                msg["thinking"] = raw["thinking"]
            calls: list[ToolCall] = []
            for tc in raw.get("tool_calls") or []:
                fn = tc.get("function") if isinstance(tc, dict) else None
                if not isinstance(fn, dict):
                    continue
                name, given = as_str(fn.get("name")), as_str(tc.get("id"))
                calls.append(history_call(history.call(name, given), name, fn.get("arguments")))
            if calls:
                msg["tool_calls"] = calls
        return rb.build(
            model=body.get("model"),
            streaming=_streaming(body),
            tools=function_tools(body.get("tools")),
            parameters=_parameters(body),
        )


class OllamaGenerate(_Native):
    name = "ollama.generate"
    request_type = "completion"
    path = "/api/generate"

    def decode_request(self, req: HttpRequest) -> DecodedRequest:
        body = req.json()
        if not isinstance(body, dict):
            return not_an_object(self.request_type)
        rb = RequestBuilder(self.request_type)
        if isinstance(body.get("system"), str) and body["system"]:
            rb.message("system", body["system"])
        images = len(body["images"]) if isinstance(body.get("images"), list) else 0
        rb.message("user", text_of(body.get("prompt")), images)
        if isinstance(body.get("context"), list):
            rb.attrs["context_tokens"] = len(body["context"])
        return rb.build(
            model=body.get("model"), streaming=_streaming(body), parameters=_parameters(body)
        )


class OllamaEmbed(_Native):
    name = "ollama.embed"
    request_type = "embedding"

    def matches(self, req: HttpRequest) -> bool:
        return req.method == "POST" and req.path.rstrip("/") in ("/api/embed", "/api/embeddings")

    def decode_request(self, req: HttpRequest) -> DecodedRequest:
        body = req.json()
        if not isinstance(body, dict):
            return not_an_object(self.request_type)
        rb = RequestBuilder(self.request_type)
        value = body.get("input", body.get("prompt"))
        texts, tokens = prompts(value)
        rb.chars = sum(len(t) for t in texts)
        rb.attrs["input_count"] = input_count(value)
        params = _parameters(body)
        if as_int(body.get("dimensions")):
            params["dimensions"] = body["dimensions"]
        return rb.build(
            model=body.get("model"), streaming=False, parameters=params, extra_tokens=tokens
        )


class OllamaAssembler(ResponseAssembler):
    """The same object shape whole (`stream: false`) or line by line (NDJSON)."""

    def __init__(self, head: ResponseHead, builder: ResponseBuilder, calls: CallNumbering) -> None:
        super().__init__(head, builder)
        self._calls = calls

    def on_json(self, obj: Any) -> None:
        self.on_ndjson(obj)

    def on_ndjson(self, obj: Any) -> None:
        b = self.builder
        if "error" in obj:
            b.error = error_from_body(obj)
            return
        b.model = obj.get("model")
        msg = obj.get("message") if isinstance(obj.get("message"), dict) else obj
        b.add_text(text_of(msg.get("content")) or text_of(obj.get("response")))
        b.add_thinking(msg.get("thinking"))
        for tc in msg.get("tool_calls") or []:
            fn = tc.get("function") or {}
            key = len(b.choice(0).tool_calls)
            call = b.tool_call(key)
            call.name = fn.get("name")
            call.id = as_str(tc.get("id")) or self._calls.next_id(call.name)
            args = fn.get("arguments")
            if args is not None:
                b.set_tool_arguments(key, args if isinstance(args, dict) else compact_json(args))
        record_embeddings_in(b, obj)
        if obj.get("done") is True or "embeddings" in obj:
            self._done(obj)

    def _done(self, obj: dict[str, Any]) -> None:
        b = self.builder
        if "done" in obj:
            b.choice(0).finish_reason = text_of(obj.get("done_reason")) or "stop"
        b.set_usage(ollama_usage(obj))
        durations = {k: obj[k] for k in _DURATIONS if as_int(obj.get(k)) is not None}
        if durations:
            b.attrs["durations_ns"] = durations
        stopped_for_tools(b)
