// Live feed: every event as it is decoded, newest first, with filters and a switch that
// holds new rows back (the feed pauses, capture does not).

import { commandLine, fmtCompact, fmtMs, fmtTime, fmtUsd, h, replace } from "../lib/dom.js";
import { providerClass, typeLabel } from "../lib/events.js";

export const AI_TYPES = "ai,agent"; // the feed's default: what the model was asked and did
const FILTERS = [
  ["type", "Type", "types"],
  ["provider", "Provider", "providers"],
  ["model", "Model", "models"],
  ["process", "Process", "processes"],
  ["status", "Status", null],
];

export function statusChip(row) {
  if (row.status === "pending") return h("span", { class: "chip pending", title: "waiting for the response" }, "…");
  if (!row.status) return null;
  const text = row.httpStatus ? String(row.httpStatus) : row.status;
  return h("span", { class: `chip ${row.status}` }, text);
}

export function providerCell(provider, model, { stacked = false } = {}) {
  return h(
    "div",
    { class: ["prov", stacked && "stacked"] },
    provider ? h("span", { class: "prov-name" }, h("i", { class: `dot ${providerClass(provider)}` }), provider) : null,
    model ? h("span", { class: "model mono" }, model) : null,
  );
}

function row(r, fresh) {
  const tr = h(
    "tr",
    {
      class: ["row", `t-${r.type.replace(".", "-")}`, fresh && "fresh"],
      tabindex: 0,
      dataset: { id: r.id, type: r.type, status: r.status || "none" },
      onclick: () => (window.location.hash = `#/call/${encodeURIComponent(r.id)}`),
      onkeydown: (e) => {
        if (e.key === "Enter") window.location.hash = `#/call/${encodeURIComponent(r.id)}`;
      },
    },
    h("td", { class: "time mono", title: new Date(r.ts).toISOString() }, fmtTime(r.ts)),
    h("td", {}, h("span", { class: `type type-${r.type.split(".")[0]}` }, typeLabel(r.type))),
    h(
      "td",
      { class: "proc" },
      h("span", { class: "proc-name" }, r.process || "?"),
      r.pid !== null ? h("span", { class: "pid mono" }, String(r.pid)) : null,
    ),
    h("td", {}, providerCell(r.provider, r.model)),
    h("td", { class: "preview" }, h("span", { class: "clip" }, r.preview)),
    h("td", { class: "num mono", title: tokenTitle(r) }, r.tokens === null ? "" : fmtCompact(r.tokens)),
    h("td", { class: "num mono" }, r.cost === null ? "" : fmtUsd(r.cost)),
    h("td", { class: "num mono" }, r.latency === null ? "" : fmtMs(r.latency)),
    h("td", { class: "status" }, statusChip(r)),
  );
  return tr;
}

function tokenTitle(r) {
  if (r.promptTokens === null && r.completionTokens === null) return "";
  return `input ${r.promptTokens ?? "?"} · output ${r.completionTokens ?? "?"}`;
}

function select(key, label, options, value, onChange) {
  const first =
    key === "type"
      ? [
          h("option", { value: AI_TYPES, selected: value === AI_TYPES }, "Type: AI calls & tools"),
          h("option", { value: "", selected: !value }, "Type: everything"),
        ]
      : [h("option", { value: "" }, `${label}: all`)];
  const el = h(
    "select",
    { class: "filter", name: key, "aria-label": label, onchange: (e) => onChange(key, e.target.value) },
    first,
    options.map((o) => h("option", { value: o, selected: o === value }, o)),
  );
  if (value && value !== AI_TYPES && !options.includes(value)) el.appendChild(h("option", { value, selected: true }, value));
  return el;
}

function emptyState(app) {
  const proxy = (app.health && app.health.proxy) || "127.0.0.1:8080";
  return h(
    "div",
    { class: "empty" },
    h("h2", {}, app.feed.filtersActive ? "Nothing matches these filters" : "No AI calls captured yet"),
    h("p", {}, "Send a program's AI traffic through the sensor and its calls appear here as they happen:"),
    commandLine(`export HTTPS_PROXY=http://${proxy} HTTP_PROXY=http://${proxy}`),
    commandLine('eval "$(oisp-sensor ca env)"'),
    h("p", {}, "or start the program under the sensor:"),
    commandLine("oisp-sensor run -- python app.py"),
  );
}

