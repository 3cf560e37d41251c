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

import { h, errorText, notify, bytes, confirmDialog } from "./dom.js";
import { serverSelect } from "./forms.js";
import { makeTerminal, writeSliced, searchBox, mountStub, isConsoleKey } from "./terminal.js";
import { Sessions } from "./sessions.js";
import * as store from "./store.js";

/** The endpoint of operator terminals and watching. */
const ENDPOINT = "/ws/v1/terminal";
/** sessionStorage key: the views this browser tab shows (`saved()` of each). */
const SAVED = "pinkpage.terminals";

/** Why a terminal closed, in words (`terminal_closed.reason`). */
const CLOSED = {
  exit: "The shell exited.",
  closed: "Closed.",
  idle: "Closed: nothing was typed or printed for too long.",
  detach_expired: "Closed: no page followed it for longer than the daemon keeps a detached terminal.",
  access_changed: "Closed: your access to this server changed.",
  shutdown: "Closed: the daemon is stopping.",
  error: "Closed: the connection to the server failed.",
};

/** Why a watch ended, in words (`pty_watch_ended.reason`; `what` it watched). */
const WATCH_ENDED = {
  ended: (what) => `The ${what} ended.`,
  behind: () => "This page fell behind and was dropped from watching it.",
  withdrawn: () => "Watching it was withdrawn (a share ended or access changed).",
  unwatched: () => "Stopped watching.",
};

/** The UTF-8 length of `text`: offsets count UTF-8 bytes. */
export function utf8Length(text) {
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff) {
      n += 4;
      i += 1;
    } else n += 3;
  }
  return n;
}

/** `text` without its first `skip` UTF-8 bytes (offsets fall between characters). */
function dropBytes(text, skip) {
  return new TextDecoder().decode(new TextEncoder().encode(text).subarray(skip));
}

/** Resolves after the page has laid out and painted once more. */
function nextFrame() {
  return new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve)));
}

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

let seq = 0;

/**
 * An xterm fed by offsets, with a title, a state, a notice line and an
 * overlay: what a shell and a watch have in common.
 */
class StreamView {
  constructor(tab, kind, { readOnly = false } = {}) {
    this.tab = tab;
    this.kind = kind;
    seq += 1;
    this.key = `${kind}-${seq}`;
    /** The offset after the last byte written to the xterm. */
    this.next = 0;
    this.state = "";
    const pane = makeTerminal(readOnly ? { disableStdin: true, cursorBlink: false, cursorStyle: "underline", cursorInactiveStyle: "none" } : {});
    this.xterm = pane;
    this.term = pane.term;
    this.title = h("span", { class: "pane-title" });
    this.stateText = h("span", { class: "pane-state", role: "status" });
    this.actions = h("span", { class: "pane-actions" });
    this.notice = h("span", { class: "pane-notice", hidden: true });
    this.warning = h("span", { class: "pane-warning", role: "alert", hidden: true });
    this.overlay = h("div", { class: "pane-overlay", hidden: true });
    // The head and the status line keep one height whatever they say: a
    // line that came and went would resize the PTY, the shell would redraw
    // its prompt, and that output would reset the idle clock it warns of.
    this.status = h("div", { class: "pane-status" }, this.warning, this.notice);
    this.pane = h(
      "section",
      { class: `tview stream-pane ${kind}-pane`, role: "tabpanel", dataset: { kind, view: this.key }, hidden: true },
      h("div", { class: "pane-head" }, this.title, this.stateText, h("span", { class: "spacer" }), searchBox(pane.search), this.actions),
      this.status,
      h("div", { class: "pane-body" }, pane.el, this.overlay),
    );
    this.pane.addEventListener("shown", () => requestAnimationFrame(pane.resize));
    this.tabLabel = h("span", { class: "ttab-label" });
    this.button = h(
      "button",
      { type: "button", role: "tab", class: "ttab", dataset: { view: this.key }, on: { click: () => tab.select(this.key, { focus: true }) } },
      this.tabLabel,
    );
    this.closeButton = h("button", { type: "button", class: "ttab-close icon", text: "×", on: { click: () => this.dismiss() } });
    this.tabEl = h("span", { class: `ttab-wrap ${kind}`, dataset: { view: this.key } }, this.button, this.closeButton);
  }

