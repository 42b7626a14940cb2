// The time windows the overview and processes views offer (the API's ?window=).

import { h, replace } from "./dom.js";

export const WINDOWS = [
  ["1h", "Last hour"],
  ["24h", "Last 24 hours"],
  ["7d", "Last 7 days"],
];

/** Tabs choosing a window; `onChoose(window)` runs when another one is picked. */
export function windowTabs(chosen, onChoose) {
  const tabs = h("div", { class: "seg", role: "tablist" });
  const render = () =>
    replace(
      tabs,
      WINDOWS.map(([w, label]) =>
        h(
          "button",
          {
            type: "button",
            role: "tab",
            class: ["seg-btn", w === chosen && "active"],
            "aria-selected": w === chosen ? "true" : "false",
            dataset: { window: w },
            title: label,
            onclick: () => {
              chosen = w;
              render();
              onChoose(w);
            },
          },
          w,
        ),
      ),
    );
  render();
  return tabs;
}
