"""Google Gemini (AI Studio) and Vertex AI `generateContent`, `streamGenerateContent`,
`embedContent` and `batchEmbedContents`.

Wire format: https://ai.google.dev/api/generate-content and the googleapis/python-genai
types. The model is in the URL (`/v1beta/models/{model}:verb`, or on Vertex
`/v1/projects/{p}/locations/{l}/publishers/google/models/{model}:verb`). A stream is
SSE with `?alt=sse`, otherwise one JSON array whose elements arrive as they are
generated; each element is a whole `GenerateContentResponse` chunk. JSON field names
are lowerCamelCase on the wire, but Google's servers accept snake_case too, so both
are read.

Tool calls (`functionCall` parts) may carry no `id`; then one is derived from the
call's place in the conversation (providers/toolids.py) so that the later
`functionResponse` part — matched by name and order — finds it.

Usage (`usageMetadata`): prompt_tokens = promptTokenCount + toolUsePromptTokenCount
(both billed as input); cached_tokens = cachedContentTokenCount (already inside
promptTokenCount). Gemini's candidatesTokenCount leaves out the thinking tokens,
which are billed at the output price, so completion_tokens = candidatesTokenCount +
thoughtsTokenCount and reasoning_tokens = thoughtsTokenCount — the same meaning as
OpenAI's (reasoning is part of completion), which keeps cost = completion x output
price right. total_tokens = totalTokenCount. Streamed chunks repeat cumulative
usage; the last one wins.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from oisp_sensor.decode.http1 import ResponseHead
from oisp_sensor.decode.providers.base import (
    ApiDecoder,
    DecodedRequest,
    HttpRequest,
    ResponseAssembler,
    ResponseBuilder,
    StreamFormat,
    as_int,
    as_str,
    compact_usage,
    copy_parameters,
    error_from_body,
    stream_format,
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
from oisp_sensor.decode.providers.toolids import CallNumbering, HistoryCalls
from oisp_sensor.events.data import ToolCall, ToolDefinition, Usage

GENERATE = ("generateContent", "streamGenerateContent")
EMBED = ("embedContent", "batchEmbedContents")
PARAMETERS = {
    "temperature": "temperature",
    "topP": "top_p",
    "topK": "top_k",
    "maxOutputTokens": "max_tokens",
    "stopSequences": "stop",
    "candidateCount": "n",
    "seed": "seed",
    "presencePenalty": "presence_penalty",
    "frequencyPenalty": "frequency_penalty",
}
_MODES = {"AUTO": "auto", "ANY": "required", "NONE": "none", "VALIDATED": "auto"}
_BUILTIN_TOOLS = {
    "codeExecution": "code_interpreter",
    "retrieval": "file_search",
    "fileSearch": "file_search",
    "computerUse": "computer_use",
}


def field(obj: Any, camel: str) -> Any:
    """`obj[camel]`, or its snake_case spelling (both are accepted by Google's servers)."""
    if not isinstance(obj, dict):
        return None
    if camel in obj:
        return obj[camel]
    return obj.get(_snake(camel))


def verb(req: HttpRequest) -> str:
    last = req.path.rsplit("/", 1)[-1]
    return last.rsplit(":", 1)[-1] if ":" in last else ""


def path_model(req: HttpRequest) -> str | None:
    """`models/gemini-2.5-flash:generateContent` -> `gemini-2.5-flash` (tuned models too)."""
    last = unquote(req.path.rsplit("/", 1)[-1])
    return last.rsplit(":", 1)[0] if ":" in last else None


def gemini_usage(raw: Any) -> Usage | None:
    if not isinstance(raw, dict):
        return None
    prompt = as_int(field(raw, "promptTokenCount"))
    tool_prompt = as_int(field(raw, "toolUsePromptTokenCount"))
    candidates = as_int(field(raw, "candidatesTokenCount"))
    thoughts = as_int(field(raw, "thoughtsTokenCount"))
    completion = (
        (candidates or 0) + (thoughts or 0)
        if candidates is not None or thoughts is not None
        else None
    )
    return compact_usage(
        prompt_tokens=prompt + (tool_prompt or 0) if prompt is not None else None,
        completion_tokens=completion,
        total_tokens=as_int(field(raw, "totalTokenCount")),
        cached_tokens=as_int(field(raw, "cachedContentTokenCount")),
        reasoning_tokens=thoughts,
    )


def _parts_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    parts = field(content, "parts") if isinstance(content, dict) else content
    return "\n".join(text_of(p.get("text")) for p in parts or [] if isinstance(p, dict))


def _is_image(part: dict[str, Any]) -> bool:
    blob = field(part, "inlineData") or field(part, "fileData")
    return isinstance(blob, dict) and str(field(blob, "mimeType") or "").startswith("image/")


def _tools(raw: Any) -> list[ToolDefinition]:
    out: list[ToolDefinition] = []
    for tool in raw if isinstance(raw, list) else []:
        if not isinstance(tool, dict):
            continue
        for decl in field(tool, "functionDeclarations") or []:
            td: ToolDefinition = {"type": "function"}
            if isinstance(decl.get("name"), str):
                td["name"] = decl["name"]
            if isinstance(decl.get("description"), str):
                td["description"] = decl["description"]
            out.append(td)
        for key in tool:
            camel = "".join(w.capitalize() if i else w for i, w in enumerate(key.split("_")))
            if camel != "functionDeclarations":
                out.append({"type": _BUILTIN_TOOLS.get(camel, "other"), "name": camel})
    return out


def _parameters(body: dict[str, Any]) -> dict[str, Any]:
    config = field(body, "generationConfig")
    if not isinstance(config, dict):
        return {}
    params = copy_parameters(config, PARAMETERS)
    params.update(copy_parameters(config, {_snake(k): v for k, v in PARAMETERS.items()}))
    thinking = field(config, "thinkingConfig")
    budget = as_int(field(thinking, "thinkingBudget"))
    if budget is not None:
        params["thinking_budget_tokens"] = budget
    level = field(thinking, "thinkingLevel")
    if isinstance(level, str):
        params["thinking_level"] = level
    return params


def _snake(camel: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in camel)


class Gemini(ApiDecoder):
    name = "gemini"
    request_type = "chat"

    def matches(self, req: HttpRequest) -> bool:
        return req.method == "POST" and verb(req) in (*GENERATE, *EMBED)

    def decode_request(self, req: HttpRequest) -> DecodedRequest:
        body = req.json()
        action = verb(req)
        embedding = action in EMBED
        if not isinstance(body, dict):
            return not_an_object("embedding" if embedding else "chat")
        if embedding:
            return self._embed_request(req, body)
        rb = RequestBuilder()
        system = _parts_text(field(body, "systemInstruction"))
        if system:
            rb.message("system", system)
        contents = field(body, "contents")
        if isinstance(contents, dict):
            contents = [contents]
        history = HistoryCalls()
        for index, content in enumerate(contents if isinstance(contents, list) else []):
            if isinstance(content, dict):
                self._content(rb, history, index, content)
        choice = field(field(field(body, "toolConfig"), "functionCallingConfig"), "mode")
        decoded = rb.build(
            model=path_model(req),
            streaming=action == "streamGenerateContent",
            tools=_tools(field(body, "tools")),
            tool_choice=_MODES.get(str(choice)) if choice else None,
            parameters=_parameters(body),
        )
        if isinstance(field(body, "cachedContent"), str):
            decoded.attrs["cached_content"] = field(body, "cachedContent")
        return decoded

    def _content(
        self, rb: RequestBuilder, history: HistoryCalls, index: int, content: dict[str, Any]
    ) -> None:
        model_turn = content.get("role") == "model"
        if model_turn:
            history.assistant_entry(index)
        texts: list[str] = []
        thinking: list[str] = []
        calls: list[ToolCall] = []
        images = 0
        for part in content.get("parts") or []:
            if not isinstance(part, dict):
                continue
            text = part.get("text")
            if isinstance(text, str):
                (thinking if part.get("thought") is True else texts).append(text)
            images += _is_image(part)
            fc = field(part, "functionCall")
            if isinstance(fc, dict):
                name, given = as_str(fc.get("name")), as_str(fc.get("id"))
                args = fc.get("args")
                calls.append(
                    history_call(history.call(name, given), name, args if args is not None else {})
                )
            fr = field(part, "functionResponse")
            if isinstance(fr, dict):
                name, given = as_str(fr.get("name")), as_str(fr.get("id"))
                response = fr.get("response")
                rb.tool_result(
                    history.result(name, given),
                    compact_json(response) if response is not None else "",
                    name=name,
                    is_error=isinstance(response, dict) and "error" in response,
                )
        rb.turn(model_turn, texts, images=images, thinking=thinking, calls=calls)

    def _embed_request(self, req: HttpRequest, body: dict[str, Any]) -> DecodedRequest:
        rb = RequestBuilder("embedding")
        requests = field(body, "requests")
        items = requests if isinstance(requests, list) else [body]
        rb.chars = sum(len(_parts_text(field(item, "content"))) for item in items)
        rb.attrs["input_count"] = len(items)
        params: dict[str, Any] = {}
        dims = as_int(field(items[0], "outputDimensionality")) if items else None
        if dims:
            params["dimensions"] = dims
        return rb.build(model=path_model(req), streaming=False, parameters=params)

    def assembler(
        self,
        req: HttpRequest,
        decoded: DecodedRequest,
        head: ResponseHead,
        builder: ResponseBuilder,
    ) -> ResponseAssembler:
        array = (
            decoded.streaming
            and head.status < 400
            and stream_format(head.headers) is StreamFormat.JSON
        )
        body = req.json()
        contents = field(body, "contents") if isinstance(body, dict) else None
        turn = len(contents) if isinstance(contents, list) else 1
        framing = StreamFormat.JSON_ARRAY if array else None
        return GeminiAssembler(head, builder, framing, turn)


class GeminiAssembler(ResponseAssembler):
    """Each chunk (whole body, SSE event or array element) is a GenerateContentResponse."""

    def __init__(
        self,
        head: ResponseHead,
        builder: ResponseBuilder,
        framing: StreamFormat | None,
        turn: int,
    ) -> None:
        super().__init__(head, builder, framing)
        self._turn = turn
        self._calls: dict[int, CallNumbering] = {}  # per candidate

    def on_json(self, obj: Any) -> None:
        self._chunk(obj)

    def on_sse(self, event: bytes, data: bytes) -> None:
        self._chunk(self.sse_json(event, data))

    def on_array_item(self, obj: Any) -> None:
        self._chunk(obj)

    def finish(self, ts_ns: int) -> None:
        super().finish(ts_ns)
        stopped_for_tools(self.builder)

    def _chunk(self, obj: dict[str, Any]) -> None:
        b = self.builder
        if "error" in obj:
            b.error = error_from_body(obj)
            return
        b.model = field(obj, "modelVersion")
        b.provider_request_id = field(obj, "responseId")
        b.set_usage(gemini_usage(field(obj, "usageMetadata")))
        blocked = field(field(obj, "promptFeedback"), "blockReason")
        if isinstance(blocked, str):
            b.finish_reason = blocked
            b.attrs["block_reason"] = blocked
        record_embeddings_in(b, obj)
        for candidate in obj.get("candidates") or []:
            self._candidate(candidate)

    def _candidate(self, candidate: dict[str, Any]) -> None:
        b = self.builder
        index = as_int(candidate.get("index")) or 0
        b.choice(index)
        for part in field(candidate.get("content"), "parts") or []:
            text = part.get("text")
            if isinstance(text, str):
                if part.get("thought") is True:
                    b.add_thinking(text, index)
                else:
                    b.add_text(text, index)
            fc = field(part, "functionCall")
            if isinstance(fc, dict):
                numbering = self._calls.setdefault(index, CallNumbering(self._turn))
                key = len(b.choice(index).tool_calls)
                call = b.tool_call(key, index)
                call.name = fc.get("name")
                call.id = as_str(fc.get("id")) or numbering.next_id(call.name)
                args = fc.get("args")
                b.set_tool_arguments(key, args if isinstance(args, dict) else {}, index)
        reason = field(candidate, "finishReason")
        if isinstance(reason, str):
            b.choice(index).finish_reason = reason
