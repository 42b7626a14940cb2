"""Cost of ai.response events: hand-computed from published prices, with provenance.

Every expected value below is computed from the provider's published price per
million tokens (USD), written out so a reader can check it without running code:

    cost = (uncached_input * input + cached * cache_read + written * cache_write
            + output * output_price) / 1_000_000

where uncached_input = prompt_tokens - cached_tokens - cache_creation_tokens, and
output includes reasoning/thinking tokens (billed as output by every provider).
"""

from __future__ import annotations

import socket
from datetime import UTC, datetime
from typing import Any

import genai_prices
import pytest
from genai_prices import data_snapshot

from oisp_sensor.config import Config, PriceOverride, load
from oisp_sensor.counters import Counters
from oisp_sensor.enrich.pricing import PRICE_TABLE, PriceBook, PricingEnricher, token_counts
from oisp_sensor.errors import ConfigError
from tests.conformance import assert_valid_events
from tests.helpers import captures, http_request, http_response
from tests.unit.enrich.events import at, decode_events, response_event

JAN_2026 = at("2026-01-15T12:00:00")
M = 1_000_000

# (provider, model, usage, input USD, output USD) — prices per 1M tokens as published.
COST_TABLE: list[tuple[str, str, dict[str, int], float, float]] = [
    # OpenAI gpt-4o: input $2.50, cached input $1.25, output $10.00.
    # 1200 prompt of which 1024 cached: 176 * 2.50 + 1024 * 1.25 = 440 + 1280 = 1720
    # 300 output: 300 * 10 = 3000
    (
        "openai",
        "gpt-4o-2024-08-06",
        {
            "prompt_tokens": 1200,
            "completion_tokens": 300,
            "total_tokens": 1500,
            "cached_tokens": 1024,
        },
        1720 / M,
        3000 / M,
    ),
    # OpenAI gpt-4o-mini: input $0.15, cached input $0.075, output $0.60.
    # 10000 prompt, 8192 cached: 1808 * 0.15 + 8192 * 0.075 = 271.2 + 614.4 = 885.6
    # 500 output: 500 * 0.60 = 300
    (
        "openai",
        "gpt-4o-mini",
        {
            "prompt_tokens": 10000,
            "completion_tokens": 500,
            "total_tokens": 10500,
            "cached_tokens": 8192,
        },
        885.6 / M,
        300 / M,
    ),
    # OpenAI o3-mini: input $1.10, cached input $0.55, output $4.40.
    # 2000 prompt, 1024 cached: 976 * 1.10 + 1024 * 0.55 = 1073.6 + 563.2 = 1636.8
    # 3000 completion, of which 2500 reasoning (already inside completion_tokens):
    # 3000 * 4.40 = 13200
    (
        "openai",
        "o3-mini",
        {
            "prompt_tokens": 2000,
            "completion_tokens": 3000,
            "total_tokens": 5000,
            "cached_tokens": 1024,
            "reasoning_tokens": 2500,
        },
        1636.8 / M,
        13200 / M,
    ),
    # Anthropic claude-3-5-sonnet: input $3, 5-minute cache write $3.75, cache read $0.30,
    # output $15. Wire usage input_tokens=50, cache_creation_input_tokens=2000,
    # cache_read_input_tokens=0 -> prompt_tokens 2050, cache_creation_tokens 2000.
    # 50 * 3 + 2000 * 3.75 = 150 + 7500 = 7650; 400 * 15 = 6000
    (
        "anthropic",
        "claude-3-5-sonnet-20241022",
        {
            "prompt_tokens": 2050,
            "completion_tokens": 400,
            "total_tokens": 2450,
            "cached_tokens": 0,
            "cache_creation_tokens": 2000,
        },
        7650 / M,
        6000 / M,
    ),
    # Anthropic claude-sonnet-4: same prices. Wire input_tokens=30, cache_read=2000:
    # prompt_tokens 2030, cached 2000 -> 30 * 3 + 2000 * 0.30 = 90 + 600 = 690
    # 250 * 15 = 3750
    (
        "anthropic",
        "claude-sonnet-4-20250514",
        {
            "prompt_tokens": 2030,
            "completion_tokens": 250,
            "total_tokens": 2280,
            "cached_tokens": 2000,
        },
        690 / M,
        3750 / M,
    ),
    # claude-sonnet-4 writing and reading the cache in one call: wire input_tokens=100,
    # cache_creation=500, cache_read=3000 -> prompt 3600:
    # 100 * 3 + 500 * 3.75 + 3000 * 0.30 = 300 + 1875 + 900 = 3075
    # 1000 output (thinking included) * 15 = 15000
    (
        "anthropic",
        "claude-sonnet-4-20250514",
        {
            "prompt_tokens": 3600,
            "completion_tokens": 1000,
            "total_tokens": 4600,
            "cached_tokens": 3000,
            "cache_creation_tokens": 500,
        },
        3075 / M,
        15000 / M,
    ),
    # Gemini 1.5 Flash, prompts up to 128k: input $0.075, cached $0.01875, output $0.30.
    # 10000 prompt (promptTokenCount includes cachedContentTokenCount=6000):
    # 4000 * 0.075 + 6000 * 0.01875 = 300 + 112.5 = 412.5; 800 * 0.30 = 240
    (
        "google",
        "gemini-1.5-flash",
        {
            "prompt_tokens": 10000,
            "completion_tokens": 800,
            "total_tokens": 10800,
            "cached_tokens": 6000,
        },
        412.5 / M,
        240 / M,
    ),
    # Gemini 2.5 Flash: input $0.30, cached $0.03, output $2.50 (thinking included).
    # 5000 prompt, 4000 cached: 1000 * 0.30 + 4000 * 0.03 = 300 + 120 = 420
    # 200 candidates + 1000 thoughts = 1200 output: 1200 * 2.50 = 3000
    (
        "google",
        "gemini-2.5-flash",
        {
            "prompt_tokens": 5000,
            "completion_tokens": 1200,
            "total_tokens": 6200,
            "cached_tokens": 4000,
            "reasoning_tokens": 1000,
        },
        420 / M,
        3000 / M,
    ),
    # Gemini 2.5 Pro, prompts up to 200k: input $1.25, cached $0.125, output $10.
    # 100000 prompt, 50000 cached: 50000 * 1.25 + 50000 * 0.125 = 62500 + 6250 = 68750
    # 2000 output * 10 = 20000
    (
        "google",
        "gemini-2.5-pro",
        {
            "prompt_tokens": 100000,
            "completion_tokens": 2000,
            "total_tokens": 102000,
            "cached_tokens": 50000,
            "reasoning_tokens": 1500,
        },
        68750 / M,
        20000 / M,
    ),
    # Gemini 2.5 Pro, prompts over 200k: input $2.50, output $15 for the whole call.
    # 250000 * 2.50 = 625000; 1000 * 15 = 15000
    (
        "google",
        "gemini-2.5-pro",
        {"prompt_tokens": 250000, "completion_tokens": 1000, "total_tokens": 251000},
        625000 / M,
        15000 / M,
    ),
]


