"""What each ai.response cost, in USD, with where the number came from.

Token semantics (what the decoders normalise `usage` to, whatever the provider):

    prompt_tokens          every input token billed, cached ones included
    cached_tokens          the part of prompt_tokens read from a prompt cache
    cache_creation_tokens  the part of prompt_tokens written to a prompt cache (Anthropic)
    completion_tokens      every output token billed, reasoning/thinking included

genai-prices (>= 0.2) nests its usage keys the same way: `input_tokens` contains
`cache_read_tokens` and `cache_write_tokens`, and the remainder is billed at the
input rate. So the mapping is one to one: Anthropic's "input excludes cache" and
Gemini's "candidates exclude thoughts" were already undone by their decoders.

What decoders may put in `attrs` for us (all optional):

    reported_cost_usd         what the provider says it charged (OpenRouter usage.cost,
    reported_input_cost_usd   Perplexity usage.cost.*): wins over any price table
    reported_output_cost_usd
    usage_source              "estimated" when the tokens were estimated, not reported
    service_tier              the response's tier (OpenAI "priority", "flex"), for prices
                              that depend on it

Provenance goes into `attrs`:

    cost_source   "reported"  the provider's body said what it charged (attrs.reported_cost_usd,
                              set by decoders for e.g. OpenRouter's usage.cost)
                  "computed"  tokens from the response x a price table
                  "estimated" a price table x tokens the decoder estimated
                              (attrs.usage_source == "estimated")
    price_source  "genai-prices <version>", "config override", "local model server" or "provider"
    price_model   the price-table entry used, e.g. "anthropic:claude-sonnet-4-0"
    cost_unknown  why there is no cost (no usage, no model, a model no table knows)

Absent is not zero: without usage or a known price, no cost fields are written.

The bundled price snapshot is used and nothing here can fetch prices: genai-prices
only downloads when its `UpdatePrices` is started, which this module never does,
and lookups go to a snapshot built from the bundled data, not the global one that
an `UpdatePrices` elsewhere in the process could replace.
"""

from __future__ import annotations

import bisect
import fnmatch
import math
import re
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import genai_prices
from genai_prices import data as price_data
from genai_prices.data_snapshot import DataSnapshot
from genai_prices.types import (
    ModelInfo,
    ModelPrice,
    Provider,
    TieredPrices,
    TimeOfDateConstraint,
    Usage,
)

from oisp_sensor.counters import Counters
from oisp_sensor.events import Event, EventType, provider_label

if TYPE_CHECKING:
    from oisp_sensor.config import PriceOverride

PRICE_TABLE = f"genai-prices {genai_prices.__version__}"
CONFIG_OVERRIDE = "config override"
LOCAL_SERVER = "local model server"
REPORTED = "provider"

# Our provider ids (decode/registry.py) -> genai-prices provider ids.
GENAI_PRICES_PROVIDERS: Mapping[str, str] = {
    "openai": "openai",
    "azure_openai": "azure",
    "anthropic": "anthropic",
    "google": "google",
    "aws_bedrock": "aws",
    "mistral": "mistral",
    "groq": "groq",
    "cohere": "cohere",
    "deepseek": "deepseek",
    "xai": "x-ai",
    "together": "together",
    "fireworks": "fireworks",
    "perplexity": "perplexity",
    "openrouter": "openrouter",
}
# Servers on the user's own hardware: nothing is billed per token.
LOCAL_PROVIDERS = frozenset({"ollama", "lmstudio", "vllm"})

_MTOK = Decimal(1_000_000)
_NS_PER_DAY = 86_400 * 1_000_000_000


@dataclass(frozen=True, slots=True)
class TokenCounts:
    """Billable tokens of one response; `input` contains `cache_read` and `cache_write`."""

    input: int
    output: int
    cache_read: int = 0
    cache_write: int = 0

    @property
    def uncached_input(self) -> int:
        return self.input - self.cache_read - self.cache_write


@dataclass(frozen=True, slots=True)
class Cost:
    input_usd: float
    output_usd: float
    total_usd: float
    price_source: str
    price_model: str


@dataclass(frozen=True, slots=True)
class Rates:
    """USD per token for one model at one moment, by kind of token (flat prices)."""

    input: Decimal
    output: Decimal
    cache_read: Decimal
    cache_write: Decimal
    per_request: Decimal
    price_source: str
    price_model: str

    def cost(self, tokens: TokenCounts) -> Cost:
        input_usd = (
            tokens.uncached_input * self.input
            + tokens.cache_read * self.cache_read
            + tokens.cache_write * self.cache_write
        )
        output_usd = tokens.output * self.output
        total = input_usd + output_usd + self.per_request
        return Cost(
            float(input_usd),
            float(output_usd),
            float(total),
            self.price_source,
            self.price_model,
        )


