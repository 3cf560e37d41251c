// The Terminal tab: one strip of views. The operator's own shells
// (operator terminals on /ws/v1/terminal: no lock needed, several at once,
// side by side if asked), read-only watches of running PTYs, the Sessions
// view (`sessions.js`: one's terminals, and every running PTY for admins)
// and the lock holder's terminal (`terminal.js`, the seed's STUB terminal,
// which runs commands under the session lock).
//
// A shell outlives its page: the daemon keeps it running, detached, when
// the WebSocket drops or the page reloads. Each view keeps `next`, the
// offset (UTF-8 bytes from the terminal's start) after the last byte
// written to its xterm, and every connection (the first after a reload,
// every one after a drop) attaches with `since: next`: after a drop that
// is exactly what was missed; after a reload the xterm is new and empty
// (`next` is 0), so it is the scrollback the daemon still holds. Frames
// before `next` are skipped, so nothing shows twice. Which terminals and
// watches this page shows, with their offsets, live in sessionStorage (per
// browser tab); a page that starts without it (a new browser tab) opens
// the owner's detached terminals that `terminal_list` names.
//
// Owner: a `TerminalTab` owns its views and the strip; frames are handled
// on the page's one thread, one at a time, so a view's `next` and what its
// xterm was given never disagree.

import { h } from "./dom.js";
import { serverSelect } from "./forms.js";
import { mountStub, isConsoleKey } from "./terminal.js";
import { Sessions } from "./sessions.js";
import { StreamView, Shell, Watch } from "./streams.js";
import * as store from "./store.js";

/** The endpoint of operator terminals and watching. */
const ENDPOINT = "/ws/v1/terminal";
/** sessionStorage key: the views this browser tab shows (`saved()` of each). */
const SAVED = "pinkpage.terminals";

/** The tab's one instance (the sidebar and the keyboard open shells through it). */
let current = null;

/** Opens a shell on `server` in the Terminal tab (mounted at start: it is the first tab). */
export function open(server) {
  current?.openShell(server);
}

/** Shows the lock holder's terminal (the lock bar's "Run under lock"). */
export function showStub() {
  if (!current) return;
  current.ctx.showTab?.("terminal");
  current.select("stub");
}

/** Mounts the tab. */
export function mount(panel, ctx) {
  current = new TerminalTab(panel, ctx);
}

/** The Terminal tab: the strip, its views, and the connection they share. */
class TerminalTab {
  constructor(panel, ctx) {
    this.panel = panel;
    this.ctx = ctx;
    this.ws = ctx.ws(ENDPOINT);
    /** key -> view (a Shell, a Watch, or {key, pane, button} for the fixed ones) */
    this.views = new Map();
    this.active = null;
    this.side = false;
    /** Whether a connection is open and welcomed (attach and watch need one). */
    this.ready = false;
    panel.classList.add("terminals-panel");

    const operator = ctx.hasRole("operator");
    this.picker = serverSelect("new-term-server", "Server for a new terminal");
    const openButton = h("button", { id: "new-term", type: "submit", text: "+ Terminal", title: "A shell of your own, no lock needed (Ctrl+Shift+T)" });
    const newForm = h("form", { class: "new-term", hidden: !operator, on: { submit: (ev) => (ev.preventDefault(), this.openShell(this.picker.value)) } }, this.picker, openButton);
    this.sideBox = h("input", { id: "term-side", type: "checkbox", on: { change: () => this.setSide(this.sideBox.checked) } });
    this.shellTabs = h("span", { class: "ttab-list" });
    this.strip = h("div", { id: "term-strip", class: "term-strip", role: "tablist", "aria-label": "Terminals" });
    this.viewsEl = h("div", { id: "term-views", class: "term-views" });
    panel.append(this.strip, this.viewsEl);

    // the lock holder's terminal: first, and shown until a shell is
    const stubPane = h("section", { id: "stub-pane", class: "tview", role: "tabpanel", hidden: true });
    const stubButton = h("button", {
      type: "button",
      role: "tab",
      id: "ttab-stub",
      class: "ttab",
      text: "Under lock",
      title: "Commands under the session lock (take the lock first)",
      on: { click: () => this.select("stub", { focus: true }) },
    });
    this.fixed("stub", stubButton, stubPane);
    mountStub(stubPane, { ...ctx, activity: () => this.activity(this.views.get("stub")) });

    this.sessions = new Sessions(this, ctx);
    const sessionsButton = h("button", {
      type: "button",
      role: "tab",
      id: "ttab-sessions",
      class: "ttab",
      on: { click: () => this.select("sessions", { focus: true }) },
    });
    this.sessions.label = sessionsButton;
    this.fixed("sessions", sessionsButton, this.sessions.pane);
    this.sessions.count([]);

    this.strip.append(
      stubButton,
      this.shellTabs,
      newForm,
      h("span", { class: "spacer" }),
      h("label", { class: "inline small-text", title: "Show every shell and watch at once" }, this.sideBox, "Side by side"),
      sessionsButton,
    );

    panel.addEventListener("shown", () => this.select(this.active));
    this.frames();
    this.restore();
    document.addEventListener("keydown", (ev) => this.key(ev));
    window.addEventListener("pagehide", () => this.save());
  }

