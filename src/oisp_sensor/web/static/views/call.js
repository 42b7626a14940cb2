// Call detail: one AI call's whole story — what was asked (system prompt, messages,
// tools, parameters), what came back (text, thinking, tool calls, usage, cost and where
// the price came from), timing, HTTP, the tool results it led to, and who called.

import { api } from "../lib/api.js";
import { fmtBytes, fmtDateTime, fmtInt, fmtMs, fmtUsd, h, replace } from "../lib/dom.js";
import { contentText, isRedacted, modelOf, providerOf, redactedLabel, typeLabel } from "../lib/events.js";
import { providerCell } from "./live.js";

const LONG = 1500; // characters shown before "Show all"

function text(value, cls = "", limit = LONG) {
  if (isRedacted(value)) return h("span", { class: "redacted" }, redactedLabel(value.$redacted));
  const str = contentText(value);
  if (!str) return h("span", { class: "muted empty-content" }, "(empty)");
  const pre = h("div", { class: `content ${cls}` }, str.length > limit ? `${str.slice(0, limit)}…` : str);
  if (str.length <= limit) return pre;
  const more = h("button", { class: "btn ghost small", type: "button" }, `Show all ${fmtInt(str.length)} characters`);
  more.addEventListener("click", () => {
    pre.textContent = str;
    more.remove();
  });
  return h("div", {}, pre, more);
}

function prettyJson(value) {
  if (isRedacted(value)) return h("span", { class: "redacted" }, redactedLabel(value.$redacted));
  let v = value;
  if (typeof v === "string") {
    try {
      v = JSON.parse(v);
    } catch {
      return h("pre", { class: "json" }, v);
    }
  }
  return h("pre", { class: "json" }, JSON.stringify(v, null, 2));
}

function kv(pairs) {
  const rows = pairs.filter(([, v]) => v !== null && v !== undefined && v !== "");
  return h(
    "dl",
    { class: "kv" },
    rows.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v instanceof Node ? v : String(v))]),
  );
}

function section(title, id, ...children) {
  return h("section", { class: "panel", id }, h("h2", {}, title), ...children);
}

function stat(label, value, sub, id) {
  return h(
    "div",
    { class: "stat", id },
    h("div", { class: "stat-label" }, label),
    h("div", { class: "stat-value mono" }, value),
    sub ? h("div", { class: "stat-sub" }, sub) : null,
  );
}

// --- request ---------------------------------------------------------------------------------

function toolCallList(calls) {
  return h(
    "div",
    { class: "tool-calls" },
    calls.map((c) =>
      h(
        "div",
        { class: "tool-call" },
        h("div", { class: "tool-head" }, h("span", { class: "tool-name mono" }, `${c.name || "?"}()`), c.id ? h("span", { class: "muted mono" }, c.id) : null),
        c.arguments !== undefined ? prettyJson(c.arguments) : null,
      ),
    ),
  );
}

function message(m, carried) {
  const role = m.role || "?";
  const result = m.tool_call_id ? carried.get(m.tool_call_id) : null;
  return h(
    "div",
    { class: `msg role-${role}` },
    h(
      "div",
      { class: "msg-head" },
      h("span", { class: "role" }, role),
      m.name ? h("span", { class: "muted" }, m.name) : null,
      m.tool_call_id ? h("span", { class: "muted mono" }, `result of ${m.tool_call_id}`) : null,
      result && result.duration_ms !== undefined
        ? h("span", { class: "muted" }, `· ${fmtMs(result.duration_ms)} after the model asked`)
        : null,
      m.has_images ? h("span", { class: "chip none" }, `${m.image_count || ""} image`) : null,
      m.content_length !== undefined ? h("span", { class: "muted right" }, `${fmtInt(m.content_length)} chars`) : null,
    ),
    m.thinking ? h("details", { class: "thinking" }, h("summary", {}, "thinking"), text(m.thinking)) : null,
    m.content !== undefined && (m.content !== "" || !m.tool_calls) ? text(m.content) : null,
    m.tool_calls && m.tool_calls.length ? toolCallList(m.tool_calls) : null,
  );
}