@dataclass(frozen=True, slots=True)
class TieredRates:
    """Prices that depend on the size of the prompt (e.g. Gemini Pro above 200k tokens).

    genai-prices bills every token at a tier's price once the prompt (`input_tokens`) is
    larger than the tier's start (the "cliff" model), so between two starts the prices
    are flat: each band has its own `Rates`, and pricing an event is a lookup, not a
    genai-prices calculation.
    """

    starts: tuple[int, ...]  # every tier start, ascending
    bands: tuple[Rates, ...]  # bands[i]: prompts larger than starts[i-1], up to starts[i]

    def cost(self, tokens: TokenCounts) -> Cost:
        return self.bands[bisect.bisect_left(self.starts, tokens.input)].cost(tokens)


PriceRates = Rates | TieredRates


@dataclass(frozen=True, slots=True)
class _Entry:
    """A model found in the price table, and what its price depends on besides the day."""

    provider: Provider
    model: ModelInfo
    intraday: tuple[TimeOfDateConstraint, ...]


def token_counts(usage: Mapping[str, Any]) -> TokenCounts | None:
    """Billable tokens from an OISP usage object; None when they cannot be known."""
    prompt = _count(usage.get("prompt_tokens"))
    completion = _count(usage.get("completion_tokens"))
    total = _count(usage.get("total_tokens"))
    if prompt is None:
        if completion is None or total is None:
            return None
        prompt = total - completion
    if completion is None:
        # Embeddings have no output; anything else must say how much it produced.
        completion = total - prompt if total is not None else 0
    read = _count(usage.get("cached_tokens")) or 0
    write = _count(usage.get("cache_creation_tokens")) or 0
    if prompt < 0 or completion < 0 or read + write > prompt:
        return None
    return TokenCounts(input=prompt, output=completion, cache_read=read, cache_write=write)


