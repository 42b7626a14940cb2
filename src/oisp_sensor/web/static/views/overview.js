// Overview: the `analyze` summary for the last hour/day/week, tokens and cost over time,
// and where they went (providers, models, processes). Same numbers as
// `oisp-sensor analyze --since … --until …`, which the page shows.

import { api } from "../lib/api.js";
import { barChart, shareBar } from "../lib/chart.js";
import { commandLine, fmtCompact, fmtInt, fmtMs, fmtPct, fmtUsd, fmtUsdAxis, h, replace } from "../lib/dom.js";
import { windowTabs } from "../lib/windows.js";
import { providerCell } from "./live.js";

let chosen = "24h"; // kept while the page is open

function bucketLabel(tNs, bucketNs) {
  const d = new Date(tNs / 1e6);
  const hm = d.toLocaleTimeString("en-GB", { hour: "2-digit", minute: "2-digit" });
  if (bucketNs >= 3 * 3600e9) return `${d.toLocaleDateString("en-US", { month: "short", day: "numeric" })} ${hm}`;
  return hm;
}

function kpi(id, label, value, display, sub) {
  return h(
    "div",
    { class: "kpi", id: `kpi-${id}`, dataset: { value: value === null || value === undefined ? "" : value } },
    h("div", { class: "kpi-label" }, label),
    h("div", { class: "kpi-value" }, display),
    h("div", { class: "kpi-sub" }, sub || ""),
  );
}

function kpis(stats) {
  const s = stats.summary;
  const unanswered = (s.requests || 0) - (s.responses || 0);
  return h(
    "div",
    { class: "kpis" },
    kpi(
      "requests",
      "Requests",
      s.requests,
      fmtInt(s.requests),
      `${fmtInt(s.responses)} answered${unanswered > 0 ? ` · ${fmtInt(unanswered)} without response` : ""}`,
    ),
    kpi(
      "tokens",
      "Tokens",
      s.total_tokens,
      fmtCompact(s.total_tokens),
      `in ${fmtCompact(s.prompt_tokens)} · out ${fmtCompact(s.completion_tokens)}`,
    ),
    kpi(
      "cost",
      "Cost",
      s.cost_usd,
      fmtUsd(s.cost_usd),
      s.unpriced_responses ? `${fmtInt(s.unpriced_responses)} responses without a known price` : "every response priced",
    ),
    kpi(
      "latency_mean",
      "Avg latency",
      stats.latency_mean_ms,
      fmtMs(stats.latency_mean_ms),
      `p50 ${fmtMs(s.latency_p50_ms)} · TTFT p50 ${fmtMs(s.ttft_p50_ms)}`,
    ),
    kpi("latency_p95", "p95 latency", s.latency_p95_ms, fmtMs(s.latency_p95_ms), "95% of calls were faster"),
    kpi(
      "error_rate",
      "Error rate",
      s.error_rate,
      fmtPct(s.error_rate),
      `${fmtInt(s.errors)} failed of ${fmtInt(s.responses)}`,
    ),
  );
}

function charts(stats) {
  const bucket = stats.bucket_ns;
  const span = bucket >= 3600e9 ? `${bucket / 3600e9} h` : `${bucket / 60e9} min`;
  const buckets = stats.series.map((p) => {
    const end = new Date((p.t_ns + bucket) / 1e6);
    const head = `${bucketLabel(p.t_ns, bucket)} – ${end.toLocaleTimeString("en-GB", { hour: "2-digit", minute: "2-digit" })}`;
    return {
      label: bucketLabel(p.t_ns, bucket),
      values: {
        input: p.prompt_tokens,
        output: Math.max(0, p.completion_tokens),
        other: Math.max(0, p.tokens - p.prompt_tokens - p.completion_tokens),
        cost: p.cost_usd || 0,
      },
      tooltip: [
        head,
        `${fmtInt(p.responses)} calls${p.errors ? `, ${fmtInt(p.errors)} failed` : ""}`,
        `${fmtInt(p.tokens)} tokens (in ${fmtInt(p.prompt_tokens)} · out ${fmtInt(p.completion_tokens)})`,
        `cost ${fmtUsd(p.cost_usd)}`,
      ],
    };
  });
  return h(
    "div",
    { class: "charts" },
    h(
      "section",
      { class: "panel" },
      h("h2", {}, `Tokens per ${span}`),
      barChart({
        buckets,
        series: [
          { key: "input", label: "input", cls: "s-input" },
          { key: "output", label: "output", cls: "s-output" },
          { key: "other", label: "other", cls: "s-other" },
        ],
        format: fmtCompact,
      }),
    ),
    h(
      "section",
      { class: "panel" },
      h("h2", {}, `Cost per ${span}`),
      barChart({ buckets, series: [{ key: "cost", label: "USD", cls: "s-cost" }], format: fmtUsdAxis }),
    ),
  );
}

