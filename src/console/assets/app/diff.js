// The Diff tab: two files side by side with line numbers and coloured
// changes, two directories as a table (only left / only right / differing
// with reasons), and the output of one command on two servers. Uses the
// REST diff endpoints (one request, one answer).

import { h, replace, errorLine } from "./dom.js";
import { api } from "./api.js";
import { field, serverSelect } from "./forms.js";
import * as store from "./store.js";

/**
 * Rows for a side-by-side view of a unified diff: `{left, right, kind}`
 * where each side is `{n, text}` or null; kind is `same`, `change`, `hunk`.
 */
export function sideBySide(unified) {
  const rows = [];
  let ln = 0;
  let rn = 0;
  let dels = [];
  let adds = [];
  const flush = () => {
    for (let i = 0; i < Math.max(dels.length, adds.length); i++) rows.push({ left: dels[i] || null, right: adds[i] || null, kind: "change" });
    dels = [];
    adds = [];
  };
  for (const line of unified.split("\n")) {
    if (line.startsWith("--- ") || line.startsWith("+++ ") || line === "") continue;
    const hunk = /^@@ -(\d+)(?:,\d+)? \+(\d+)(?:,\d+)? @@/.exec(line);
    if (hunk) {
      flush();
      ln = Number(hunk[1]);
      rn = Number(hunk[2]);
      rows.push({ left: null, right: null, kind: "hunk", text: line });
    } else if (line.startsWith("-")) dels.push({ n: ln++, text: line.slice(1) });
    else if (line.startsWith("+")) adds.push({ n: rn++, text: line.slice(1) });
    else if (line.startsWith("\\")) continue;
    else {
      flush();
      rows.push({ left: { n: ln++, text: line.slice(1) }, right: { n: rn++, text: line.slice(1) }, kind: "same" });
    }
  }
  flush();
  return rows;
}

/** A side-by-side table of `unified`. */
function diffTable(unified, leftLabel, rightLabel) {
  const side = (s, cls) => [h("td", { class: "ln", text: s ? s.n : "" }), h("td", { class: `code ${s ? cls : "empty"}`, text: s ? s.text : "" })];
  // the columns' widths are set by a colgroup: with `table-layout: fixed`
  // the first row (two headers spanning two columns each) would otherwise
  // split the width in four, a quarter of it for line numbers
  const cols = h("colgroup", {}, h("col", { class: "ln" }), h("col"), h("col", { class: "ln" }), h("col"));
  return h(
    "table",
    { class: "diff" },
    cols,
    h("thead", {}, h("tr", {}, h("th", { colspan: 2, text: leftLabel }), h("th", { colspan: 2, text: rightLabel }))),
    h(
      "tbody",
      {},
      sideBySide(unified).map((r) =>
        r.kind === "hunk"
          ? h("tr", { class: "hunk" }, h("td", { colspan: 4, text: r.text }))
          : h("tr", { class: r.kind }, side(r.left, r.kind === "change" ? "del" : ""), side(r.right, r.kind === "change" ? "add" : "")),
      ),
    ),
  );
}