@pytest.mark.parametrize(("provider", "model", "usage", "input_usd", "output_usd"), COST_TABLE)
def test_cost_matches_published_prices(
    provider: str, model: str, usage: dict[str, int], input_usd: float, output_usd: float
) -> None:
    event = response_event(provider, model, usage, ts_ns=JAN_2026)
    PricingEnricher().enrich(event)
    got = event.data["usage"]
    assert got["input_cost_usd"] == pytest.approx(input_usd, rel=1e-12)
    assert got["output_cost_usd"] == pytest.approx(output_usd, rel=1e-12)
    assert got["total_cost_usd"] == pytest.approx(input_usd + output_usd, rel=1e-12)
    assert event.attrs["cost_source"] == "computed"
    assert event.attrs["price_source"] == f"genai-prices {genai_prices.__version__}"
    assert {k: got[k] for k in usage} == usage  # the tokens themselves are untouched
    assert_valid_events([event.to_dict()])


def _anthropic_exchange(usage: dict[str, int]) -> tuple[bytes, bytes]:
    request = http_request(
        "/v1/messages",
        {
            "model": "claude-sonnet-4-20250514",
            "max_tokens": 64,
            "messages": [{"role": "user", "content": "hi"}],
        },
        host="api.anthropic.com",
        headers={"anthropic-version": "2023-06-01"},
    )
    response = http_response(
        {
            "id": "msg_01",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-20250514",
            "content": [{"type": "text", "text": "hello"}],
            "stop_reason": "end_turn",
            "usage": usage,
        }
    )
    return request, response


