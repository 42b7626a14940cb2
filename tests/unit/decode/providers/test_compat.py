"""OpenAI-compatible providers, each on its own host, and unknown endpoints on every AI host."""

from __future__ import annotations

from typing import Any

import pytest

from oisp_sensor.counters import Counters
from oisp_sensor.decode.decoder import Decoder
from oisp_sensor.enrich.pricing import PricingEnricher
from tests.conformance import assert_valid_events
from tests.helpers import HASHER, captures, http_request, http_response, sse_events
from tests.unit.decode.providers.exchange import one, run

QUESTION = [{"role": "user", "content": "Hi"}]


def chat(
    host: str,
    path: str,
    reply: dict[str, Any] | bytes,
    *,
    port: int = 443,
    body: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    req = http_request(path, body or {"model": "m", "messages": QUESTION}, host=host)
    resp = reply if isinstance(reply, bytes) else http_response(reply)
    return run([(req, resp)], host=host.split(":")[0], port=port)


def reply(
    message: dict[str, Any], usage: dict[str, Any] | None = None, **extra: Any
) -> dict[str, Any]:
    out = {
        "id": "x-1",
        "model": "served-model",
        "choices": [
            {"index": 0, "message": {"role": "assistant", **message}, "finish_reason": "stop"}
        ],
        **extra,
    }
    if usage:
        out["usage"] = usage
    return out


def test_azure_openai_deployment_and_api_version() -> None:
    events = chat(
        "myres.openai.azure.com",
        "/openai/deployments/prod-gpt4o/chat/completions?api-version=2024-10-21",
        reply(
            {"content": "Hello"},
            {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
            model="gpt-4o-2024-08-06",
        ),
        body={"messages": QUESTION},
    )
    req = one(events, "ai.request")
    assert req["data"]["provider"]["name"] == "azure_openai"
    assert req["data"]["model"] == {"id": "prod-gpt4o"}  # the deployment: the body names none
    assert req["attrs"]["api_version"] == "2024-10-21"
    resp = one(events, "ai.response")["data"]
    assert resp["model"] == {"id": "gpt-4o-2024-08-06", "family": "gpt-4o"}


def test_azure_embeddings_deployment() -> None:
    events = chat(
        "myres.openai.azure.com",
        "/openai/deployments/emb/embeddings?api-version=2024-10-21",
        {
            "data": [{"embedding": [0.0] * 3}],
            "model": "text-embedding-3-small",
            "usage": {"prompt_tokens": 1, "total_tokens": 1},
        },
        body={"input": "x"},
    )
    assert one(events, "ai.request")["data"]["request_type"] == "embedding"
    assert one(events, "ai.response")["attrs"]["embedding"] == {"count": 1, "dimensions": 3}


def test_groq_usage_in_x_groq() -> None:
    stream = http_response(
        content_type="text/event-stream",
        chunks=sse_events(
            {
                "id": "g-1",
                "model": "llama-3.3-70b-versatile",
                "choices": [{"index": 0, "delta": {"content": "Hey"}}],
            },
            {
                "id": "g-1",
                "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                "x_groq": {
                    "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11}
                },
            },
            "[DONE]",
        ),
    )
    events = chat(
        "api.groq.com",
        "/openai/v1/chat/completions",
        stream,
        body={"model": "llama-3.3-70b-versatile", "messages": QUESTION, "stream": True},
    )
    resp = one(events, "ai.response")["data"]
    assert resp["provider"]["name"] == "groq"
    assert resp["usage"] == {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11}
    assert resp["model"]["family"] == "llama-3.3"


def test_mistral() -> None:
    events = chat(
        "api.mistral.ai",
        "/v1/chat/completions",
        reply(
            {"content": "Bonjour"},
            {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6},
            model="mistral-large-latest",
        ),
    )
    resp = one(events, "ai.response")["data"]
    assert resp["provider"]["name"] == "mistral" and resp["model"]["family"] == "mistral"
    assert resp["choices"][0]["message"]["content"] == "Bonjour"


def test_deepseek_reasoning_content_and_cache_hits() -> None:
    usage = {
        "prompt_tokens": 100,
        "completion_tokens": 40,
        "total_tokens": 140,
        "prompt_cache_hit_tokens": 64,
        "prompt_cache_miss_tokens": 36,
        "completion_tokens_details": {"reasoning_tokens": 30},
    }
    events = chat(
        "api.deepseek.com",
        "/chat/completions",
        reply({"content": "42", "reasoning_content": "Think..."}, usage, model="deepseek-reasoner"),
    )
    response = one(events, "ai.response")
    assert response["attrs"]["provider_id"] == "deepseek"
    resp = response["data"]
    assert resp["choices"][0]["message"]["thinking"] == "Think..."
    assert resp["usage"] == {
        "prompt_tokens": 100,
        "completion_tokens": 40,
        "total_tokens": 140,
        "cached_tokens": 64,
        "reasoning_tokens": 30,
    }


def test_xai_reasoning_tokens_counted_inside_completion() -> None:
    usage = {
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "total_tokens": 315,
        "completion_tokens_details": {"reasoning_tokens": 300},
    }
    events = chat(
        "api.x.ai", "/v1/chat/completions", reply({"content": "Yes"}, usage, model="grok-3-mini")
    )
    response = one(events, "ai.response")
    assert response["attrs"]["api"] == "xai.chat"
    assert response["data"]["usage"] == {
        "prompt_tokens": 10,
        "completion_tokens": 305,
        "total_tokens": 315,
        "reasoning_tokens": 300,
    }


def test_together_and_fireworks() -> None:
    together = chat(
        "api.together.xyz",
        "/v1/chat/completions",
        reply({"content": "ok"}, model="meta-llama/Llama-3.3-70B-Instruct-Turbo"),
    )
    fireworks = chat(
        "api.fireworks.ai",
        "/inference/v1/chat/completions",
        reply({"content": "ok"}, model="accounts/fireworks/models/llama-v3p1-70b-instruct"),
    )
    for events, name in ((together, "together"), (fireworks, "fireworks")):
        resp = one(events, "ai.response")["data"]
        assert resp["provider"]["name"] == name
        assert resp["model"]["family"] in ("llama-3.3", "llama-3.1")
        assert resp["choices"][0]["message"]["content"] == "ok"


def test_perplexity_citations() -> None:
    events = chat(
        "api.perplexity.ai",
        "/chat/completions",
        reply(
            {"content": "Paris [1]"},
            {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
            model="sonar-pro",
            citations=["https://example.org/a", "https://example.org/b"],
            search_results=[{"title": "A", "url": "https://example.org/a"}],
        ),
    )
    response = one(events, "ai.response")
    assert response["attrs"]["citations"] == ["https://example.org/a", "https://example.org/b"]
    assert response["attrs"]["search_results_count"] == 1
    assert response["data"]["model"]["family"] == "sonar"


def test_openrouter_reasoning() -> None:
    events = chat(
        "openrouter.ai",
        "/api/v1/chat/completions",
        reply({"content": "4", "reasoning": "2+2"}, model="anthropic/claude-3.5-sonnet"),
    )
    resp = one(events, "ai.response")["data"]
    assert resp["choices"][0]["message"]["thinking"] == "2+2"
    assert resp["model"]["family"] == "claude-3.5"


@pytest.mark.parametrize(("port", "provider"), [(11434, "ollama"), (1234, "lmstudio")])
def test_local_servers_openai_routes(port: int, provider: str) -> None:
    events = chat(
        f"localhost:{port}",
        "/v1/chat/completions",
        reply({"content": "local"}, model="qwen2.5:7b"),
        port=port,
    )
    resp = one(events, "ai.response")["data"]
    assert resp["provider"]["name"] == provider
    assert resp["provider"]["endpoint"] == f"http://localhost:{port}/v1/chat/completions"
    assert resp["choices"][0]["message"]["content"] == "local"


def test_gemini_openai_compatible_endpoint() -> None:
    events = chat(
        "generativelanguage.googleapis.com",
        "/v1beta/openai/chat/completions",
        reply({"content": "hi"}, model="gemini-2.0-flash"),
    )
    assert one(events, "ai.request")["attrs"]["api"] == "openai.chat"
    assert one(events, "ai.response")["data"]["model"]["family"] == "gemini-2.0"


@pytest.mark.parametrize(
    ("host", "port", "path"),
    [
        ("api.openai.com", 443, "/v1/images/generations"),
        ("api.anthropic.com", 443, "/v1/messages/count_tokens"),
        ("generativelanguage.googleapis.com", 443, "/v1beta/models/gemini-2.0-flash:countTokens"),
        (
            "bedrock-runtime.us-west-2.amazonaws.com",
            443,
            "/model/amazon.nova-lite-v1%3A0/count-tokens",
        ),
        ("myres.openai.azure.com", 443, "/openai/deployments/d/images/generations?api-version=1"),
        ("api.cohere.com", 443, "/v2/rerank"),
        ("api.mistral.ai", 443, "/v1/ocr"),
        ("api.groq.com", 443, "/openai/v1/audio/transcriptions"),
        ("localhost", 11434, "/api/pull"),
    ],
)
def test_unknown_endpoint_on_an_ai_host_is_a_partial_pair(host: str, port: int, path: str) -> None:
    req = http_request(
        path, {"model": "some-model", "x": 1}, host=host if port == 443 else f"{host}:{port}"
    )
    events = run([(req, http_response({"ok": True}))], host=host, port=port)
    request, response = one(events, "ai.request"), one(events, "ai.response")
    assert request["attrs"]["api"] == "unknown" and request["data"]["request_type"] == "other"
    assert request["confidence"]["completeness"] == "partial"
    assert response["confidence"]["completeness"] == "partial"
    assert response["data"]["status_code"] == 200 and response["data"]["success"] is True
    assert response["attrs"]["http"]["path"] == path.split("?")[0]
    assert response["attrs"]["http"]["response_bytes"] > 0


# --- costs the provider reports (OpenRouter usage.cost, Perplexity usage.cost.*) -----------

OPENROUTER_USAGE = {
    "prompt_tokens": 194,
    "completion_tokens": 2,
    "total_tokens": 196,
    "prompt_tokens_details": {"cached_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 0},
    "cost": 0.00042,
    "is_byok": False,
    "cost_details": {"upstream_inference_cost": None},
}
PERPLEXITY_USAGE = {
    "prompt_tokens": 30,
    "completion_tokens": 10,
    "total_tokens": 40,
    "search_context_size": "low",
    "cost": {
        "input_tokens_cost": 0.00003,
        "output_tokens_cost": 0.00015,
        "request_cost": 0.005,
        "total_cost": 0.00518,
    },
}
COST_ATTRS = ("reported_cost_usd", "reported_input_cost_usd", "reported_output_cost_usd")


def reported(events: list[dict[str, Any]]) -> dict[str, Any]:
    attrs = one(events, "ai.response")["attrs"]
    return {k: attrs[k] for k in COST_ATTRS if k in attrs}


def test_openrouter_reported_cost_whole_and_streamed() -> None:
    whole = chat(
        "openrouter.ai", "/api/v1/chat/completions", reply({"content": "4"}, OPENROUTER_USAGE)
    )
    assert reported(whole) == {"reported_cost_usd": 0.00042}
    assert one(whole, "ai.response")["data"]["usage"]["prompt_tokens"] == 194
    stream = http_response(
        content_type="text/event-stream",
        chunks=sse_events(
            {"id": "gen-1", "choices": [{"index": 0, "delta": {"content": "4"}}]},
            {"id": "gen-1", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
            {"id": "gen-1", "choices": [], "usage": OPENROUTER_USAGE},
            "[DONE]",
        ),
    )
    streamed = chat("openrouter.ai", "/api/v1/chat/completions", stream)
    assert reported(streamed) == {"reported_cost_usd": 0.00042}


def test_openrouter_byok_cost_adds_the_upstream_charge() -> None:
    """With the caller's own upstream key, `cost` is OpenRouter's fee (5%) and the upstream
    provider charged `upstream_inference_cost` on top: the call cost both."""
    usage = {
        **OPENROUTER_USAGE,
        "cost": 0.95,
        "is_byok": True,
        "cost_details": {"upstream_inference_cost": 19},
    }
    events = chat("openrouter.ai", "/api/v1/chat/completions", reply({"content": "4"}, usage))
    assert reported(events) == {"reported_cost_usd": 19.95}


def test_perplexity_reported_cost_with_parts() -> None:
    events = chat(
        "api.perplexity.ai",
        "/chat/completions",
        reply({"content": "Paris [1]"}, PERPLEXITY_USAGE, model="sonar"),
    )
    assert reported(events) == {
        "reported_cost_usd": 0.00518,
        "reported_input_cost_usd": 0.00003,
        "reported_output_cost_usd": 0.00015,
    }


def test_perplexity_responses_api_cost() -> None:
    body = {
        "id": "resp_p1",
        "model": "sonar",
        "status": "completed",
        "output": [{"type": "message", "content": [{"type": "output_text", "text": "Hi"}]}],
        "usage": {
            "input_tokens": 5,
            "output_tokens": 2,
            "total_tokens": 7,
            "cost": {"currency": "USD", "input_cost": 0.1, "output_cost": 0.2, "total_cost": 0.3},
        },
    }
    events = chat(
        "api.perplexity.ai", "/v1/responses", body, body={"model": "sonar", "input": "Hi"}
    )
    assert one(events, "ai.response")["attrs"]["api"] == "openai.responses"
    assert reported(events) == {
        "reported_cost_usd": 0.3,
        "reported_input_cost_usd": 0.1,
        "reported_output_cost_usd": 0.2,
    }


@pytest.mark.parametrize(
    "cost",
    [
        None,
        "0.5",
        -1,
        True,
        [0.5],
        {"total_cost": 0.5, "currency": "EUR"},
        {"total_cost": "0.5"},
        {"input_tokens_cost": 0.1},
    ],
    ids=repr,
)
def test_no_reported_cost_unless_a_usd_amount(cost: Any) -> None:
    """Absent is not zero, and a figure of the wrong type or currency is no figure."""
    usage = {"prompt_tokens": 3, "completion_tokens": 4, "cost": cost}
    events = chat("openrouter.ai", "/api/v1/chat/completions", reply({"content": "4"}, usage))
    assert reported(events) == {}
    assert one(events, "ai.response")["data"]["usage"]["prompt_tokens"] == 3


@pytest.mark.parametrize(
    ("host", "path", "usage", "total", "parts"),
    [
        ("openrouter.ai", "/api/v1/chat/completions", OPENROUTER_USAGE, 0.00042, {}),
        (
            "api.perplexity.ai",
            "/chat/completions",
            PERPLEXITY_USAGE,
            0.00518,
            {"input_cost_usd": 0.00003, "output_cost_usd": 0.00015},
        ),
    ],
)
def test_the_pricing_enricher_uses_the_reported_cost(
    host: str, path: str, usage: dict[str, Any], total: float, parts: dict[str, float]
) -> None:
    counters = Counters()
    decoder = Decoder(hasher=HASHER, counters=counters)
    raws = captures(
        [
            (
                http_request(path, {"model": "m", "messages": QUESTION}, host=host),
                http_response(reply({"content": "4"}, usage, model="sonar")),
            )
        ],
        host=host,
    )
    events = [e for raw in raws for e in decoder.feed(raw)] + decoder.close_all()
    enricher = PricingEnricher(counters=counters)
    for event in events:
        enricher.enrich(event)
    (response,) = [e for e in events if e.event_type == "ai.response"]
    got = response.data["usage"]
    assert {k: v for k, v in got.items() if k.endswith("_usd")} == {
        "total_cost_usd": total,
        **parts,
    }
    assert response.attrs["cost_source"] == "reported"
    assert response.attrs["price_source"] == "provider"
    assert counters.get("pricing.reported") == 1
    assert_valid_events([e.to_dict() for e in events])
