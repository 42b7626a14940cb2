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

Where the prices come from: prices.json next to this module, a table generated from
genai-prices (https://github.com/pydantic/genai-prices) by pricegen.py, and read once per
process when the first PriceBook is built. genai-prices itself is not imported at runtime
(its data model cost the sensor 12 MB and ~190 ms): the table holds each model's per-token
rates, already resolved by genai-prices for every date and time-of-day segment and service
tier, and this module restates only how genai-prices finds a model for a (provider, model
name) and which segment an instant falls in. After upgrading genai-prices, regenerate it:

    .venv/bin/python -m oisp_sensor.enrich.pricegen

(tests/unit/enrich/test_price_table.py fails until the table matches the installed
genai-prices). Nothing here can fetch prices: there is no network code on this path.
"""

from __future__ import annotations

import bisect
import fnmatch
import functools
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, time
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from oisp_sensor.counters import Counters
from oisp_sensor.events import Event, EventType, provider_label

if TYPE_CHECKING:
    from oisp_sensor.config import PriceOverride

    PRICE_TABLE: str  # "genai-prices <version>": read from prices.json on first use

CONFIG_OVERRIDE = "config override"
LOCAL_SERVER = "local model server"
REPORTED = "provider"
NO_TIER = ""  # the key of prices.json's prices for a request without a service tier
TABLE_FILE = Path(__file__).with_name("prices.json")

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

    Lookups are cached per provider/model (and each model's rates per price it has), so
    pricing an event is a dictionary hit, a bisect for the few models whose price
    changes over time, and a few multiplications. Misses are cached too: an unknown
    model stays cheap.
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
        self._table = price_table()
        self._cache_size = cache_size
        self._entries: dict[tuple[str, str], Timeline | Rates | None] = {}

    def rates(
        self,
        provider: str | None,
        model: str,
        ts_ns: int,
        context: Mapping[str, str] | None = None,
    ) -> PriceRates | None:
        """`context` selects price variants; the table knows them for `service_tier`
        only (the one key the sensor passes), other keys are ignored."""
        entry = self.entry(provider, model)
        if entry is None or isinstance(entry, Rates):
            return entry
        return entry.rates(ts_ns, context.get("service_tier") if context else None)

    def entry(self, provider: str | None, model: str) -> Timeline | Rates | None:
        """What prices `model` of `provider` (our provider id): an override's or a local
        server's rates, the table's timeline of the model, or None for an unknown one."""
        key = ((provider or "").lower(), _model_ref(model))
        try:
            return self._entries[key]
        except KeyError:
            if len(self._entries) >= self._cache_size:
                self._entries.clear()
            entry = self._entries[key] = self._find(*key)
            return entry

    def _find(self, provider: str, model: str) -> Timeline | Rates | None:
        for who, pattern, rates in self._overrides:
            if (not who or who == provider) and pattern.match(model):
                return rates
        if provider in LOCAL_PROVIDERS:
            zero = Decimal(0)
            return Rates(zero, zero, zero, zero, zero, LOCAL_SERVER, f"{provider}:{model}")
        # A provider the table does not know (a custom gateway): match on the model name.
        return self._table.find(model, GENAI_PRICES_PROVIDERS.get(provider))


def _model_ref(model: str) -> str:
    """Gemini names models as resources (`models/x`, `publishers/google/models/x`, with
    `projects/p/locations/l/` before it on Vertex). Fireworks' `accounts/fireworks/models/x`
    and `meta-models/x` are the names the price table knows them by: they stay whole."""
    return _GEMINI_RESOURCE.sub("", model.strip().lower())


_GEMINI_RESOURCE = re.compile(r"^(?:(?:.+/)?publishers/[^/]+/)?models/(?=.)")


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


@functools.cache
def price_table() -> PriceTable:
    """prices.json, read once per process, when the first PriceBook needs it."""
    return PriceTable(json.loads(TABLE_FILE.read_bytes(), object_pairs_hook=_compact))


def __getattr__(name: str) -> Any:
    # PRICE_TABLE names the table's genai-prices version, which only prices.json knows:
    # reading it on first use keeps importing this module from loading the table.
    if name == "PRICE_TABLE":
        return price_table().price_source
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class PriceTable:
    """The price table of prices.json (layout: pricegen.py), and genai-prices' lookup.

    Finding a model restates genai_prices.data_snapshot.DataSnapshot.find_provider_model
    (for a provider id or none; no API URLs, no litellm prefixes: the sensor passes
    neither): the provider by id, else by its `provider_match`; with no provider id, the
    first provider whose `model_match` matches the model name; then that provider's first
    model whose `match` matches, else the first match among the providers in its
    `fallback_model_providers` (their own models only: one step of fallback), and if
    nothing matched, all of it again with a compact date (`-20240806`) written with dashes.

    `raw` is prices.json as `_compact` reads it.
    """

    def __init__(self, raw: Mapping[str, Any]) -> None:
        self.version: str = raw["genai_prices"]
        self.price_source = f"genai-prices {self.version}"
        self._rates: list[list[str]] = raw["rates"]
        self._prices: list[list[list[int]]] = raw["prices"]
        self._providers: tuple[_Provider, ...] = tuple(raw["providers"])
        self._by_id: dict[str, _Provider] = {}
        for provider in self._providers:
            self._by_id.setdefault(provider.id, provider)

    def find(self, model_ref: str, provider_id: str | None) -> Timeline | None:
        """The model genai-prices would price `model_ref` with, for `provider_id` (a
        genai-prices provider id; None: any provider whose models the name suggests)."""
        model_ref = model_ref.lower()
        provider = self._find_provider(model_ref, provider_id)
        if provider is None:
            return None
        found = self._find_model(provider, model_ref)
        if found is None:
            return None
        owner, model = found
        return self._timeline(provider.id, owner.id, model)

    def model(self, provider_id: str, model_id: str) -> Timeline | None:
        """One model of the table by its ids, as genai-prices lists it."""
        provider = self._by_id.get(provider_id)
        for model in provider.models if provider else ():
            if model.id == model_id:
                return self._timeline(provider_id, provider_id, model)
        return None

    def make_rates(self, index: int, price_model: str) -> PriceRates:
        """The rates of prices.json's `prices[index]`, attributed to `price_model`."""
        starts, bands = self._prices[index]
        made = tuple(self._band(band, price_model) for band in bands)
        return TieredRates(tuple(starts), made) if starts else made[0]

    def _band(self, index: int, price_model: str) -> Rates:
        input_, output, cache_read, cache_write, per_request = map(Decimal, self._rates[index])
        return Rates(
            input_, output, cache_read, cache_write, per_request, self.price_source, price_model
        )

    def _timeline(self, provider_id: str, owner: str, model: _Model) -> Timeline:
        return Timeline(
            f"{provider_id}:{model.id}", owner, model.days, model.times, model.prices, self
        )

    def _find_provider(self, model_ref: str, provider_id: str | None) -> _Provider | None:
        if provider_id is not None:
            return self._provider_by_id(provider_id)
        if model_ref:
            for provider in self._providers:
                if provider.model_match is not None and _matches(provider.model_match, model_ref):
                    return provider
        return None

    def _provider_by_id(self, provider_id: str) -> _Provider | None:
        provider_id = provider_id.lower().strip()
        if (provider := self._by_id.get(provider_id)) is not None:
            return provider
        for provider in self._providers:
            match = provider.provider_match
            if match is not None and _matches(match, provider_id):
                return provider
        return None

    def _find_model(self, provider: _Provider, model_ref: str) -> tuple[_Provider, _Model] | None:
        if found := self._match_model(provider, model_ref, fallback=True):
            return found
        # LiteLLM/OpenRouter write dates compactly (`gpt-5.2-20251211`): retry with dashes.
        normalized = _COMPACT_DATE.sub(_dashed_date, model_ref)
        if normalized != model_ref:
            return self._match_model(provider, normalized, fallback=True)
        return None

    def _match_model(
        self, provider: _Provider, model_ref: str, *, fallback: bool
    ) -> tuple[_Provider, _Model] | None:
        model_ref = model_ref.lower()
        for model in provider.models:
            if _matches(model.match, model_ref):
                return provider, model
        for other_id in provider.fallbacks if fallback else ():
            other = self._by_id.get(other_id)
            if other is not None and (found := self._match_model(other, model_ref, fallback=False)):
                return found
        return None


class _Provider(NamedTuple):
    id: str
    provider_match: _Clause | None
    model_match: _Clause | None
    fallbacks: tuple[str, ...]
    models: tuple[_Model, ...]


class _Model(NamedTuple):
    id: str
    match: _Clause
    days: tuple[int, ...]
    times: tuple[int, ...]
    prices: Any  # see Timeline.prices


# A match clause, compiled: (kind, argument lower-cased) or (kind, sub-clauses); regex
# patterns are kept as they are.
_Clause = tuple[str, Any]
_CLAUSE_KINDS = frozenset({"equals", "starts_with", "contains", "ends_with", "regex", "or", "and"})


def _compact(pairs: list[tuple[str, Any]]) -> Any:
    """json's object_pairs_hook for prices.json: each object as the lookup keeps it (a
    clause, a model, a provider as tuples), made as soon as it is read, inner ones first.
    Parsed whole, its ~9,000 dicts would take 3 MB, and leave 2 MB behind once freed."""
    if len(pairs) == 1 and pairs[0][0] in _CLAUSE_KINDS:
        return compile_clause(dict(pairs))
    obj = dict(pairs)
    if NO_TIER in obj:
        return obj  # a model's prices by service tier
    if "match" in obj:
        prices = obj["prices"]
        return _Model(
            obj["id"],
            obj["match"],
            tuple(_epoch_day(d) for d in obj.get("dates", ())),
            tuple(_day_micros(t) for t in obj.get("times", ())),
            prices if len(prices) > 1 else prices[NO_TIER],
        )
    if "models" in obj:
        return _Provider(
            obj["id"],
            obj.get("provider_match"),
            obj.get("model_match"),
            tuple(obj.get("fallback_model_providers", ())),
            tuple(obj["models"]),
        )
    return obj  # the table itself


def compile_clause(clause: Mapping[str, Any]) -> _Clause:
    """A genai-prices match clause ({"equals": "gpt-4o"}, {"or": [...]} ...) ready for
    `clause_matches` (sub-clauses may be compiled already)."""
    ((kind, arg),) = clause.items()
    if kind in ("or", "and"):
        return kind, tuple(c if isinstance(c, tuple) else compile_clause(c) for c in arg)
    if kind == "regex":
        return kind, arg
    if kind in ("equals", "starts_with", "contains", "ends_with"):
        return kind, arg.lower()
    raise ValueError(f"unknown match clause {kind!r} in the price table")


def clause_matches(clause: _Clause, text: str) -> bool:
    """genai-prices' match clauses (genai_prices/types.py ClauseStartsWith and the rest):
    every kind compares case-insensitively except `regex`, a `re.search`. genai-prices
    always hands them lower-cased text, so regexes see it lower-cased too."""
    return _matches(clause, text.lower())


def _matches(clause: _Clause, text: str) -> bool:
    kind, arg = clause
    if kind == "equals":
        return bool(text == arg)
    if kind == "starts_with":
        return text.startswith(arg)
    if kind == "contains":
        return arg in text
    if kind == "ends_with":
        return text.endswith(arg)
    if kind == "regex":
        return re.search(arg, text) is not None
    if kind == "or":
        return any(_matches(c, text) for c in arg)
    return all(_matches(c, text) for c in arg)


# genai_prices.types._COMPACT_DATE_RE and _normalize_compact_dated_ref.
_COMPACT_DATE = re.compile(r"(-)(20\d{2})(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])(?=-|:|$)")


def _dashed_date(match: re.Match[str]) -> str:
    year, month, day = (int(match.group(i)) for i in range(2, 5))
    try:
        date(year, month, day)
    except ValueError:
        return match.group(0)  # not a real date (20250231): left as it is
    return f"{match.group(1)}{year:04d}-{month:02d}-{day:02d}"


def _epoch_day(iso: str) -> int:
    return date.fromisoformat(iso).toordinal() - _EPOCH_ORDINAL


def _day_micros(iso: str) -> int:
    t = time.fromisoformat(iso)
    return ((t.hour * 60 + t.minute) * 60 + t.second) * 1_000_000 + t.microsecond


_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_US_PER_DAY = 86_400 * 1_000_000


@dataclass(frozen=True, slots=True, eq=False)
class Timeline:
    """One model's prices as found for a provider: which applies at an instant, for a
    service tier. Its rates objects are made once, on first use."""

    price_model: str  # "<provider looked up>:<model id>", e.g. "azure:gpt-4o"
    owner: str  # the provider whose list holds the model (another after a fallback)
    days: tuple[int, ...]  # days since 1970-01-01 (UTC) where a date segment starts
    times: tuple[int, ...]  # microseconds after midnight (UTC) where a daily segment starts
    # The price index of each segment (pricegen.py); by service tier (NO_TIER: none)
    # when a tier changes it, else for every tier.
    prices: Any
    table: PriceTable
    made: dict[int, PriceRates] = field(default_factory=dict)

    def rates(self, ts_ns: int, service_tier: str | None = None) -> PriceRates | None:
        value = self.prices
        if isinstance(value, dict):
            value = value[service_tier] if service_tier in value else value[NO_TIER]
        if self.days and isinstance(value, list):
            value = value[bisect.bisect_right(self.days, ts_ns // _NS_PER_DAY)]
        if self.times and isinstance(value, list):
            value = value[bisect.bisect_right(self.times, ts_ns // 1000 % _US_PER_DAY)]
        if value is None:
            return None  # genai-prices has no token prices for it then
        rates = self.made.get(value)
        if rates is None:
            rates = self.made[value] = self.table.make_rates(value, self.price_model)
        return rates


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
