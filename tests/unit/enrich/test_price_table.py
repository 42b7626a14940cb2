"""prices.json against genai-prices itself: the table is current, every model of it costs
what genai-prices charges at every instant and service tier, and finding a model for a
(provider, model name) lands where genai-prices' own lookup does.

genai-prices is the reference here (it is a test dependency, not a runtime one), so these
tests compare; they hard-code no prices.
"""

from __future__ import annotations

import calendar
import json
import re
import subprocess
import sys
import textwrap
import time as clock
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import genai_prices
import pytest
from genai_prices import Usage
from genai_prices import data as price_data
from genai_prices.data_snapshot import DataSnapshot
from genai_prices.types import (
    ModelInfo,
    Provider,
    StartDateConstraint,
    TimeOfDateConstraint,
)

from oisp_sensor.enrich import pricegen
from oisp_sensor.enrich.pricegen import clause_json
from oisp_sensor.enrich.pricing import (
    GENAI_PRICES_PROVIDERS,
    TABLE_FILE,
    PriceBook,
    PriceRates,
    Rates,
    TieredRates,
    Timeline,
    TokenCounts,
    _model_ref,
    price_table,
)

NS = 1_000_000_000
UNKNOWN_TIER = "no-such-tier"
PROVIDERS = price_data.providers


def test_committed_table_is_what_genai_prices_gives() -> None:
    expected = pricegen.render(pricegen.build())
    assert TABLE_FILE.read_text(encoding="utf-8") == expected, (
        "src/oisp_sensor/enrich/prices.json is not what the installed genai-prices gives; "
        "regenerate it with: .venv/bin/python -m oisp_sensor.enrich.pricegen"
    )


def test_table_is_small_and_names_its_source() -> None:
    table = json.loads(TABLE_FILE.read_bytes())
    assert table["genai_prices"] == genai_prices.__version__
    assert price_table().price_source == pricegen.PRICE_SOURCE
    assert len(TABLE_FILE.read_bytes()) < 600_000
    # Shared rates are stored once.
    assert len({tuple(r) for r in table["rates"]}) == len(table["rates"])
    assert len({json.dumps(p) for p in table["prices"]}) == len(table["prices"])


def _ns(when: datetime) -> int:
    return calendar.timegm(when.utctimetuple()) * NS


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), UTC)


def _constraints(model: ModelInfo) -> list[object]:
    conditional = model.prices if isinstance(model.prices, list) else []
    return [c.constraint for c in conditional] + [v.constraint for v in model.price_variants or ()]


def _instants(model: ModelInfo) -> list[datetime]:
    """At and one second before each day a price of the model starts, today, long before
    and long after; for models with daily windows, every half hour of those days and one
    second either side of each window edge."""
    constraints = _constraints(model)
    starts = {c.start_date for c in constraints if isinstance(c, StartDateConstraint)}
    instants = {
        datetime.fromtimestamp(int(clock.time()), UTC),
        datetime(2023, 3, 1, 12, tzinfo=UTC),
        datetime(2031, 7, 1, 12, tzinfo=UTC),
    }
    for day in starts:
        instants |= {_midnight(day), _midnight(day) - timedelta(seconds=1)}
    windows = [c for c in constraints if isinstance(c, TimeOfDateConstraint)]
    if windows:
        edges = [
            datetime.combine(date(2000, 1, 1), t).astimezone(UTC).time()
            for c in windows
            for t in (c.start_time, c.end_time)
        ]
        for day in {i.date() for i in instants}:
            base = _midnight(day)
            instants |= {base + timedelta(minutes=30 * k, seconds=17) for k in range(48)}
            for edge in edges:
                at_edge = base.replace(hour=edge.hour, minute=edge.minute, second=edge.second)
                instants |= {at_edge, at_edge - timedelta(seconds=1)}
    return sorted(instants)


def _tiers(model: ModelInfo) -> list[str | None]:
    tiers = {v.when["service_tier"] for v in model.price_variants or () if "service_tier" in v.when}
    return [None, *sorted(tiers), UNKNOWN_TIER]


