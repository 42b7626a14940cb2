"""AWS Bedrock Runtime: Converse/ConverseStream and InvokeModel/InvokeModelWithResponseStream.

Wire format: the bedrock-runtime service model (botocore) and
https://docs.aws.amazon.com/bedrock/latest/APIReference/. The model id is in the
path, URL-encoded (`/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse`,
or an inference-profile ARN). Streams use the binary AWS event stream framing
(decode/eventstream.py): ConverseStream sends one message per event, named by its
`:event-type` header, with the event's JSON as payload; InvokeModelWithResponseStream
sends `chunk` events whose base64 `bytes` are the model vendor's own stream events.
Errors are JSON `{"message"}` with the type in `x-amzn-ErrorType`, or `exception`
messages inside a stream.

InvokeModel bodies are each vendor's native format. Anthropic's Messages API (with
`anthropic_version: bedrock-2023-05-31`) is decoded by the Anthropic decoder, OpenAI
chat (gpt-oss) by the OpenAI one, Amazon Nova's `messages-v1` like Converse; for
the others (Llama, Mistral, Titan, Cohere, DeepSeek...) the documented text and
token-count fields are read, and embeddings models are summarised like embeddings.

Usage: Converse's `inputTokens` excludes cache reads and writes (as Anthropic's
`input_tokens` does), so prompt_tokens = inputTokens + cacheReadInputTokens +
cacheWriteInputTokens, cached_tokens = cacheReadInputTokens, cache_creation_tokens =
cacheWriteInputTokens, total = prompt + completion. When a vendor body carries no
usage, the `amazon-bedrock-invocationMetrics` of the stream or the
`X-Amzn-Bedrock-*-Token-Count` response headers are used instead, with the same meaning.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any
from urllib.parse import unquote

import orjson

from oisp_sensor.decode.eventstream import EventStreamMessage
from oisp_sensor.decode.http1 import ResponseHead
from oisp_sensor.decode.providers.anthropic import AnthropicMessages, anthropic_usage
from oisp_sensor.decode.providers.base import (
    ApiDecoder,
    DecodedRequest,
    HttpRequest,
    ResponseAssembler,
    ResponseBuilder,
    as_int,
    copy_parameters,
    loads,
)
from oisp_sensor.decode.providers.common import (
    RequestBuilder,
    compact_json,
    history_call,
    not_an_object,
    record_embeddings_in,
    text_of,
)
from oisp_sensor.decode.providers.openai_chat import OpenAIChat
from oisp_sensor.decode.providers.openai_legacy import input_count
from oisp_sensor.errors import DecodeError
from oisp_sensor.events.data import ToolCall, ToolDefinition, Usage

_PATH = re.compile(r"^/model/(?P<model>[^/]+)/(?P<op>[a-z-]+)$")
PARAMETERS = {
    "maxTokens": "max_tokens",
    "max_new_tokens": "max_tokens",
    "temperature": "temperature",
    "topP": "top_p",
    "top_k": "top_k",
    "topK": "top_k",
    "stopSequences": "stop",
}
_TOOL_CHOICE = {"auto": "auto", "any": "required", "tool": "specific"}


def operation(req: HttpRequest) -> tuple[str, str] | None:
    """(model id, operation) from `/model/{modelId}/{operation}`."""
    m = _PATH.match(req.path)
    return (unquote(m["model"]), m["op"]) if m else None


def bedrock_usage(raw: Any) -> Usage | None:
    """Converse usage (and Nova's `...TokenCount` spelling) in the spec's meaning."""
    if not isinstance(raw, dict):
        return None
    return anthropic_usage(
        {
            "input_tokens": raw.get("inputTokens", raw.get("inputTokenCount")),
            "output_tokens": raw.get("outputTokens", raw.get("outputTokenCount")),
            "cache_read_input_tokens": raw.get(
                "cacheReadInputTokens", raw.get("cacheReadInputTokenCount")
            ),
            "cache_creation_input_tokens": raw.get(
                "cacheWriteInputTokens", raw.get("cacheWriteInputTokenCount")
            ),
        }
    )


def _blocks_text(blocks: Any, key: str = "text") -> str:
    return "\n".join(
        b[key] for b in blocks or [] if isinstance(b, dict) and isinstance(b.get(key), str)
    )


def converse_request(rb: RequestBuilder, body: dict[str, Any]) -> None:
    """Messages and system blocks of a Converse (or Nova `messages-v1`) request."""
    system = _blocks_text(body.get("system"))
    if system:
        rb.message("system", system)
    for raw in body.get("messages") or []:
        if not isinstance(raw, dict):
            continue
        texts: list[str] = []
        thinking: list[str] = []
        calls: list[ToolCall] = []
        images = 0
        for block in raw.get("content") or []:
            if not isinstance(block, dict):
                continue
            if isinstance(block.get("text"), str):
                texts.append(block["text"])
            images += "image" in block
            reasoning = block.get("reasoningContent")
            if isinstance(reasoning, dict):
                thinking.append(text_of((reasoning.get("reasoningText") or {}).get("text")))
            use = block.get("toolUse")
            if isinstance(use, dict):
                calls.append(history_call(use.get("toolUseId"), use.get("name"), use.get("input")))
            result = block.get("toolResult")
            if isinstance(result, dict):
                parts = result.get("content") or []
                text = "\n".join(
                    text_of(p.get("text")) or compact_json(p.get("json"))
                    for p in parts
                    if isinstance(p, dict) and ("text" in p or "json" in p)
                )
                call_id = result.get("toolUseId")
                rb.tool_result(
                    call_id if isinstance(call_id, str) else None,
                    text,
                    is_error=result.get("status") == "error",
                    images=sum(isinstance(p, dict) and "image" in p for p in parts),
                )
        assistant = raw.get("role") == "assistant"
        rb.turn(assistant, texts, images=images, thinking=thinking, calls=calls)


def converse_tools(body: dict[str, Any]) -> tuple[list[ToolDefinition], str | None]:
    config = body.get("toolConfig")
    if not isinstance(config, dict):
        return [], None
    tools: list[ToolDefinition] = []
    for tool in config.get("tools") or []:
        spec = tool.get("toolSpec") if isinstance(tool, dict) else None
        if isinstance(spec, dict):
            td: ToolDefinition = {"type": "function"}
            if isinstance(spec.get("name"), str):
                td["name"] = spec["name"]
            if isinstance(spec.get("description"), str):
                td["description"] = spec["description"]
            tools.append(td)
    choice = config.get("toolChoice")
    key = next(iter(choice), None) if isinstance(choice, dict) else None
    return tools, _TOOL_CHOICE.get(str(key)) if key else None


def _parameters(body: dict[str, Any]) -> dict[str, Any]:
    config = body.get("inferenceConfig")
    return copy_parameters(config, PARAMETERS) if isinstance(config, dict) else {}


class ConverseAssembler(ResponseAssembler):
    """Converse's JSON, ConverseStream's events, and Nova's (same-shaped) invoke chunks."""

    def on_json(self, obj: Any) -> None:
        b = self.builder
        message = (obj.get("output") or {}).get("message") or {}
        for i, block in enumerate(message.get("content") or []):
            b.add_text(block.get("text"))
            reasoning = block.get("reasoningContent") or {}
            b.add_thinking(text_of((reasoning.get("reasoningText") or {}).get("text")))
            use = block.get("toolUse")
            if isinstance(use, dict):
                call = b.tool_call(i)
                call.id, call.name = use.get("toolUseId"), use.get("name")
                input_ = use.get("input")
                b.set_tool_arguments(i, input_ if isinstance(input_, dict) else {})
        self._end(obj)

    def on_eventstream(self, msg: EventStreamMessage) -> None:
        self.event(msg.event_type or "", _payload(msg))

    def event(self, name: str, payload: dict[str, Any]) -> None:
        b = self.builder
        index = as_int(payload.get("contentBlockIndex")) or 0
        if name == "messageStart":
            b.choice(0)
        elif name == "contentBlockStart":
            use = (payload.get("start") or {}).get("toolUse")
            if isinstance(use, dict):
                call = b.tool_call(index)
                call.id, call.name = use.get("toolUseId"), use.get("name")
        elif name == "contentBlockDelta":
            delta = payload.get("delta") or {}
            b.add_text(delta.get("text"))
            if isinstance(delta.get("toolUse"), dict):
                b.add_tool_arguments(index, delta["toolUse"].get("input"))
            reasoning = delta.get("reasoningContent")
            if isinstance(reasoning, dict):
                b.add_thinking(reasoning.get("text"))
        elif name in ("messageStop", "metadata"):
            self._end(payload)

    def _end(self, obj: dict[str, Any]) -> None:
        """stopReason, usage and metrics: the end of a Converse response or stream."""
        b = self.builder
        if isinstance(obj.get("stopReason"), str):
            b.choice(0).finish_reason = obj["stopReason"]
        b.set_usage(bedrock_usage(obj.get("usage")))
        latency = as_int((obj.get("metrics") or {}).get("latencyMs"))
        if latency is not None:
            b.attrs["provider_latency_ms"] = latency


class BedrockConverse(ApiDecoder):
    name = "bedrock.converse"
    request_type = "chat"
    assembler_class = ConverseAssembler

    def matches(self, req: HttpRequest) -> bool:
        op = operation(req)
        return req.method == "POST" and op is not None and op[1] in ("converse", "converse-stream")

    def decode_request(self, req: HttpRequest) -> DecodedRequest:
        body = req.json()
        if not isinstance(body, dict):
            return not_an_object()
        model, op = operation(req) or ("", "")
        rb = RequestBuilder()
        converse_request(rb, body)
        tools, choice = converse_tools(body)
        return rb.build(
            model=model,
            streaming=op == "converse-stream",
            tools=tools,
            tool_choice=choice,
            parameters=_parameters(body),
        )


def _payload(msg: EventStreamMessage) -> dict[str, Any]:
    try:
        obj = loads(msg.payload)
    except orjson.JSONDecodeError:
        raise DecodeError(f"invalid JSON in event stream event {msg.event_type!r}") from None
    if not isinstance(obj, dict):
        raise DecodeError(f"event stream event {msg.event_type!r} is not a JSON object")
    return obj


# --- InvokeModel ------------------------------------------------------------------------

_ANTHROPIC = AnthropicMessages()
_OPENAI = OpenAIChat()


def vendor(model: str, body: Any) -> str:
    """Which native format an InvokeModel body is in: from the body first, then the model id."""
    model = model.lower()
    if "embed" in model:
        return "embedding"
    if isinstance(body, dict):
        if "anthropic_version" in body:
            return "anthropic"
        if body.get("schemaVersion") == "messages-v1" or "amazon.nova" in model:
            return "nova"
        messages = body.get("messages")
        if isinstance(messages, list) and ("openai." in model or "mistral." in model):
            return "openai"
    return "anthropic" if "anthropic." in model else "text"


class BedrockInvoke(ApiDecoder):
    name = "bedrock.invoke"
    request_type = "chat"

    def matches(self, req: HttpRequest) -> bool:
        op = operation(req)
        return (
            req.method == "POST"
            and op is not None
            and op[1] in ("invoke", "invoke-with-response-stream")
        )

    def decode_request(self, req: HttpRequest) -> DecodedRequest:
        model, op = operation(req) or ("", "")
        streaming = op == "invoke-with-response-stream"
        body = req.json()
        kind = vendor(model, body)
        if not isinstance(body, dict):
            return not_an_object("embedding" if kind == "embedding" else "chat")
        if kind in ("anthropic", "openai"):
            decoded = (_ANTHROPIC if kind == "anthropic" else _OPENAI).decode_request(req)
            decoded.model = decoded.model or model
            decoded.streaming = decoded.data["streaming"] = streaming
            return decoded
        rb = RequestBuilder("embedding" if kind == "embedding" else "chat")
        tools: list[ToolDefinition] = []
        choice = None
        if kind == "nova":
            converse_request(rb, body)
            tools, choice = converse_tools(body)
        elif kind == "embedding":
            texts = body.get("texts", body.get("inputText"))
            rb.attrs["input_count"] = input_count(texts)
            rb.chars = sum(len(t) for t in ([texts] if isinstance(texts, str) else texts or []))
        else:
            for key in ("prompt", "inputText", "message"):
                if isinstance(body.get(key), str):
                    rb.message("user", body[key])
            rb.attrs["vendor_format"] = "text"
        params = _parameters(body) or copy_parameters(body, _TEXT_PARAMETERS)
        return rb.build(
            model=model, streaming=streaming, tools=tools, tool_choice=choice, parameters=params
        )

    def assembler(
        self,
        req: HttpRequest,
        decoded: DecodedRequest,
        head: ResponseHead,
        builder: ResponseBuilder,
    ) -> ResponseAssembler:
        model, _ = operation(req) or ("", "")
        kind = vendor(model, req.json())
        inner: ResponseAssembler | None = None
        if kind == "anthropic":
            inner = _ANTHROPIC.assembler(req, decoded, head, builder)
        elif kind == "openai":
            inner = _OPENAI.assembler(req, decoded, head, builder)
        elif kind == "nova":
            inner = ConverseAssembler(head, builder)
        return InvokeAssembler(head, builder, inner)


_TEXT_PARAMETERS = {
    "max_gen_len": "max_tokens",
    "max_tokens": "max_tokens",
    "temperature": "temperature",
    "top_p": "top_p",
    "top_k": "top_k",
    "stop": "stop",
}


class InvokeAssembler(ResponseAssembler):
    """A vendor's native response, whole or as base64 `chunk` events, plus Bedrock's counts."""

    def __init__(
        self, head: ResponseHead, builder: ResponseBuilder, inner: ResponseAssembler | None
    ) -> None:
        super().__init__(head, builder)
        self.inner = inner
        self._metrics: dict[str, Any] | None = None  # amazon-bedrock-invocationMetrics

    def on_json(self, obj: Any) -> None:
        if self.inner is not None:
            self.inner.on_json(obj)
        else:
            _native(self.builder, obj)

    def on_eventstream(self, msg: EventStreamMessage) -> None:
        payload = _payload(msg)
        if msg.event_type != "chunk":
            return
        try:
            raw = base64.b64decode(text_of(payload.get("bytes")), validate=True)
            obj = loads(raw)
        except (binascii.Error, ValueError):
            raise DecodeError("invalid base64 JSON in a Bedrock stream chunk") from None
        if not isinstance(obj, dict):
            raise DecodeError("Bedrock stream chunk is not a JSON object")
        inner = self.inner
        if isinstance(inner, ConverseAssembler):
            for name, value in obj.items():
                if isinstance(value, dict):
                    inner.event(name, value)
        elif inner is not None:  # Anthropic / OpenAI stream events, as their SSE data
            name = obj.get("type")
            inner.on_sse(name.encode() if isinstance(name, str) else b"", raw)
        else:
            _native(self.builder, obj, counts=False)  # per-chunk counts: use the metrics
        metrics = obj.get("amazon-bedrock-invocationMetrics")
        if isinstance(metrics, dict):
            self._metrics = metrics

    def finish(self, ts_ns: int) -> None:
        super().finish(ts_ns)
        b = self.builder
        if b.usage is None:
            headers = self.head.headers
            counts = self._metrics or {
                "inputTokens": _header_int(headers.get("x-amzn-bedrock-input-token-count")),
                "outputTokens": _header_int(headers.get("x-amzn-bedrock-output-token-count")),
                "cacheReadInputTokens": _header_int(
                    headers.get("x-amzn-bedrock-cache-read-input-token-count")
                ),
                "cacheWriteInputTokens": _header_int(
                    headers.get("x-amzn-bedrock-cache-write-input-token-count")
                ),
            }
            usage = bedrock_usage(counts)
            if usage is not None:
                b.set_usage(usage)
                b.attrs["usage_source"] = "bedrock_metrics"


def _header_int(value: str | None) -> int | None:
    # isascii: str.isdigit() alone also takes "³", which int() refuses
    return int(value) if value is not None and value.isascii() and value.isdigit() else None


def _native(b: ResponseBuilder, obj: dict[str, Any], *, counts: bool = True) -> None:
    """The documented text and count fields of the other vendors' InvokeModel bodies.

    Meta `generation`, Mistral `outputs[].text`, Titan `results[].outputText` /
    `outputText`, DeepSeek `choices[].text`, Cohere `text` / `generations[].text`,
    Claude 2 `completion`; embeddings' `embedding` / `embeddings`.
    """
    items = obj.get("outputs") or obj.get("results") or obj.get("choices") or obj.get("generations")
    pieces = items if isinstance(items, list) else [obj]
    for piece in pieces:
        if not isinstance(piece, dict):
            continue
        for key in ("generation", "outputText", "text", "completion"):
            if isinstance(piece.get(key), str):
                b.add_text(piece[key])
                break
        for key in ("stop_reason", "completionReason", "finish_reason"):
            if isinstance(piece.get(key), str):
                b.choice(0).finish_reason = piece[key]
    record_embeddings_in(b, obj)
    if not counts:
        return
    prompt = as_int(obj.get("prompt_token_count", obj.get("inputTextTokenCount")))
    output = as_int(obj.get("generation_token_count"))
    results = obj.get("results")
    if output is None and isinstance(results, list):  # Titan: tokens per result
        output = sum(as_int(r.get("tokenCount")) or 0 for r in results if isinstance(r, dict))
    b.set_usage(bedrock_usage({"inputTokens": prompt, "outputTokens": output}))