def test_anthropic_wire_usage_to_cost() -> None:
    """From Anthropic's own usage object (input excludes cache) to dollars."""
    wire = {
        "input_tokens": 100,
        "cache_creation_input_tokens": 500,
        "cache_read_input_tokens": 3000,
        "output_tokens": 1000,
    }
    raws = captures([_anthropic_exchange(wire)], host="api.anthropic.com")
    events = decode_events(raws)
    enricher = PricingEnricher()
    for event in events:
        enricher.enrich(event)
    (response,) = [e for e in events if e.event_type == "ai.response"]
    usage = response.data["usage"]
    # 100 * 3 + 500 * 3.75 + 3000 * 0.30 = 3075; 1000 * 15 = 15000 (per 1M tokens)
    assert usage["input_cost_usd"] == pytest.approx(3075 / M, rel=1e-12)
    assert usage["output_cost_usd"] == pytest.approx(15000 / M, rel=1e-12)
    assert usage["total_cost_usd"] == pytest.approx(18075 / M, rel=1e-12)
    assert response.attrs["price_model"] == "anthropic:claude-sonnet-4-0"
    assert all("cost_source" not in e.attrs for e in events if e is not response)
    assert_valid_events([e.to_dict() for e in events])


def test_openai_wire_usage_to_cost() -> None:
    request = http_request(
        "/v1/chat/completions",
        {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
    )
    response = http_response(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "model": "gpt-4o-mini-2024-07-18",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "hey"},
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": 10000,
                "completion_tokens": 500,
                "total_tokens": 10500,
                "prompt_tokens_details": {"cached_tokens": 8192},
                "completion_tokens_details": {"reasoning_tokens": 0},
            },
        }
    )
    events = decode_events(captures([(request, response)]))
    enricher = PricingEnricher()
    for event in events:
        enricher.enrich(event)
    (resp,) = [e for e in events if e.event_type == "ai.response"]
    # 1808 * 0.15 + 8192 * 0.075 = 885.6; 500 * 0.60 = 300 (per 1M tokens)
    assert resp.data["usage"]["total_cost_usd"] == pytest.approx(1185.6 / M, rel=1e-12)
    assert_valid_events([e.to_dict() for e in events])


@pytest.mark.parametrize(
    ("provider", "model"),
    [
        ("google", "gemini-2.5-pro"),  # one tier, from 200k
        ("anthropic", "claude-sonnet-4-5"),  # one tier, from 200k, with cache prices
        ("openrouter", "qwen/qwen3.7-flash"),  # two tiers: from 32k and from 256k
    ],
)
@pytest.mark.parametrize(
    ("prompt", "cached", "written", "output"),
    [
        (0, 0, 0, 500),
        (1, 0, 0, 1),
        (199_999, 150_000, 0, 2_000),
        (200_000, 0, 50_000, 1_000),  # the tier's start is still the base price
        (200_001, 100_000, 0, 1_000),  # one token more, and every token costs the tier's price
        (32_001, 0, 0, 800),
        (256_001, 6_000, 0, 800),
        (1_000_000, 250_000, 250_000, 64_000),
    ],
)
def test_tiered_prices_agree_with_genai_prices(
    provider: str, model: str, prompt: int, cached: int, written: int, output: int
) -> None:
    """Tiered prices are looked up per band; each cost must be exactly what genai-prices
    computes for the same tokens, on both sides of the tier's start."""
    usage = {
        "prompt_tokens": prompt,
        "completion_tokens": output,
        "total_tokens": prompt + output,
        "cached_tokens": cached,
        "cache_creation_tokens": written,
    }
    event = response_event(provider, model, usage, ts_ns=JAN_2026)
    PricingEnricher().enrich(event)
    expected = genai_prices.calc_price(
        genai_prices.Usage(
            input_tokens=prompt,
            cache_read_tokens=cached or None,
            cache_write_tokens=written or None,
            output_tokens=output,
        ),
        model,
        provider_id=provider,
        genai_request_timestamp=datetime.fromtimestamp(JAN_2026 / 1e9, UTC),
    )
    got = event.data["usage"]
    assert got["input_cost_usd"] == float(expected.input_price)
    assert got["output_cost_usd"] == float(expected.output_price)
    assert got["total_cost_usd"] == float(expected.total_price)
    assert event.attrs["cost_source"] == "computed"
    assert_valid_events([event.to_dict()])


