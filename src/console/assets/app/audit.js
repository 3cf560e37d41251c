// The Audit tab (admins): the audit trail, newest first, filtered by action
// and user, 50 rows a page ("Older" pages back by id). A row of PTY work
// (a command, a script, a terminal, a workflow step) names its PTY in
// `detail.pty_id` and links to its recording.

import { h, replace, errorLine } from "./dom.js";
import { api, query } from "./api.js";
import { field } from "./forms.js";
import * as recordings from "./recordings.js";

const PAGE = 50;

/** Mounts the tab. */
export function mount(panel, ctx) {
  const action = h("input", { id: "audit-action", placeholder: "e.g. ssh.command", "aria-label": "Action" });
  const user = h("input", { id: "audit-user", placeholder: "user", "aria-label": "User" });
  const newest = h("button", { id: "audit-newest", type: "submit", text: "Show" });
  const older = h("button", { id: "audit-older", type: "button", text: "Older", disabled: true });
  const table = h("table", { id: "audit-table", class: "grid" });
  const form = h("form", { class: "toolbar" }, field("Action", action), field("User", user), newest, older);
  panel.append(h("h2", { text: "Audit trail" }), form, table);

  let before = null;
  const load = async (beforeId) => {
    try {
      const rows = await api("GET", `/api/v1/audit${query({ limit: PAGE, action: action.value, user: user.value, before_id: beforeId })}`);
      before = rows.length === PAGE ? rows[rows.length - 1].id : null;
      older.disabled = before === null;
      replace(
        table,
        h("tr", {}, ["id", "time", "user", "actor", "action", "server", "command", "exit", "bytes", "detail", "recording"].map((t) => h("th", { text: t }))),
        rows.map((e) =>
          h(
            "tr",
            { dataset: { action: e.action } },
            [e.id, new Date(e.at).toLocaleString(), e.user, e.actor, e.action, e.server, e.command, e.exit_status, e.bytes].map((v) => h("td", { text: v ?? "" })),
            h("td", { class: "mono small-text", text: e.detail ? JSON.stringify(e.detail) : "" }),
            h("td", {}, e.detail?.pty_id ? recordings.link(ctx, String(e.detail.pty_id), "Play") : null),
          ),
        ),
      );
    } catch (e) {
      replace(table, h("tr", {}, h("td", {}, errorLine(e))));
    }
  };
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    load(null);
  });
  older.addEventListener("click", () => before !== null && load(before));
  panel.addEventListener("shown", () => load(null));
}
