// Reading OISP events: what a row of the feed shows, as plain values.

export const TYPE_LABELS = {
  "ai.request": "request",
  "ai.response": "response",
  "ai.streaming_chunk": "chunk",
  "ai.embedding": "embedding",
  "agent.tool_call": "tool call",
  "agent.tool_result": "tool result",
  "network.connect": "connect",
};

export function typeLabel(type) {
  return TYPE_LABELS[type] || type;
}

export function providerOf(event) {
  const data = event.data || {};
  const attrs = event.attrs || {};
  if (attrs.provider_id) return String(attrs.provider_id);
  if (data.provider && data.provider.name) return String(data.provider.name);
  return null;
}

export function modelOf(event) {
  const model = (event.data || {}).model;
  return model ? model.id || model.name || null : null;
}

/** A content field as text: a string, content blocks, or a redaction marker. */
export function contentText(value) {
  if (value === null || value === undefined) return "";
  if (typeof value === "string") return value;
  if (Array.isArray(value)) return value.map(contentText).filter(Boolean).join("\n");
  if (typeof value === "object") {
    if (value.$redacted) return redactedLabel(value.$redacted);
    if (typeof value.text === "string") return value.text;
    return JSON.stringify(value);
  }
  return String(value);
}

export function isRedacted(value) {
  return Boolean(value && typeof value === "object" && value.$redacted);
}

export function redactedLabel(marker) {
  const n = marker.original_length;
  return `[redacted${marker.reason ? `: ${marker.reason}` : ""}${n ? `, ${n} chars` : ""}]`;
}

function lastMessage(messages, roles) {
  for (let i = (messages || []).length - 1; i >= 0; i--) {
    if (roles.includes(messages[i].role)) return messages[i];
  }
  return null;
}

/** One line saying what the event is about: the prompt, the reply, the tool and so on. */
export function preview(event) {
  const data = event.data || {};
  switch (event.event_type) {
    case "ai.request": {
      const msg = lastMessage(data.messages, ["user", "tool"]);
      if (msg) return `${msg.role}: ${contentText(msg.content)}`;
      return data.request_type || "";
    }
    case "ai.response": {
      if (data.error) return `error: ${data.error.message || data.error.type || ""}`;
      const choice = (data.choices || [])[0];
      const text = choice && choice.message ? contentText(choice.message.content) : "";
      if (text) return text;
      const calls = data.tool_calls || [];
      if (calls.length) return `→ ${calls.map((c) => `${c.name}()`).join(", ")}`;
      return data.finish_reason || "";
    }
    case "agent.tool_call": {
      const args = data.arguments;
      const shown = typeof args === "string" ? args : args ? JSON.stringify(args) : "";
      return `${(data.tool && data.tool.name) || "tool"}(${shown})`;
    }
    case "agent.tool_result":
      return `${(data.tool && data.tool.name) || data.call_id || "tool"} → ${contentText(data.result)}`;
    case "network.connect": {
      const dest = data.dest || {};
      return `${dest.domain || dest.ip || "?"}:${dest.port || ""}${data.error ? ` — ${data.error}` : ""}`;
    }
    default:
      return "";
  }
}

/** ok | error | pending | "" (no outcome), for the status column and filter. */
export function statusOf(event) {
  const data = event.data || {};
  if (data.success === true) return "ok";
  if (data.success === false) return "error";
  if (event.event_type === "ai.request") return "pending";
  return "";
}

/** The compact record the feed keeps per event (the full event is fetched on click). */
export function summarize(event) {
  const data = event.data || {};
  const usage = data.usage || {};
  const process = event.process || {};
  const app = event.app || {};
  const tokens =
    usage.total_tokens ??
    (usage.prompt_tokens !== undefined || usage.completion_tokens !== undefined
      ? (usage.prompt_tokens || 0) + (usage.completion_tokens || 0)
      : null);
  return {
    id: event.event_id,
    ts: Date.parse(event.ts),
    type: event.event_type,
    provider: providerOf(event),
    model: modelOf(event),
    process: process.name || null,
    pid: process.pid ?? null,
    app: app.name || null,
    requestId: data.request_id || (event.attrs || {}).request_id || null,
    status: statusOf(event),
    httpStatus: data.status_code ?? null,
    tokens,
    promptTokens: usage.prompt_tokens ?? null,
    completionTokens: usage.completion_tokens ?? null,
    cost: usage.total_cost_usd ?? null,
    latency: data.latency_ms ?? data.duration_ms ?? null,
    streaming: Boolean(data.streaming),
    preview: preview(event).slice(0, 300),
  };
}

/** Does a summary pass the feed's filters (same meaning as the API's, exact values)? */
export function matches(row, filters) {
  const eq = (a, b) => !b || (a || "").toLowerCase() === b.toLowerCase();
  if (filters.type && !filters.type.split(",").some((t) => row.type === t || row.type.startsWith(`${t}.`)))
    return false;
  if (!eq(row.provider, filters.provider)) return false;
  if (!eq(row.model, filters.model)) return false;
  if (filters.process && !(eq(row.process, filters.process) || String(row.pid) === filters.process))
    return false;
  if (filters.status && row.status !== filters.status) return false;
  return true;
}

const PROVIDER_CLASSES = ["openai", "anthropic", "gemini", "google", "bedrock", "cohere", "ollama", "mistral", "deepseek", "groq", "xai", "azure"];

export function providerClass(provider) {
  const p = (provider || "").toLowerCase();
  const known = PROVIDER_CLASSES.find((k) => p.startsWith(k));
  return known ? `prov-${known}` : "prov-other";
}