def _count(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def _reported(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) and value >= 0 else None


class PriceBook:
    """Finds the rates of (provider, model) at an instant: user overrides, then the table.

    Lookups are cached per provider/model/day (plus the time-of-day windows of the
    few providers with off-peak prices), so pricing an event is a dictionary hit and
    a few multiplications. Misses are cached too: an unknown model stays cheap.
    """

    def __init__(self, overrides: Sequence[PriceOverride] = (), *, cache_size: int = 4096) -> None:
        self._overrides = [
            (
                o.provider.strip().lower(),
                re.compile(fnmatch.translate(o.model.strip().lower())),
                _override_rates(o),
            )
            for o in overrides
        ]
        self._snapshot = DataSnapshot(providers=price_data.providers, from_auto_update=False)
        self._cache_size = cache_size
        self._entries: dict[tuple[str, str], _Entry | Rates | None] = {}
        self._rates: OrderedDict[tuple[Any, ...], PriceRates] = OrderedDict()

    def rates(
        self,
        provider: str | None,
        model: str,
        ts_ns: int,
        context: Mapping[str, str] | None = None,
    ) -> PriceRates | None:
        key = ((provider or "").lower(), _model_ref(model))
        try:
            entry = self._entries[key]
        except KeyError:
            if len(self._entries) >= self._cache_size:
                self._entries.clear()
            entry = self._entries[key] = self._find(*key)
        if entry is None or isinstance(entry, Rates):
            return entry
        when: datetime | None = None
        windows: tuple[bool, ...] = ()
        if entry.intraday:
            when = _utc(ts_ns)
            windows = tuple(c.active(when) for c in entry.intraday)
        ctx = tuple(sorted(context.items())) if context else ()
        rkey = (entry.provider.id, entry.model.id, ts_ns // _NS_PER_DAY, windows, ctx)
        rates = self._rates.get(rkey)
        if rates is not None:
            self._rates.move_to_end(rkey)
            return rates
        model_price = entry.model.get_prices(when or _utc(ts_ns), dict(ctx) if ctx else None)
        rates = _table_rates(model_price, f"{entry.provider.id}:{entry.model.id}")
        self._rates[rkey] = rates
        if len(self._rates) > self._cache_size:
            self._rates.popitem(last=False)
        return rates

    def _find(self, provider: str, model: str) -> _Entry | Rates | None:
        for who, pattern, rates in self._overrides:
            if (not who or who == provider) and pattern.match(model):
                return rates
        if provider in LOCAL_PROVIDERS:
            zero = Decimal(0)
            return Rates(zero, zero, zero, zero, zero, LOCAL_SERVER, f"{provider}:{model}")
        # A provider the table does not know (a custom gateway): match on the model name.
        table_id = GENAI_PRICES_PROVIDERS.get(provider)
        try:
            found, info = self._snapshot.find_provider_model(model, None, table_id, None)
        except LookupError:
            return None
        prices = info.prices if isinstance(info.prices, list) else []
        intraday = tuple(
            p.constraint for p in prices if isinstance(p.constraint, TimeOfDateConstraint)
        )
        return _Entry(found, info, intraday)


def _model_ref(model: str) -> str:
    """Gemini names models as resources (`models/x`, `publishers/google/models/x`)."""
    model = model.strip().lower()
    _, sep, rest = model.rpartition("models/")
    return rest if sep and rest else model


def _utc(ts_ns: int) -> datetime:
    return datetime.fromtimestamp(ts_ns / 1e9, UTC)


def _override_rates(o: PriceOverride) -> Rates:
    def per_token(value: float | None, fallback: Decimal) -> Decimal:
        return fallback if value is None else Decimal(str(value)) / _MTOK

    input_rate = per_token(o.input_per_mtok, Decimal(0))
    return Rates(
        input=input_rate,
        output=per_token(o.output_per_mtok, Decimal(0)),
        cache_read=per_token(o.cached_input_per_mtok, input_rate),
        cache_write=per_token(o.cache_write_per_mtok, input_rate),
        per_request=Decimal(0),
        price_source=CONFIG_OVERRIDE,
        price_model=f"{o.provider or '*'}:{o.model}",
    )


def _table_rates(model_price: ModelPrice, price_model: str) -> PriceRates:
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
        return _rates_at(model_price, price_model, prompt=1_000_000)
    prompts = (starts[0], *(start + 1 for start in starts))
    return TieredRates(
        tuple(starts), tuple(_rates_at(model_price, price_model, prompt=n) for n in prompts)
    )


def _rates_at(model_price: ModelPrice, price_model: str, *, prompt: int) -> Rates:
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
        price_source=PRICE_TABLE,
        price_model=price_model,
    )


class PricingEnricher:
    """Adds `usage.*_cost_usd` and cost provenance to every ai.response."""

    def __init__(
        self,
        overrides: Sequence[PriceOverride] = (),
        *,
        enabled: bool = True,
        counters: Counters | None = None,
        cache_size: int = 4096,
    ) -> None:
        self.book = PriceBook(overrides, cache_size=cache_size)
        self.enabled = enabled
        self.counters = counters or Counters()

    def enrich(self, event: Event) -> None:
        if event.event_type != EventType.AI_RESPONSE or "cost_source" in event.attrs:
            return
        attrs = event.attrs
        data = event.data
        usage = data.get("usage")
        reported = _reported(attrs.get("reported_cost_usd"))
        if reported is not None:
            if not isinstance(usage, dict):
                usage = data["usage"] = {}
            self._write_reported(usage, attrs, reported)
            return
        if not self.enabled:
            return
        if not isinstance(usage, dict) or (tokens := token_counts(usage)) is None:
            return self._unknown(attrs, "no usage")
        model = data.get("model")
        model_id = model.get("id") if isinstance(model, dict) else None
        if not isinstance(model_id, str) or not model_id:
            return self._unknown(attrs, "no model")
        tier = attrs.get("service_tier")
        context = {"service_tier": tier} if isinstance(tier, str) and tier else None
        rates = self.book.rates(provider_label(event), model_id, event.ts_ns, context)
        if rates is None:
            return self._unknown(attrs, "model not in price table")
        cost = rates.cost(tokens)
        usage["input_cost_usd"] = cost.input_usd
        usage["output_cost_usd"] = cost.output_usd
        usage["total_cost_usd"] = cost.total_usd
        estimated = attrs.get("usage_source") == "estimated"
        attrs["cost_source"] = "estimated" if estimated else "computed"
        attrs["price_source"] = cost.price_source
        attrs["price_model"] = cost.price_model
        self.counters.inc("pricing.estimated" if estimated else "pricing.computed")

    def _write_reported(self, usage: dict[str, Any], attrs: dict[str, Any], total: float) -> None:
        for ours, theirs in (
            ("input_cost_usd", "reported_input_cost_usd"),
            ("output_cost_usd", "reported_output_cost_usd"),
        ):
            part = _reported(attrs.get(theirs))
            if part is not None:
                usage[ours] = part
        usage["total_cost_usd"] = total
        attrs["cost_source"] = "reported"
        attrs["price_source"] = REPORTED
        self.counters.inc("pricing.reported")

    def _unknown(self, attrs: dict[str, Any], why: str) -> None:
        attrs["cost_unknown"] = why
        self.counters.inc("pricing.unknown")
