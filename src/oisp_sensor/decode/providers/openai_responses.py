"""OpenAI Responses API (`POST /v1/responses`), streaming and not.

Wire format: https://platform.openai.com/docs/api-reference/responses (and the
openai-python `types/responses` models). The request's `input` is a string or a
list of items — messages, the model's earlier `function_call`s, the caller's
`*_call_output`s (tool results, matched to calls by `call_id`), reasoning items —
and `instructions` is the system prompt. The response is a list of output items;
streamed, it arrives as typed `response.*` events whose `output_index` keys each
item. Items whose content came as deltas are not re-added from the `done` events
or the final `response.completed` object, which repeat them whole.

Usage: OpenAI's meaning — `input_tokens` includes `input_tokens_details.cached_tokens`,
`output_tokens` includes `output_tokens_details.reasoning_tokens`; cache writes
(`cache_write_tokens`) are part of input too and go to `cache_creation_tokens`.
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
    ToolCallBuilder,
    as_int,
    as_str,
    copy_parameters,
    error_from_body,
    event_name,
)
from oisp_sensor.decode.providers.common import (
    RequestBuilder,
    compact_json,
    history_call,
    not_an_object,
    stopped_for_tools,
    text_of,
)
from oisp_sensor.decode.providers.openai_chat import (
    content_text,
    function_tools,
    openai_usage,
    report_cost,
    tool_choice_text,
)
from oisp_sensor.events.data import ErrorInfo, Message, ToolDefinition, Usage

PARAMETERS = {
    "temperature": "temperature",
    "top_p": "top_p",
    "max_output_tokens": "max_tokens",
    "top_logprobs": "top_logprobs",
}
_ROLES = {"developer": "system", "system": "system", "assistant": "assistant"}
# Output items executed by OpenAI itself: reported as calls, never answered by a request.
_SERVER_CALL = "server_tool"


def responses_usage(raw: Any) -> Usage | None:
    usage = openai_usage(raw)
    details = raw.get("input_tokens_details") if isinstance(raw, dict) else None
    write = as_int(details.get("cache_write_tokens")) if isinstance(details, dict) else None
    if usage is not None and write:
        usage["cache_creation_tokens"] = write
    return usage


def _tools(raw: Any) -> list[ToolDefinition]:
    tools = function_tools(raw)
    for tool in tools:
        if tool.get("name", "").startswith("computer"):
            tool["type"] = "computer_use"
    return tools


def _call_name(item: dict[str, Any]) -> str:
    name = item.get("name")
    return name if isinstance(name, str) else str(item.get("type", "tool"))[: -len("_call")]


def _call_arguments(item: dict[str, Any]) -> str | dict[str, Any] | None:
    """`arguments` (function), `input` (custom tools) or an `action`/`operation` object."""
    for key in ("arguments", "input", "action", "operation"):
        value = item.get(key)
        if isinstance(value, (str, dict)):
            return value
    return None


def _empty_assistant(msg: Message) -> bool:
    return (
        msg["role"] == "assistant"
        and not msg.get("content")
        and "tool_calls" not in msg
        and "thinking" in msg
    )


class ResponsesAssembler(ResponseAssembler):
    def __init__(self, head: ResponseHead, builder: ResponseBuilder) -> None:
        super().__init__(head, builder)
        self._streamed: set[int] = set()  # output items whose content arrived as deltas
        self._done: set[int] = set()  # output items already taken from their `done` event

    def on_json(self, obj: Any) -> None:
        self._response(obj, final=True)

    def on_sse(self, event: bytes, data: bytes) -> None:
        if data == b"[DONE]":
            return
        obj = self.sse_json(event, data)
        b = self.builder
        etype = str(obj.get("type") or event_name(event))
        index = as_int(obj.get("output_index")) or 0
        delta = obj.get("delta")
        if etype in ("response.completed", "response.failed", "response.incomplete"):
            self._response(obj.get("response") or {}, final=True)
        elif etype in ("response.created", "response.in_progress", "response.queued"):
            self._response(obj.get("response") or {}, final=False)
        elif etype in ("response.output_text.delta", "response.refusal.delta"):
            self._streamed.add(index)
            b.add_text(delta)
        elif etype in (
            "response.function_call_arguments.delta",
            "response.custom_tool_call_input.delta",
        ):
            self._streamed.add(index)
            b.add_tool_arguments(index, delta)
        elif etype in ("response.reasoning_summary_text.delta", "response.reasoning_text.delta"):
            self._streamed.add(index)
            b.add_thinking(delta)
        elif etype == "response.output_item.added":
            self._call(index, obj.get("item") or {})
        elif etype == "response.output_item.done":
            self._done.add(index)
            self._item(index, obj.get("item") or {})
        elif etype == "error":
            b.error = _stream_error(obj)

    def _response(self, resp: dict[str, Any], *, final: bool) -> None:
        b = self.builder
        b.provider_request_id = resp.get("id")
        b.model = resp.get("model")
        b.set_usage(responses_usage(resp.get("usage")))
        report_cost(b, resp.get("usage"))
        if not final:
            return
        for index, item in enumerate(resp.get("output") or []):
            if index not in self._done and isinstance(item, dict):
                self._item(index, item)
        status = resp.get("status")
        incomplete = resp.get("incomplete_details")
        if isinstance(incomplete, dict) and isinstance(incomplete.get("reason"), str):
            status = incomplete["reason"]
        if isinstance(status, str) and status not in ("in_progress", "queued"):
            b.choice(0).finish_reason = status
        error = resp.get("error")
        if isinstance(error, dict):
            b.error = _stream_error(error)
        stopped_for_tools(b)

    def _item(self, index: int, item: dict[str, Any]) -> None:
        """A complete output item; its content is added unless deltas already brought it."""
        b = self.builder
        itype = str(item.get("type"))
        streamed = index in self._streamed
        if itype == "message" and not streamed:
            for part in item.get("content") or []:
                b.add_text(text_of(part.get("text")) or text_of(part.get("refusal")))
        elif itype == "reasoning" and not streamed:
            parts = [*(item.get("summary") or []), *(item.get("content") or [])]
            b.add_thinking("\n".join(text_of(p.get("text")) for p in parts))
        elif itype.endswith("_call"):
            call = self._call(index, item)
            args = _call_arguments(item)
            if call is not None and not call.parts:
                b.set_tool_arguments(index, args)

    def _call(self, index: int, item: dict[str, Any]) -> ToolCallBuilder | None:
        """The tool call an output item is (client calls carry a `call_id`), or None."""
        itype = str(item.get("type"))
        if not itype.endswith("_call"):
            return None
        call = self.builder.tool_call(index)
        if isinstance(item.get("call_id"), str):
            call.id = item["call_id"]
            call.type = "function"
        else:
            call.id = item.get("id")
            call.type = _SERVER_CALL
        call.name = _call_name(item)
        return call


class OpenAIResponses(ApiDecoder):
    name = "openai.responses"
    request_type = "chat"
    assembler_class = ResponsesAssembler

    def matches(self, req: HttpRequest) -> bool:
        return req.method == "POST" and req.path.rstrip("/").endswith("/responses")

    def decode_request(self, req: HttpRequest) -> DecodedRequest:
        body = req.json()
        if not isinstance(body, dict):
            return not_an_object()
        rb = RequestBuilder()
        if isinstance(body.get("instructions"), str):
            rb.message("system", body["instructions"])
        items = body.get("input")
        if isinstance(items, str):
            rb.message("user", items)
        for item in items if isinstance(items, list) else []:
            if isinstance(item, dict):
                self._input_item(rb, item)
        params = copy_parameters(body, PARAMETERS)
        reasoning = body.get("reasoning")
        if isinstance(reasoning, dict) and isinstance(reasoning.get("effort"), str):
            params["reasoning_effort"] = reasoning["effort"]
        for key in ("previous_response_id", "conversation"):
            value = body.get(key)
            if isinstance(value, dict):
                value = value.get("id")
            if isinstance(value, str):
                rb.attrs[key] = value
        return rb.build(
            model=body.get("model"),
            streaming=body.get("stream") is True,
            tools=_tools(body.get("tools")),
            tool_choice=tool_choice_text(body.get("tool_choice")),
            parameters=params,
        )

    def _input_item(self, rb: RequestBuilder, item: dict[str, Any]) -> None:
        itype = item.get("type", "message")
        if itype == "message":
            role = _ROLES.get(str(item.get("role")), "user")
            text, images = content_text(item.get("content"))
            last = rb.messages[-1] if rb.messages else None
            if role == "assistant" and last is not None and _empty_assistant(last):
                rb.messages.pop()  # a reasoning item opened this turn: fill it in
                rb.message(role, text, images)["thinking"] = last["thinking"]
            else:
                rb.message(role, text, images)
        elif itype == "reasoning":
            summary = "\n".join(text_of(s.get("text")) for s in item.get("summary") or [])
            rb.message("assistant", "")["thinking"] = summary
        elif itype.endswith("_call_output"):
            call_id = item.get("call_id") or item.get("id")  # local_shell_call_output: `id`
            output = item.get("output")
            text, images = content_text(output) if isinstance(output, list) else ("", 0)
            if not isinstance(output, list):
                text = compact_json(output) if output is not None else ""
            rb.tool_result(
                call_id if isinstance(call_id, str) else None,
                text,
                name=as_str(item.get("name")),
                is_error=item.get("status") == "failed",
                images=images,
            )
        elif itype.endswith("_call") and isinstance(item.get("call_id"), str):
            call = history_call(item["call_id"], _call_name(item), _call_arguments(item))
            last = rb.messages[-1] if rb.messages else None
            if last is None or last["role"] != "assistant":
                last = rb.message("assistant", "")
            last.setdefault("tool_calls", []).append(call)


def _stream_error(obj: dict[str, Any]) -> ErrorInfo:
    """`{"type": "error", "code", "message"}` events, and a response's `error` object."""
    if isinstance(obj.get("error"), dict):
        return error_from_body(obj) or {"type": "error"}
    err: ErrorInfo = {"type": str(obj.get("code") or "error")}
    if isinstance(obj.get("message"), str):
        err["message"] = obj["message"][:2000]
    if obj.get("code") is not None:
        err["code"] = str(obj["code"])
    return err