  /** Names the view: on its tab, its close button and its title. */
  name(label, title) {
    this.tabLabel.textContent = label;
    this.closeButton.setAttribute("aria-label", `Close ${label}`);
    this.title.textContent = title;
  }

  setState(state, text) {
    this.state = state;
    this.pane.dataset.state = state;
    this.tabEl.dataset.state = state;
    this.stateText.textContent = text;
    const away = state === "offline" || state === "attaching" || state === "opening";
    this.overlay.hidden = !away;
    this.overlay.textContent = state === "offline" ? "reconnecting…" : state === "opening" ? "opening…" : "attaching…";
  }

  /** A one-line notice above the output (null: none). */
  say(text) {
    this.notice.textContent = text || "";
    this.notice.hidden = !text;
    this.status.title = text || "";
  }

  /**
   * Writes what is new of `data`, whose first byte is at `offset`: bytes
   * before `next` were written already (a re-attach sends from the offset
   * asked, a re-watch from its scrollback), a jump past it is named.
   */
  take(offset, data) {
    const length = utf8Length(data);
    if (offset + length <= this.next) return;
    if (offset < this.next) data = dropBytes(data, this.next - offset);
    else if (offset > this.next) this.say(`${bytes(offset - this.next)} of output never reached this page.`);
    writeSliced(this.term, data);
    this.next = offset + length;
    this.pane.dataset.offset = String(this.next);
    this.tab.saveSoon();
    this.tab.activity(this);
  }

  /** Removes the view for good. */
  remove() {
    clearInterval(this.countdown);
    this.tab.removeView(this);
    this.xterm.dispose();
  }
}

/** One of the operator's own shells (an operator terminal). */
class Shell extends StreamView {
  constructor(tab, { terminal_id = null, pty_id = null, server, command = "", offset = 0 }) {
    super(tab, "shell");
    this.id = terminal_id;
    this.ptyId = pty_id;
    this.server = server;
    this.command = command;
    /** What the page before a reload had shown (sessionStorage): for the "dropped" notice. */
    this.shownBefore = offset;
    /** The size the PTY was last given. */
    this.sent = null;
    this.name(command ? `${server}: ${command}` : server, `${server} · ${command || "login shell"}`);
    this.pane.dataset.server = server;
    if (terminal_id) this.pane.dataset.terminalId = terminal_id;
    const attach = h("button", { type: "button", class: "small pane-attach", text: "Attach", hidden: true, on: { click: () => this.attach() } });
    const detach = h("button", { type: "button", class: "small pane-detach", text: "Detach", title: "Leave it running without this page (Sessions lists it)", on: { click: () => this.detach() } });
    const close = h("button", { type: "button", class: "small danger pane-close", text: "Close", title: "End the shell (Ctrl+Shift+W)", on: { click: () => this.dismiss() } });
    this.attachButton = attach;
    this.detachButton = detach;
    this.actions.append(attach, detach, close);
    this.term.onData((data) => this.type(data));
    this.term.onResize(() => this.sendSize());
  }

  get ws() {
    return this.tab.ws;
  }

  setState(state, text) {
    super.setState(state, text);
    this.attachButton.hidden = state !== "detached";
    this.detachButton.hidden = state !== "attached";
  }

  /** What sessionStorage keeps of it (null: nothing to come back to). */
  saved() {
    if (!this.id || this.state === "closed") return null;
    return { kind: "shell", terminal_id: this.id, pty_id: this.ptyId, server: this.server, command: this.command, offset: this.next };
  }