  /** A view that is always there (the lock holder's terminal, Sessions). */
  fixed(key, button, pane) {
    button.dataset.view = key;
    pane.dataset.view = key;
    this.views.set(key, { key, kind: key, button, pane });
    this.viewsEl.append(pane);
  }

  /** The daemon's frames, to the view they name. */
  frames() {
    const ws = this.ws;
    const shell = (id) => [...this.views.values()].find((v) => v.kind === "shell" && v.id === id);
    const watch = (id) => [...this.views.values()].find((v) => v.kind === "watch" && v.ptyId === id);
    ws.on("terminal_output", (f) => shell(f.terminal_id)?.output(f.offset, f.data));
    ws.on("terminal_attached", (f) => shell(f.terminal_id)?.attached(f));
    ws.on("terminal_closed", (f) => {
      shell(f.terminal_id)?.closed(f);
      this.sessions.refreshSoon();
    });
    ws.on("terminal_idle_warning", (f) => shell(f.terminal_id)?.idle(f));
    ws.on("terminal_detached", (f) => shell(f.terminal_id)?.detached(f));
    ws.on("terminal_watching", (f) => watch(f.pty_id)?.watching(f));
    ws.on("pty_output", (f) => watch(f.pty_id)?.output(f.offset, f.data));
    ws.on("pty_watch_ended", (f) => watch(f.pty_id)?.ended(f));
    // a refused keystroke answers the shell's own request_id
    ws.on("error", (f) => {
      const view = [...this.views.values()].find((v) => v.kind === "shell" && v.inputId === f.request_id);
      if (view && f.error) view.refused(f.error);
    });
    ws.on("welcome", () => {
      this.ready = true;
      for (const v of this.streams()) {
        if (v.kind === "shell") v.attach();
        else if (v.state !== "ended") v.watch();
      }
      this.sessions.refresh().then((list) => this.openDetached(list));
    });
    ws.on("_dropped", () => {
      this.ready = false;
      for (const v of this.streams()) {
        if (v.state === "closed" || v.state === "ended" || v.state === "detached") continue;
        if (v.state === "opening") {
          // the open's answer is lost: if the shell opened, Sessions lists it
          v.setState("closed", "not opened");
          v.say("The connection dropped while the shell was opening; if it opened, Sessions lists it.");
        } else v.setState("offline", "reconnecting…");
      }
    });
  }

  /** The shells and watches, in strip order. */
  streams() {
    return [...this.views.values()].filter((v) => v instanceof StreamView);
  }

  /** Brings back what this browser tab showed before a reload. */
  restore() {
    let saved = null;
    try {
      saved = JSON.parse(sessionStorage.getItem(SAVED));
    } catch {
      saved = null;
    }
    /** No saved state (a new browser tab): the first list opens the detached terminals. */
    this.fresh = !saved;
    let active = saved?.active === "sessions" ? "sessions" : "stub";
    for (const s of saved?.views || []) {
      const view = s.kind === "watch" && s.pty_id ? new Watch(this, { ...s.about, pty_id: s.pty_id }) : s.kind === "shell" && s.terminal_id ? new Shell(this, s) : null;
      if (!view) continue;
      this.add(view);
      view.setState("attaching", "attaching…");
      if ((s.terminal_id || s.pty_id) === saved.active) active = view.key;
    }
    if (saved?.side) {
      this.sideBox.checked = true;
      this.side = true;
    }
    this.select(active);
    this.save();
  }

  /** After the first list of a page without saved state: its detached terminals, each in a view. */
  openDetached(list) {
    if (!this.fresh || !list) return;
    this.fresh = false;
    const mine = list.filter((t) => t.access === "owner" && t.state === "detached");
    for (const t of mine) this.attachTerminal(t, { show: false });
    if (mine.length) this.select(this.streams()[0].key);
  }

