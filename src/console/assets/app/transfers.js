// The Transfers tab: the configured server-to-server transfers, each with a
// run button that first shows the transfer's dry run (what it would copy,
// which destination files it would replace) and starts only on a second
// click; progress as numbers and a bar (files, bytes, rate, time left),
// then the result, which stays until the next run; the last runs below.
// Runs on /ws/v1/stub, so it needs the lock, like the terminal.

import { h, replace, bytes, duration, errorText, errorLine } from "./dom.js";
import { api, query } from "./api.js";
import * as work from "./work.js";
import * as store from "./store.js";
import * as lockState from "./lock.js";

/** Mounts the tab. */
export function mount(panel, ctx) {
  const stub = ctx.stub;
  const table = h("table", { class: "grid", id: "transfer-table" });
  const progress = h("progress", { id: "transfer-progress", max: 1, value: 0 });
  const numbers = h("div", { id: "transfer-numbers", class: "mono" });
  const result = h("div", { id: "transfer-result" });
  const cancel = h("button", { type: "button", id: "transfer-cancel", text: "Cancel", disabled: true, on: { click: () => stub.send({ type: "cancel" }) } });
  const box = h("div", { class: "progress-box" }, h("div", { class: "row" }, progress, cancel), numbers, result);
  const planBox = h("div", { id: "transfer-plan", class: "plan-box", hidden: true });
  const history = h("div", { id: "transfer-history" });
  panel.append(h("h2", { text: "Transfers" }), table, planBox, box, h("h2", { text: "Last runs" }), history);

  let running = null; // {id, name, started, done}
  const finish = (state, children) => {
    running?.done();
    running = null;
    cancel.disabled = true;
    enableRuns();
    panel.dataset.state = state;
    replace(result, children);
    ctx.activity();
    loadHistory();
  };
  const loadHistory = () =>
    api("GET", `/api/v1/transfers/runs${query({ limit: 10 })}`)
      .then((runs) =>
        replace(
          history,
          runs.length
            ? h(
                "table",
                { class: "grid", id: "transfer-runs" },
                h("tr", {}, ["ended", "transfer", "user", "outcome", "files", "bytes"].map((t) => h("th", { text: t }))),
                runs.map((r) =>
                  h(
                    "tr",
                    { class: `transfer-run ${r.outcome}`, dataset: { outcome: r.outcome } },
                    h("td", { text: new Date(r.ended_at).toLocaleString() }),
                    h("td", { text: r.transfer_name }),
                    h("td", { text: r.user || "" }),
                    h("td", { text: r.error ? `${r.outcome} (${r.error})` : r.outcome }),
                    h("td", { text: r.files.length ? String(r.files.length) : "" }),
                    h("td", { text: r.bytes != null ? bytes(r.bytes) : "" }),
                  ),
                ),
              )
            : h("p", { class: "muted", text: "No transfer has run yet." }),
        ),
      )
      .catch((e) => replace(history, errorLine(e)));
  panel.addEventListener("shown", loadHistory);
  const startRun = (name) => {
    const id = stub.nextId();
    running = { id, name, started: Date.now(), done: work.begin(`the transfer ${name}`, { underLock: true }) };
    progress.value = 0;
    progress.max = 1;
    replace(numbers, `${name}: starting…`);
    replace(result);
    panel.dataset.state = "running";
    cancel.disabled = false;
    enableRuns();
    if (!stub.send({ type: "scp_transfer", transfer_name: name, request_id: id })) finish("failed", errorLine({ message: "not connected to the daemon" }));
  };
  // Run: the dry run first, shown with what it replaces; the transfer
  // starts from the plan's own button, never from the first click
  const showPlan = async (name) => {
    planBox.hidden = false;
    replace(planBox, h("p", { class: "muted", text: `${name}: looking at both servers…` }));
    try {
      const p = await stub.request({ type: "scp_transfer_plan", transfer_name: name }, ["scp_transfer_plan"]);
      const start = h("button", { id: "transfer-start", type: "button", text: p.replaces ? `Copy and replace ${p.replaces}` : "Start transfer", class: p.replaces ? "danger" : "" });
      const back = h("button", { id: "transfer-plan-cancel", type: "button", text: "Cancel" });
      start.addEventListener("click", () => {
        planBox.hidden = true;
        start.disabled = true;
        startRun(name);
      });
      back.addEventListener("click", () => (planBox.hidden = true));
      const says = p.files.length
        ? `${name}: copies ${p.files.length} files (${bytes(p.bytes)}) from ${p.source_server} to ${p.destination_server}:${p.destination_dir}` +
          (p.replaces ? `, replacing ${p.replaces} there` : ", all new there")
        : `${name}: no file matches at ${p.source_server} now; a run would fail`;
      replace(
        planBox,
        h("p", { id: "transfer-plan-summary", text: says }),
        p.files.length
          ? h(
              "table",
              { class: "grid", id: "transfer-plan-files" },
              h("tr", {}, ["file", "bytes", "at the destination"].map((t) => h("th", { text: t }))),
              p.files.map((f) =>
                h(
                  "tr",
                  { dataset: { file: f.name, replaces: f.replaces_bytes != null } },
                  h("td", { class: "mono", text: f.name }),
                  h("td", { text: bytes(f.bytes) }),
                  h("td", { class: f.replaces_bytes != null ? "warn" : "muted", text: f.replaces_bytes != null ? `replaces a file of ${bytes(f.replaces_bytes)}` : "new" }),
                ),
              ),
            )
          : null,
        h("div", { class: "row" }, p.files.length ? start : null, back),
      );
    } catch (e) {
      replace(planBox, errorLine(e), h("button", { type: "button", text: "Close", on: { click: () => (planBox.hidden = true) } }));
    }
  };

  stub.on("scp_progress", (f) => {
    if (!running || f.transfer_name !== running.name) return;
    progress.max = Math.max(1, f.bytes_total);
    progress.value = f.bytes_done;
    const secs = (Date.now() - running.started) / 1000;
    const rate = secs > 0 ? f.bytes_done / secs : 0;
    const left = rate > 0 ? ((f.bytes_total - f.bytes_done) / rate) * 1000 : null;
    numbers.textContent =
      `files ${f.files_done}/${f.files_total} · ${bytes(f.bytes_done)} / ${bytes(f.bytes_total)} · ` +
      `${bytes(rate)}/s · ${left === null ? "" : `${duration(left)} left`} · ${f.file || ""}`;
  });
  stub.on("scp_complete", (f) => {
    if (!running || f.request_id !== running.id) return;
    progress.max = Math.max(1, f.bytes);
    progress.value = f.bytes;
    numbers.textContent = `${f.files.length} files · ${bytes(f.bytes)} in ${duration(f.duration_ms)}`;
    finish(
      "done",
      h(
        "table",
        { class: "grid" },
        h("tr", {}, h("th", { text: "file" }), h("th", { text: "bytes" }), h("th", { text: "sha256" })),
        f.files.map((file) => h("tr", {}, h("td", { class: "mono", text: file.name }), h("td", { text: file.bytes }), h("td", { class: "mono", text: file.sha256 || "" }))),
      ),
    );
  });
  stub.on("scp_cancelled", (f) => {
    if (running && f.transfer_name === running.name) finish("cancelled", h("p", { text: `cancelled after ${f.files_done} files, ${bytes(f.bytes_done)}` }));
  });
  stub.on("error", (f) => {
    if (running && f.request_id === running.id) finish("failed", errorLine(f.error));
  });
  stub.on("_dropped", () => {
    if (running) finish("failed", errorLine({ message: "the connection dropped; the transfer was stopped" }));
  });

  // a transfer runs under the lock: its buttons wait for it, saying why
  const enableRuns = () => {
    const mine = lockState.isMine();
    for (const b of table.querySelectorAll("button.run-transfer")) {
      b.disabled = !mine || !!running;
      b.title = mine ? "" : lockState.NEEDS_LOCK;
    }
  };
  store.watch("lock", enableRuns);
  store.watch("connection_id", enableRuns);

  api("GET", "/api/v1/transfers")
    .then((all) => {
      replace(
        table,
        h("tr", {}, ["name", "from", "to", "verify", ""].map((t) => h("th", { text: t }))),
        all.length
          ? all.map((t) =>
              h(
                "tr",
                { dataset: { transfer: t.name } },
                h("td", { text: t.name }),
                h("td", { class: "mono", text: `${t.source_server}:${t.source_glob}` }),
                h("td", { class: "mono", text: `${t.destination_server}:${t.destination_dir}` }),
                h("td", { text: t.verify_sha256 ? "sha256" : "" }),
                h("td", {}, ctx.hasRole("operator") ? h("button", { type: "button", class: "run-transfer", text: "Run…", "aria-label": `Run ${t.name}`, on: { click: () => showPlan(t.name) } }) : null),
              ),
            )
          : h("tr", {}, h("td", { colspan: 5, class: "muted", text: "no transfer is configured" })),
      );
      enableRuns();
    })
    .catch((e) => replace(table, h("tr", {}, h("td", { class: "error", text: errorText(e) }))));
}
