"""Typed shapes of the `data` payloads we emit, with the spec's field names.

They are `TypedDict`s, so the payload stays a plain dict at run time (cheap to
build, redact and serialise) while mypy checks the names against the spec
(schema/v0.1/events/*.schema.json). Keys marked "extension" are not in v0.1; the
spec leaves these objects open, and README.md lists every extension we add.
"""

from __future__ import annotations

from typing import Any, TypedDict


class ProviderInfo(TypedDict, total=False):
    name: str
    endpoint: str
    region: str
    organization_id: str
    project_id: str


class ModelInfo(TypedDict, total=False):
    id: str
    name: str
    family: str
    version: str


class AuthInfo(TypedDict, total=False):
    type: str
    key_prefix: str
    key_hash: str


class ToolCall(TypedDict, total=False):
    id: str
    name: str
    type: str
    arguments: str | dict[str, Any]
    arguments_hash: str


class Message(TypedDict, total=False):
    role: str
    content: str | dict[str, Any]
    content_hash: str
    content_length: int
    has_images: bool
    image_count: int
    tool_call_id: str
    name: str
    tool_calls: list[ToolCall]  # extension: calls an assistant turn made (history)
    thinking: str  # extension: reasoning text the model returned


class ToolDefinition(TypedDict, total=False):
    name: str
    type: str
    description: str


class Usage(TypedDict, total=False):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cached_tokens: int
    reasoning_tokens: int
    cache_creation_tokens: int  # extension: input written to a prompt cache (Anthropic)
    input_cost_usd: float
    output_cost_usd: float
    total_cost_usd: float


class Choice(TypedDict, total=False):
    index: int
    message: Message
    finish_reason: str


class ErrorInfo(TypedDict, total=False):
    type: str
    message: str
    code: str


class AiRequestData(TypedDict, total=False):
    request_id: str
    conversation_id: str
    provider: ProviderInfo
    model: ModelInfo
    auth: AuthInfo
    request_type: str
    streaming: bool
    messages: list[Message]
    messages_count: int
    has_system_prompt: bool
    system_prompt_hash: str
    tools: list[ToolDefinition]
    tools_count: int
    tool_choice: str
    parameters: dict[str, Any]
    has_rag_context: bool
    has_images: bool
    image_count: int
    estimated_tokens: int


class AiResponseData(TypedDict, total=False):
    request_id: str
    conversation_id: str
    provider_request_id: str
    provider: ProviderInfo
    model: ModelInfo
    status_code: int
    success: bool
    error: ErrorInfo
    choices: list[Choice]
    tool_calls: list[ToolCall]
    tool_calls_count: int
    usage: Usage
    latency_ms: int
    time_to_first_token_ms: int
    was_cached: bool
    finish_reason: str


class StreamingChunkData(TypedDict, total=False):
    request_id: str
    chunk_index: int
    delta: dict[str, Any]
    finish_reason: str


class ToolInfo(TypedDict, total=False):
    name: str
    type: str
    provider: str


class ToolCallData(TypedDict, total=False):
    tool: ToolInfo
    call_id: str
    triggered_by: str
    arguments: dict[str, Any]
    arguments_hash: str


class ToolResultData(TypedDict, total=False):
    tool: ToolInfo
    call_id: str
    success: bool
    error: dict[str, str]
    result: str | dict[str, Any] | list[Any]
    result_hash: str
    result_size_bytes: int
    duration_ms: int


class Endpoint(TypedDict, total=False):
    ip: str
    port: int
    domain: str
    is_private: bool


class NetworkConnectData(TypedDict, total=False):
    dest: Endpoint
    src: Endpoint
    protocol: str
    success: bool
    error: str
    latency_ms: float
    tls: dict[str, Any]
