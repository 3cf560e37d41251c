// The Workflows tab (docs/workflows.md): the configured workflows, a form
// built from the selected one's parameters, its plan (the exact commands,
// values quoted in, as the daemon returns them), a run streamed into a step
// timeline (output, transfer progress, batch results, a pause to confirm),
// and the run history from REST, where each command step links to its
// recording. The daemon judges every value: the form's pattern/min/max
// only hint, so a refused value shows the daemon's 10001.

import { h, replace, bytes, duration, errorText, errorLine } from "./dom.js";
import { api, query } from "./api.js";
import { field } from "./forms.js";
import * as store from "./store.js";
import * as recordings from "./recordings.js";
import { heldWhy } from "./policy.js";

/** The most output kept in the page per step, like the stored tail. */
const OUTPUT_CAP = 64 * 1024;
/** History rows per page. */
const PAGE = 10;

/** Mounts the tab. */
export function mount(panel, ctx) {
  const stub = ctx.stub;
  const operator = ctx.hasRole("operator");
  const list = h("ul", { id: "wf-list", class: "wf-list" });
  const title = h("h3", { id: "wf-title" });
  const description = h("p", { id: "wf-description", class: "muted" });
  // noValidate: the browser's checks must not keep a value from the daemon,
  // whose refusal (10001, every problem named) is what the operator reads
  const form = h("form", { id: "wf-form", class: "row", noValidate: true });
  const planButton = h("button", { id: "wf-plan", type: "button", text: "Plan" });
  const runButton = h("button", { id: "wf-run", type: "button", text: "Run", hidden: !operator });
  const error = h("div", { id: "wf-error" });
  const planOut = h("div", { id: "wf-plan-out" });
  const summary = h("div", { id: "wf-summary", role: "status" });
  const pause = h("div", { id: "wf-pause", class: "wf-pause", hidden: true });
  const cancel = h("button", { id: "wf-cancel", type: "button", text: "Cancel", hidden: !operator, disabled: true });
  const timeline = h("div", { id: "wf-timeline" });
  const history = h("div", { id: "wf-history" });
  // runs in flight (the caller's; an admin's sees everyone's): what a
  // reloaded page comes back to, with Confirm and Cancel
  const inflight = h("div", { id: "wf-inflight" });
  const opened = h("div", { id: "wf-history-run" });
  const detail = h("div", { id: "wf-detail", hidden: true }, title, description, form, h("div", { class: "row" }, planButton, runButton, cancel), error, planOut);
  panel.append(
    h("h2", { text: "Workflows" }),
    list,
    detail,
    h("h2", { text: "In flight" }),
    inflight,
    summary,
    pause,
    timeline,
    h("h2", { text: "History" }),
    history,
    opened,
  );

  let workflows = [];
  let selected = null;
  let inputs = new Map();
  let runId = null;
  let view = null;

  const select = (wf) => {
    selected = wf;
    for (const li of list.children) li.classList.toggle("selected", li.dataset.workflow === wf.name);
    title.textContent = wf.name;
    description.textContent = wf.description || "";
    inputs = new Map();
    replace(form, wf.params.map((p) => paramField(p, inputs)));
    replace(error);
    replace(planOut);
    detail.hidden = false;
  };

  // values as typed; an empty optional value is left out so its default applies
  const values = () => {
    const out = {};
    for (const [name, input] of inputs) if (input.value !== "") out[name] = input.value;
    return out;
  };

  planButton.addEventListener("click", async () => {
    if (!selected) return;
    replace(error);
    replace(planOut);
    try {
      const plan = await stub.request({ type: "workflow_plan", workflow: selected.name, params: values() }, ["workflow_plan"]);
      replace(planOut, h("ol", { class: "wf-plan" }, plan.steps.map((s) => h("li", { dataset: { step: s.index } }, stepHead(s), stepWhat(s)))));
    } catch (e) {
      replace(error, errorLine(e));
    }
  });

  runButton.addEventListener("click", async () => {
    if (!selected || runId) return;
    replace(error);
    replace(timeline);
    pause.hidden = true;
    summary.textContent = `${selected.name}: starting…`;
    panel.dataset.state = "starting";
    runButton.disabled = true;
    try {
      await stub.request({ type: "workflow_run", workflow: selected.name, params: values() }, ["workflow_started"], {
        // set before the frame reaches the "*" subscriber below, which
        // builds the timeline from it
        onFrame: (f) => {
          if (f.type === "workflow_started") runId = f.run_id;
        },
      });
    } catch (e) {
      replace(error, errorLine(e));
      summary.textContent = "";
      panel.dataset.state = "refused";
      runButton.disabled = false;
    }
  });

  cancel.addEventListener("click", () => {
    if (!runId) return;
    // the run's own frames (workflow_complete) report the end; only a
    // refusal answers this request
    stub.request({ type: "cancel", run_id: runId }, []).catch((e) => {
      if (e.code !== "disconnected") replace(error, errorLine(e));
    });
  });

  // Every frame of the current run, whichever request made this connection
  // its watcher.
  stub.on("*", (f) => {
    if (!runId || f.run_id !== runId) return;
    ctx.activity();
    switch (f.type) {
      case "workflow_state":
        // following a run this page did not start (or started before a
        // reload): the timeline from where it stands
        view = timelineView(f.steps);
        for (const s of f.steps) view.status(s.index, s.status);
        replace(timeline, view.el);
        summary.textContent = `run ${f.run_id} of ${f.workflow}: ${f.status}`;
        panel.dataset.state = f.status;
        cancel.disabled = !operator;
        if (f.status === "paused") {
          const at = f.steps.find((s) => s.status === "paused");
          showPause({ step: at?.index ?? f.current_step, message: at?.message || "" });
        }
        break;
      case "workflow_started":
        view = timelineView(f.steps);
        replace(timeline, view.el);
        summary.textContent = `run ${f.run_id} of ${f.workflow}: running`;
        panel.dataset.state = "running";
        cancel.disabled = false;
        break;
      case "workflow_paused":
        view?.status(f.step, "paused");
        showPause(f);
        panel.dataset.state = "paused";
        break;
      case "workflow_confirmed":
        pause.hidden = true;
        panel.dataset.state = "running";
        break;
      case "workflow_complete":
        finish(f);
        break;
      default:
        view?.frame(f);
    }
  });
  // a step's command held for review: told to every STUB connection of
  // the user, without a request_id (the run is not tied to one)
  stub.on("command_held", (f) => {
    if (runId && !f.request_id) view?.held(f);
  });
  stub.on("command_released", (f) => {
    if (runId && !f.request_id) view?.released(f);
  });
  stub.on("_dropped", () => {
    // after the reconnect, come back to a run still in flight
    followedOnce = false;
    if (!runId) return;
    summary.textContent = `the connection dropped: a run that took the lock itself goes on (see its history); one under your lock was cancelled`;
    endRun("dropped");
  });

  const showPause = (f) => {
    const confirm = h("button", { id: "wf-confirm", type: "button", text: "Confirm", hidden: !operator });
    const says = h("p", { id: "wf-pause-message", text: f.message });
    replace(pause, h("strong", { text: `Paused at step ${f.step}` }), says, confirm);
    pause.hidden = false;
    confirm.addEventListener("click", async () => {
      confirm.disabled = true;
      try {
        await stub.request({ type: "workflow_confirm", run_id: runId }, ["workflow_confirmed"]);
        pause.hidden = true;
      } catch (e) {
        confirm.disabled = false;
        pause.append(errorLine(e));
      }
    });
  };

  const finish = (f) => {
    // steps the run never reached read as the history has them
    view?.settle();
    const err = f.error ? ` · ${errorText(f.error)}` : "";
    const at = f.stopped_at !== null && f.stopped_at !== undefined ? ` at step ${f.stopped_at}` : "";
    summary.replaceChildren(h("span", { class: `wf-status ${f.status}`, id: "wf-final", text: `run ${f.run_id} of ${f.workflow}: ${f.status}${at}${err}` }));
    endRun(f.status);
  };

  const endRun = (state) => {
    runId = null;
    pause.hidden = true;
    cancel.disabled = true;
    runButton.disabled = false;
    panel.dataset.state = state;
    loadHistory();
    loadInFlight();
  };

  // Follows run `id` live: `workflow_watch` answers where it stands, and
  // its frames follow on this connection.
  const follow = async (id) => {
    if (runId === id) return;
    replace(error);
    const was = runId;
    runId = id;
    try {
      await stub.request({ type: "workflow_watch", run_id: id }, ["workflow_state"]);
    } catch (e) {
      runId = was;
      replace(error, errorLine(e));
      loadInFlight();
    }
  };
  const loadInFlight = () =>
    api("GET", `/api/v1/workflows/runs${query({ in_flight: true, limit: 50 })}`)
      .then((runs) => {
        const me = store.get("me");
        const mine = runs.filter((r) => ctx.hasRole("admin") || r.user === me?.user);
        replace(
          inflight,
          mine.length
            ? runsTable(mine, "wf-inflight-run", (r) =>
                h("button", { type: "button", class: "small follow-run", text: runId === r.run_id ? "Following" : "Follow", disabled: runId === r.run_id, on: { click: () => follow(r.run_id).then(loadInFlight) } }),
              )
            : h("p", { class: "muted", text: "No run of yours is in flight." }),
        );
        // a reloaded page comes back to the newest run it left
        if (!runId && mine.length && !followedOnce) {
          followedOnce = true;
          follow(mine[0].run_id).then(loadInFlight);
        }
      })
      .catch((e) => replace(inflight, errorLine(e)));
  let followedOnce = false;

  let offset = 0;
  const loadHistory = () =>
    api("GET", `/api/v1/workflows/runs${query({ limit: PAGE, offset })}`)
      .then((runs) => {
        const prev = h("button", { type: "button", class: "small", text: "Newer", disabled: offset === 0, on: { click: () => ((offset = Math.max(0, offset - PAGE)), loadHistory()) } });
        const next = h("button", { type: "button", class: "small", text: "Older", disabled: runs.length < PAGE, on: { click: () => ((offset += PAGE), loadHistory()) } });
        replace(
          history,
          runsTable(runs, "wf-run", (r) => h("button", { type: "button", class: "small open-run", text: "Open", on: { click: () => open(r.run_id) } })),
          h("div", { class: "row" }, prev, next),
        );
      })
      .catch((e) => replace(history, errorLine(e)));

  const open = async (id) => {
    try {
      const run = await api("GET", `/api/v1/workflows/runs/${encodeURIComponent(id)}`);
      const v = timelineView(run.steps.map((s) => ({ ...s.plan, index: s.index, name: s.name, kind: s.kind })));
      for (const s of run.steps) v.stored(s);
      const err = run.error ? ` · ${errorText(run.error)}` : "";
      replace(opened, h("h3", { id: "wf-opened-title", text: `run ${run.run_id} of ${run.workflow} (${run.status})${err}` }), v.el);
      // each command step's recording (a step retried has one per attempt);
      // without them the run still reads, so a refusal only says so
      api("GET", `/api/v1/recordings${query({ run_id: run.run_id, limit: 100 })}`)
        .then((recs) => v.linkRecordings(recs || [], ctx))
        .catch((e) => opened.append(h("p", { class: "muted small-text", text: `Recordings: ${errorText(e)}` })));
    } catch (e) {
      replace(opened, errorLine(e));
    }
    // what was opened is below the list: bring it into view
    opened.scrollIntoView({ block: "start" });
  };

  api("GET", "/api/v1/workflows")
    .then((all) => {
      workflows = all;
      replace(
        list,
        workflows.length
          ? workflows.map((wf) =>
              h(
                "li",
                { dataset: { workflow: wf.name } },
                h("button", { type: "button", class: "wf-pick", text: wf.name, on: { click: () => select(wf) } }),
                h("span", { class: "muted", text: ` ${wf.description || ""}` }),
              ),
            )
          : h("li", { class: "muted", text: "No workflows are configured ([[workflows]] in the servers file)." }),
      );
      if (workflows.length) select(workflows[0]);
    })
    .catch((e) => replace(list, errorLine(e)));
  panel.addEventListener("shown", loadHistory);
  panel.addEventListener("shown", loadInFlight);
  stub.on("welcome", loadInFlight);
}