function requestPanel(req, detail) {
  const carried = new Map((detail.carried_results || []).map((r) => [(r.data || {}).call_id, r.data || {}]));
  if (!req) return section("Request", "request", h("p", { class: "muted" }, "The request was not captured."));
  const d = req.data || {};
  const messages = d.messages || [];
  const system = messages.filter((m) => m.role === "system");
  const rest = messages.filter((m) => m.role !== "system");
  const params = { ...(d.parameters || {}) };
  if (d.tool_choice) params.tool_choice = d.tool_choice;
  params.streaming = d.streaming ? "yes" : "no";
  if (d.estimated_tokens) params.estimated_input_tokens = d.estimated_tokens;
  return section(
    "Request",
    "request",
    system.length
      ? h("div", { class: "block", id: "system-prompt" }, h("h3", {}, "System prompt"), system.map((m) => text(m.content, "system")))
      : null,
    h(
      "div",
      { class: "block", id: "messages" },
      h("h3", {}, `Messages (${fmtInt(rest.length)})`),
      rest.length ? rest.map((m) => message(m, carried)) : h("p", { class: "muted" }, "No messages (or none kept by the redaction mode)."),
    ),
    d.tools && d.tools.length
      ? h(
          "div",
          { class: "block", id: "tools" },
          h("h3", {}, `Tools offered (${d.tools.length})`),
          h(
            "ul",
            { class: "tools" },
            d.tools.map((t) =>
              h("li", {}, h("span", { class: "mono tool-name" }, t.name || "?"), t.description ? h("span", { class: "muted" }, ` — ${t.description}`) : null),
            ),
          ),
        )
      : null,
    h("div", { class: "block", id: "parameters" }, h("h3", {}, "Parameters"), kv(Object.entries(params).map(([k, v]) => [k, typeof v === "object" ? JSON.stringify(v) : v]))),
  );
}

// --- response --------------------------------------------------------------------------------

function toolResult(detail, callId) {
  const r = (detail.tool_results || []).find((x) => (x.data || {}).call_id === callId);
  if (!r) {
    return h("p", { class: "muted small pending-result" }, "No result seen yet: it arrives with the program's next request.");
  }
  const d = r.data || {};
  const next = (detail.carried_by || {})[r.event_id];
  return h(
    "div",
    { class: "tool-result" },
    h(
      "div",
      { class: "tool-head" },
      h("span", { class: `chip ${d.success === false ? "error" : "ok"}` }, d.success === false ? "failed" : "result"),
      d.duration_ms !== undefined ? h("span", { class: "muted small" }, `back to the model after ${fmtMs(d.duration_ms)}`) : null,
      next ? h("a", { href: `#/call/${encodeURIComponent(next)}`, class: "right small" }, "next call →") : null,
    ),
    text(d.result),
  );
}

function responsePanel(res, detail) {
  if (!res) return section("Response", "response", h("p", { class: "muted" }, "No response yet (still streaming, or the connection closed first)."));
  const d = res.data || {};
  const choices = d.choices || [];
  return section(
    "Response",
    "response",
    d.error
      ? h(
          "div",
          { class: "block error-block", id: "error" },
          h("h3", {}, "Error"),
          kv([
            ["type", d.error.type],
            ["code", d.error.code],
            ["message", d.error.message],
          ]),
        )
      : null,
    choices.map((c, i) =>
      h(
        "div",
        { class: "block", id: `choice-${i}` },
        choices.length > 1 ? h("h3", {}, `Choice ${c.index ?? i}`) : null,
        c.message && c.message.thinking
          ? h("details", { class: "thinking", open: true }, h("summary", {}, "Thinking"), text(c.message.thinking, "thinking-text"))
          : null,
        c.message && (c.message.content || !(d.tool_calls || []).length) ? h("div", { class: "assistant-text" }, text(c.message.content)) : null,
      ),
    ),
    d.tool_calls && d.tool_calls.length
      ? h(
          "div",
          { class: "block", id: "response-tool-calls" },
          h("h3", {}, `Tool calls (${d.tool_calls.length})`),
          h(
            "div",
            { class: "tool-calls", id: "tool-flow" },
            d.tool_calls.map((c) =>
              h(
                "div",
                { class: "tool-call" },
                h("div", { class: "tool-head" }, h("span", { class: "tool-name mono" }, `${c.name || "?"}()`), c.id ? h("span", { class: "muted mono small" }, c.id) : null),
                c.arguments !== undefined ? prettyJson(c.arguments) : null,
                toolResult(detail, c.id),
              ),
            ),
          ),
        )
      : null,
    h(
      "div",
      { class: "block" },
      h("h3", {}, "Outcome"),
      kv([
        ["finish reason", d.finish_reason || (res.attrs || {}).finish_reason_raw],
        ["provider request id", d.provider_request_id],
        ["served by model", modelOf(res)],
      ]),
    ),
  );
}

