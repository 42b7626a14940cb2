"""`analyze` reports: aggregations over the indexed columns, never over JSON bodies.

One implementation for every source: a JSONL file is loaded into an in-memory
store first, so a file and the store holding the same events give the same report.
Values the traffic did not carry stay absent (None), never 0: a model without a
price has an unknown cost, and the report says how many such responses there were.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import groupby
from typing import Any

from oisp_sensor.store.db import EventStore
from oisp_sensor.store.query import EventFilter

REPORT_NAMES = ("summary", "costs", "providers", "models", "processes", "tools", "conversations")
UNKNOWN = "(unknown)"

Step = Callable[[str], None]  # told what the report is doing now, for a progress display


@dataclass(frozen=True, slots=True)
class Column:
    key: str
    label: str
    kind: str = "text"  # text | int | usd | ms | pct | ts | number


@dataclass(slots=True)
class Report:
    name: str
    title: str
    columns: list[Column]
    rows: list[dict[str, Any]]
    totals: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    total_rows: int = 0  # before --limit


def run_report(
    name: str,
    store: EventStore,
    flt: EventFilter | None = None,
    *,
    limit: int | None = None,
    step: Step | None = None,
) -> Report:
    builder = _BUILDERS.get(name)
    if builder is None:
        raise ValueError(f"unknown report {name!r}; expected one of {', '.join(REPORT_NAMES)}")
    flt = flt or EventFilter()
    with store.errors():
        report = builder(_Query(store, flt, step or (lambda _: None)))
    report.total_rows = len(report.rows)
    if limit is not None and limit > 0 and len(report.rows) > limit:
        report.rows = report.rows[:limit]
        report.notes.append(f"showing {limit} of {report.total_rows} rows (--limit to change)")
    return report


class _Query:
    """The store, the user's filter, and helpers that run SQL under both.

    Report conditions on event_type are written `+event_type`: the unary plus keeps
    SQLite from using the type index for them. A third of the store matches such a
    condition, and scanning the narrow table once is several times faster than an
    index walk plus a table lookup per row. The user's own filters (time, process)
    stay index-eligible, because those are the selective ones.
    """

    def __init__(self, store: EventStore, flt: EventFilter, step: Step) -> None:
        self.store = store
        self.step = step
        self.where, self.params = flt.where()

    def rows(self, sql: str, *extra: Any, where: str | None = None) -> list[Any]:
        """`sql` with `{where}` replaced by the filter (AND-ed with `where`)."""
        condition = self.where if where is None else f"({where}) AND ({self.where})"
        return self.store.conn.execute(
            sql.format(where=condition), [*extra, *self.params]
        ).fetchall()

    def distributions(
        self, key_sql: str, columns: tuple[str, ...], where: str
    ) -> dict[Any, list[dict[str, float] | None]]:
        """p50/p95/mean of each column per key (nearest rank), from one unsorted scan."""
        self.step("latency percentiles")
        values: dict[Any, list[list[float]]] = {}
        for key, *row in self.rows(
            f"SELECT {key_sql}, {', '.join(columns)} FROM events WHERE {{where}}", where=where
        ):
            lists = values.get(key)
            if lists is None:
                lists = values[key] = [[] for _ in columns]
            for i, v in enumerate(row):
                if v is not None:
                    lists[i].append(v)
        return {key: [_distribution(v) for v in lists] for key, lists in values.items()}

    def unanswered(self, key_sql: str) -> dict[Any, int]:
        """Requests per key that never got a response (covering-index lookups only)."""
        self.step("matching requests to responses")
        return dict(
            self.rows(
                f"SELECT {key_sql} AS k, count(*) FROM events WHERE {{where}} GROUP BY k",
                where=_NO_RESPONSE,
            )
        )


def _distribution(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    values.sort()
    return {
        "p50": _rank(values, 0.50),
        "p95": _rank(values, 0.95),
        "mean": sum(values) / len(values),
    }


def _rank(sorted_values: list[float], p: float) -> float:
    return float(sorted_values[max(0, math.ceil(p * len(sorted_values)) - 1)])


def _ratio(part: float | None, whole: float | None) -> float | None:
    return part / whole if part is not None and whole else None


_RESPONSES = "+event_type = 'ai.response'"  # WHERE form: no index (see _Query)
_IS_RESPONSE = "event_type = 'ai.response'"  # inside aggregates
# A call's tokens: total_tokens, else input + output (shared with timeseries.py, so the
# dashboard counts as `analyze` does).
TOKENS_SQL = "coalesce(total_tokens, prompt_tokens + completion_tokens)"
# Tokens were used but no price is known; a failed call with no usage costs nothing.
_UNPRICED = (
    "cost_usd IS NULL AND coalesce(prompt_tokens, completion_tokens, total_tokens) IS NOT NULL"
)
_NO_RESPONSE = """+event_type = 'ai.request' AND NOT EXISTS (SELECT 1 FROM events r
    WHERE r.request_id = events.request_id AND r.event_type = 'ai.response')"""
# Over responses only: a call is counted once, under the model that answered it.
_AI_COUNTS = f"""
    count(*) AS calls,
    sum(success = 0) AS errors,
    sum(prompt_tokens) AS prompt_tokens,
    sum(completion_tokens) AS completion_tokens,
    sum({TOKENS_SQL}) AS total_tokens,
    sum(cost_usd) AS cost_usd"""
# The same counts in a scan of every event type, for reports that also count other events.
_AI_COUNTS_AMONG_ALL = f"""
    sum({_IS_RESPONSE}),
    sum({_IS_RESPONSE} AND success = 0),
    sum(CASE WHEN {_IS_RESPONSE} THEN prompt_tokens END),
    sum(CASE WHEN {_IS_RESPONSE} THEN completion_tokens END),
    sum(CASE WHEN {_IS_RESPONSE} THEN {TOKENS_SQL} END),
    sum(CASE WHEN {_IS_RESPONSE} THEN cost_usd END)"""
_AI_COUNT_KEYS = (
    "calls",
    "errors",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "cost_usd",
)
_AI_COLUMNS = [
    Column("calls", "Calls", "int"),
    Column("errors", "Errors", "int"),
    Column("error_rate", "Error rate", "pct"),
    Column("prompt_tokens", "Input tok", "int"),
    Column("completion_tokens", "Output tok", "int"),
    Column("cost_usd", "Cost", "usd"),
]
_UNANSWERED = Column("unanswered", "No response", "int")
_LATENCY_COLUMNS = [
    Column("latency_p50_ms", "Latency p50", "ms"),
    Column("latency_p95_ms", "Latency p95", "ms"),
]


def _ai_values(values: Iterable[Any]) -> dict[str, Any]:
    row = dict(zip(_AI_COUNT_KEYS, values, strict=True))
    row["error_rate"] = _ratio(row["errors"], row["calls"])
    return row


def _empty_ai() -> dict[str, Any]:
    return {**dict.fromkeys(_AI_COUNT_KEYS), "calls": 0, "errors": 0, "error_rate": None}


def _latency(row: dict[str, Any], stats: dict[str, float] | None) -> None:
    row["latency_p50_ms"] = stats["p50"] if stats else None
    row["latency_p95_ms"] = stats["p95"] if stats else None


def _listed(text: str | None) -> str:
    return ", ".join(sorted(set((text or "").split(",")) - {""}))


# --- the reports ------------------------------------------------------------------------------


def _summary(q: _Query) -> Report:
    q.step("counting events")
    by_type = q.rows(
        "SELECT event_type, count(*) FROM events WHERE {where} GROUP BY event_type ORDER BY 1"
    )
    q.step("aggregating")
    (
        events,
        first,
        last,
        requests,
        responses,
        errors,
        prompt,
        completion,
        tokens,
        cost,
        unpriced,
        tool_calls,
        tool_results,
        tool_failures,
        providers,
        models,
        processes,
        conversations,
    ) = q.rows(
        f"""SELECT count(*), min(ts_ns), max(ts_ns),
            sum(event_type = 'ai.request'), {_AI_COUNTS_AMONG_ALL},
            sum({_IS_RESPONSE} AND {_UNPRICED}),
            sum(event_type = 'agent.tool_call'), sum(event_type = 'agent.tool_result'),
            sum(event_type = 'agent.tool_result' AND success = 0),
            count(DISTINCT provider),
            count(DISTINCT CASE WHEN {_IS_RESPONSE} THEN model END),
            count(DISTINCT process_name), count(DISTINCT conversation_id)
        FROM events WHERE {{where}}"""
    )[0]
    unanswered = sum(q.unanswered("1").values())
    latency, ttft = q.distributions("1", ("latency_ms", "ttft_ms"), _RESPONSES).get(1, [None, None])
    metrics: list[tuple[str, str, Any, str]] = [
        ("events", "Events", events, "int"),
        ("first_event", "First event", first, "ts"),
        ("last_event", "Last event", last, "ts"),
    ]
    metrics += [(f"events.{t}", f"  {t}", n, "int") for t, n in by_type]
    metrics += [
        ("requests", "AI requests", requests or 0, "int"),
        ("responses", "AI responses", responses or 0, "int"),
        ("unanswered", "Requests without a response", unanswered, "int"),
        ("errors", "Failed responses", errors or 0, "int"),
        ("error_rate", "Error rate", _ratio(errors, responses), "pct"),
        ("prompt_tokens", "Input tokens", prompt, "int"),
        ("completion_tokens", "Output tokens", completion, "int"),
        ("total_tokens", "Total tokens", tokens, "int"),
        ("cost_usd", "Cost", cost, "usd"),
        ("unpriced_responses", "Responses without a known cost", unpriced or 0, "int"),
        ("providers", "Providers", providers, "int"),
        ("models", "Models", models, "int"),  # the models that answered, not request aliases
        ("processes", "Processes", processes, "int"),
        ("conversations", "Conversations", conversations, "int"),
        ("tool_calls", "Tool calls", tool_calls or 0, "int"),
        ("tool_results", "Tool results", tool_results or 0, "int"),
        ("tool_failures", "Failed tool results", tool_failures or 0, "int"),
        ("latency_p50_ms", "Latency p50", latency["p50"] if latency else None, "ms"),
        ("latency_p95_ms", "Latency p95", latency["p95"] if latency else None, "ms"),
        ("ttft_p50_ms", "Time to first token p50", ttft["p50"] if ttft else None, "ms"),
    ]
    rows = [
        {"metric": key, "label": label, "value": value, "kind": kind}
        for key, label, value, kind in metrics
    ]
    notes = [_unpriced_note(unpriced)] if unpriced else []
    return Report(
        "summary",
        "Summary",
        [Column("metric", "Metric"), Column("value", "Value", "auto")],
        rows,
        notes=notes,
    )


def _costs(q: _Query) -> Report:
    q.step("aggregating costs")
    provider = f"coalesce(provider, '{UNKNOWN}')"
    model = f"coalesce(model, '{UNKNOWN}')"
    rows = [
        {
            "provider": p,
            "model": m,
            "calls": n,
            "prompt_tokens": pt,
            "completion_tokens": ct,
            "cached_tokens": cached,
            "input_cost_usd": ic,
            "output_cost_usd": oc,
            "cost_usd": c,
            "unpriced": unpriced,
        }
        for p, m, n, pt, ct, cached, ic, oc, c, unpriced in q.rows(
            f"""SELECT {provider} AS p, {model} AS m, count(*), sum(prompt_tokens),
                sum(completion_tokens), sum(cached_tokens), sum(input_cost_usd),
                sum(output_cost_usd), sum(cost_usd) AS c, sum({_UNPRICED})
            FROM events WHERE {{where}} GROUP BY p, m
            ORDER BY c IS NULL, c DESC, count(*) DESC, p, m""",
            where=_RESPONSES,
        )
    ]
    total = _sum(r["cost_usd"] for r in rows)
    for row in rows:
        row["share"] = _ratio(row["cost_usd"], total)
    totals = {
        key: _sum(r[key] for r in rows)
        for key in (
            "calls",
            "prompt_tokens",
            "completion_tokens",
            "cached_tokens",
            "input_cost_usd",
            "output_cost_usd",
            "cost_usd",
            "unpriced",
        )
    }
    notes = [_unpriced_note(totals["unpriced"])] if totals["unpriced"] else []
    return Report(
        "costs",
        "Costs by provider and model",
        [
            Column("provider", "Provider"),
            Column("model", "Model"),
            Column("calls", "Calls", "int"),
            Column("prompt_tokens", "Input tok", "int"),
            Column("completion_tokens", "Output tok", "int"),
            Column("cached_tokens", "Cached tok", "int"),
            Column("input_cost_usd", "Input cost", "usd"),
            Column("output_cost_usd", "Output cost", "usd"),
            Column("cost_usd", "Cost", "usd"),
            Column("share", "Share", "pct"),
            Column("unpriced", "Unpriced", "int"),
        ],
        rows,
        totals=totals,
        notes=notes,
    )


def _unpriced_note(n: int) -> str:
    return (
        f"{n} {'response has' if n == 1 else 'responses have'} tokens but no known cost "
        f"(model not in the price list, or pricing off); not counted as $0"
    )


def _sum(values: Iterable[Any]) -> Any:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def _by_call(q: _Query, key_sql: str, extra_sql: str = "") -> dict[Any, dict[str, Any]]:
    """AI call aggregates per key, with unanswered requests and latency distributions."""
    rows: dict[Any, dict[str, Any]] = {}
    for key, *values in q.rows(
        f"SELECT {key_sql} AS k{extra_sql}, {_AI_COUNTS} FROM events WHERE {{where}} GROUP BY k",
        where=_RESPONSES,
    ):
        extra = values[: len(values) - len(_AI_COUNT_KEYS)]
        rows[key] = {"_extra": extra, **_ai_values(values[len(extra) :])}
    for key, n in q.unanswered(key_sql).items():
        rows.setdefault(key, {"_extra": None, **_empty_ai()})["unanswered"] = n
    stats = q.distributions(key_sql, ("latency_ms", "ttft_ms"), _RESPONSES)
    for key, row in rows.items():
        row.setdefault("unanswered", 0)
        latency, ttft = stats.get(key, [None, None])
        _latency(row, latency)
        row["ttft_p50_ms"] = ttft["p50"] if ttft else None
    return rows


def _ordered(rows: dict[Any, dict[str, Any]]) -> list[tuple[Any, dict[str, Any]]]:
    return sorted(rows.items(), key=lambda kv: (-kv[1]["calls"], -kv[1]["unanswered"], kv[0]))


def _providers(q: _Query) -> Report:
    q.step("aggregating providers")
    key = f"coalesce(provider, '{UNKNOWN}')"
    out = []
    for provider, row in _ordered(_by_call(q, key, ", count(DISTINCT model)")):
        extra = row.pop("_extra")
        row.pop("ttft_p50_ms")
        out.append({"provider": provider, "models": extra[0] if extra else 0, **row})
    return Report(
        "providers",
        "Providers",
        [Column("provider", "Provider"), Column("models", "Models", "int"), *_AI_COLUMNS]
        + [_UNANSWERED, *_LATENCY_COLUMNS],
        out,
    )


def _models(q: _Query) -> Report:
    q.step("aggregating models")
    key = f"coalesce(provider, '{UNKNOWN}') || char(31) || coalesce(model, '{UNKNOWN}')"
    out = []
    for k, row in _ordered(_by_call(q, key)):
        row.pop("_extra")
        provider, model = k.split("\x1f", 1)
        out.append({"provider": provider, "model": model, **row})
    return Report(
        "models",
        "Models",
        [Column("provider", "Provider"), Column("model", "Model"), *_AI_COLUMNS]
        + [_UNANSWERED, *_LATENCY_COLUMNS, Column("ttft_p50_ms", "TTFT p50", "ms")],
        out,
    )


def _processes(q: _Query) -> Report:
    q.step("aggregating processes")
    key = f"coalesce(process_name, '{UNKNOWN}')"
    rows = []
    for name, events, pids, first, last, providers, *values in q.rows(
        f"""SELECT {key} AS k, count(*), count(DISTINCT pid), min(ts_ns), max(ts_ns),
            group_concat(DISTINCT provider), {_AI_COUNTS_AMONG_ALL}
        FROM events WHERE {{where}} GROUP BY k"""
    ):
        rows.append(
            {
                "process": name,
                "pids": pids,
                "events": events,
                "providers": _listed(providers),
                **_ai_values(values),
                "first_seen": first,
                "last_seen": last,
            }
        )
    rows.sort(key=lambda r: (-r["calls"], -r["events"], r["process"]))
    return Report(
        "processes",
        "Processes",
        [
            Column("process", "Process"),
            Column("pids", "PIDs", "int"),
            Column("events", "Events", "int"),
            Column("providers", "Providers"),
            *_AI_COLUMNS,
            Column("first_seen", "First seen", "ts"),
            Column("last_seen", "Last seen", "ts"),
        ],
        rows,
    )


def _tools(q: _Query) -> Report:
    q.step("counting tool calls")
    calls = {
        name: (n, unanswered)
        for name, n, unanswered in q.rows(
            f"""SELECT coalesce(tool_name, '{UNKNOWN}') AS k, count(*),
                sum(call_id IS NULL OR NOT EXISTS (SELECT 1 FROM events r
                    WHERE r.call_id = events.call_id AND r.event_type = 'agent.tool_result'))
            FROM events WHERE {{where}} GROUP BY k""",
            where="+event_type = 'agent.tool_call'",
        )
    }
    q.step("matching tool results")
    call_of = (
        "(SELECT c.{col} FROM events c WHERE c.call_id = events.call_id "
        "AND c.event_type = 'agent.tool_call' ORDER BY c.id LIMIT 1)"
    )
    results = q.rows(
        f"""SELECT coalesce(tool_name, {call_of.format(col="tool_name")}, '{UNKNOWN}') AS k,
            success,
            coalesce(duration_ms, (ts_ns - {call_of.format(col="ts_ns")}) / 1e6) AS rt
        FROM events WHERE {{where}} ORDER BY k, rt""",
        where="+event_type = 'agent.tool_result'",
    )
    stats: dict[str, dict[str, Any]] = {}
    for name, group in groupby(results, key=lambda r: r[0]):
        items = list(group)
        rts = [r[2] for r in items if r[2] is not None]
        stats[name] = {
            "results": len(items),
            "failures": sum(1 for r in items if r[1] == 0),
            "rt_mean_ms": sum(rts) / len(rts) if rts else None,
            "rt_p50_ms": _rank(rts, 0.5) if rts else None,
            "rt_p95_ms": _rank(rts, 0.95) if rts else None,
        }
    rows = []
    for name in sorted(set(calls) | set(stats)):
        n, unanswered = calls.get(name, (0, 0))
        s = stats.get(name, {"results": 0, "failures": 0})
        rows.append(
            {
                "tool": name,
                "calls": n,
                "results": s["results"],
                "failures": s["failures"],
                "failure_rate": _ratio(s["failures"], s["results"]),
                "unanswered": unanswered,
                "rt_mean_ms": s.get("rt_mean_ms"),
                "rt_p50_ms": s.get("rt_p50_ms"),
                "rt_p95_ms": s.get("rt_p95_ms"),
            }
        )
    rows.sort(key=lambda r: (-r["calls"], -r["results"], r["tool"]))
    return Report(
        "tools",
        "Tools",
        [
            Column("tool", "Tool"),
            Column("calls", "Calls", "int"),
            Column("results", "Results", "int"),
            Column("failures", "Failures", "int"),
            Column("failure_rate", "Failure rate", "pct"),
            Column("unanswered", "No result", "int"),
            Column("rt_mean_ms", "Round trip avg", "ms"),
            Column("rt_p50_ms", "Round trip p50", "ms"),
            Column("rt_p95_ms", "Round trip p95", "ms"),
        ],
        rows,
        notes=[
            "round trip = from the model asking for the tool to the request that carried "
            "its result back"
        ]
        if rows
        else [],
    )


def _conversations(q: _Query) -> Report:
    q.step("aggregating conversations")
    rows = []
    for cid, first, last, models, processes, *values in q.rows(
        f"""SELECT conversation_id, min(ts_ns), max(ts_ns),
            coalesce(group_concat(DISTINCT CASE WHEN {_IS_RESPONSE} THEN model END),
                group_concat(DISTINCT model)),
            group_concat(DISTINCT process_name), {_AI_COUNTS_AMONG_ALL}
        FROM events WHERE {{where}} GROUP BY conversation_id
        ORDER BY max(ts_ns) DESC, conversation_id""",
        where="conversation_id IS NOT NULL",
    ):
        counts = _ai_values(values)
        rows.append(
            {
                "conversation_id": cid,
                "first_seen": first,
                "last_seen": last,
                "processes": _listed(processes),
                "models": _listed(models),
                **{k: counts[k] for k in ("calls", "errors", "total_tokens", "cost_usd")},
            }
        )
    return Report(
        "conversations",
        "Conversations (most recent first)",
        [
            Column("conversation_id", "Conversation"),
            Column("first_seen", "Started", "ts"),
            Column("last_seen", "Last", "ts"),
            Column("processes", "Processes"),
            Column("models", "Models"),
            Column("calls", "Calls", "int"),
            Column("errors", "Errors", "int"),
            Column("total_tokens", "Tokens", "int"),
            Column("cost_usd", "Cost", "usd"),
        ],
        rows,
    )


_BUILDERS: dict[str, Callable[[_Query], Report]] = {
    "summary": _summary,
    "costs": _costs,
    "providers": _providers,
    "models": _models,
    "processes": _processes,
    "tools": _tools,
    "conversations": _conversations,
}