/**
 * A table of stored runs (`GET /api/v1/workflows/runs`), a row each with
 * class `rowClass` and the control `action(run)` makes in its last cell.
 */
function runsTable(runs, rowClass, action) {
  return h(
    "table",
    { class: "grid" },
    h("tr", {}, ["started", "workflow", "user", "status", ""].map((t) => h("th", { text: t }))),
    runs.map((r) =>
      h(
        "tr",
        { class: rowClass, dataset: { run: r.run_id, status: r.status } },
        h("td", { text: new Date(r.started_at).toLocaleString() }),
        h("td", { text: r.workflow }),
        h("td", { text: r.user || r.actor }),
        h("td", { class: "status", text: r.status }),
        h("td", { class: "actions" }, action(r)),
      ),
    ),
  );
}

/** One parameter's input: its type's control, default filled, required marked. */
function paramField(p, inputs) {
  const id = `wf-param-${p.name}`;
  let input;
  if (p.type === "enum") {
    input = h("select", { id, name: p.name, required: p.required }, (p.required ? [""] : []).concat(p.values || []).map((v) => h("option", { value: v, text: v })));
  } else if (p.type === "int") {
    input = h("input", { id, name: p.name, type: "number", step: 1, min: p.min ?? undefined, max: p.max ?? undefined, required: p.required, class: "num" });
  } else {
    input = h("input", { id, name: p.name, type: "text", pattern: p.pattern || undefined, required: p.required, spellcheck: false, class: "mono" });
  }
  if (p.default !== null && p.default !== undefined) input.value = p.default;
  inputs.set(p.name, input);
  const hints = [];
  if (p.description) hints.push(p.description);
  if (p.pattern) hints.push(`pattern: ${p.pattern}`);
  if (p.type === "int" && (p.min !== null || p.max !== null)) hints.push(`${p.min ?? "…"} to ${p.max ?? "…"}`);
  const label = field(`${p.name}${p.required ? " *" : ""}`, input);
  if (p.required) label.title = "required";
  label.append(h("small", { class: "muted wf-hint", text: hints.join(" · ") }));
  return label;
}

