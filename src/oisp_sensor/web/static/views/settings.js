// Settings and controls: capture pause/resume, the local CA's trust state with the exact
// commands to trust it, and the settings saved to the config file.

import { api } from "../lib/api.js";
import { commandLine, fmtInt, h, replace } from "../lib/dom.js";

const MODES = {
  safe: "Content kept; secrets and personal data (emails, phone numbers, card numbers…) masked.",
  full: "Content kept exactly as sent; only secrets (API keys, tokens, passwords) masked.",
  minimal: "No content at all: roles, sizes and keyed hashes only.",
};

// What only the live view missed (a slow tab): the store and the JSONL file have those
// events, so they are not losses (as in `oisp-sensor status`).
const VIEW_SKIPS = ["web.live_dropped", "sink.live.dropped"];

function captureCard(app) {
  const card = h("section", { class: "panel", id: "capture-card" });
  function render() {
    const health = app.health || {};
    const counters = health.counters || {};
    const losses = Object.entries(counters).filter(
      ([k, v]) => v && k.endsWith("dropped") && k !== "events.paused_dropped" && !VIEW_SKIPS.includes(k),
    );
    const skipped = VIEW_SKIPS.reduce((n, k) => n + (counters[k] || 0), 0);
    replace(
      card,
      h("h2", {}, "Capture"),
      h(
        "div",
        { class: "capture-row" },
        h("span", { class: `pill ${app.paused ? "warn" : "ok"}` }, app.paused ? "Paused" : "Recording"),
        h(
          "button",
          { class: ["btn", app.paused && "primary"], type: "button", id: "settings-capture-toggle", onclick: () => app.toggleCapture() },
          app.paused ? "Resume capture" : "Pause capture",
        ),
        h(
          "span",
          { class: "muted" },
          app.paused
            ? "Traffic still flows through the proxy; nothing is recorded until you resume."
            : "Every AI call through the proxy is recorded.",
        ),
      ),
      h(
        "dl",
        { class: "kv" },
        [
          ["proxy", health.proxy ? `http://${health.proxy}` : "—"],
          ["event store", health.store || "disabled"],
          ["redaction", health.redaction_mode],
          ["events recorded", fmtInt(counters["events.total"] || 0)],
          ["not recorded while paused", fmtInt(counters["events.paused_dropped"] || 0)],
          skipped ? ["live view skipped", `${fmtInt(skipped)} updates (a slow tab; nothing recorded is missing)`] : null,
          ["version", health.version],
        ]
          .filter(Boolean)
          .map(([k, v]) => [h("dt", {}, k), h("dd", { class: "mono" }, v ?? "—")]),
        losses.map(([k, v]) => [h("dt", { class: "warn-text" }, k), h("dd", { class: "mono warn-text" }, fmtInt(v))]),
      ),
    );
  }
  render();
  return { card, render };
}

