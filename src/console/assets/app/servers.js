// The servers sidebar: every configured server with its health as a dot AND
// a word (never colour alone), latency, last error and last check; live
// from `server_health` broadcasts, filtered by text (tags too), and a
// "check now" action for operators. "Check now" connects and logs in right
// away (`POST /api/v1/servers/{name}/check`) and shows that answer next to
// the server: the health verdict itself stays the monitor's, which needs
// its configured run of failures or successes before it flips. "Open
// terminal" opens a shell of one's own there, in the Terminal tab.

import { h, replace, errorText, notify } from "./dom.js";
import { api } from "./api.js";
import * as store from "./store.js";

/** The word for a verdict. */
export function healthWord(isHealthy) {
  return isHealthy === true ? "healthy" : isHealthy === false ? "unhealthy" : "unknown";
}

/** Fills `aside` and keeps it current. */
export function mountServers(aside, ctx) {
  const filter = h("input", {
    id: "server-filter",
    type: "search",
    placeholder: "Filter servers ( / )",
    "aria-label": "Filter servers",
  });
  const list = h("ul", { id: "server-list", class: "server-list" });
  replace(aside, h("h2", { text: "Servers" }), filter, list);

  const tags = new Map();
  // the last "check now" answer per server ({state, text, at, latency_ms}),
  // kept across re-renders (the list is rebuilt on every health broadcast)
  const checks = new Map();
  const refresh = () =>
    api("GET", "/api/v1/health/servers")
      .then((all) => {
        for (const s of all) store.setHealth(s.server_name, s);
      })
      .catch((e) => notify(errorText(e), "error"));
  api("GET", "/api/v1/servers")
    .then((all) => {
      for (const s of all || []) tags.set(s.name, s.tags || []);
      store.set("servers", (all || []).map((s) => s.name));
      render();
    })
    .catch(() => {});
  refresh();
  // latency and "last checked" change without a broadcast (only verdicts
  // are broadcast): a light refresh keeps them honest
  setInterval(refresh, 30000);

  const render = () => {
    const health = store.get("health") || new Map();
    const text = filter.value.trim().toLowerCase();
    const names = [...new Set([...(store.get("servers") || []), ...health.keys()])].sort();
    if (!store.get("servers") && health.size) store.set("servers", names);
    const shown = names.filter((n) => !text || n.toLowerCase().includes(text) || (tags.get(n) || []).some((t) => t.toLowerCase().includes(text)));
    const items = shown.map((name) => item(name, health.get(name) || {}, ctx, tags.get(name) || [], checks.get(name), () => check(name)));
    replace(list, items.length ? items : h("li", { class: "muted", text: "no server matches" }));
    // what the filter shows, for tabs that default to it (Batch)
    if (String(shown) !== String(store.get("shown_servers"))) store.set("shown_servers", shown);
  };
  const check = async (name) => {
    checks.set(name, { state: "checking", text: "checking…" });
    render();
    try {
      const r = await api("POST", `/api/v1/servers/${encodeURIComponent(name)}/check`);
      checks.set(name, { state: "ok", text: "reachable, logged in", at: Date.now(), latency_ms: r.latency_ms });
    } catch (e) {
      checks.set(name, { state: "failed", text: errorText(e), at: Date.now(), latency_ms: null });
    }
    render();
    refresh();
  };
  filter.addEventListener("input", render);
  store.watch("health", render);
}

/**
 * The one check a server's line shows: the monitor's last, or the
 * operator's "check now" when that came later. Two checks side by side
 * (two latencies, two times) read as a contradiction.
 */
function lastCheck(s, checked) {
  const monitorAt = s.last_checked ? Date.parse(s.last_checked) : null;
  if (checked?.at && (monitorAt === null || checked.at >= monitorAt)) {
    return { at: checked.at, latency_ms: checked.latency_ms, by: "check now" };
  }
  // a latency is that of the last good check: shown only while healthy
  return { at: monitorAt, latency_ms: s.is_healthy === true ? s.latency_ms : null, by: "monitor" };
}

function item(name, s, ctx, tags, checked, onCheck) {
  const word = healthWord(s.is_healthy);
  const last = lastCheck(s, checked);
  const details = [];
  if (last.latency_ms != null) details.push(`${Math.round(last.latency_ms)} ms`);
  if (last.at !== null) details.push(`checked ${new Date(last.at).toLocaleTimeString()}`);
  const title = [
    `${name}: ${word}`,
    s.host ? `host ${s.host}` : "",
    s.latency_ms != null ? `latency ${s.latency_ms} ms` : "",
    s.last_error ? `last error: ${s.last_error}` : "",
    s.last_checked ? `last checked ${s.last_checked}` : "",
    tags.length ? `tags: ${tags.join(", ")}` : "",
  ]
    .filter(Boolean)
    .join("\n");
  const operator = ctx.hasRole("operator");
  const check = operator
    ? h("button", {
        type: "button",
        text: "Check now",
        "aria-label": `Check ${name} now`,
        class: "small check-now",
        disabled: checked?.state === "checking",
        on: { click: onCheck },
      })
    : null;
  // a shell of one's own on this server (no lock needed)
  const terminal = operator
    ? h("button", {
        type: "button",
        text: "Open terminal",
        "aria-label": `Open a terminal on ${name}`,
        class: "small open-terminal",
        on: { click: () => ctx.openTerminal(name) },
      })
    : null;
  return h(
    "li",
    { class: `server ${word}`, dataset: { server: name, health: word }, title },
    h("span", { class: "dot", "aria-hidden": "true" }),
    h("span", { class: "server-name", text: name }),
    h("span", { class: "health-word", text: word }),
    operator ? h("div", { class: "server-actions" }, terminal, check) : null,
    h("div", { class: "server-details muted", text: details.join(" · ") }),
    s.last_error ? h("div", { class: "server-error", text: s.last_error }) : null,
    checked ? h("div", { class: `check-result ${checked.state}`, role: "status", dataset: { state: checked.state }, text: checked.text }) : null,
  );
}