def test_historic_price_by_event_time() -> None:
    """OpenAI cut o3 from $10/$40 to $2/$8 per 1M tokens on 2025-06-10."""
    usage = {"prompt_tokens": 1000, "completion_tokens": 1000, "total_tokens": 2000}
    before = response_event("openai", "o3", usage, ts_ns=at("2025-05-01T12:00:00"))
    after = response_event("openai", "o3", usage, ts_ns=at("2025-07-01T12:00:00"))
    enricher = PricingEnricher()
    enricher.enrich(before)
    enricher.enrich(after)
    assert before.data["usage"]["total_cost_usd"] == pytest.approx((10_000 + 40_000) / M)
    assert after.data["usage"]["total_cost_usd"] == pytest.approx((2_000 + 8_000) / M)


def test_off_peak_prices_within_one_day() -> None:
    """DeepSeek charges half outside 00:30-16:30 UTC; the per-day cache must not hide it.
    deepseek-chat: $0.27 in / $1.10 out at peak, $0.135 / $0.55 off-peak (per 1M)."""
    usage = {"prompt_tokens": 1_000_000, "completion_tokens": 1_000_000, "total_tokens": 2_000_000}
    peak = response_event("deepseek", "deepseek-chat", usage, ts_ns=at("2026-01-15T10:00:00"))
    night = response_event("deepseek", "deepseek-chat", usage, ts_ns=at("2026-01-15T20:00:00"))
    enricher = PricingEnricher()
    enricher.enrich(peak)
    enricher.enrich(night)
    assert peak.data["usage"]["total_cost_usd"] == pytest.approx(0.27 + 1.10)
    assert night.data["usage"]["total_cost_usd"] == pytest.approx(0.135 + 0.55)
    assert peak.attrs["price_model"] == "deepseek:deepseek-chat"  # via attrs.provider_id


@pytest.mark.parametrize(
    ("model", "usage", "why"),
    [
        (
            "no-such-model-xyz",
            {"prompt_tokens": 10, "completion_tokens": 5},
            "model not in price table",
        ),
        ("gpt-4o", None, "no usage"),
        ("gpt-4o", {"completion_tokens": 5}, "no usage"),  # input unknown: not a cost
        ("gpt-4o", {"prompt_tokens": 10, "completion_tokens": 5, "cached_tokens": 11}, "no usage"),
        (None, {"prompt_tokens": 10, "completion_tokens": 5}, "no model"),
    ],
)
def test_absent_is_not_zero(model: str | None, usage: dict[str, int] | None, why: str) -> None:
    event = response_event("openai", model, usage, ts_ns=JAN_2026)
    counters = Counters()
    PricingEnricher(counters=counters).enrich(event)
    got: dict[str, Any] = event.data.get("usage") or {}
    assert not {"input_cost_usd", "output_cost_usd", "total_cost_usd"} & got.keys()
    assert "cost_source" not in event.attrs
    assert event.attrs["cost_unknown"] == why
    assert counters.get("pricing.unknown") == 1
    assert_valid_events([event.to_dict()])