def _token_counts(rates: PriceRates) -> list[TokenCounts]:
    """A few calls with cache reads and writes, and on both sides of every tier start."""
    counts = [TokenCounts(1200, 300, 1024, 0), TokenCounts(3600, 1000, 3000, 500)]
    if isinstance(rates, TieredRates):
        prompts = [n for start in rates.starts for n in (start, start + 1)]
        counts += [TokenCounts(n, 700, n // 4, n // 8) for n in prompts]
    return counts


def _genai_total(model: ModelInfo, when: datetime, tier: str | None, t: TokenCounts) -> float:
    """genai-prices' own price of the call, bypassing our per-token rates entirely."""
    context = {"service_tier": tier} if tier else None
    usage = Usage(
        input_tokens=t.input,
        cache_read_tokens=t.cache_read or None,
        cache_write_tokens=t.cache_write or None,
        output_tokens=t.output,
    )
    return float(model.get_prices(when, context).calc_price(usage)["total_price"])


@pytest.mark.parametrize("provider", PROVIDERS, ids=[p.id for p in PROVIDERS])
def test_every_model_costs_what_genai_prices_charges(provider: Provider) -> None:
    table = price_table()
    checked = 0
    for model in provider.models:
        timeline = table.model(provider.id, model.id)
        assert timeline is not None, model.id
        price_model = f"{provider.id}:{model.id}"
        for when in _instants(model):
            for tier in _tiers(model):
                reference = pricegen.reference_rates(model, price_model, when, tier)
                got = timeline.rates(_ns(when), tier)
                where = f"{price_model} at {when.isoformat()} tier={tier}"
                assert got == reference, where  # every Decimal rate, exactly
                assert reference is not None, where  # every model has token prices
                for tokens in _token_counts(reference):
                    cost = got.cost(tokens)
                    assert cost == reference.cost(tokens), f"{where} {tokens}"
                    assert cost.total_usd == _genai_total(model, when, tier, tokens), (
                        f"{where} {tokens}"
                    )
                checked += 1
    assert checked >= len(provider.models) * 3


def _equals_names(clause: dict[str, Any]) -> set[str]:
    ((kind, arg),) = clause.items()
    if kind in ("or", "and"):
        return set().union(*(_equals_names(c) for c in arg))
    return {arg} if kind == "equals" else set()


def _model_refs() -> Iterator[str]:
    """Names a client could send for every model: ids, display names and the names its
    match clause lists, upper-cased, dates written compactly (gpt-4o-20240806), Gemini
    resource names, and misses."""
    refs: set[str] = set()
    for provider in PROVIDERS:
        for model in provider.models:
            refs.add(model.id)
            if model.name:
                refs.add(model.name)
            refs |= _equals_names(clause_json(model.match))
    yield from sorted(refs)
    for ref in sorted(refs)[::7]:
        yield ref.upper()
        yield f" {ref} "
    for ref in sorted(refs):
        compact = re.sub(r"-(20\d\d)-(\d\d)-(\d\d)", r"-\1\2\3", ref)
        if compact != ref:
            yield compact
    for ref in sorted(refs):
        if ref.startswith("gemini"):
            yield f"models/{ref}"
            yield f"publishers/google/models/{ref}"
            yield f"projects/p/locations/us-central1/publishers/google/models/{ref}"
    yield from (
        "gpt-4o-20240806",
        "gpt-4o-20241399",  # not a date: no dashed retry
        "claude-sonnet-4-20250514",
        "claude-no-such-model",
        "no-such-model",
        "models/",
        "",
    )


REFS = list(_model_refs())
OWNERS = {id(m): p.id for p in PROVIDERS for m in p.models}


@pytest.mark.parametrize("provider", [*GENAI_PRICES_PROVIDERS, "corp-gateway"])
def test_lookup_finds_what_genai_prices_finds(provider: str) -> None:
    snapshot = DataSnapshot(providers=PROVIDERS, from_auto_update=False)
    book = PriceBook(cache_size=len(REFS) + 1)
    provider_id = GENAI_PRICES_PROVIDERS.get(provider)
    found = 0
    for ref in REFS:
        try:
            p, m = snapshot.find_provider_model(_model_ref(ref), None, provider_id, None)
            expected: tuple[str, str] | None = (f"{p.id}:{m.id}", OWNERS[id(m)])
        except LookupError:
            expected = None
        entry = book.entry(provider, ref)
        assert entry is None or isinstance(entry, Timeline), ref
        got = (entry.price_model, entry.owner) if entry else None
        assert got == expected, f"{provider} {ref!r}"
        found += got is not None
    assert found > 0


@pytest.mark.parametrize(
    "provider_id", ["bedrock", "Amazon ", " AZURE", "workers-cloudflare", "no-such-provider"]
)
def test_provider_ids_are_matched_as_genai_prices_matches_them(provider_id: str) -> None:
    """Ids that are not a table id, found by a provider's `provider_match` (or not)."""
    snapshot = DataSnapshot(providers=PROVIDERS, from_auto_update=False)
    table = price_table()
    for ref in REFS[::5]:
        try:
            p, m = snapshot.find_provider_model(ref, None, provider_id, None)
            expected: tuple[str, str] | None = (f"{p.id}:{m.id}", OWNERS[id(m)])
        except LookupError:
            expected = None
        entry = table.find(ref, provider_id)
        assert (entry and (entry.price_model, entry.owner)) == expected, f"{provider_id} {ref!r}"


@pytest.mark.parametrize(
    ("provider", "model", "price_model"),
    [
        ("fireworks", "accounts/fireworks/models/deepseek-r1-0528", "fireworks:deepseek-r1-0528"),
        ("google", "models/gemini-2.5-flash", "google:gemini-2.5-flash"),
        ("google", "publishers/google/models/gemini-2.5-pro", "google:gemini-2.5-pro"),
        ("azure_openai", "gpt-4o-20240806", "azure:gpt-4o"),
    ],
)
def test_resource_paths_that_are_names_stay_whole(
    provider: str, model: str, price_model: str
) -> None:
    """Only Gemini's resource prefix is dropped: Fireworks' models are named by their
    whole path (`accounts/fireworks/models/...`) in the table."""
    entry = PriceBook().entry(provider, model)
    assert isinstance(entry, Timeline)
    assert entry.price_model == price_model


def test_unknown_tiers_and_other_context_keys_get_the_standard_price() -> None:
    """The sensor passes only a service tier; a tier no variant names, or any other key
    (genai-prices' batch prices are selected by `processing`), prices as no context."""
    book = PriceBook()
    ts = _ns(datetime(2026, 11, 2, 12, tzinfo=UTC))
    standard = book.rates("openai", "gpt-4o", ts)
    assert standard is not None
    assert book.rates("openai", "gpt-4o", ts, {"service_tier": UNKNOWN_TIER}) is standard
    assert book.rates("openai", "gpt-4o", ts, {"processing": "batch"}) is standard
    assert book.rates("openai", "gpt-4o", ts, {"service_tier": "priority"}) != standard


def test_runtime_never_imports_genai_prices_or_pydantic() -> None:
    """Pricing an event in the sensor loads neither (they cost it 12 MB of memory)."""
    code = textwrap.dedent(
        """
        import sys, time
        import oisp_sensor.sensor
        from oisp_sensor.enrich import PricingEnricher
        from oisp_sensor.events import Event

        event = Event(
            event_type="ai.response",
            ts_ns=time.time_ns(),
            data={
                "request_id": "r",
                "provider": {"name": "openai"},
                "model": {"id": "gpt-4o-2024-08-06"},
                "usage": {"prompt_tokens": 1200, "completion_tokens": 300, "total_tokens": 1500},
                "success": True,
            },
        )
        PricingEnricher().enrich(event)
        assert event.data["usage"]["total_cost_usd"] > 0, event.data
        print(sorted({m.split(".")[0] for m in sys.modules}))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    loaded = set(json.loads(result.stdout.replace("'", '"')))
    assert "oisp_sensor" in loaded
    assert not loaded & {"genai_prices", "pydantic", "pydantic_core"}


def test_rates_objects_are_made_once_per_price() -> None:
    timeline = price_table().model("openai", "o3")
    assert timeline is not None
    before = _ns(datetime(2025, 5, 1, tzinfo=UTC))
    first = timeline.rates(before)
    assert isinstance(first, Rates)
    assert timeline.rates(before + 3600 * NS) is first
    assert timeline.rates(_ns(datetime(2025, 7, 1, tzinfo=UTC))) is not first