function caCard() {
  const card = h("section", { class: "panel", id: "ca-card" }, h("h2", {}, "Local CA"), h("p", { class: "muted" }, "Checking…"));
  api
    .get("/api/ca")
    .then((ca) => {
      const badge = !ca.present
        ? h("span", { class: "pill warn" }, "No CA yet")
        : ca.trusted
          ? h("span", { class: "pill ok" }, "Trusted")
          : h("span", { class: "pill warn" }, "Not trusted");
      replace(
        card,
        h("h2", {}, "Local CA ", badge),
        ca.present
          ? h(
              "dl",
              { class: "kv" },
              [
                ["certificate", ca.cert_path],
                ["SHA-256", ca.fingerprint_sha256],
                ["valid until", (ca.not_valid_after || "").slice(0, 10)],
                ["OS trust store", ca.store ? `${ca.store}: ${ca.os_trusted ? "trusted" : ca.os_trusted === false ? "not trusted" : "unknown"}` : "unknown on this system"],
                ["Python default trust", ca.python_trusted ? "accepts it" : `rejects it${ca.python_detail ? ` (${ca.python_detail})` : ""}`],
                ["may sign for", `${(ca.names || []).length} AI provider domains${(ca.networks || []).length ? " and local addresses" : ""} (name-constrained)`],
              ].map(([k, v]) => [h("dt", {}, k), h("dd", { class: "mono" }, v)]),
            )
          : null,
        ca.error ? h("p", { class: "error-text" }, ca.error) : null,
        ca.reissue_pending
          ? h("p", { class: "note" }, "The intercepted hosts changed: the CA is re-issued at the next start and must then be trusted again.")
          : null,
        (ca.commands || []).length
          ? h(
              "div",
              { class: "commands" },
              h("h3", {}, ca.trusted ? "Other ways to use it" : "To trust it"),
              ca.commands.map((c) => h("div", { class: "command" }, h("div", { class: "muted small" }, c.label), commandLine(c.command))),
            )
          : null,
      );
    })
    .catch((e) => replace(card, h("h2", {}, "Local CA"), h("p", { class: "error-text" }, e.message)));
  return card;
}

function endpointRow(e, onRemove, apis) {
  const field = (name, props) => h("input", { class: "input", name, ...props });
  return h(
    "tr",
    { class: "endpoint" },
    h("td", {}, field("host", { value: e.host || "", placeholder: "llm.example.com", required: true })),
    h("td", {}, field("port", { value: e.port ?? "", placeholder: "443", inputmode: "numeric", size: 5 })),
    h("td", {}, field("provider", { value: e.provider || "", placeholder: "corp-gateway" })),
    h("td", {}, h("select", { class: "input", name: "api" }, apis.map((a) => h("option", { value: a, selected: a === (e.api || "openai") }, a)))),
    h("td", {}, h("select", { class: "input", name: "scheme" }, ["https", "http"].map((a) => h("option", { value: a, selected: a === (e.scheme || "https") }, a)))),
    h("td", {}, h("button", { class: "btn ghost small", type: "button", onclick: onRemove, title: "Remove" }, "Remove")),
  );
}