def test_reported_cost_wins() -> None:
    """OpenRouter says what it charged (usage.cost); that is the cost, not our estimate."""
    event = response_event(
        "openrouter",
        "some-vendor/brand-new-model",
        {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120},
        ts_ns=JAN_2026,
        attrs={"reported_cost_usd": 0.000123},
    )
    PricingEnricher().enrich(event)
    usage = event.data["usage"]
    assert usage["total_cost_usd"] == 0.000123
    assert "input_cost_usd" not in usage  # the provider did not split it
    assert event.attrs["cost_source"] == "reported"
    assert event.attrs["price_source"] == "provider"
    assert_valid_events([event.to_dict()])


def test_reported_cost_with_parts_and_without_usage() -> None:
    event = response_event(
        "perplexity",
        "sonar",
        None,
        ts_ns=JAN_2026,
        attrs={
            "reported_cost_usd": 0.006,
            "reported_input_cost_usd": 0.0004,
            "reported_output_cost_usd": 0.0006,
        },
    )
    PricingEnricher().enrich(event)
    assert event.data["usage"] == {
        "input_cost_usd": 0.0004,
        "output_cost_usd": 0.0006,
        "total_cost_usd": 0.006,
    }


def test_estimated_tokens_give_estimated_cost() -> None:
    event = response_event(
        "openai",
        "gpt-4o",
        {"prompt_tokens": 1000, "completion_tokens": 100, "total_tokens": 1100},
        ts_ns=JAN_2026,
        attrs={"usage_source": "estimated"},
    )
    PricingEnricher().enrich(event)
    # 1000 * 2.50 + 100 * 10 = 3500 per 1M
    assert event.data["usage"]["total_cost_usd"] == pytest.approx(3500 / M)
    assert event.attrs["cost_source"] == "estimated"


def test_config_overrides_win_over_the_table() -> None:
    overrides = (
        PriceOverride(
            provider="openai",
            model="gpt-4o*",
            input_per_mtok=2.0,
            output_per_mtok=8.0,
            cached_input_per_mtok=0.5,
        ),
        PriceOverride(model="corp-llama-*", input_per_mtok=0.2, output_per_mtok=0.4),
    )
    enricher = PricingEnricher(overrides)
    usage = {
        "prompt_tokens": 1000,
        "completion_tokens": 100,
        "total_tokens": 1100,
        "cached_tokens": 400,
    }
    ours = response_event("openai", "gpt-4o-2024-08-06", usage, ts_ns=JAN_2026)
    azure = response_event("azure_openai", "gpt-4o-2024-08-06", usage, ts_ns=JAN_2026)
    corp = response_event("corp-gateway", "corp-llama-70b", usage, ts_ns=JAN_2026)
    for event in (ours, azure, corp):
        enricher.enrich(event)
    # override: 600 * 2.0 + 400 * 0.5 = 1400; 100 * 8 = 800
    assert ours.data["usage"]["input_cost_usd"] == pytest.approx(1400 / M)
    assert ours.data["usage"]["output_cost_usd"] == pytest.approx(800 / M)
    assert ours.attrs["price_source"] == "config override"
    # provider-specific override does not apply to Azure: table price 600*2.5 + 400*1.25 = 2000
    assert azure.data["usage"]["input_cost_usd"] == pytest.approx(2000 / M)
    assert azure.attrs["price_source"] == PRICE_TABLE
    # unset cache price falls back to the input price: 1000 * 0.2 = 200; 100 * 0.4 = 40
    assert corp.data["usage"]["total_cost_usd"] == pytest.approx(240 / M)
    assert corp.attrs["price_model"] == "*:corp-llama-*"


def test_local_model_servers_cost_nothing_per_token() -> None:
    event = response_event(
        "ollama", "llama3.2:3b", {"prompt_tokens": 50, "completion_tokens": 20, "total_tokens": 70}
    )
    PricingEnricher().enrich(event)
    assert event.data["usage"]["total_cost_usd"] == 0.0
    assert event.attrs["price_source"] == "local model server"


