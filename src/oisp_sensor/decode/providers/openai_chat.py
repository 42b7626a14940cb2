"""OpenAI Chat Completions (`POST /v1/chat/completions`) and every server that copies it.

Wire format: https://platform.openai.com/docs/api-reference/chat. Groq, Mistral,
DeepSeek, xAI, Together, Fireworks, Perplexity, OpenRouter, Azure OpenAI, Ollama's
`/v1` and LM Studio all speak it; their additions handled here are DeepSeek's
`reasoning_content`, OpenRouter's `reasoning`, Groq's `x_groq.usage` and
DeepSeek's `prompt_cache_hit_tokens`.
"""

from __future__ import annotations

from typing import Any, TypeGuard

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
)
from oisp_sensor.decode.providers.common import (
    RequestBuilder,
    history_call,
    make_message,
    not_an_object,
)
from oisp_sensor.events.data import ToolCall, ToolDefinition, Usage

PARAMETERS = {
    "temperature": "temperature",
    "top_p": "top_p",
    "max_completion_tokens": "max_tokens",
    "max_tokens": "max_tokens",
    "frequency_penalty": "frequency_penalty",
    "presence_penalty": "presence_penalty",
    "stop": "stop",
    "n": "n",
    "seed": "seed",
}
_ROLES = {"developer": "system"}
_IMAGE_PARTS = ("image_url", "input_image", "image")


def content_text(content: Any) -> tuple[str, int]:
    """Text of an OpenAI-style content value (string or parts array) and its image count."""
    if isinstance(content, str):
        return content, 0
    if not isinstance(content, list):
        return "", 0
    texts: list[str] = []
    images = 0
    for part in content:
        if isinstance(part, str):
            texts.append(part)
        elif isinstance(part, dict):
            ptype = part.get("type")
            if ptype in _IMAGE_PARTS:
                images += 1
            text = part.get("text")
            if isinstance(text, str):
                texts.append(text)
            elif isinstance(part.get("refusal"), str):
                texts.append(part["refusal"])
    return "\n".join(texts), images


def function_tools(tools: Any) -> list[ToolDefinition]:
    """`[{type: function, function: {name, description}}]` (and the Responses flat form)."""
    out: list[ToolDefinition] = []
    if not isinstance(tools, list):
        return out
    for tool in tools:
        if not isinstance(tool, dict):
            continue
        fn: dict[str, Any] = tool["function"] if isinstance(tool.get("function"), dict) else tool
        ttype = tool.get("type", "function")
        td: ToolDefinition = {"type": ttype if ttype in _TOOL_TYPES else "other"}
        name = fn.get("name") or (ttype if ttype != "function" else None)
        if isinstance(name, str):
            td["name"] = name
        desc = fn.get("description")
        if isinstance(desc, str):
            td["description"] = desc
        out.append(td)
    return out


_TOOL_TYPES = ("function", "code_interpreter", "file_search", "computer_use")


def tool_choice_text(choice: Any) -> str | None:
    if isinstance(choice, str):
        return choice
    if isinstance(choice, dict):
        ctype = choice.get("type")
        if ctype in ("auto", "none", "required"):
            return str(ctype)
        if ctype == "allowed_tools":
            return str(choice.get("mode") or "auto")
        return "specific"
    return None


def openai_usage(raw: Any) -> Usage | None:
    """OpenAI usage -> OISP usage. Cached tokens are already part of prompt_tokens."""
    if not isinstance(raw, dict):
        return None
    prompt_details = raw.get("prompt_tokens_details") or raw.get("input_tokens_details") or {}
    completion_details = (
        raw.get("completion_tokens_details") or raw.get("output_tokens_details") or {}
    )
    prompt = as_int(raw.get("prompt_tokens", raw.get("input_tokens")))
    completion = as_int(raw.get("completion_tokens", raw.get("output_tokens")))
    total = as_int(raw.get("total_tokens"))
    if total is None and prompt is not None and completion is not None:
        total = prompt + completion
    cached = (
        as_int(prompt_details.get("cached_tokens")) if isinstance(prompt_details, dict) else None
    )
    if cached is None:
        cached = as_int(raw.get("prompt_cache_hit_tokens"))  # DeepSeek
    reasoning = (
        as_int(completion_details.get("reasoning_tokens"))
        if isinstance(completion_details, dict)
        else None
    )
    return compact_usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=total,
        cached_tokens=cached,
        reasoning_tokens=reasoning,
    )


