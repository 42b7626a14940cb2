// Stacked bar charts in inline SVG: no library, scales to its box, a tooltip per bucket.

import { h, s } from "./dom.js";

function niceMax(v) {
  if (!(v > 0)) return 1;
  const exp = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * exp) return m * exp;
  return 10 * exp;
}

/**
 * buckets: [{label, tooltip: [lines], values: {key: number|null}}]
 * series:  [{key, label, cls}]   stacked bottom-up in this order
 * format:  number -> string (axis and legend)
 */
export function barChart({ buckets, series, format, empty = "No data in this window" }) {
  const n = Math.max(1, buckets.length);
  const totals = buckets.map((b) => series.reduce((sum, sr) => sum + (b.values[sr.key] || 0), 0));
  const top = niceMax(Math.max(0, ...totals));
  const W = n * 10;
  const H = 100;
  const svg = s("svg", {
    viewBox: `0 0 ${W} ${H}`,
    preserveAspectRatio: "none",
    class: "chart-svg",
    role: "img",
  });
  for (const f of [0.25, 0.5, 0.75]) {
    svg.appendChild(
      s("line", { x1: 0, x2: W, y1: H * f, y2: H * f, class: "grid", "vector-effect": "non-scaling-stroke" }),
    );
  }
  buckets.forEach((b, i) => {
    let y = H;
    for (const sr of series) {
      const v = b.values[sr.key] || 0;
      if (v <= 0) continue;
      const height = Math.max(0.8, (v / top) * H);
      y -= height;
      svg.appendChild(s("rect", { x: i * 10 + 1.5, y, width: 7, height, class: `bar ${sr.cls}` }));
    }
  });
  const hover = s("rect", { x: 0, y: 0, width: 10, height: H, class: "hover", visibility: "hidden" });
  svg.appendChild(hover);

  const tip = h("div", { class: "chart-tip", hidden: true });
  const plot = h("div", { class: "chart-plot" }, svg, tip);
  plot.addEventListener("mousemove", (e) => {
    const box = plot.getBoundingClientRect();
    const i = Math.min(n - 1, Math.max(0, Math.floor(((e.clientX - box.left) / box.width) * n)));
    const b = buckets[i];
    if (!b) return;
    hover.setAttribute("x", String(i * 10));
    hover.setAttribute("visibility", "visible");
    tip.replaceChildren(...b.tooltip.map((line, k) => h("div", { class: k ? "" : "tip-head" }, line)));
    tip.hidden = false;
    const x = ((i + 0.5) / n) * box.width;
    tip.classList.toggle("left", x > box.width * 0.6);
    tip.style.left = `${x}px`;
  });
  plot.addEventListener("mouseleave", () => {
    hover.setAttribute("visibility", "hidden");
    tip.hidden = true;
  });

  const allZero = totals.every((t) => t === 0);
  const labels = h(
    "div",
    { class: "chart-x" },
    h("span", {}, buckets.length ? buckets[0].label : ""),
    h("span", {}, buckets.length > 2 ? buckets[Math.floor(buckets.length / 2)].label : ""),
    h("span", {}, buckets.length ? buckets[buckets.length - 1].label : ""),
  );
  const yAxis = h(
    "div",
    { class: "chart-y" },
    h("span", {}, format(top)),
    h("span", {}, format(top / 2)),
    h("span", {}, format(0)),
  );
  const legend = h(
    "div",
    { class: "chart-legend" },
    series.map((sr) => h("span", { class: "legend-item" }, h("i", { class: `swatch ${sr.cls}` }), sr.label)),
  );
  return h(
    "div",
    { class: ["chart", allZero && "is-empty"] },
    legend,
    h("div", { class: "chart-body" }, yAxis, plot),
    labels,
    allZero ? h("div", { class: "chart-empty" }, empty) : null,
  );
}

/** A thin horizontal bar showing a share (0..1), for breakdown tables. */
export function shareBar(fraction, cls = "") {
  const bar = h("span", { class: `share-fill ${cls}` });
  bar.style.width = `${Math.max(0, Math.min(1, fraction || 0)) * 100}%`;
  return h("span", { class: "share" }, bar);
}