/** Mounts the tab. */
export function mount(panel, ctx) {
  const out = h("div", { id: "diff-result" });
  const mode = h(
    "select",
    { id: "diff-mode", "aria-label": "What to compare" },
    h("option", { value: "files", text: "Files" }),
    h("option", { value: "dirs", text: "Directories" }),
    h("option", { value: "command", text: "Command output" }),
  );
  const leftServer = serverSelect("diff-left-server", "Left server");
  const rightServer = serverSelect("diff-right-server", "Right server");
  const leftPath = h("input", { id: "diff-left-path", class: "mono", placeholder: "/etc/app.conf", "aria-label": "Left path" });
  const rightPath = h("input", { id: "diff-right-path", class: "mono", placeholder: "/etc/app.conf", "aria-label": "Right path" });
  const command = h("input", { id: "diff-command", class: "mono grow", placeholder: "command run on both servers", "aria-label": "Command", hidden: true });
  const recursive = h("input", { id: "diff-recursive", type: "checkbox", checked: true });
  const compare = h("select", { id: "diff-compare", "aria-label": "Compare by" }, ["size", "mtime", "sha256"].map((c) => h("option", { value: c, text: c })));
  const dirOptions = h("span", { class: "row inline", hidden: true }, h("label", { class: "inline" }, recursive, h("span", { text: "recursive" })), field("Compare by", compare));
  const run = h("button", { id: "diff-run", type: "submit", text: "Compare" });
  const form = h(
    "form",
    { class: "stack" },
    h("div", { class: "row" }, field("Compare", mode), dirOptions),
    h("div", { class: "row" }, field("Left", leftServer), leftPath, field("Right", rightServer), rightPath),
    h("div", { class: "row" }, command, run),
  );
  panel.append(h("h2", { text: "Diff" }), form, out);
  // two servers are compared: the right one starts as another than the left
  store.watch("servers", (names) => {
    if (rightServer.value === leftServer.value) {
      const other = (names || []).find((n) => n !== leftServer.value);
      if (other) rightServer.value = other;
    }
  });
  mode.addEventListener("change", () => {
    const cmd = mode.value === "command";
    leftPath.hidden = cmd;
    rightPath.hidden = cmd;
    command.hidden = !cmd;
    dirOptions.hidden = mode.value !== "dirs";
  });

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    replace(out, h("p", { class: "muted", text: "comparing…" }));
    panel.dataset.state = "running";
    const left = { server: leftServer.value, path: leftPath.value };
    const right = { server: rightServer.value, path: rightPath.value };
    try {
      if (mode.value === "files") {
        const r = await api("POST", "/api/v1/diff/files", { left, right });
        replace(out, summary(r), r.binary ? h("p", { text: "binary files: compared by SHA-256 only" }) : r.identical ? null : diffTable(r.unified_diff, `${left.server}:${left.path}`, `${right.server}:${right.path}`));
      } else if (mode.value === "dirs") {
        const r = await api("POST", "/api/v1/diff/dirs", { left, right, recursive: recursive.checked, compare: compare.value });
        replace(out, dirsTable(r));
      } else {
        const r = await api("POST", "/api/v1/diff/command", { command: command.value, left_server: leftServer.value, right_server: rightServer.value });
        replace(
          out,
          summary(r),
          h("p", { id: "diff-exits", text: `exit: ${leftServer.value} ${ended(r.left_exit_status, r.left_exit_signal)}, ${rightServer.value} ${ended(r.right_exit_status, r.right_exit_signal)}` }),
          r.identical ? null : diffTable(r.unified_diff, `${leftServer.value}: stdout`, `${rightServer.value}: stdout`),
          r.left_stderr ? h("pre", { class: "out err", text: r.left_stderr }) : null,
          r.right_stderr ? h("pre", { class: "out err", text: r.right_stderr }) : null,
        );
      }
      panel.dataset.state = "done";
    } catch (e) {
      replace(out, errorLine(e));
      panel.dataset.state = "failed";
    }
  });
}

/** How one side's command ended: its status, its signal, or neither. */
function ended(status, signal) {
  return status != null ? `status ${status}` : signal ? `signal ${signal}` : "unknown";
}

function summary(r) {
  return h("p", { class: r.identical ? "ok" : "", text: r.identical ? "identical" : `different (${r.left_size} / ${r.right_size} bytes)` });
}

function dirsTable(r) {
  const rows = [
    ...r.only_left.map((p) => [p, "only left", ""]),
    ...r.only_right.map((p) => [p, "only right", ""]),
    ...r.differing.map((d) => [d.path, "differs", d.reasons.join(", ")]),
  ];
  return h(
    "div",
    {},
    h("p", { text: `${rows.length} differences, ${r.identical_count} identical` }),
    h(
      "table",
      { class: "grid", id: "diff-dirs-table" },
      h("tr", {}, ["path", "where", "reasons"].map((t) => h("th", { text: t }))),
      rows.map(([p, where, why]) => h("tr", { class: where.replace(" ", "-") }, h("td", { class: "mono", text: p }), h("td", { text: where }), h("td", { text: why }))),
    ),
  );
}