/** A step's duration; under a second in milliseconds (most steps are short). */
function took(ms) {
  if (ms === null || ms === undefined) return "";
  return ms < 1000 ? `${ms} ms` : duration(ms);
}

/** "0 unload (command)" */
function stepHead(s) {
  return h("span", { class: "wf-step-head" }, h("strong", { text: `${s.index} ${s.name}` }), h("span", { class: "muted", text: ` (${s.kind})` }));
}

/** What a planned step does, as text: the command exactly as the daemon resolved it. */
function stepWhat(s) {
  if (s.kind === "command") return h("div", {}, h("span", { class: "muted", text: `on ${s.server}: ` }), h("code", { class: "wf-command", text: s.command }));
  if (s.kind === "pause") return h("div", { class: "wf-message", text: s.message });
  if (s.kind === "transfer") return h("div", { class: "muted", text: `transfer ${s.transfer}: ${s.source_server}:${s.source_glob} → ${s.destination_server}:${s.destination_dir}` });
  if (s.kind === "batch") return h("div", {}, h("span", { class: "muted", text: `on ${(s.servers || []).join(", ")}: ` }), (s.commands || []).map((c) => h("code", { class: "wf-command", text: c })));
  return null;
}

/** The step timeline: a row per step, fed by live frames or stored rows. */
function timelineView(steps) {
  const rows = new Map();
  const el = h("ol", { class: "wf-timeline" });
  for (const s of steps) {
    const status = h("span", { class: "status", text: "pending" });
    const took = h("span", { class: "muted took" });
    const extra = h("div", { class: "wf-extra" });
    const out = h("pre", { class: "out", hidden: true });
    const err = h("div");
    const rec = h("span", { class: "wf-rec" });
    const row = h("li", { class: "wf-step pending", dataset: { step: s.index, status: "pending" } }, h("div", { class: "row" }, stepHead(s), status, took, rec), stepWhat(s), extra, out, err);
    rows.set(s.index, { step: s, row, status, took, extra, out, err, rec, text: "", started: null, progress: null, results: null, heldId: null });
    el.append(row);
  }
  const setStatus = (i, st) => {
    const r = rows.get(i);
    if (!r) return;
    r.row.className = `wf-step ${st}`;
    r.row.dataset.status = st;
    r.status.textContent = st;
  };
  const addOutput = (r, data) => {
    // only the tail stays in the page, like the stored 64 KiB
    r.text += data;
    if (r.text.length > OUTPUT_CAP) r.text = r.text.slice(-OUTPUT_CAP);
    r.out.textContent = r.text;
    r.out.hidden = false;
  };
  return {
    el,
    status: setStatus,
    /** A live frame of the run. */
    frame(f) {
      const r = rows.get(f.step);
      if (!r) return;
      switch (f.type) {
        case "workflow_step_started":
          r.started = Date.now();
          setStatus(f.step, "running");
          break;
        case "ssh_output":
          addOutput(r, f.data);
          break;
        case "ssh_command_complete":
          r.extra.textContent = `ended: ${f.reason}${f.exit_status !== null && f.exit_status !== undefined ? `, exit status ${f.exit_status}` : ""}`;
          break;
        case "scp_progress":
          if (!r.progress) {
            r.progress = { bar: h("progress", { max: 1, value: 0 }), text: h("span", { class: "muted" }) };
            replace(r.extra, r.progress.bar, " ", r.progress.text);
          }
          r.progress.bar.max = Math.max(1, f.bytes_total);
          r.progress.bar.value = f.bytes_done;
          r.progress.text.textContent = `files ${f.files_done}/${f.files_total} · ${bytes(f.bytes_done)} / ${bytes(f.bytes_total)}`;
          break;
        case "scp_complete":
          replace(r.extra, `${f.files.length} files · ${bytes(f.bytes)} in ${duration(f.duration_ms)}`);
          break;
        case "batch_command_result":
          if (!r.results) {
            r.results = h("tbody");
            replace(r.extra, h("table", { class: "grid" }, h("tr", {}, ["server", "command", "status", "exit", "output"].map((t) => h("th", { text: t }))), r.results));
          }
          r.results.append(
            h(
              "tr",
              { class: `result ${f.status}` },
              h("td", { text: f.server }),
              h("td", { class: "mono", text: f.command }),
              h("td", { text: f.status }),
              h("td", { text: f.exit_status ?? "" }),
              h("td", {}, h("pre", { class: "out", text: `${f.stdout || ""}${f.stderr || ""}${f.truncated ? "\n(truncated)" : ""}` })),
            ),
          );
          break;
        case "workflow_step_finished":
          setStatus(f.step, f.status);
          r.took.textContent = took(f.duration_ms);
          replace(r.err, f.error ? errorLine(f.error) : null);
          break;
        default:
      }
    },
    /** `command_held`: the running step with this command waits for an approver. */
    held(f) {
      for (const r of rows.values()) {
        const commands = r.step.command !== undefined ? [r.step.command] : r.step.commands || [];
        if (r.row.dataset.status !== "running" || !commands.includes(f.command)) continue;
        r.heldId = f.held_id;
        r.row.dataset.held = f.held_id;
        replace(r.err, h("p", { class: "held-why", text: `${f.server}: waiting for approval (${heldWhy(f)}); an approver answers it under Reviews.` }));
        return;
      }
    },
    /** `command_released`: approved, the step's command runs. */
    released(f) {
      for (const r of rows.values()) {
        if (r.heldId !== f.held_id) continue;
        r.heldId = null;
        delete r.row.dataset.held;
        replace(r.err, h("p", { class: "ok", text: "Approved: running." }));
      }
    },
    /** The run ended: steps it never reached are `skipped`, as in the history. */
    settle() {
      for (const [i, r] of rows) if (r.row.dataset.status === "pending") setStatus(i, "skipped");
    },
    /** The run's recordings (GET /api/v1/recordings?run_id=): a link on each one's step, oldest first. */
    linkRecordings(recs, ctx) {
      const byStep = new Map();
      for (const r of [...recs].reverse()) {
        if (r.step === null || r.step === undefined || !rows.has(r.step)) continue;
        if (!byStep.has(r.step)) byStep.set(r.step, []);
        byStep.get(r.step).push(r);
      }
      for (const [i, list] of byStep) {
        replace(
          rows.get(i).rec,
          list.map((r, n) => recordings.link(ctx, r.id, list.length > 1 ? `Recording ${n + 1}` : "Recording")),
        );
      }
    },
    /** A stored step (GET /api/v1/workflows/runs/{id}). */
    stored(s) {
      const r = rows.get(s.index);
      if (!r) return;
      setStatus(s.index, s.status);
      r.took.textContent = took(s.duration_ms);
      const notes = [];
      if (s.exit_status !== null && s.exit_status !== undefined) notes.push(`exit status ${s.exit_status}`);
      if (s.confirmed_by) notes.push(`confirmed by ${s.confirmed_by}`);
      r.extra.textContent = notes.join(" · ");
      if (s.output_tail) addOutput(r, s.output_tail);
      replace(r.err, s.error ? errorLine(s.error) : null);
    },
  };
}