def report_cost(builder: ResponseBuilder, usage: Any) -> None:
    """The cost some OpenAI-shaped servers put in `usage`, as the provider's own figure.

    OpenRouter: `cost`, a number in credits (1 credit = 1 USD) — its whole charge; with
    your own upstream key (`is_byok`), `cost` is only OpenRouter's fee and
    `cost_details.upstream_inference_cost` what the upstream provider charged, so the
    call cost their sum. Perplexity: a `cost` object with `total_cost` and
    `input_tokens_cost` / `output_tokens_cost` (Chat Completions) or `input_cost` /
    `output_cost` (its Responses API), in USD.
    """
    if not isinstance(usage, dict):
        return
    cost = usage.get("cost")
    if isinstance(cost, dict):
        if cost.get("currency", "USD") != "USD":
            return
        builder.report_cost(
            cost.get("total_cost"),
            cost.get("input_tokens_cost", cost.get("input_cost")),
            cost.get("output_tokens_cost", cost.get("output_cost")),
        )
        return
    details = usage.get("cost_details")
    upstream = details.get("upstream_inference_cost") if isinstance(details, dict) else None
    if usage.get("is_byok") is True and _is_number(cost) and _is_number(upstream):
        cost += upstream
    builder.report_cost(cost)


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def history_tool_calls(raw: Any) -> list[ToolCall]:
    """The `tool_calls` of an assistant message in the history."""
    out: list[ToolCall] = []
    for tc in raw if isinstance(raw, list) else ():
        if isinstance(tc, dict):
            fn = tc.get("function")
            fn = fn if isinstance(fn, dict) else {}
            out.append(
                history_call(tc.get("id"), fn.get("name"), fn.get("arguments"), tc.get("type"))
            )
    return out


_VALID_ROLES = ("system", "user", "assistant", "tool", "function")