  /** Opens a new shell on the daemon at the pane's size. */
  async open() {
    this.setState("opening", `opening a shell on ${this.server}…`);
    await nextFrame();
    this.xterm.resize();
    const cols = this.term.cols;
    const rows = this.term.rows;
    const frame = { type: "terminal_open", server: this.server, cols, rows };
    if (this.command) frame.command = this.command;
    try {
      await this.ws.request(frame, ["terminal_opened"], {
        // bound before the output that follows it is handled
        onFrame: (f) => {
          if (f.type !== "terminal_opened") return;
          this.id = f.terminal_id;
          this.ptyId = f.pty_id;
          this.pane.dataset.terminalId = f.terminal_id;
          this.sent = { cols, rows };
          this.setState("attached", "attached");
          this.tab.saveSoon();
        },
      });
    } catch (e) {
      this.setState("closed", "not opened");
      this.say(`The shell did not open: ${errorText(e)}`);
      return;
    }
    this.sendSize();
    this.tab.sessions.refreshSoon();
    if (this.closeWhenOpened) this.close();
  }

  /** Follows it again from `next` (a new connection, or Attach). */
  async attach() {
    if (!this.id || this.state === "closed") return;
    this.setState("attaching", "attaching…");
    try {
      await this.ws.request({ type: "terminal_attach", terminal_id: this.id, since: this.next }, ["terminal_attached"]);
    } catch (e) {
      if (e.code === "disconnected") return; // the next connection tries again
      if (e.code === 54000) {
        this.setState("closed", "gone");
        this.say("This terminal no longer exists: it closed while no page followed it.");
      } else {
        this.setState("detached", "detached");
        this.say(`Could not attach: ${errorText(e)}`);
      }
      this.tab.saveSoon();
    }
  }

  /** `terminal_attached`: output from `from` follows. */
  attached(f) {
    const since = this.next;
    if (f.cut) {
      const missed = this.shownBefore > since && this.shownBefore < f.from;
      this.say(
        since > 0
          ? `${bytes(f.from - since)} of output printed while this page was away was dropped: the daemon keeps only the newest part.`
          : `Older output was dropped: the daemon keeps only the newest part${missed ? ", and some printed while this page was away is gone too" : ""}.`,
      );
    }
    // nothing between `since` and `from` will come: continue from there
    if (f.from > this.next) this.next = f.from;
    this.setState("attached", "attached");
    this.sendSize();
  }

  /** Gives the PTY this pane's size when it differs from what it has. */
  sendSize() {
    if (this.state !== "attached" || !this.id) return;
    const { cols, rows } = this.term;
    if (this.sent && this.sent.cols === cols && this.sent.rows === rows) return;
    if (this.ws.send({ type: "terminal_resize", terminal_id: this.id, cols, rows })) this.sent = { cols, rows };
  }

  /** Keystrokes: to the shell while attached (the overlay says why not otherwise). */
  type(data) {
    if (this.state !== "attached" || !this.id) return;
    this.ws.send({ type: "terminal_input", terminal_id: this.id, data });
    this.clearIdle();
  }

  output(offset, data) {
    this.clearIdle();
    this.take(offset, data);
  }

  /** `terminal_idle_warning`: a countdown until it closes, unless something happens. */
  idle(f) {
    const until = Date.now() + f.closes_in_s * 1000;
    const show = () => {
      const left = Math.max(0, Math.round((until - Date.now()) / 1000));
      this.warning.textContent = `Idle: this terminal closes in ${left} s unless something is typed or printed.`;
    };
    clearInterval(this.countdown);
    show();
    this.warning.hidden = false;
    this.pane.dataset.idle = String(f.closes_in_s);
    this.countdown = setInterval(show, 1000);
    notify(`The terminal on ${this.server} closes in ${Math.round(f.closes_in_s)} s: it is idle.`, "warn");
  }

  clearIdle() {
    if (this.warning.hidden) return;
    clearInterval(this.countdown);
    this.warning.hidden = true;
    delete this.pane.dataset.idle;
  }

  /** `terminal_closed`: the reason stays in the view until it is dismissed. */
  closed(f) {
    clearInterval(this.countdown);
    this.warning.hidden = true;
    const why = CLOSED[f.reason] || `Closed (${f.reason}).`;
    const error = f.error && f.reason !== "access_changed" ? ` (${errorText(f.error)})` : "";
    this.pane.dataset.reason = f.reason;
    this.setState("closed", "closed");
    this.say(`${why}${error}`);
    this.tab.saveSoon();
    this.tab.sessions.refreshSoon();
    if (this.closing) this.remove();
  }