function settingsForm() {
  const card = h("section", { class: "panel", id: "settings-card" }, h("h2", {}, "Settings"), h("p", { class: "muted" }, "Loading…"));
  const message = h("div", { class: "form-message", role: "status", id: "settings-message" });

  function render(current) {
    const endpoints = h("tbody");
    const addRow = (e) => {
      const tr = endpointRow(e, () => tr.remove(), current.apis);
      endpoints.appendChild(tr);
    };
    current.custom_endpoints.forEach(addRow);
    const none = h("p", { class: "muted small", id: "no-endpoints" }, "None: only the built-in AI providers are intercepted.");
    const syncNone = () => {
      none.hidden = endpoints.children.length > 0;
      endpoints.parentElement.tHead.hidden = !none.hidden;
    };
    new MutationObserver(syncNone).observe(endpoints, { childList: true });
    const override = current.overridden_by_environment || {};
    const form = h(
      "form",
      { class: "settings-form", novalidate: true },
      h(
        "fieldset",
        { class: "field", id: "field-redaction_mode" },
        h("legend", {}, "Redaction"),
        current.redaction_modes.map((m) =>
          h(
            "label",
            { class: "radio" },
            h("input", { type: "radio", name: "redaction_mode", value: m, checked: m === current.redaction_mode }),
            h("span", { class: "radio-label" }, m),
            h("span", { class: "muted" }, MODES[m] || ""),
          ),
        ),
        h("p", { class: "muted small" }, "Applies at once to new events; what is already stored stays as it was."),
        override.redaction_mode ? h("p", { class: "note" }, `${override.redaction_mode} is set and overrides this at the next start.`) : null,
      ),
      h(
        "div",
        { class: "field", id: "field-retention_days" },
        h("label", { for: "retention" }, "Keep events for"),
        h("div", { class: "inline" }, h("input", { class: "input num", id: "retention", name: "retention_days", type: "number", min: "0.01", step: "any", value: current.retention_days }), h("span", {}, "days")),
        h("p", { class: "muted small" }, "Older events are deleted from the store (checked at start and every hour; at once when lowered here)."),
        override.retention_days ? h("p", { class: "note" }, `${override.retention_days} is set and overrides this at the next start.`) : null,
      ),
      h(
        "div",
        { class: "field", id: "field-custom_endpoints" },
        h("label", {}, "Custom endpoints"),
        h("p", { class: "muted small" }, "Gateways and self-hosted model servers to intercept, with the API they speak. Takes effect at the next start (the CA is re-issued to cover them)."),
        h(
          "table",
          { class: "grid compact endpoints" },
          h("thead", {}, h("tr", {}, ["Host", "Port", "Name", "API", "Scheme", ""].map((t) => h("th", {}, t)))),
          endpoints,
        ),
        none,
        h("button", { class: "btn ghost small", type: "button", id: "add-endpoint", onclick: () => addRow({}) }, "+ Add endpoint"),
        current.restart_required.length ? h("p", { class: "note" }, "Saved: restart the sensor for the endpoint changes to apply.") : null,
      ),
      h("div", { class: "form-actions" }, h("button", { class: "btn primary", type: "submit", id: "save-settings" }, "Save"), message, h("span", { class: "muted small right" }, `Saved to ${current.config_path}`)),
    );
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      for (const el of form.querySelectorAll(".invalid")) el.classList.remove("invalid");
      const data = new FormData(form);
      const custom = [...endpoints.querySelectorAll("tr")].map((tr) => {
        const get = (n) => tr.querySelector(`[name="${n}"]`).value.trim();
        const port = get("port");
        return {
          host: get("host"),
          port: port === "" ? null : /^\d+$/.test(port) ? Number(port) : port,
          provider: get("provider") || null,
          api: get("api"),
          scheme: get("scheme"),
        };
      });
      const retention = Number(data.get("retention_days"));
      const body = {
        redaction_mode: data.get("redaction_mode"),
        retention_days: Number.isFinite(retention) && data.get("retention_days") !== "" ? retention : data.get("retention_days"),
        custom_endpoints: custom,
      };
      try {
        const saved = await api.put("/api/settings", body);
        render(saved);
        replace(card.querySelector(".form-message"), h("span", { class: "ok-text" }, "Saved."));
      } catch (e) {
        replace(message, h("span", { class: "error-text" }, e.message));
        const top = (e.key || "").split(/[.[]/)[0];
        const field = top && form.querySelector(`#field-${CSS.escape(top)}`);
        if (field) field.classList.add("invalid");
        const row = /^custom_endpoints\[(\d+)\]\.?(\w*)/.exec(e.key || "");
        if (row) {
          const tr = endpoints.children[Number(row[1])];
          const input = tr && row[2] && tr.querySelector(`[name="${row[2]}"]`);
          if (input) input.classList.add("invalid");
        }
      }
    });
    replace(card, h("h2", {}, "Settings"), form);
    syncNone();
  }

  api
    .get("/api/settings")
    .then(render)
    .catch((e) => replace(card, h("h2", {}, "Settings"), h("p", { class: "error-text" }, e.message)));
  return card;
}

export function mount(root, app) {
  const capture = captureCard(app);
  const onCapture = () => capture.render();
  app.addEventListener("capture", onCapture);
  app.refreshHealth().then(() => capture.render());
  root.append(
    h("section", { class: "view-head" }, h("h1", {}, "Settings")),
    h("div", { class: "settings-grid" }, h("div", { class: "col" }, capture.card, caCard()), h("div", { class: "col" }, settingsForm())),
  );
  return {
    unmount() {
      app.removeEventListener("capture", onCapture);
    },
  };
}
