"""Model families from the ids every route uses for the same models."""

from __future__ import annotations

import pytest

from oisp_sensor.decode.models import model_family

CASES = [
    ("gpt-4o-mini", "gpt-4o"),
    ("chatgpt-4o-latest", "gpt-4o"),
    ("gpt-4.1-mini", "gpt-4.1"),
    ("gpt-5-mini", "gpt-5"),
    ("gpt-oss-120b", "gpt-oss"),
    ("o3-mini", "o3"),
    ("o1", "o1"),
    ("openai/gpt-4o", "gpt-4o"),
    ("text-embedding-3-small", "text-embedding"),
    ("claude-3-5-sonnet-20241022", "claude-3.5"),
    ("claude-3-haiku-20240307", "claude-3"),
    ("claude-sonnet-4-5-20250929", "claude-4.5"),
    ("claude-opus-4-20250514", "claude-4"),
    ("claude-opus-4-1@20250805", "claude-4.1"),
    ("claude-2.1", "claude-2.1"),
    ("us.anthropic.claude-3-5-sonnet-20241022-v2:0", "claude-3.5"),
    (
        "arn:aws:bedrock:us-east-1:1:inference-profile/us.anthropic.claude-sonnet-4-20250514-v1:0",
        "claude-4",
    ),
    ("gemini-2.5-flash", "gemini-2.5"),
    ("models/gemini-1.5-pro", "gemini-1.5"),
    ("publishers/google/models/gemini-2.0-flash-001", "gemini-2.0"),
    ("gemini-embedding-001", "gemini-embedding"),
    ("gemma3:4b", "gemma3"),
    ("llama3.2:3b", "llama-3.2"),
    ("llama-3.3-70b-versatile", "llama-3.3"),
    ("llama3-8b-8192", "llama-3"),
    ("meta.llama3-1-70b-instruct-v1:0", "llama-3.1"),
    ("accounts/fireworks/models/llama-v3p1-70b-instruct", "llama-3.1"),
    ("meta-llama/Llama-3.3-70B-Instruct-Turbo", "llama-3.3"),
    ("llama-4-scout-17b-16e-instruct", "llama-4"),
    ("mistral-large-latest", "mistral"),
    ("codestral-latest", "codestral"),
    ("mistral.mistral-large-2407-v1:0", "mistral"),
    ("deepseek-chat", "deepseek"),
    ("deepseek.r1-v1:0", "deepseek"),
    ("deepseek-ai/DeepSeek-R1", "deepseek"),
    ("grok-4-0709", "grok-4"),
    ("command-r-plus", "command-r"),
    ("command-a-03-2025", "command-a"),
    ("cohere.embed-english-v3", "cohere-embed"),
    ("qwen2.5-coder:7b", "qwen2.5"),
    ("amazon.nova-pro-v1:0", "amazon-nova"),
    ("amazon.titan-embed-text-v2:0", "amazon-titan"),
    ("sonar-pro", "sonar"),
    ("phi3:mini", "phi-3"),
]


@pytest.mark.parametrize(("model_id", "family"), CASES)
def test_family(model_id: str, family: str) -> None:
    assert model_family(model_id) == family


@pytest.mark.parametrize("model_id", [None, "", "my-azure-deployment", "totally-new-model"])
def test_unknown_is_none(model_id: str | None) -> None:
    assert model_family(model_id) is None