def test_gemini_resource_names_and_unknown_gateways() -> None:
    usage = {"prompt_tokens": 1000, "completion_tokens": 100, "total_tokens": 1100}
    gemini = response_event("google", "models/gemini-2.5-flash", usage, ts_ns=JAN_2026)
    gateway = response_event("corp-gateway", "gpt-4o-mini", usage, ts_ns=JAN_2026)
    enricher = PricingEnricher()
    enricher.enrich(gemini)
    enricher.enrich(gateway)
    # 1000 * 0.30 + 100 * 2.50 = 550 per 1M
    assert gemini.data["usage"]["total_cost_usd"] == pytest.approx(550 / M)
    # an unknown provider is priced by the model name: 1000 * 0.15 + 100 * 0.60 = 210
    assert gateway.data["usage"]["total_cost_usd"] == pytest.approx(210 / M)
    assert gateway.attrs["price_model"] == "openai:gpt-4o-mini"


def test_disabled_pricing_keeps_reported_costs() -> None:
    usage = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    computed = response_event("openai", "gpt-4o", usage)
    reported = response_event("openrouter", "x/y", usage, attrs={"reported_cost_usd": 0.5})
    enricher = PricingEnricher(enabled=False)
    enricher.enrich(computed)
    enricher.enrich(reported)
    assert "total_cost_usd" not in computed.data["usage"]
    assert reported.data["usage"]["total_cost_usd"] == 0.5


def test_only_responses_are_priced_and_only_once() -> None:
    usage = {"prompt_tokens": 1000, "completion_tokens": 100, "total_tokens": 1100}
    event = response_event("openai", "gpt-4o", usage, ts_ns=JAN_2026)
    request = response_event("openai", "gpt-4o", usage, ts_ns=JAN_2026)
    request.event_type = "ai.request"
    enricher = PricingEnricher()
    enricher.enrich(request)
    enricher.enrich(event)
    first = dict(event.data["usage"])
    enricher.enrich(event)
    assert event.data["usage"] == first
    assert "total_cost_usd" not in request.data["usage"]


def test_lookups_are_cached_per_day() -> None:
    book = PriceBook()
    day = at("2025-05-01T08:00:00")
    morning = book.rates("openai", "o3", day)
    evening = book.rates("openai", "o3", day + 12 * 3600 * 10**9)
    assert morning is evening  # one lookup per provider/model/day
    later = book.rates("openai", "o3", at("2025-07-01T08:00:00"))
    assert later is not morning
    assert book.rates("openai", "no-such-model", day) is None
    assert book.rates("openai", "no-such-model", day) is None


def test_prices_never_come_from_the_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """No socket is opened, and a snapshot swapped in by genai-prices' auto-updater
    (the only code in it that downloads) is not what we price with."""

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("pricing tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    empty = data_snapshot.DataSnapshot(providers=[], from_auto_update=True)
    data_snapshot.set_custom_snapshot(empty)
    try:
        event = response_event(
            "openai",
            "gpt-4o",
            {"prompt_tokens": 1000, "completion_tokens": 100, "total_tokens": 1100},
            ts_ns=JAN_2026,
        )
        PricingEnricher().enrich(event)
    finally:
        data_snapshot.set_custom_snapshot(None)
    assert event.data["usage"]["total_cost_usd"] == pytest.approx(3500 / M)


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        ({"prompt_tokens": 10, "total_tokens": 10}, (10, 0, 0, 0)),  # an embedding
        ({"completion_tokens": 4, "total_tokens": 14}, (10, 4, 0, 0)),
        (
            {
                "prompt_tokens": 10,
                "completion_tokens": 4,
                "cached_tokens": 6,
                "cache_creation_tokens": 4,
            },
            (10, 4, 6, 4),
        ),
        ({"prompt_tokens": -1, "completion_tokens": 4}, None),
        ({"prompt_tokens": True, "completion_tokens": 4}, None),
        ({"prompt_tokens": "10", "completion_tokens": 4}, None),
    ],
)
def test_token_counts(usage: dict[str, Any], expected: tuple[int, int, int, int] | None) -> None:
    counts = token_counts(usage)
    got = (
        None
        if counts is None
        else (counts.input, counts.output, counts.cache_read, counts.cache_write)
    )
    assert got == expected