function costProvenance(res) {
  const attrs = (res && res.attrs) || {};
  const usage = ((res && res.data) || {}).usage || {};
  if (usage.total_cost_usd === undefined) {
    return attrs.cost_unknown ? `unknown: ${attrs.cost_unknown}` : "unknown";
  }
  const parts = [attrs.cost_source || "cost"];
  if (attrs.price_source) parts.push(`from ${attrs.price_source}`);
  if (attrs.price_model) parts.push(`as ${attrs.price_model}`);
  return parts.join(" ");
}

function statsStrip(req, res) {
  const d = (res && res.data) || {};
  const u = d.usage || {};
  const http = ((res && res.attrs) || {}).http || {};
  return h(
    "div",
    { class: "stats" },
    stat("Latency", fmtMs(d.latency_ms), "first request byte → last response byte", "stat-latency"),
    stat("Time to first token", fmtMs(d.time_to_first_token_ms), d.time_to_first_token_ms !== undefined ? "last request byte → first content" : "not streamed", "stat-ttft"),
    stat(
      "Input tokens",
      fmtInt(u.prompt_tokens),
      u.cached_tokens ? `${fmtInt(u.cached_tokens)} cached` : u.prompt_tokens === undefined ? "not reported" : "",
      "stat-input",
    ),
    stat("Output tokens", fmtInt(u.completion_tokens), u.reasoning_tokens ? `${fmtInt(u.reasoning_tokens)} reasoning` : "", "stat-output"),
    stat(
      "Cost",
      fmtUsd(u.total_cost_usd),
      h(
        "span",
        {},
        u.input_cost_usd !== undefined ? `in ${fmtUsd(u.input_cost_usd)} · out ${fmtUsd(u.output_cost_usd)} · ` : "",
        h("span", { class: "provenance", id: "cost-provenance" }, costProvenance(res)),
      ),
      "stat-cost",
    ),
    stat("HTTP status", d.status_code !== undefined ? String(d.status_code) : "—", http.stream_format ? `${http.stream_format}${http.response_bytes ? ` · ${fmtBytes(http.response_bytes)}` : ""}` : "", "stat-http"),
  );
}

// --- tools, HTTP, process ------------------------------------------------------------------

function headers(title, obj) {
  const entries = Object.entries(obj || {});
  return h(
    "div",
    { class: "block" },
    h("h3", {}, title),
    entries.length
      ? h("table", { class: "grid compact headers" }, h("tbody", {}, entries.map(([k, v]) => h("tr", {}, h("td", { class: "mono hname" }, k), h("td", { class: "mono" }, Array.isArray(v) ? v.join(", ") : String(v))))))
      : h("p", { class: "muted" }, "none kept"),
  );
}

function httpPanel(req, res) {
  const qa = (req && req.attrs && req.attrs.http) || {};
  const ra = (res && res.attrs && res.attrs.http) || {};
  const endpoint = (((req || res || {}).data || {}).provider || {}).endpoint;
  const facts = [
    qa.request_bytes !== undefined ? `${fmtBytes(qa.request_bytes)} sent` : null,
    ra.response_bytes !== undefined ? `${fmtBytes(ra.response_bytes)} received` : null,
    ra.stream_format ? `${ra.stream_format} body` : null,
  ].filter(Boolean);
  return section(
    "HTTP",
    "http",
    h(
      "div",
      { class: "http-line" },
      h("span", { class: "mono strong" }, `${qa.method || ra.method || "?"} ${qa.path || ra.path || ""}`),
      ra.status_code !== undefined ? h("span", { class: `chip ${ra.status_code < 400 ? "ok" : "error"}` }, String(ra.status_code)) : null,
      endpoint ? h("span", { class: "muted mono" }, endpoint) : null,
      h("span", { class: "muted" }, facts.join(" · ")),
    ),
    h("div", { class: "two" }, headers("Request headers", qa.request_headers), headers("Response headers", ra.response_headers)),
    h("p", { class: "muted small" }, "Credentials are never kept: authorization headers are reduced to a key prefix and a keyed hash."),
  );
}

