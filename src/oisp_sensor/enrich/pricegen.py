"""Writes prices.json, the price table the sensor ships, from the installed genai-prices.

Run it after upgrading genai-prices (a test fails until the two agree):

    .venv/bin/python -m oisp_sensor.enrich.pricegen

Dev-time only: this is the one module that imports genai_prices. At runtime its data
model (1.6 MB of generated Python, pydantic) cost the sensor 12 MB of memory and ~190 ms
of import; pricing.py reads the table written here instead, and restates only the lookup.

What is precomputed, so that nothing about prices has to be restated at runtime:

- Per-token rates. `table_rates` asks genai-prices' own `calc_price` what a token of each
  kind costs (so its rules on which kinds fall back to the input rate hold), once per band
  of tiered prices.
- Which price applies when. genai-prices resolves a model's price with
  `ModelInfo.get_prices(instant, context)`: conditional prices (a start date or a daily
  time window; the last active one wins, else the first) and price variants (per-key
  overrides selected by the request context, optionally from a date or within a window).
  Both depend only on the UTC date and the UTC time of day, so every start date and every
  window edge of a model cuts its timeline into segments on which the price is constant;
  `get_prices` is asked once per segment and per context the sensor can pass: none, or a
  `service_tier` named by one of the model's variants (an unknown tier gets the prices of
  no context). Boundaries that change nothing are dropped again.

The file, deterministic so that regenerating gives identical bytes:

    {"genai_prices": version,
     "rates": [[input, output, cache_read, cache_write, per_request] USD per token, as
               decimal strings; shared by every price that uses them],
     "prices": [[tier starts, [index into rates per band]]; flat prices have no starts],
     "providers": [{"id", "provider_match"?, "model_match"?, "fallback_model_providers"?,
                    "models": [{"id", "match", "dates"?, "times"?, "prices"}]}]}

Match clauses keep genai-prices' source shape ({"equals": ...}, {"or": [...]} ...).
A model's "prices" maps a service tier ("" for none) to an index into "prices", or, when
it changes over time, to a list with one item per date segment ("dates": the days where
a segment starts, UTC) and within that, or alone, one per time-of-day segment ("times":
where a segment starts, UTC). A price genai-prices cannot turn into token rates is null.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import genai_prices
from genai_prices import data as price_data
from genai_prices.types import (
    ClauseAnd,
    ClauseContains,
    ClauseEndsWith,
    ClauseEquals,
    ClauseOr,
    ClauseRegex,
    ClauseStartsWith,
    ModelInfo,
    ModelPrice,
    Provider,
    StartDateConstraint,
    TieredPrices,
    TimeOfDateConstraint,
    Usage,
)

from oisp_sensor.enrich.pricing import NO_TIER, PriceRates, Rates, TieredRates

OUTPUT = Path(__file__).with_name("prices.json")
PRICE_SOURCE = f"genai-prices {genai_prices.__version__}"
MIDNIGHT = time(0, tzinfo=UTC)

# A resolved price as stored: (tier starts, per-token rates of each band), or None.
StoredPrice = tuple[tuple[int, ...], tuple[tuple[str, ...], ...]] | None


def table_rates(model_price: ModelPrice, price_model: str) -> PriceRates:
    """Per-token rates, read off genai-prices itself so its rules (which token kinds have
    their own price, what falls back to the input rate) hold without restating them; for
    tiered prices, once per band (`TieredRates` restates only which band applies)."""
    starts = sorted(
        {
            tier.start
            for value in vars(model_price).values()
            if isinstance(value, TieredPrices)
            for tier in value.tiers
        }
    )
    if not starts:
        return rates_at(model_price, price_model, prompt=1_000_000)
    prompts = (starts[0], *(start + 1 for start in starts))
    return TieredRates(
        tuple(starts), tuple(rates_at(model_price, price_model, prompt=n) for n in prompts)
    )


def rates_at(model_price: ModelPrice, price_model: str, *, prompt: int) -> Rates:
    """The rates that apply to a prompt of `prompt` tokens (which tier, for tiered prices)."""

    def calc(**tokens: int) -> Any:
        return model_price.calc_price(Usage(input_tokens=prompt, **tokens))

    def per_token(price: Decimal, tokens: int) -> Decimal:
        return price / tokens if tokens else Decimal(0)

    m = 1_000_000
    plain = calc()
    return Rates(
        input=per_token(plain["input_price"], prompt),
        output=calc(output_tokens=m)["output_price"] / m,
        cache_read=per_token(calc(cache_read_tokens=prompt)["input_price"], prompt),
        cache_write=per_token(calc(cache_write_tokens=prompt)["input_price"], prompt),
        per_request=plain["total_price"] - plain["input_price"] - plain["output_price"],
        price_source=PRICE_SOURCE,
        price_model=price_model,
    )


def reference_rates(
    model: ModelInfo, price_model: str, when: datetime, service_tier: str | None
) -> PriceRates | None:
    """What genai-prices charges for `model` at `when`: its own `get_prices`, then
    `table_rates`. None when genai-prices cannot price tokens with it (it raises)."""
    context = {"service_tier": service_tier} if service_tier is not None else None
    try:
        return table_rates(model.get_prices(when, context), price_model)
    except (ValueError, TypeError, ArithmeticError):
        return None


def service_tiers(model: ModelInfo) -> list[str]:
    """Every service tier one of the model's price variants is selected by."""
    tiers = {v.when["service_tier"] for v in model.price_variants or () if "service_tier" in v.when}
    if NO_TIER in tiers:
        raise ValueError(f"{model.id}: a service tier named {NO_TIER!r} collides with 'none'")
    return sorted(tiers)