function breakdown(title, rows, keyCell, total, { latency = true } = {}) {
  const body = rows.length
    ? rows.map((r) =>
        h(
          "tr",
          {},
          h("td", {}, keyCell(r)),
          h("td", { class: "num mono" }, fmtInt(r.calls)),
          h("td", { class: "num mono" }, fmtCompact(r.total_tokens)),
          h("td", { class: "num mono" }, fmtUsd(r.cost_usd)),
          h("td", { class: "share-cell" }, shareBar(total ? (r.cost_usd || 0) / total : 0)),
          h("td", { class: "num mono" }, r.error_rate ? fmtPct(r.error_rate) : "—"),
          latency ? h("td", { class: "num mono" }, fmtMs(r.latency_p95_ms)) : null,
        ),
      )
    : [h("tr", {}, h("td", { class: "muted", colspan: 7 }, "Nothing in this window"))];
  return h(
    "section",
    { class: "panel" },
    h("h2", {}, title),
    h(
      "table",
      { class: "grid compact" },
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          h("th", {}, ""),
          ["Calls", "Tokens", "Cost"].map((t) => h("th", { class: "num" }, t)),
          h("th", {}, "Share of cost"),
          (latency ? ["Errors", "p95"] : ["Errors"]).map((t) => h("th", { class: "num" }, t)),
        ),
      ),
      h("tbody", {}, body),
    ),
  );
}

function toolsTable(rows) {
  const body = rows.length
    ? rows.map((r) =>
        h(
          "tr",
          {},
          h("td", { class: "mono tool-name" }, r.tool),
          h("td", { class: "num mono" }, fmtInt(r.calls)),
          h("td", { class: "num mono" }, fmtInt(r.results)),
          h("td", { class: ["num mono", r.failures && "error-text"] }, r.failures ? fmtInt(r.failures) : "—"),
          h("td", { class: "num mono" }, fmtMs(r.rt_p50_ms)),
          h("td", { class: "num mono" }, fmtMs(r.rt_p95_ms)),
        ),
      )
    : [h("tr", {}, h("td", { class: "muted", colspan: 6 }, "No tool calls in this window"))];
  return h(
    "section",
    { class: "panel" },
    h("h2", {}, "Tools the models called"),
    h(
      "table",
      { class: "grid compact" },
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          h("th", {}, ""),
          ["Calls", "Results", "Failed", "Round trip p50", "p95"].map((t) => h("th", { class: "num" }, t)),
        ),
      ),
      h("tbody", {}, body),
    ),
  );
}

function breakdowns(stats, app) {
  const total = stats.summary.cost_usd || 0;
  const processes = stats.processes.filter((r) => r.calls > 0);
  return h(
    "div",
    { class: "breakdowns" },
    breakdown("By provider", stats.providers, (r) => providerCell(r.provider, null), total),
    breakdown("By model", stats.models, (r) => providerCell(r.provider, r.model), total),
    breakdown(
      "By process",
      processes,
      (r) =>
        h(
          "a",
          {
            class: "proc-link",
            href: "#/live",
            onclick: (e) => {
              e.preventDefault();
              app.showProcess(r.process);
            },
          },
          r.process,
        ),
      total,
      { latency: false },
    ),
    toolsTable(stats.tools || []),
  );
}

export function mount(root, app) {
  const body = h("div", { class: "overview-body" });
  const reproduce = h("div", { class: "reproduce" });
  let timer = null;
  let pending = null;
  let alive = true;

  async function load() {
    const want = chosen;
    try {
      const stats = await api.get("/api/stats", { window: want });
      if (!alive || want !== chosen) return;
      replace(body, kpis(stats), charts(stats), breakdowns(stats, app));
      const cost = body.querySelector("#kpi-cost");
      if (stats.notes.length) cost.title = stats.notes.join("\n");
      body.dataset.window = want;
      body.dataset.since = stats.since_ns;
      body.dataset.until = stats.until_ns;
      replace(
        reproduce,
        h("span", { class: "muted" }, "Same numbers on the command line:"),
        commandLine(`oisp-sensor analyze ${stats.analyze_args.map((a) => (a.startsWith("--") ? a : `'${a}'`)).join(" ")}`),
      );
    } catch (e) {
      replace(body, h("p", { class: "error-text" }, `Could not load the overview: ${e.message}`));
    }
  }

  // New events refresh the numbers, at most every 2 s; the window slides every 30 s.
  const onEvents = () => {
    if (!pending) pending = setTimeout(() => ((pending = null), load()), 2000);
  };
  app.addEventListener("events", onEvents);
  timer = setInterval(load, 30000);

  root.append(
    h(
      "section",
      { class: "view-head" },
      h("h1", {}, "Overview"),
      h("div", { class: "spacer" }),
      windowTabs(chosen, (w) => {
        chosen = w;
        load();
      }),
    ),
    body,
    reproduce,
  );
  load();
  return {
    unmount() {
      alive = false;
      clearInterval(timer);
      clearTimeout(pending);
      app.removeEventListener("events", onEvents);
    },
  };
}
