// The Terminal tab's Sessions view: one's operator terminals
// (`terminal_list`: where each is followed, when it started, how long it
// has been idle, how much it printed) with Attach and Close, and for admins
// the Live list: every running PTY (`GET /api/v1/ptys`: STUB commands,
// scripts, workflow steps, terminals) with Watch, read-only. Both refresh
// while the view is shown; the tab's label counts the detached terminals.

import { h, replace, errorText, errorLine, bytes, duration, confirmDialog, notify } from "./dom.js";
import { api } from "./api.js";

/** How often the shown lists are asked again. */
const REFRESH_MS = 3000;

/** A PTY's kind, in words. */
const KINDS = { command: "command (under lock)", script: "script", workflow_step: "workflow step", terminal: "terminal" };

/** "10:42:07", with the date when it is not today. */
function when(rfc3339) {
  const t = new Date(rfc3339);
  if (Number.isNaN(t.getTime())) return "";
  return t.toDateString() === new Date().toDateString() ? t.toLocaleTimeString() : t.toLocaleString();
}

function table(id, heads, body) {
  return h("table", { id, class: "grid" }, h("thead", {}, h("tr", {}, heads.map((t) => h("th", { text: t })))), body);
}

/** The view; `tab` is the Terminal tab (it shows and attaches what is picked here). */
export class Sessions {
  constructor(tab, ctx) {
    this.tab = tab;
    this.ctx = ctx;
    this.label = null;
    this.own = h("tbody");
    this.ownMessage = h("div", { class: "muted" });
    this.live = h("tbody");
    this.liveMessage = h("div", { class: "muted" });
    const admin = ctx.hasRole("admin");
    this.pane = h(
      "section",
      { id: "sessions-pane", class: "tview sessions-pane", role: "tabpanel", hidden: true },
      h("h3", { text: "Your terminals" }),
      h("p", { class: "muted small-text", text: "Shells keep running when no page follows them (for a while: the daemon closes a detached terminal after its detach time)." }),
      table("sessions-table", ["Server", "Command", "State", "Started", "Idle", "Output", ""], this.own),
      this.ownMessage,
      admin ? h("h3", { text: "Live: every running PTY" }) : null,
      admin ? table("live-table", ["Kind", "User", "Server", "Command", "Started", "Output", "Watchers", ""], this.live) : null,
      admin ? this.liveMessage : null,
    );
    this.admin = admin;
    setInterval(() => {
      if (this.shown()) this.refresh();
    }, REFRESH_MS);
  }

  shown() {
    return !this.pane.hidden && !this.tab.panel.hidden;
  }

  /** Asks again soon (after an open, a close, a detach), once for several asks. */
  refreshSoon() {
    clearTimeout(this.soon);
    this.soon = setTimeout(() => this.refresh(), 200);
  }

  /** Asks for the lists; resolves with the terminals (null when the ask failed). */
  async refresh() {
    if (this.admin && this.shown()) this.refreshLive();
    let list;
    try {
      list = (await this.tab.ws.request({ type: "terminal_list" }, ["terminal_list"])).terminals || [];
    } catch (e) {
      if (e.code !== "disconnected") replace(this.ownMessage, errorLine(e));
      return null;
    }
    this.count(list);
    this.renderOwn(list);
    return list;
  }

  async refreshLive() {
    try {
      this.renderLive(await api("GET", "/api/v1/ptys"));
    } catch (e) {
      replace(this.liveMessage, errorLine(e));
    }
  }

  /** The tab's label: "Sessions", and how many terminals run without a page. */
  count(list) {
    const detached = list.filter((t) => t.access === "owner" && t.state === "detached").length;
    this.label.textContent = detached ? `Sessions (${detached} detached)` : "Sessions";
    this.label.dataset.detached = String(detached);
  }

  /** The shell view of terminal `id` on this page, if any. */
  viewOf(id) {
    return this.tab.streams().find((v) => v.kind === "shell" && v.id === id);
  }

  renderOwn(list) {
    replace(this.ownMessage, list.length ? null : "No terminals. Open one with + Terminal, or Open terminal beside a server.");
    replace(
      this.own,
      list.map((t) => {
        const here = this.viewOf(t.terminal_id);
        const hereAttached = here && here.state === "attached";
        const state = hereAttached ? "attached here" : t.state === "attached" ? `attached elsewhere (${t.attached})` : "detached";
        const shared = t.access === "owner" ? "" : ` · shared by ${t.owner} (${t.access})`;
        const actions = [];
        if (t.access === "watch") {
          actions.push(button("Watch", `Watch ${t.owner}'s terminal on ${t.server}`, () => this.tab.watchPty({ pty_id: t.pty_id, kind: "terminal", user: t.owner, server: t.server, command: t.command })));
        } else {
          actions.push(button(hereAttached ? "Show" : "Attach", `Attach the terminal on ${t.server}`, () => this.tab.attachTerminal(t)));
        }
        if (t.access === "owner") actions.push(button("Close", `Close the terminal on ${t.server}`, () => this.close(t), "danger"));
        return h(
          "tr",
          { dataset: { terminalId: t.terminal_id, state: t.state } },
          h("td", { text: t.server }),
          h("td", { class: "mono", text: t.command || "login shell" }),
          h("td", { class: "state", text: state + shared }),
          h("td", { text: when(t.started) }),
          h("td", { text: duration((t.idle_s || 0) * 1000) }),
          h("td", { text: bytes(t.bytes) }),
          h("td", { class: "actions" }, actions),
        );
      }),
    );
  }

  renderLive(ptys) {
    replace(this.liveMessage, ptys.length ? null : "Nothing runs now.");
    replace(
      this.live,
      ptys.map((p) =>
        h(
          "tr",
          { dataset: { ptyId: p.pty_id, kind: p.kind } },
          h("td", { class: "kind", text: KINDS[p.kind] || p.kind }),
          h("td", { text: p.user }),
          h("td", { text: p.server }),
          h("td", { class: "mono", text: p.command || "login shell" }),
          h("td", { text: when(p.started) }),
          h("td", { text: bytes(p.bytes) }),
          h("td", { text: String(p.watchers) }),
          h("td", { class: "actions" }, button("Watch", `Watch ${p.user}'s ${p.kind} on ${p.server}, read-only`, () => this.tab.watchPty(p))),
        ),
      ),
    );
  }

  /** Close from the list: the view's own close when it is shown here, else after asking. */
  async close(t) {
    const here = this.viewOf(t.terminal_id);
    if (here) return here.dismiss();
    const ok = await confirmDialog(`Close the terminal on ${t.server}? Its shell ends, and whatever runs in it.`, "Close terminal");
    if (!ok) return;
    try {
      await this.tab.ws.request({ type: "terminal_close", terminal_id: t.terminal_id }, ["terminal_closed"]);
    } catch (e) {
      notify(errorText(e), "error");
    }
    this.refresh();
  }
}

function button(text, label, onClick, cls = "small") {
  return h("button", { type: "button", class: cls === "danger" ? "small danger" : cls, text, "aria-label": label, on: { click: onClick } });
}