class ChatAssembler(ResponseAssembler):
    def on_json(self, obj: Any) -> None:
        b = self.builder
        self._common(obj)
        for choice in obj.get("choices") or []:
            index = as_int(choice.get("index")) or 0
            msg = choice.get("message") or {}
            text, _ = content_text(msg.get("content"))
            b.add_text(text or as_str(msg.get("refusal")) or "", index)
            b.add_thinking(_reasoning(msg), index)
            for i, tc in enumerate(msg.get("tool_calls") or []):
                fn = tc.get("function") or {}
                call = b.tool_call(i, index)
                call.id, call.name = as_str(tc.get("id")), as_str(fn.get("name"))
                call.type = tc.get("type")
                # Text, or an object as Ollama's /v1 sometimes sends
                b.set_tool_arguments(i, fn.get("arguments"), index)
            if msg.get("function_call"):  # legacy functions API
                fn = msg["function_call"]
                call = b.tool_call("function_call", index)
                call.name = fn.get("name")
                b.set_tool_arguments("function_call", as_str(fn.get("arguments")) or "", index)
            b.choice(index).finish_reason = as_str(choice.get("finish_reason"))

    def on_sse(self, event: bytes, data: bytes) -> None:
        # One call per streamed token: the common delta, {"content": "..."}, takes the
        # shortest path; everything else goes through `_delta_extras`.
        if data == b"[DONE]":
            return
        obj = self.sse_json(event, data)
        b = self.builder
        choices = obj.get("choices")
        if not choices and "error" in obj:
            b.error = error_from_body(obj)
            return
        self._common(obj)
        for choice in choices or ():
            index = choice.get("index", 0)
            if type(index) is not int:
                index = as_int(index) or 0
            delta = choice.get("delta") or {}
            content = delta.get("content")
            if isinstance(content, str):
                b.add_text(content, index)
                if len(delta) > 1:
                    self._delta_extras(delta, index)
            elif delta:
                self._delta_extras(delta, index)
            reason = choice.get("finish_reason")
            if reason and isinstance(reason, str):
                b.choice(index).finish_reason = reason

    def _delta_extras(self, delta: dict[str, Any], index: int) -> None:
        """Refusals, reasoning and tool-call fragments of one streamed delta."""
        b = self.builder
        if isinstance(delta.get("refusal"), str):
            b.add_text(delta["refusal"], index)
        b.add_thinking(_reasoning(delta), index)
        for tc in delta.get("tool_calls") or []:
            key: int | str | None = as_int(tc.get("index"))
            if key is None:
                key = as_str(tc.get("id")) or len(b.choice(index).tool_calls)
            call = b.tool_call(key, index)
            fn = tc.get("function") or {}
            call.id = as_str(tc.get("id")) or call.id
            call.name = as_str(fn.get("name")) or call.name
            call.type = as_str(tc.get("type")) or call.type
            args = fn.get("arguments")
            if isinstance(args, str):
                b.add_tool_arguments(key, args, index)

    def _common(self, obj: dict[str, Any]) -> None:
        b = self.builder
        if not b.provider_request_id:  # once: every chunk repeats it
            b.provider_request_id = obj.get("id")
        b.model = obj.get("model")
        usage = obj.get("usage")
        if usage is None:
            groq = obj.get("x_groq")
            if isinstance(groq, dict):
                usage = groq.get("usage")
        if usage is not None:
            b.set_usage(openai_usage(usage))
            report_cost(b, usage)
        fingerprint = obj.get("system_fingerprint")
        if isinstance(fingerprint, str):
            b.attrs["system_fingerprint"] = fingerprint


class OpenAIChat(ApiDecoder):
    name = "openai.chat"
    request_type = "chat"
    assembler_class = ChatAssembler

    def matches(self, req: HttpRequest) -> bool:
        return req.method == "POST" and req.path.endswith("/chat/completions")

    def decode_request(self, req: HttpRequest) -> DecodedRequest:
        body = req.json()
        if not isinstance(body, dict):
            return not_an_object()
        rb = RequestBuilder()
        raw_messages = body.get("messages")
        for raw in raw_messages if isinstance(raw_messages, list) else []:
            if not isinstance(raw, dict):
                continue
            role = str(raw.get("role") or "user")
            role = _ROLES.get(role, role)
            text, n_img = content_text(raw.get("content"))
            rb.chars += len(text)
            rb.images += n_img
            msg = make_message(role if role in _VALID_ROLES else "user", text, n_img)
            if isinstance(raw.get("name"), str):
                msg["name"] = raw["name"]
            calls = history_tool_calls(raw.get("tool_calls"))
            if calls:
                msg["tool_calls"] = calls
            if role == "tool" and isinstance(raw.get("tool_call_id"), str):
                msg["tool_call_id"] = raw["tool_call_id"]
                rb.tool_results.append(
                    ToolResultRef(raw["tool_call_id"], text, name=as_str(raw.get("name")))
                )
            if role == "system":
                rb.system.append(text)
            elif role == "user" and rb.first_user is None:
                rb.first_user = text
            rb.messages.append(msg)
        return rb.build(
            model=body.get("model"),
            streaming=body.get("stream") is True,
            tools=function_tools(body.get("tools") or body.get("functions")),
            tool_choice=tool_choice_text(body.get("tool_choice", body.get("function_call"))),
            parameters=copy_parameters(body, PARAMETERS),
        )


def _reasoning(msg: dict[str, Any]) -> str:
    for key in ("reasoning_content", "reasoning"):
        value = msg.get(key)
        if isinstance(value, str):
            return value
    return ""
