// The dashboard shell: navigation, capture state (shown on every view), the live
// WebSocket, and the views, each a module with mount(root, app, arg) -> {unmount}.

import { api, LiveSocket } from "./lib/api.js";
import { h, replace } from "./lib/dom.js";
import { Feed } from "./lib/feed.js";
import * as callView from "./views/call.js";
import * as liveView from "./views/live.js";
import * as overviewView from "./views/overview.js";
import * as processesView from "./views/processes.js";
import * as settingsView from "./views/settings.js";

const VIEWS = {
  live: liveView,
  overview: overviewView,
  processes: processesView,
  settings: settingsView,
  call: callView,
};
const DEFAULT_VIEW = "live";

class App extends EventTarget {
  constructor() {
    super();
    this.feed = new Feed();
    this.health = null;
    this.paused = false;
    this.capturing = true;
    this.connected = false;
    this.current = null;
  }

  emit(kind, detail) {
    this.dispatchEvent(new CustomEvent(kind, { detail }));
  }

  async refreshHealth() {
    try {
      this.health = await api.get("/api/health");
      this.setCapture(this.health.paused, this.health.capturing);
    } catch {
      /* the connection indicator already says the sensor is unreachable */
    }
    return this.health;
  }

  setCapture(paused, capturing = this.capturing) {
    this.paused = paused;
    this.capturing = capturing;
    document.body.classList.toggle("is-paused", paused);
    const banner = document.getElementById("paused-banner");
    banner.hidden = !paused;
    const pill = document.getElementById("capture-state");
    pill.textContent = !capturing ? "Read-only" : paused ? "Paused" : "Recording";
    pill.className = `pill ${!capturing ? "muted" : paused ? "warn" : "ok"}`;
    const button = document.getElementById("capture-toggle");
    button.hidden = !capturing;
    button.textContent = paused ? "Resume capture" : "Pause capture";
    button.classList.toggle("primary", paused);
    this.emit("capture", { paused, capturing });
  }

  async toggleCapture(paused = !this.paused) {
    const state = await api.post("/api/capture", { paused });
    this.setCapture(state.paused, state.capturing);
  }

  /** The live feed, filtered to one program (from the overview's and processes' links). */
  showProcess(process) {
    this.feed.setFilters({ process });
    window.location.hash = "#/live";
  }

  setConnected(on) {
    this.connected = on;
    const el = document.getElementById("conn");
    el.className = `conn ${on ? "on" : "off"}`;
    el.title = on ? "Receiving events as they are captured" : "Reconnecting to the sensor…";
    replace(el, h("i", { class: "dot" }), on ? "Connected" : "Reconnecting…");
  }

  route() {
    const [name, ...rest] = window.location.hash.replace(/^#\/?/, "").split("/");
    const view = VIEWS[name] ? name : DEFAULT_VIEW;
    const arg = rest.map(decodeURIComponent).join("/");
    if (this.current) this.current.unmount();
    for (const link of document.querySelectorAll("#nav a")) {
      const active = link.dataset.view === view || (view === "call" && link.dataset.view === "live");
      link.classList.toggle("active", active);
      if (active) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
    const root = document.getElementById("view");
    replace(root);
    root.dataset.view = view;
    window.scrollTo(0, 0);
    this.current = VIEWS[view].mount(root, this, arg) || { unmount() {} };
  }

  start() {
    document.getElementById("capture-toggle").addEventListener("click", () => this.toggleCapture());
    document.getElementById("banner-resume").addEventListener("click", () => this.toggleCapture(false));
    window.addEventListener("hashchange", () => this.route());
    this.setConnected(false);
    const socket = new LiveSocket({
      onState: (state) => {
        this.setConnected(state === "open");
        if (state === "open") {
          // Whatever happened while disconnected: reload from the store.
          this.refreshHealth();
          if (this.feed.loaded) this.feed.load();
        }
      },
      onMessage: (msg) => {
        if (msg.type === "events") {
          this.feed.ingest(msg.events);
          this.emit("events", { events: msg.events });
        } else if (msg.type === "capture") {
          this.setCapture(msg.paused);
        } else if (msg.type === "gap") {
          this.feed.load();
        }
      },
    });
    socket.connect();
    this.refreshHealth();
    this.feed.load();
    this.feed.loadFacets();
    setInterval(() => this.refreshHealth(), 10000);
    this.route();
  }
}

const app = new App();
window.oisp = app; // for the curious, in the console
app.start();
