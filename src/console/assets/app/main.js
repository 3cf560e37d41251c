// The console's entry point: the sign-in page, then the one screen (top
// bar, servers sidebar, tabs). Each tab is its own module with a
// `mount(panel, ctx)` function, mounted the first time it is shown and kept
// (tabs keep their state when switched).

import { $, h, errorText, notify } from "./dom.js";
import { api } from "./api.js";
import { WsClient } from "./ws.js";
import * as store from "./store.js";
import * as work from "./work.js";
// applies the remembered light or dark pick as the page loads
import "./theme.js";
import { mountTopbar } from "./topbar.js";
import { mountServers } from "./servers.js";
import { mountTabs } from "./tabs.js";
import * as shells from "./shells.js";
import * as transfers from "./transfers.js";
import * as workflows from "./workflows.js";
import * as batch from "./batch.js";
import * as files from "./files.js";
import * as diff from "./diff.js";
import * as audit from "./audit.js";
import * as recordings from "./recordings.js";
import * as reviews from "./reviews.js";

/**
 * The tabs, in order. `role`: the least role that sees the tab.
 */
const TABS = [
  { id: "terminal", label: "Terminal", mount: shells.mount },
  { id: "workflows", label: "Workflows", mount: workflows.mount },
  { id: "transfers", label: "Transfers", mount: transfers.mount },
  { id: "batch", label: "Batch", mount: batch.mount },
  { id: "files", label: "Files", mount: files.mount },
  { id: "diff", label: "Diff", mount: diff.mount },
  { id: "recordings", label: "Recordings", mount: recordings.mount },
  { id: "reviews", label: "Reviews", mount: reviews.mount },
  { id: "audit", label: "Audit", mount: audit.mount, role: "admin" },
];

const RANK = { viewer: 1, operator: 2, admin: 3 };

/** Whether the signed-in user has at least `role`. */
export function hasRole(role) {
  const me = store.get("me");
  return !!me && (RANK[me.role] || 0) >= (RANK[role] || 0);
}

async function boot() {
  let me;
  try {
    me = await api("GET", "/api/v1/auth/me");
  } catch (e) {
    if (e.status === 401) return showSignIn();
    return showSignIn(e);
  }
  showApp(me);
}

function showSignIn(err) {
  $("app").hidden = true;
  $("signin").hidden = false;
  const form = $("signin-form");
  const shown = $("signin-error");
  if (err) {
    shown.textContent = errorText(err);
    shown.hidden = false;
  }
  form.onsubmit = async (ev) => {
    ev.preventDefault();
    shown.hidden = true;
    $("signin-submit").disabled = true;
    try {
      await api("POST", "/api/v1/auth/login", { name: $("signin-name").value, password: $("signin-password").value });
      $("signin-password").value = "";
      await boot();
    } catch (e) {
      shown.textContent = signInError(e);
      shown.hidden = false;
    } finally {
      $("signin-submit").disabled = false;
    }
  };
  $("signin-name").focus();
}

function showApp(me) {
  $("signin").hidden = true;
  $("app").hidden = false;
  store.set("me", me);
  document.body.dataset.role = me.role;

  // One connection per endpoint, opened when first used; STUB (lock,
  // terminal, transfers) at once, since the lock bar lives on it.
  const sockets = new Map();
  const stopped = new Set();
  const ws = (endpoint) => {
    if (!sockets.has(endpoint)) {
      const client = new WsClient(endpoint);
      client.onDropped = stillSignedIn;
      // a running PTY whose recording failed (a full disk) goes on
      // unrecorded: its owner hears so on every connection; said once
      client.on("recording_stopped", (f) => {
        if (stopped.has(f.pty_id)) return;
        stopped.add(f.pty_id);
        // the detail says why and that the PTY goes on
        const e = f.error || {};
        notify(`Recording stopped (${e.code}): ${e.detail || e.message}`, "error");
      });
      sockets.set(endpoint, client);
      client.connect();
    }
    return sockets.get(endpoint);
  };
  const stub = ws("/ws/v1/stub");
  stub.on("welcome", (f) => {
    store.set("connection_id", f.connection_id);
    store.set("lock", f.session_status);
    for (const [name, status] of Object.entries(f.server_health || {})) store.setHealth(name, status);
  });
  stub.on("session_status", (f) => store.set("lock", f));
  stub.on("server_health", (f) => {
    const was = (store.get("health") || new Map()).get(f.server_name);
    store.setHealth(f.server_name, { ...(f.status || {}), is_healthy: f.is_healthy });
    // a verdict that flipped is worth a notice; a counted failure is not
    if (was && was.is_healthy !== f.is_healthy && f.is_healthy !== null) {
      notify(`${f.server_name} is ${f.is_healthy ? "healthy again" : "unhealthy"}`, f.is_healthy ? "info" : "warn");
    }
  });
  stub.on("_state", (state) => store.set("connection", state));

  // `showTab` is set by the tab bar once it exists
  const ctx = { ws, stub, hasRole, signOut: () => signOut(sockets), openTerminal: shells.open, showStub: shells.showStub, showTab: null };
  mountTopbar(ctx);
  // held commands: the top bar's badge from the start, the tab when shown
  reviews.start(ctx);
  mountServers($("servers"), ctx);
  mountTabs($("tabs"), $("panels"), TABS.filter((t) => !t.role || hasRole(t.role)), ctx);

  // `#recordings/<id>` (a link passed on, the back button) opens that recording
  const route = () => {
    const id = recordings.fromHash(location.hash);
    if (id) recordings.show(ctx, id);
  };
  window.addEventListener("hashchange", route);
  route();
}

/**
 * What a refused sign-in says to a person: never which of the two was
 * wrong (that would confirm a user name), and how long to wait when the
 * daemon is slowing attempts down.
 */
function signInError(e) {
  if (e.code === 10002) return "Wrong user name or password.";
  if (e.code === 10007) {
    const wait = e.retryAfter ? ` Try again in ${e.retryAfter} s.` : " Try again in a moment.";
    return `Too many failed sign-ins.${wait}`;
  }
  return errorText(e);
}

/** After a drop: false (stop reconnecting, back to sign-in) once the sign-in is gone. */
async function stillSignedIn() {
  try {
    await api("GET", "/api/v1/auth/me");
    return true;
  } catch (e) {
    if (e.status === 401) {
      // the daemon ended the sign-in: the work went with the connection
      work.abandon();
      location.reload();
      return false;
    }
    return true;
  }
}

/** Signs out after naming what that stops (running work, the held lock). */
async function signOut(sockets) {
  const lock = store.get("lock");
  const holding = !!lock?.active && lock.owner === store.get("connection_id");
  if (!(await work.confirmStopping("Sign out", { extra: holding ? ["the session lock you hold"] : [] }))) return;
  work.abandon();
  for (const client of sockets.values()) client.stop();
  try {
    await api("POST", "/api/v1/auth/logout");
  } finally {
    location.reload();
  }
}

// A global key: "/" focuses the server filter (outside inputs and terminals).
document.addEventListener("keydown", (ev) => {
  const t = ev.target;
  const typing = t instanceof HTMLInputElement || t instanceof HTMLTextAreaElement || t.closest?.(".xterm");
  if (ev.key === "/" && !typing && !$("app").hidden) {
    ev.preventDefault();
    $("server-filter")?.focus();
  }
});

boot().catch((e) => document.body.append(h("p", { class: "error", text: errorText(e) })));
