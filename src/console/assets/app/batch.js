// The Batch tab (BMX4): commands on servers with retries, delay,
// stop-on-error and a timeout; results stream into a table per server
// (status, exit, attempts, duration, expandable output, truncated marker);
// the run history re-opens any past run from REST. A command the rules
// hold shows in its server's table while it waits for approval; one they
// refuse (or its reviewer rejects) says so in its row: it never ran.

import { h, replace, duration, errorText, errorLine } from "./dom.js";
import { api, query } from "./api.js";
import { field } from "./forms.js";
import * as store from "./store.js";
import * as work from "./work.js";
import * as reviews from "./reviews.js";
import { isPolicyError, heldWhy } from "./policy.js";

/** Mounts the tab. */
export function mount(panel, ctx) {
  const ws = ctx.ws("/ws/v1/bmx4");
  const commands = h("textarea", { id: "batch-commands", rows: 4, placeholder: "one command per line", spellcheck: false, class: "mono" });
  const servers = h("div", { id: "batch-servers", class: "checks" });
  const retries = h("input", { id: "batch-retries", type: "number", min: 0, max: 100, value: 0, class: "num" });
  const delay = h("input", { id: "batch-delay", type: "number", min: 0, value: 1000, class: "num" });
  const stopOnError = h("input", { id: "batch-stop", type: "checkbox" });
  const timeout = h("input", { id: "batch-timeout", type: "number", min: "0.1", step: "any", placeholder: "none", class: "num" });
  const run = h("button", { id: "batch-run", type: "submit", text: "Run batch", disabled: !ctx.hasRole("operator") });
  const cancel = h("button", { id: "batch-cancel", type: "button", text: "Cancel", disabled: true });
  const summary = h("div", { id: "batch-summary", role: "status" });
  const results = h("div", { id: "batch-results" });
  const history = h("div", { id: "batch-history" });
  const form = h(
    "form",
    { class: "stack" },
    field("Commands", commands),
    field("Servers", servers),
    h("div", { class: "row" }, field("Retries", retries), field("Delay (ms)", delay), field("Timeout (s)", timeout), h("label", { class: "field inline" }, stopOnError, h("span", { text: "stop on error" })), run, cancel),
  );
  panel.append(h("h2", { text: "Batch" }), form, summary, results, h("h2", { text: "History" }), history);

  // Until the operator picks servers, the healthy ones the sidebar's
  // filter shows are picked; after a pick, the choice is theirs.
  let picked = false;
  const byDefault = () => {
    const shown = new Set(store.get("shown_servers") || store.get("servers") || []);
    const health = store.get("health") || new Map();
    return (name) => shown.has(name) && health.get(name)?.is_healthy === true;
  };
  const renderServers = () => {
    const names = store.get("servers") || [];
    const was = new Set([...servers.querySelectorAll("input:checked")].map((i) => i.value));
    const chosen = picked ? (n) => was.has(n) : byDefault();
    replace(
      servers,
      names.map((n) =>
        h(
          "label",
          { class: "inline" },
          h("input", { type: "checkbox", value: n, name: "batch-server", checked: chosen(n), on: { change: () => (picked = true) } }),
          h("span", { text: n }),
        ),
      ),
    );
  };
  store.watch("servers", renderServers);
  store.watch("shown_servers", () => picked || renderServers());
  store.watch("health", () => picked || renderServers());

  let runId = null;
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const frame = {
      type: "batch_execute",
      servers: [...servers.querySelectorAll("input:checked")].map((i) => i.value),
      commands: commands.value.split("\n").filter((l) => l.trim()),
      retries: Number(retries.value || 0),
      retry_delay_ms: Number(delay.value || 0),
      stop_on_error: stopOnError.checked,
    };
    if (timeout.value) frame.timeout_s = Number(timeout.value);
    const view = resultsView(frame.servers);
    replace(results, view.el);
    panel.dataset.state = "running";
    summary.textContent = "starting…";
    run.disabled = true;
    const running = work.begin(`the batch run on ${frame.servers.join(", ")}`);
    try {
      const done = await ws.request(frame, ["batch_complete"], {
        onFrame: (f) => {
          if (f.type === "batch_started") {
            runId = f.run_id;
            cancel.disabled = false;
            summary.textContent = `run ${f.run_id}: ${f.commands} commands on ${f.servers.join(", ")}`;
          } else if (f.type === "batch_command_result") {
            view.add(f);
            // a held command's end is told here only
            reviews.ownMayHaveEnded();
            ctx.activity();
          } else if (f.type === "command_held") {
            view.held(f);
            reviews.refreshSoon();
            ctx.activity();
          } else if (f.type === "command_released") {
            view.released(f);
          }
        },
      });
      summary.textContent = `run ${done.run_id}: ${done.succeeded} succeeded, ${done.failed} failed, ${done.skipped} skipped in ${duration(done.duration_ms)}${done.cancelled ? " (cancelled)" : ""}`;
      panel.dataset.state = "done";
    } catch (e) {
      summary.replaceChildren(errorLine(e));
      panel.dataset.state = "failed";
    } finally {
      running();
      run.disabled = !ctx.hasRole("operator");
      cancel.disabled = true;
      runId = null;
      loadHistory();
    }
  });
  cancel.addEventListener("click", () => runId && ws.send({ type: "batch_cancel", run_id: runId }));

  const loadHistory = () =>
    api("GET", `/api/v1/bmx4/runs${query({ limit: 20 })}`)
      .then((runs) =>
        replace(
          history,
          h(
            "table",
            { class: "grid" },
            h("tr", {}, ["started", "user", "servers", "status", "ok / failed / skipped", ""].map((t) => h("th", { text: t }))),
            runs.map((r) =>
              h(
                "tr",
                { dataset: { run: r.run_id } },
                h("td", { text: new Date(r.started_at).toLocaleString() }),
                h("td", { text: r.user || r.actor }),
                h("td", { text: r.servers.join(", ") }),
                h("td", { text: r.status }),
                h("td", { text: `${r.succeeded} / ${r.failed} / ${r.skipped}` }),
                h("td", {}, h("button", { type: "button", class: "small open-run", text: "Open", on: { click: () => open(r.run_id) } })),
              ),
            ),
          ),
        ),
      )
      .catch((e) => replace(history, errorLine(e)));
  const open = async (id) => {
    try {
      const run = await api("GET", `/api/v1/bmx4/runs/${encodeURIComponent(id)}`);
      const view = resultsView(run.servers);
      for (const r of run.results) view.add(r);
      replace(results, view.el);
      summary.textContent = `run ${run.run_id} (${run.status}): ${run.succeeded} succeeded, ${run.failed} failed, ${run.skipped} skipped`;
    } catch (e) {
      summary.replaceChildren(errorLine(e));
    }
    // the run opens above the history list: bring it into view
    summary.scrollIntoView({ block: "start" });
  };
  panel.addEventListener("shown", loadHistory);
}

