// Processes: which programs on this machine talk to which AI providers, how often,
// and what it costs — one row per program, one column per provider.

import { api } from "../lib/api.js";
import { shareBar } from "../lib/chart.js";
import { fmtAgo, fmtCompact, fmtInt, fmtUsd, h, replace } from "../lib/dom.js";
import { providerClass } from "../lib/events.js";
import { windowTabs } from "../lib/windows.js";

let chosen = "24h";

function providerHead(name) {
  return h("th", { class: "num prov-col" }, h("span", { class: "prov-name" }, h("i", { class: `dot ${providerClass(name)}` }), name));
}

function cell(p) {
  if (!p) return h("td", { class: "num empty-cell" }, "");
  return h(
    "td",
    { class: "num pcell", title: p.models.length ? `models: ${p.models.join(", ")}` : "" },
    h("div", { class: "mono" }, fmtUsd(p.cost_usd)),
    h("div", { class: "muted small" }, `${fmtInt(p.calls)} call${p.calls === 1 ? "" : "s"}${p.errors ? ` · ${p.errors} failed` : ""}`),
  );
}

function table(data, app) {
  const rows = data.processes;
  if (!rows.length) {
    return h("div", { class: "empty" }, h("h2", {}, "No AI calls in this window"), h("p", {}, "Programs appear here once they make an AI call through the sensor."));
  }
  const providers = [];
  for (const r of rows) for (const p of r.providers) if (!providers.includes(p.provider)) providers.push(p.provider);
  const total = rows.reduce((sum, r) => sum + (r.cost_usd || 0), 0);
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { class: "grid matrix", id: "process-matrix" },
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          h("th", {}, "Program"),
          ["Calls", "Tokens", "Spend"].map((t) => h("th", { class: "num" }, t)),
          h("th", {}, "Share"),
          providers.map(providerHead),
          h("th", { class: "num" }, "Last call"),
        ),
      ),
      h(
        "tbody",
        {},
        rows.map((r) => {
          const by = new Map(r.providers.map((p) => [p.provider, p]));
          return h(
            "tr",
            { dataset: { process: r.process } },
            h(
              "td",
              { class: "program" },
              h(
                "a",
                {
                  href: "#/live",
                  class: "proc-name",
                  onclick: (e) => {
                    e.preventDefault();
                    app.showProcess(r.process);
                  },
                },
                r.process,
              ),
              r.app && r.app !== r.process ? h("span", { class: "chip none" }, r.app) : null,
              h("div", { class: "exes mono small muted" }, r.exes.join("  ")),
              h("div", { class: "small muted" }, `${fmtInt(r.pids)} process${r.pids === 1 ? "" : "es"}${r.unanswered ? ` · ${r.unanswered} unanswered` : ""}`),
            ),
            h("td", { class: "num mono" }, fmtInt(r.calls)),
            h("td", { class: "num mono" }, fmtCompact(r.total_tokens)),
            h("td", { class: "num mono strong" }, fmtUsd(r.cost_usd)),
            h("td", { class: "share-cell" }, shareBar(total ? (r.cost_usd || 0) / total : 0)),
            providers.map((p) => cell(by.get(p))),
            h("td", { class: "num small muted" }, r.last_seen ? fmtAgo(r.last_seen / 1e6) : "—"),
          );
        }),
      ),
    ),
  );
}

export function mount(root, app) {
  const body = h("div", { class: "processes-body" }, h("p", { class: "muted" }, "Loading…"));
  let alive = true;
  let pending = null;

  async function load() {
    const want = chosen;
    try {
      const data = await api.get("/api/processes", { window: want });
      if (alive && want === chosen) replace(body, table(data, app));
    } catch (e) {
      if (alive) replace(body, h("p", { class: "error-text" }, `Could not load processes: ${e.message}`));
    }
  }
  const onEvents = () => {
    if (!pending) pending = setTimeout(() => ((pending = null), load()), 3000);
  };
  app.addEventListener("events", onEvents);

  root.append(
    h(
      "section",
      { class: "view-head" },
      h("h1", {}, "Processes"),
      h("span", { class: "muted" }, "which programs talk to which providers"),
      h("div", { class: "spacer" }),
      windowTabs(chosen, (w) => {
        chosen = w;
        load();
      }),
    ),
    body,
  );
  load();
  return {
    unmount() {
      alive = false;
      clearTimeout(pending);
      app.removeEventListener("events", onEvents);
    },
  };
}