def start_dates(model: ModelInfo) -> list[date]:
    """Every date a conditional price or price variant of the model starts on."""
    return sorted({c.start_date for c in _constraints(model) if isinstance(c, StartDateConstraint)})


def day_times(model: ModelInfo) -> list[time]:
    """Every UTC time of day where one of the model's daily price windows opens or closes
    (midnight excluded: a day's first segment starts there anyway)."""
    edges = {
        utc_time(edge)
        for c in _constraints(model)
        if isinstance(c, TimeOfDateConstraint)
        for edge in (c.start_time, c.end_time)
    }
    return sorted(edges - {MIDNIGHT})


def utc_time(value: time) -> time:
    """`value` as a UTC time of day (naive times are UTC), as genai-prices compares them."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return datetime.combine(date(1970, 1, 1), value).astimezone(UTC).timetz()


def _constraints(model: ModelInfo) -> list[Any]:
    conditional = model.prices if isinstance(model.prices, list) else []
    return [c.constraint for c in conditional] + [v.constraint for v in model.price_variants or ()]


class _Interner:
    """Gives equal values one index, in order of first use (so the output is stable)."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self._index: dict[Any, int] = {}

    def __call__(self, value: Any) -> int:
        index = self._index.get(value)
        if index is None:
            index = self._index[value] = len(self.items)
            self.items.append(value)
        return index


class _Builder:
    def __init__(self) -> None:
        self.rates = _Interner()
        self.prices = _Interner()

    def price_index(self, rates: PriceRates | None) -> int | None:
        if rates is None:
            return None
        if isinstance(rates, Rates):
            starts: tuple[int, ...] = ()
            bands: tuple[Rates, ...] = (rates,)
        else:
            starts, bands = rates.starts, rates.bands
        band_indexes = tuple(self.rates(_decimal_strings(band)) for band in bands)
        return self.prices((starts, band_indexes))

    def provider(self, provider: Provider) -> dict[str, Any]:
        out: dict[str, Any] = {"id": provider.id}
        if provider.provider_match is not None:
            out["provider_match"] = clause_json(provider.provider_match)
        if provider.model_match is not None:
            out["model_match"] = clause_json(provider.model_match)
        if provider.fallback_model_providers:
            out["fallback_model_providers"] = list(provider.fallback_model_providers)
        out["models"] = [self.model(provider, m) for m in provider.models]
        return out

    def model(self, provider: Provider, model: ModelInfo) -> dict[str, Any]:
        price_model = f"{provider.id}:{model.id}"
        dates = start_dates(model)
        times = day_times(model)
        tiers: list[str | None] = [None, *service_tiers(model)]
        # Segment 0 lies before the first boundary; segment i starts at boundary i-1.
        days = [dates[0] - timedelta(days=1), *dates] if dates else [date(2025, 1, 1)]
        clock = [MIDNIGHT, *times]
        grid = {
            tier: [
                [
                    self.price_index(
                        reference_rates(model, price_model, datetime.combine(d, t), tier)
                    )
                    for t in clock
                ]
                for d in days
            ]
            for tier in tiers
        }
        rows = list(grid.values())
        keep_days = [0] + [i for i in range(1, len(days)) if any(g[i] != g[i - 1] for g in rows)]
        keep_times = [0] + [
            j
            for j in range(1, len(clock))
            if any(g[i][j] != g[i][j - 1] for g in rows for i in range(len(days)))
        ]
        out: dict[str, Any] = {"id": model.id, "match": clause_json(model.match)}
        if len(keep_days) > 1:
            out["dates"] = [days[i].isoformat() for i in keep_days[1:]]
        if len(keep_times) > 1:
            out["times"] = [clock[j].replace(tzinfo=None).isoformat() for j in keep_times[1:]]
        prices: dict[str, Any] = {}
        for tier, g in grid.items():
            if tier is not None and g == grid[None]:
                continue  # the tier changes nothing: priced as no tier
            segments = [[g[i][j] for j in keep_times] for i in keep_days]
            prices[NO_TIER if tier is None else tier] = _collapse(segments, len(keep_days) > 1)
        out["prices"] = prices
        return out


