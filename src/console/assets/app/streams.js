// The Terminal tab's views of running output: `Shell`, one of the
// operator's own shells (an operator terminal it follows and types into),
// and `Watch`, a read-only view of any running PTY. Both are a
// `StreamView`: an xterm fed by offsets (UTF-8 bytes from the start of the
// output), which writes each byte once, in order, whatever a re-attach or
// a re-watch sends again. Each view handles its own frames; `shells.js`
// routes them to it and keeps the strip.
//
// Owner: each view owns its xterm and its `next` offset; the page's one
// thread handles one frame at a time, so what the xterm was given and
// `next` never disagree.

import { h, errorText, notify, bytes, confirmDialog } from "./dom.js";
import { makeTerminal, writeSliced, searchBox } from "./terminal.js";
import { writeNotice } from "./policy.js";

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

let seq = 0;

/**
 * An xterm fed by offsets, with a title, a state, a notice line and an
 * overlay: what a shell and a watch have in common.
 */
export class StreamView {
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
export class Shell extends StreamView {
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
    /** The request_id of its keystrokes: a refusal of one (a typed line a rule refuses) answers it. */
    this.inputId = `input-${this.key}`;
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
    this.ws.send({ type: "terminal_input", terminal_id: this.id, data, request_id: this.inputId });
    this.clearIdle();
  }

  /**
   * A keystroke was refused: most often an Enter whose line a command
   * rule refuses (the daemon killed the line instead, so the shell's
   * prompt comes back below). Said in the terminal, where the eyes are.
   */
  refused(err) {
    writeNotice(this.term, errorText(err), "refused");
    this.pane.dataset.refused = String((Number(this.pane.dataset.refused) || 0) + 1);
    this.tab.activity(this);
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
export class Watch extends StreamView {
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