/** A table per server, filled result by result. */
function resultsView(serverNames) {
  const el = h("div", { class: "batch-results" });
  const bodies = new Map();
  const tableFor = (server) => {
    if (!bodies.has(server)) {
      const body = h("tbody");
      el.append(
        h("h3", { text: server }),
        h(
          "table",
          { class: "grid", dataset: { server } },
          h("thead", {}, h("tr", {}, ["#", "command", "status", "exit", "attempts", "duration", "output"].map((t) => h("th", { text: t })))),
          body,
        ),
      );
      bodies.set(server, body);
    }
    return bodies.get(server);
  };
  serverNames.forEach(tableFor);
  // commands waiting for approval, in the order they were held: a
  // server runs its commands in order, so its result is the first
  // waiting row with its command
  const waiting = [];
  return {
    el,
    /** `command_held`: the command waits for an approver at its turn. */
    held(f) {
      const status = h("td", { class: "status", text: "waiting for approval" });
      const row = h(
        "tr",
        { class: "result held", dataset: { status: "held", held: f.held_id } },
        h("td", { text: "" }),
        h("td", { class: "mono", text: f.command }),
        status,
        h("td", { colspan: 4, class: "held-why", text: `${heldWhy(f)}. An approver answers it under Reviews.` }),
      );
      waiting.push({ server: f.server, command: f.command, heldId: f.held_id, row, status });
      tableFor(f.server).append(row);
    },
    /** `command_released`: approved, it runs now; its result replaces the row. */
    released(f) {
      const w = waiting.find((x) => x.heldId === f.held_id);
      if (!w) return;
      w.status.textContent = "approved, running";
      w.row.dataset.status = "released";
    },
    add(r) {
      const at = waiting.findIndex((x) => x.server === r.server && x.command === r.command);
      if (at >= 0) waiting.splice(at, 1)[0].row.remove();
      const out = [];
      if (r.stdout) out.push(outputBlock(r.stdout, "out", r.truncated));
      if (r.stderr) out.push(outputBlock(r.stderr, "out err", r.truncated));
      if (r.error) out.push(h("p", { class: "error", text: errorText(r.error) }));
      // stopped by the rules or a reviewer: it never ran, and says so
      const policy = isPolicyError(r.error) ? POLICY_STATUS[r.error.code] : null;
      tableFor(r.server).append(
        h(
          "tr",
          { class: `result ${r.status}${policy ? " policy" : ""}`, dataset: { index: r.index, status: r.status, ...(r.error ? { code: r.error.code } : {}) } },
          h("td", { text: r.index }),
          h("td", { class: "mono", text: r.command }),
          h("td", { class: "status", text: policy ? `${policy} (never ran)` : r.status }),
          h("td", { class: "exit", text: r.exit_status ?? r.exit_signal ?? "" }),
          h("td", { text: r.attempts }),
          h("td", { text: `${r.duration_ms} ms` }),
          h("td", { class: "output" }, out),
        ),
      );
    },
  };
}

/** A batch row's status when the command policy stopped it, by code. */
const POLICY_STATUS = {
  55000: "refused by a rule",
  55001: "rejected",
  55002: "not approved in time",
  55006: "not held: too many waiting",
};

/** Lines of output shown inline; the rest opens on a click. */
const INLINE_LINES = 3;

/**
 * One stream's output: its first lines inline, the whole behind a
 * "show all" disclosure when there is more (or when the daemon cut it).
 */
function outputBlock(text, cls, truncated) {
  const lines = text.replace(/\n$/, "").split("\n");
  const head = h("pre", { class: `${cls} out-head`, text: lines.slice(0, INLINE_LINES).join("\n") });
  if (lines.length <= INLINE_LINES && !truncated) return head;
  const label = `show all ${lines.length} lines${truncated ? " (truncated by the daemon)" : ""}`;
  const details = h("details", { class: "out-more" }, h("summary", { text: label }), h("pre", { class: `${cls} out-all`, text }));
  // open: the whole replaces the first lines
  details.addEventListener("toggle", () => (head.hidden = details.open));
  return h("div", {}, head, details);
}