  /** Shows the terminal `t` (a `terminal_list` entry) here, attaching when it is not shown yet. */
  attachTerminal(t, { show = true } = {}) {
    let view = this.streams().find((v) => v.kind === "shell" && v.id === t.terminal_id);
    if (!view) {
      view = new Shell(this, t);
      this.add(view);
      view.attach();
    } else if (view.state === "detached") view.attach();
    if (show) this.select(view.key, { focus: true });
    this.saveSoon();
  }

  /** Watches the PTY `p` (a `GET /api/v1/ptys` entry) in a read-only view. */
  watchPty(p) {
    let view = this.streams().find((v) => v.kind === "watch" && v.ptyId === p.pty_id);
    if (!view) {
      view = new Watch(this, p);
      this.add(view);
      view.watch();
    } else if (view.state === "ended") view.watch();
    this.select(view.key, { focus: true });
    this.saveSoon();
  }

  /** A new shell on `server`, shown at once. */
  openShell(server) {
    if (!server || !this.ctx.hasRole("operator")) return;
    this.ctx.showTab?.("terminal");
    const shell = new Shell(this, { server });
    this.add(shell);
    this.select(shell.key, { focus: true });
    shell.open();
  }

  add(view) {
    this.views.set(view.key, view);
    this.shellTabs.append(view.tabEl);
    this.viewsEl.append(view.pane);
  }

  removeView(view) {
    const list = [...this.views.keys()];
    const at = list.indexOf(view.key);
    this.views.delete(view.key);
    view.tabEl.remove();
    view.pane.remove();
    if (this.active === view.key) {
      const streams = this.streams();
      const next = streams.find((v) => list.indexOf(v.key) > at) || streams[streams.length - 1];
      this.select(next ? next.key : "stub");
    }
    this.saveSoon();
  }

  /** Shows the view `key` (with every shell and watch beside it when side by side). */
  select(key, { focus = false } = {}) {
    if (!this.views.has(key)) key = "stub";
    this.active = key;
    const chosen = this.views.get(key);
    const tiled = this.side && chosen instanceof StreamView;
    this.viewsEl.classList.toggle("side", tiled);
    for (const v of this.views.values()) {
      const on = v.key === key;
      v.button.setAttribute("aria-selected", String(on));
      v.button.tabIndex = on ? 0 : -1;
      const shown = on || (tiled && v instanceof StreamView);
      if (shown) v.button.classList.remove("activity");
      v.pane.hidden = !shown;
      v.pane.classList.toggle("current", on && tiled);
      if (shown && !this.panel.hidden) v.pane.dispatchEvent(new CustomEvent("shown"));
    }
    if (focus && chosen instanceof StreamView) requestAnimationFrame(() => chosen.term.focus());
    if (key === "sessions") this.sessions.refresh();
    this.saveSoon();
  }

  setSide(on) {
    this.side = on;
    this.select(this.active);
  }

  /** Output arrived in `view`: a dot on its tab (and on the Terminal tab) while it is not in sight. */
  activity(view) {
    if (!view) return;
    if (view.pane.hidden) view.button.classList.add("activity");
    this.ctx.activity();
  }

  /** Ctrl+Shift+T: a new shell on the picked server; Ctrl+Shift+W: close the shown one. */
  key(ev) {
    if (ev.type !== "keydown" || !isConsoleKey(ev) || document.getElementById("app").hidden) return;
    ev.preventDefault();
    if (ev.code === "KeyT") return this.openShell(this.picker.value || store.get("servers")?.[0]);
    const view = this.views.get(this.active);
    if (view instanceof StreamView && !this.panel.hidden) view.dismiss();
  }

  saveSoon() {
    if (this.saveTimer) return;
    this.saveTimer = setTimeout(() => this.save(), 300);
  }

  /** Writes the views to sessionStorage (a reload brings them back). */
  save() {
    clearTimeout(this.saveTimer);
    this.saveTimer = null;
    const active = this.views.get(this.active);
    const state = {
      views: this.streams().map((v) => v.saved()).filter(Boolean),
      // a shell or a watch by its daemon id (view keys are this page's own)
      active: active instanceof StreamView ? active.id || active.ptyId : this.active,
      side: this.side,
    };
    try {
      sessionStorage.setItem(SAVED, JSON.stringify(state));
    } catch {
      // storage full or refused: a reload then starts from the list
    }
  }
}