function processPanel(event) {
  const p = event.process || {};
  const app = event.app || {};
  const actor = event.actor || {};
  const chain = [...(p.ancestors || (p.parent ? [p.parent] : []))].reverse();
  const tree = h(
    "ol",
    { class: "ptree", id: "process-tree" },
    chain.map((a, i) => h("li", { class: "pnode", dataset: { depth: i } }, h("span", { class: "pname" }, a.name || "?"), h("span", { class: "mono muted" }, ` ${a.pid ?? ""}`), a.exe ? h("span", { class: "mono muted small" }, `  ${a.exe}`) : null)),
    h(
      "li",
      { class: "pnode self", dataset: { depth: chain.length } },
      h("span", { class: "pname" }, p.name || "?"),
      h("span", { class: "mono muted" }, ` ${p.pid ?? ""}`),
      h("span", { class: "chip none" }, "made this call"),
    ),
  );
  for (const li of tree.children) li.style.setProperty("--depth", li.dataset.depth);
  return section(
    "Process",
    "process",
    h(
      "div",
      { class: "two" },
      kv([
        ["name", p.name],
        ["pid", p.pid],
        ["executable", p.exe],
        ["command line", p.cmdline ? text(Array.isArray(p.cmdline) ? p.cmdline.join(" ") : p.cmdline, "cmdline", 300) : null],
        ["working directory", p.cwd],
        ["user", actor.user || actor.uid],
        ["app", app.name ? `${app.name}${app.vendor ? ` (${app.vendor})` : ""}` : null],
        ["host", (event.host || {}).hostname],
      ]),
      h("div", {}, h("h3", {}, "Process tree"), tree),
    ),
  );
}

function rawPanel(detail) {
  const events = [detail.request, detail.response, ...(detail.tool_calls || []), ...(detail.tool_results || [])].filter(Boolean);
  if (!events.length) events.push(detail.event);
  return section(
    "Raw events",
    "raw",
    events.map((e) => h("details", { class: "raw" }, h("summary", { class: "mono" }, `${e.event_type}  ${e.event_id}`), h("pre", { class: "json" }, JSON.stringify(e, null, 2)))),
  );
}

// --- the view ----------------------------------------------------------------------------------

function render(detail) {
  const ev = detail.event;
  const req = detail.request;
  const res = detail.response;
  const main = res || req || ev;
  const isCall = Boolean(req || res);
  const d = (res || {}).data || {};
  const chips = [];
  if (res) chips.push(h("span", { class: `chip ${d.success ? "ok" : "error"}`, id: "call-status" }, d.status_code ? `HTTP ${d.status_code}` : d.success ? "ok" : "failed"));
  else if (req) chips.push(h("span", { class: "chip pending", id: "call-status" }, "no response yet"));
  if (req && (req.data || {}).streaming) chips.push(h("span", { class: "chip none" }, "streamed"));
  if (((main.confidence || {}).completeness || "full") !== "full") chips.push(h("span", { class: "chip warn" }, `${main.confidence.completeness} capture`));
  return [
    h(
      "section",
      { class: "call-head" },
      h("a", { href: "#/live", class: "back" }, "← Live feed"),
      h(
        "div",
        { class: "call-title" },
        h("h1", {}, isCall ? providerCell(providerOf(main), modelOf(main)) : typeLabel(ev.event_type)),
        ...chips,
      ),
      h(
        "div",
        { class: "call-meta muted" },
        h("span", {}, fmtDateTime(main.ts)),
        h("span", {}, `${(main.process || {}).name || "?"} (pid ${(main.process || {}).pid ?? "?"})`),
        (main.app || {}).name ? h("span", {}, `app ${(main.app || {}).name}`) : null,
        (main.data || {}).conversation_id ? h("span", { class: "mono" }, (main.data || {}).conversation_id) : null,
      ),
    ),
    isCall ? statsStrip(req, res) : null,
    isCall ? h("div", { class: "two-col" }, requestPanel(req, detail), responsePanel(res, detail)) : section(typeLabel(ev.event_type), "event", prettyJson(ev.data)),
    isCall ? httpPanel(req, res) : null,
    processPanel(main),
    rawPanel(detail),
  ];
}

export function mount(root, app, eventId) {
  let alive = true;
  const body = h("div", { class: "call" }, h("p", { class: "muted" }, "Loading…"));
  root.append(body);

  async function load(attempt = 0) {
    try {
      const detail = await api.get(`/api/events/${encodeURIComponent(eventId)}`);
      if (!alive) return;
      replace(body, render(detail));
      // A call still in flight: its response (and tool calls) will follow.
      if (detail.request && !detail.response && attempt < 30) setTimeout(() => alive && load(attempt + 1), 1000);
    } catch (e) {
      if (!alive) return;
      // Just decoded: the live feed can be a moment ahead of the store.
      if (e.status === 404 && attempt < 5) {
        setTimeout(() => load(attempt + 1), 400);
        return;
      }
      replace(
        body,
        h("a", { href: "#/live", class: "back" }, "← Live feed"),
        h("p", { class: "error-text" }, e.status === 404 ? "This event is not in the store (it may have been pruned by retention)." : `Could not load the event: ${e.message}`),
      );
    }
  }
  load();
  return {
    unmount() {
      alive = false;
    },
  };
}
