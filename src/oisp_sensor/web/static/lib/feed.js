// The live feed's state, kept while the user visits other views: rows (newest first),
// filters, and the "pause the feed" switch, which holds new rows back (counting them)
// without touching capture.

import { api } from "./api.js";
import { matches, summarize } from "./events.js";

const MAX_ROWS = 2000;
const PAGE = 200;

export class Feed extends EventTarget {
  constructor() {
    super();
    this.rows = []; // summaries, newest first, all passing `filters`
    this.ids = new Set();
    this.held = []; // arrived while the feed was paused (already filtered)
    this.frozen = false;
    this.filters = { type: "ai,agent", provider: "", model: "", process: "", status: "" };
    this.nextBefore = null;
    this.loading = false;
    this.loaded = false;
    this.error = "";
    this.facets = { types: new Set(), providers: new Set(), models: new Set(), processes: new Set() };
    this.byRequest = new Map(); // request_id -> request row, to show its outcome
    this.arriving = null;
  }

  emit(kind, detail) {
    this.dispatchEvent(new CustomEvent(kind, { detail }));
  }

  /** (Re)load the newest page from the store with the current filters. */
  async load() {
    this.loading = true;
    const during = []; // pushed while the page was loading: newer than what it returns
    this.arriving = during;
    this.emit("change", { reset: true });
    try {
      const page = await api.get("/api/events", { ...this.filters, limit: PAGE });
      if (this.arriving !== during) return; // a newer load() took over
      this.rows = [];
      this.ids = new Set();
      this.byRequest = new Map();
      this.held = [];
      this.take(page.events.map(summarize), "end");
      this.take(during.filter((r) => matches(r, this.filters)), "start");
      this.nextBefore = page.next_before;
      this.error = "";
    } catch (e) {
      this.error = e.message;
    } finally {
      if (this.arriving === during) {
        this.arriving = null;
        this.loading = false;
        this.loaded = true;
        this.emit("change", { reset: true });
      }
    }
  }

  async loadOlder() {
    if (!this.nextBefore || this.loading) return;
    this.loading = true;
    try {
      const page = await api.get("/api/events", {
        ...this.filters,
        limit: PAGE,
        before: this.nextBefore,
      });
      const added = this.take(page.events.map(summarize), "end");
      this.nextBefore = page.next_before;
      this.emit("older", { rows: added });
    } catch (e) {
      this.error = e.message;
    } finally {
      this.loading = false;
      this.emit("change", {});
    }
  }

  async loadFacets() {
    try {
      const f = await api.get("/api/facets");
      for (const [k, values] of Object.entries(f)) for (const v of values) this.facets[k].add(v);
      this.emit("facets", {});
    } catch {
      /* the menus fill from live events instead */
    }
  }

  setFilters(filters) {
    this.filters = { ...this.filters, ...filters };
    return this.load();
  }

  /** Events pushed by the sensor. */
  ingest(events) {
    const rows = events.map(summarize);
    let facetsChanged = false;
    for (const r of rows) {
      for (const [k, v] of [["types", r.type], ["providers", r.provider], ["models", r.model], ["processes", r.process]]) {
        if (v && !this.facets[k].has(v)) {
          this.facets[k].add(v);
          facetsChanged = true;
        }
      }
      this.settle(r);
    }
    if (facetsChanged) this.emit("facets", {});
    if (this.arriving) this.arriving.unshift(...rows.slice().reverse());
    const fresh = rows.filter((r) => matches(r, this.filters) && !this.ids.has(r.id)).reverse();
    if (!fresh.length) return;
    if (this.frozen) {
      this.held = fresh.concat(this.held);
      this.emit("held", { count: this.held.length });
      return;
    }
    const added = this.take(fresh, "start");
    this.emit("added", { rows: added });
  }

  /** A response settles its request's row: pending -> ok/error. */
  settle(row) {
    if (row.type !== "ai.response" || !row.requestId) return;
    const request = this.byRequest.get(row.requestId);
    if (request && request.status === "pending") {
      request.status = row.status;
      request.httpStatus = row.httpStatus;
      request.latency = row.latency;
      this.emit("updated", { row: request });
    }
  }

  take(rows, where) {
    const added = [];
    for (const r of rows) {
      if (this.ids.has(r.id)) continue;
      this.ids.add(r.id);
      if (r.type === "ai.request" && r.requestId) this.byRequest.set(r.requestId, r);
      added.push(r);
    }
    if (where === "start") this.rows = added.concat(this.rows);
    else this.rows = this.rows.concat(added);
    if (this.rows.length > MAX_ROWS) {
      for (const r of this.rows.splice(MAX_ROWS)) {
        this.ids.delete(r.id);
        if (r.requestId) this.byRequest.delete(r.requestId);
      }
      this.nextBefore = this.nextBefore || null;
    }
    // Requests already answered (loaded from the store) are settled by their response.
    for (const r of added) if (r.type === "ai.response") this.settle(r);
    return added;
  }

  freeze(on) {
    this.frozen = on;
    if (!on && this.held.length) {
      const held = this.held;
      this.held = [];
      const added = this.take(held, "start");
      this.emit("added", { rows: added });
    }
    this.emit("frozen", { frozen: on });
  }
}