export function mount(root, app) {
  const feed = app.feed;
  const count = h("span", { class: "muted count" });
  const toggle = h("button", { class: "btn", type: "button", id: "feed-toggle" });
  const held = h("span", { class: "held-count", id: "feed-held" });
  const filters = h("div", { class: "filters" });
  const tbody = h("tbody");
  const older = h("button", { class: "btn ghost", type: "button" }, "Load older");
  const status = h("div", { class: "feed-foot" });
  const empty = h("div");
  const table = h(
    "table",
    { class: "grid feed", id: "feed" },
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        ["Time", "Type", "Process", "Provider · model", "Summary"].map((t) => h("th", {}, t)),
        ["Tokens", "Cost", "Latency"].map((t) => h("th", { class: "num" }, t)),
        h("th", {}, "Status"),
      ),
    ),
    tbody,
  );

  function renderFilters() {
    const f = feed.facets;
    feed.filtersActive = Object.entries(feed.filters).some(([k, v]) => (k === "type" ? v !== AI_TYPES : v));
    replace(
      filters,
      FILTERS.map(([key, label, facet]) =>
        select(
          key,
          label,
          facet ? [...f[facet]].sort((a, b) => a.localeCompare(b)) : ["ok", "error"],
          feed.filters[key],
          (k, v) => feed.setFilters({ [k]: v }),
        ),
      ),
      feed.filtersActive
        ? h(
            "button",
            {
              class: "btn ghost small",
              type: "button",
              onclick: () => feed.setFilters({ type: AI_TYPES, provider: "", model: "", process: "", status: "" }),
            },
            "Clear filters",
          )
        : null,
    );
  }

  function renderToggle() {
    toggle.textContent = feed.frozen ? "Resume feed" : "Pause feed";
    toggle.classList.toggle("primary", feed.frozen);
    toggle.title = feed.frozen
      ? "Show the events that arrived meanwhile"
      : "Stop adding rows while you read (capture goes on)";
    held.hidden = !feed.frozen;
    held.textContent = `${feed.held.length} new`;
  }

  function renderCount() {
    count.textContent = feed.loading && !feed.rows.length ? "loading…" : `${feed.rows.length} events shown`;
    older.hidden = !feed.nextBefore;
    replace(status, feed.error ? h("span", { class: "error-text" }, feed.error) : null, older);
    const none = feed.loaded && !feed.loading && !feed.rows.length && !feed.error;
    replace(empty, none ? emptyState(app) : null);
    table.hidden = none;
  }

  function renderAll() {
    replace(tbody, feed.rows.map((r) => row(r, false)));
    renderCount();
  }

  toggle.addEventListener("click", () => feed.freeze(!feed.frozen));
  older.addEventListener("click", () => feed.loadOlder());

  const listeners = {
    change: (e) => {
      if (e.detail.reset) renderAll();
      else renderCount();
      renderFilters();
    },
    added: (e) => {
      for (const r of e.detail.rows.slice().reverse()) tbody.insertBefore(row(r, true), tbody.firstChild);
      while (tbody.children.length > feed.rows.length) tbody.lastChild.remove();
      renderCount();
    },
    older: (e) => {
      for (const r of e.detail.rows) tbody.appendChild(row(r, false));
      renderCount();
    },
    updated: (e) => {
      const tr = tbody.querySelector(`tr[data-id="${CSS.escape(e.detail.row.id)}"]`);
      if (tr) tr.replaceWith(row(e.detail.row, false));
    },
    held: renderToggle,
    frozen: () => {
      renderToggle();
    },
    facets: renderFilters,
  };
  for (const [k, fn] of Object.entries(listeners)) feed.addEventListener(k, fn);

  root.append(
    h(
      "section",
      { class: "view-head" },
      h("h1", {}, "Live feed"),
      count,
      h("div", { class: "spacer" }),
      held,
      toggle,
    ),
    filters,
    h("div", { class: "table-wrap" }, table),
    empty,
    status,
  );
  renderFilters();
  renderToggle();
  renderAll();

  return {
    unmount() {
      for (const [k, fn] of Object.entries(listeners)) feed.removeEventListener(k, fn);
    },
  };
}