def test_pricing_config(tmp_path: Any) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        """
[pricing]
enabled = true

[[pricing.overrides]]
provider = "openai"
model = "gpt-4o*"
input_per_mtok = 2
output_per_mtok = 8.5
cached_input_per_mtok = 0.5
"""
    )
    config = load(path, environ={})
    assert config.pricing.overrides == (
        PriceOverride(
            model="gpt-4o*",
            provider="openai",
            input_per_mtok=2.0,
            output_per_mtok=8.5,
            cached_input_per_mtok=0.5,
        ),
    )
    assert load(path, environ={"OISP_PRICING_ENABLED": "false"}).pricing.enabled is False
    assert Config().pricing.enabled is True


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ('model = "x"\noutput_per_mtok = 1', "pricing.overrides[0].input_per_mtok: required"),
        ("input_per_mtok = 1\noutput_per_mtok = 1", "pricing.overrides[0].model"),
        ('model = "x"\ninput_per_mtok = -1\noutput_per_mtok = 1', "non-negative"),
        ('model = "x"\ninput_per_mtok = nan\noutput_per_mtok = 1', "non-negative"),
        ('model = "x"\ninput_per_mtok = "cheap"\noutput_per_mtok = 1', "expected a number"),
        ('model = "x"\nprice = 1', "unknown setting"),
    ],
)
def test_pricing_config_errors(tmp_path: Any, override: str, message: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(f"[[pricing.overrides]]\n{override}\n")
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load(path, environ={})


def test_gemini_wire_usage_to_cost() -> None:
    """Gemini's candidatesTokenCount leaves thinking out; it is billed as output anyway."""
    request = http_request(
        "/v1beta/models/gemini-2.5-flash:generateContent",
        {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]},
        host="generativelanguage.googleapis.com",
    )
    response = http_response(
        {
            "candidates": [
                {
                    "content": {"role": "model", "parts": [{"text": "hello"}]},
                    "finishReason": "STOP",
                    "index": 0,
                }
            ],
            "usageMetadata": {
                "promptTokenCount": 5000,
                "cachedContentTokenCount": 4000,
                "candidatesTokenCount": 200,
                "thoughtsTokenCount": 1000,
                "totalTokenCount": 6200,
            },
            "modelVersion": "gemini-2.5-flash",
        }
    )
    events = decode_events(
        captures([(request, response)], host="generativelanguage.googleapis.com")
    )
    enricher = PricingEnricher()
    for event in events:
        enricher.enrich(event)
    (resp,) = [e for e in events if e.event_type == "ai.response"]
    usage = resp.data["usage"]
    # 1000 * $0.30 + 4000 * $0.03 = 420; (200 + 1000) * $2.50 = 3000 (per 1M tokens)
    assert usage["input_cost_usd"] == pytest.approx(420 / M, rel=1e-12)
    assert usage["output_cost_usd"] == pytest.approx(3000 / M, rel=1e-12)
    assert resp.attrs["price_model"] == "google:gemini-2.5-flash"
    assert_valid_events([e.to_dict() for e in events])


def test_service_tier_prices() -> None:
    """OpenAI's priority tier for gpt-4o (from 2026-10-12): $4.25 in / $17 out per 1M."""
    usage = {"prompt_tokens": 1000, "completion_tokens": 100, "total_tokens": 1100}
    ts = at("2026-11-02T12:00:00")
    priority = response_event(
        "openai", "gpt-4o", usage, ts_ns=ts, attrs={"service_tier": "priority"}
    )
    default = response_event("openai", "gpt-4o", usage, ts_ns=ts, attrs={"service_tier": "default"})
    enricher = PricingEnricher()
    enricher.enrich(priority)
    enricher.enrich(default)
    # 1000 * 4.25 + 100 * 17 = 5950; standard: 1000 * 2.50 + 100 * 10 = 3500
    assert priority.data["usage"]["total_cost_usd"] == pytest.approx(5950 / M)
    assert default.data["usage"]["total_cost_usd"] == pytest.approx(3500 / M)