def _collapse(segments: list[list[int | None]], dated: bool) -> Any:
    """The timeline of one tier, as small as the runtime lookup can read it: a dated
    timeline stays a list (per date) unless the price never changes; each date's list of
    time-of-day prices becomes one index when it does not change within the day."""
    days = [row[0] if len(set(row)) == 1 else row for row in segments]
    if all(day == days[0] and not isinstance(day, list) for day in days):
        return days[0]
    return days if dated else days[0]


def _decimal_strings(rates: Rates) -> tuple[str, ...]:
    values = (rates.input, rates.output, rates.cache_read, rates.cache_write, rates.per_request)
    return tuple(_decimal(v) for v in values)


def _decimal(value: Decimal) -> str:
    """Plain notation (no exponent), trailing zeros dropped: one spelling per value."""
    text = format(value.normalize(), "f")
    return text if text != "-0" else "0"


def clause_json(clause: Any) -> dict[str, Any]:
    """A match clause in genai-prices' source-data shape."""
    if isinstance(clause, ClauseOr):
        return {"or": [clause_json(c) for c in clause.or_]}
    if isinstance(clause, ClauseAnd):
        return {"and": [clause_json(c) for c in clause.and_]}
    for kind, field in (
        (ClauseStartsWith, "starts_with"),
        (ClauseEndsWith, "ends_with"),
        (ClauseContains, "contains"),
        (ClauseRegex, "regex"),
        (ClauseEquals, "equals"),
    ):
        if isinstance(clause, kind):
            return {field: getattr(clause, field)}
    raise TypeError(f"unknown match clause {clause!r}")


def build(providers: Sequence[Provider] | None = None) -> dict[str, Any]:
    """The price table of `providers` (genai-prices' bundled data by default)."""
    builder = _Builder()
    out = [builder.provider(p) for p in (price_data.providers if providers is None else providers)]
    return {
        "genai_prices": genai_prices.__version__,
        "rates": [list(r) for r in builder.rates.items],
        "prices": [[list(starts), list(bands)] for starts, bands in builder.prices.items],
        "providers": out,
    }


def render(table: dict[str, Any]) -> str:
    """JSON with one rate, price or model per line, so a regenerated table diffs well."""

    def compact(value: Any) -> str:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    def rows(items: Iterable[str]) -> str:
        return "[\n" + ",\n".join(items) + "\n]"

    providers = []
    for provider in table["providers"]:
        head = compact({k: v for k, v in provider.items() if k != "models"})
        models = rows(compact(m) for m in provider["models"])
        providers.append(f'{head[:-1]},"models":{models}}}')
    text = (
        "{\n"
        f'"genai_prices":{compact(table["genai_prices"])},\n'
        f'"prices":{rows(compact(p) for p in table["prices"])},\n'
        f'"providers":{rows(providers)},\n'
        f'"rates":{rows(compact(r) for r in table["rates"])}\n'
        "}\n"
    )
    if json.loads(text) != table:
        raise AssertionError("rendered price table does not read back as itself")
    return text


def main() -> None:
    text = render(build())
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUTPUT} ({len(text.encode())} bytes, {PRICE_SOURCE})", file=sys.stderr)


if __name__ == "__main__":
    main()
