// DOM building and number formatting. Everything captured traffic contains (prompts,
// replies, tool arguments, process names, headers) reaches the page only as text
// nodes: nothing here ever parses a string as HTML, so a prompt such as
// `<img src=x onerror=...>` is shown, never run.

const SVG_NS = "http://www.w3.org/2000/svg";

function append(el, child) {
  if (child === null || child === undefined || child === false) return;
  if (Array.isArray(child)) {
    for (const c of child) append(el, c);
  } else if (child instanceof Node) {
    el.appendChild(child);
  } else {
    el.appendChild(document.createTextNode(String(child)));
  }
}

function setProps(el, props) {
  for (const [key, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) {
      if (typeof value !== "function") throw new Error(`h(): ${key} must be a function`);
      el.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (key === "class") {
      el.setAttribute("class", Array.isArray(value) ? value.filter(Boolean).join(" ") : value);
    } else if (key === "href") {
      // Only links inside the dashboard: a captured URL never becomes a clickable target.
      const href = String(value);
      if (href.startsWith("#") || href.startsWith("/")) el.setAttribute("href", href);
    } else if (key === "dataset") {
      for (const [k, v] of Object.entries(value)) el.dataset[k] = String(v);
    } else if (key === "value" && "value" in el) {
      el.value = value;
    } else if (key === "checked" || key === "selected" || key === "disabled") {
      el[key] = Boolean(value);
    } else if (key === "style" || key === "innerHTML" || key === "outerHTML" || key === "srcdoc") {
      throw new Error(`h(): refusing to set ${key}`);
    } else {
      el.setAttribute(key, value === true ? "" : String(value));
    }
  }
}

/** h("div", {class: "x"}, "text", child, [more]) -> an element; strings become text nodes. */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  setProps(el, props);
  append(el, children);
  return el;
}

/** The same for SVG elements. */
export function s(tag, props, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === null || value === undefined) continue;
    if (key.startsWith("on")) {
      if (typeof value !== "function") throw new Error(`s(): ${key} must be a function`);
      el.addEventListener(key.slice(2).toLowerCase(), value);
    } else {
      el.setAttribute(key, String(value));
    }
  }
  append(el, children);
  return el;
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

export function replace(el, ...children) {
  clear(el);
  append(el, children);
  return el;
}

// --- formatting ----------------------------------------------------------------------------

const intFmt = new Intl.NumberFormat("en-US");

export function fmtInt(n) {
  return n === null || n === undefined ? "—" : intFmt.format(Math.round(n));
}

/** 1234 -> "1.2k", 3400000 -> "3.4M": dense, for tables and charts. */
export function fmtCompact(n) {
  if (n === null || n === undefined) return "—";
  const abs = Math.abs(n);
  if (abs < 1000) return intFmt.format(Math.round(n));
  if (abs < 1e6) return `${(n / 1e3).toFixed(abs < 1e4 ? 1 : 0)}k`;
  if (abs < 1e9) return `${(n / 1e6).toFixed(abs < 1e7 ? 1 : 0)}M`;
  return `${(n / 1e9).toFixed(1)}B`;
}

/** USD with as many digits as make a small amount readable ($0.000135, $0.0135, $12.35). */
export function fmtUsd(v) {
  if (v === null || v === undefined) return "—";
  if (v === 0) return "$0";
  const abs = Math.abs(v);
  if (abs >= 100) return `$${intFmt.format(Math.round(v))}`;
  if (abs >= 1) return `$${v.toFixed(2)}`;
  if (abs >= 0.01) return `$${v.toFixed(4)}`;
  return `$${v.toFixed(6)}`;
}

/** Axis labels: no more digits than the scale needs ($0.25, $0.002, $12). */
export function fmtUsdAxis(v) {
  if (!v) return "$0";
  const digits = Math.max(0, Math.min(8, 2 - Math.floor(Math.log10(Math.abs(v)))));
  return `$${Number(v.toFixed(digits))}`;
}

export function fmtMs(v) {
  if (v === null || v === undefined) return "—";
  if (v >= 60000) return `${(v / 60000).toFixed(1)} min`;
  if (v >= 1000) return `${(v / 1000).toFixed(2)} s`;
  return `${Math.round(v)} ms`;
}

export function fmtPct(v) {
  if (v === null || v === undefined) return "—";
  return `${(v * 100).toFixed(v > 0 && v < 0.01 ? 2 : 1)}%`;
}

export function fmtBytes(n) {
  if (n === null || n === undefined) return "—";
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

const pad = (n, w = 2) => String(n).padStart(w, "0");

export function parseTs(ts) {
  return ts ? new Date(ts) : null;
}

/** "14:03:07" today, "Jan 3 14:03:07" on another day. */
export function fmtTime(ts, { millis = false } = {}) {
  const d = typeof ts === "number" ? new Date(ts) : parseTs(ts);
  if (!d || Number.isNaN(d.getTime())) return "—";
  let out = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  if (millis) out += `.${pad(d.getMilliseconds(), 3)}`;
  const now = new Date();
  if (d.toDateString() !== now.toDateString()) {
    out = `${d.toLocaleDateString("en-US", { month: "short", day: "numeric" })} ${out}`;
  }
  return out;
}

export function fmtDateTime(ts) {
  const d = typeof ts === "number" ? new Date(ts) : parseTs(ts);
  if (!d || Number.isNaN(d.getTime())) return "—";
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${fmtTime(d.getTime(), {
    millis: true,
  }).replace(/^[A-Z][a-z]{2} \d+ /, "")}`;
}

export function fmtAgo(ms) {
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.round(s / 60)}m ago`;
  if (s < 86400) return `${Math.round(s / 3600)}h ago`;
  return `${Math.round(s / 86400)}d ago`;
}

/** A copy-to-clipboard button for a command (falls back to selecting the text). */
export function copyButton(text, target) {
  const button = h("button", { class: "btn ghost small copy", type: "button", title: "Copy" }, "Copy");
  button.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(text);
      button.textContent = "Copied";
    } catch {
      if (target) window.getSelection().selectAllChildren(target);
      button.textContent = "Select + ⌘C";
    }
    setTimeout(() => (button.textContent = "Copy"), 1500);
  });
  return button;
}

export function commandLine(text) {
  const code = h("code", { class: "cmd" }, text);
  return h("div", { class: "cmdline" }, code, copyButton(text, code));
}