  /** `terminal_detached`: this page no longer follows it (it asked, or a share changed). */
  detached(f) {
    this.setState("detached", "detached");
    if (f.error) this.say(`No longer attached: ${errorText(f.error)}`);
  }

  /** Detach: it runs on without this page; Sessions lists it. */
  async detach() {
    try {
      await this.ws.request({ type: "terminal_detach", terminal_id: this.id }, ["terminal_detached"]);
    } catch (e) {
      notify(errorText(e), "error");
      return;
    }
    this.remove();
    this.tab.sessions.refreshSoon();
  }

  /** The tab's ×, Close, Ctrl+Shift+W: asks, then ends the shell. */
  async dismiss() {
    if (this.state === "closed") return this.remove();
    const ok = await confirmDialog(
      `Close the terminal on ${this.server}? Its shell ends, and whatever runs in it. (Detach keeps it running without this page.)`,
      "Close terminal",
    );
    if (ok) this.close();
  }

  close() {
    if (!this.id) {
      this.closeWhenOpened = true;
      return;
    }
    this.closing = true;
    this.ws.request({ type: "terminal_close", terminal_id: this.id }, ["terminal_closed"]).catch((e) => {
      this.closing = false;
      notify(`The terminal on ${this.server} was not closed: ${errorText(e)}`, "error");
    });
  }
}

/** A read-only view of a running PTY (`terminal_watch`). */
class Watch extends StreamView {
  constructor(tab, { pty_id, kind = "", user = "", server = "", command = "" }) {
    super(tab, "watch", { readOnly: true });
    this.ptyId = pty_id;
    this.about = { kind, user, server, command };
    const what = kind === "workflow_step" ? "workflow step" : kind || "PTY";
    this.what = what;
    this.name(`watching ${user}@${server}`, `Watching, read-only: ${user}'s ${what} on ${server}${command ? ` · ${command}` : ""}`);
    this.pane.dataset.ptyId = pty_id;
    this.pane.dataset.server = server;
    this.pane.classList.add("read-only");
    this.again = h("button", { type: "button", class: "small", text: "Watch again", hidden: true, on: { click: () => this.watch() } });
    this.actions.append(this.again, h("button", { type: "button", class: "small pane-close", text: "Stop watching", on: { click: () => this.dismiss() } }));
  }

  get ws() {
    return this.tab.ws;
  }

  saved() {
    if (this.state === "ended") return null;
    return { kind: "watch", pty_id: this.ptyId, about: this.about };
  }

  async watch() {
    this.again.hidden = true;
    this.setState("attaching", "watching (starting)…");
    try {
      await this.ws.request({ type: "terminal_watch", pty_id: this.ptyId }, ["terminal_watching"]);
    } catch (e) {
      if (e.code === "disconnected") return;
      this.setState("ended", "not watching");
      this.say(`Cannot watch it: ${errorText(e)}`);
      this.tab.saveSoon();
    }
  }

  /** `terminal_watching`: its scrollback from `from` follows, then live output. */
  watching(f) {
    if (f.cut && this.next < f.from) this.say("Older output was dropped: the daemon keeps only the newest part.");
    if (f.from > this.next) this.next = f.from;
    this.setState("watching", "watching, read-only");
  }

  output(offset, data) {
    this.take(offset, data);
  }

  ended(f) {
    this.setState("ended", "not watching");
    this.pane.dataset.reason = f.reason;
    this.say(WATCH_ENDED[f.reason]?.(this.what) || `Watching ended (${f.reason}).`);
    this.again.hidden = f.reason !== "behind";
    this.tab.saveSoon();
  }

  dismiss() {
    if (this.state === "watching") this.ws.send({ type: "terminal_unwatch", pty_id: this.ptyId });
    this.remove();
  }
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
