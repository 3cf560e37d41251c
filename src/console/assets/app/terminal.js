// xterm.js panes for every tab that shows output (the Terminal tab's
// shells, the Files tab's scripts), and the lock holder's terminal: the
// seed's STUB terminal, xterm.js attached to `ssh_command` on /ws/v1/stub,
// which runs one command at a time under the session lock. It is one view
// of the Terminal tab (`shells.js` holds the tab and the operator's own
// shells). Output frames are written as they come (xterm batches its
// rendering; the daemon never splits a character across frames). Typing
// goes to the program as `ssh_input` (Ctrl-C included); the pane's size
// follows the window through the fit add-on and is sent as `resize`.
// What the command rules say (a refused command or typed line, a command
// waiting for approval, approved, rejected) is written into the terminal
// itself, on a coloured line of its own (`policy.js`).

import { Terminal } from "../vendor/xterm/xterm.mjs";
import { FitAddon } from "../vendor/addon-fit/addon-fit.mjs";
import { SearchAddon } from "../vendor/addon-search/addon-search.mjs";
import { WebLinksAddon } from "../vendor/addon-web-links/addon-web-links.mjs";
import { h, errorText, duration } from "./dom.js";
import { serverSelect } from "./forms.js";
import * as work from "./work.js";
import * as store from "./store.js";
import { terminalTheme } from "./theme.js";
import * as lockState from "./lock.js";
import { heldWhy, writeNotice } from "./policy.js";

/**
 * Whether a key belongs to the console rather than the program: Ctrl+Shift+T
 * (a new terminal) and Ctrl+Shift+W (close it). xterm.js would otherwise
 * send them to the shell as Ctrl-T and Ctrl-W.
 */
export function isConsoleKey(ev) {
  return ev.ctrlKey && ev.shiftKey && !ev.altKey && (ev.code === "KeyT" || ev.code === "KeyW");
}

/**
 * A terminal pane wired to nothing yet: the xterm, its add-ons, its
 * element, `resize` (fit to the element now) and `dispose` (when the pane
 * goes away for good).
 */
export function makeTerminal(options = {}) {
  const term = new Terminal({
    fontFamily: '"DejaVu Sans Mono", "Noto Sans Mono CJK KR", "Noto Sans CJK KR", monospace',
    fontSize: 14,
    // A 14 px cell of DejaVu Sans Mono is measured 16 px high, and the
    // DOM renderer clips each row to that: the underscore and the lowest
    // pixels of descenders fell outside it. A taller line gives every
    // glyph of the bundled fonts (Latin, box drawing, Korean) its room.
    lineHeight: 1.2,
    scrollback: 10000,
    cursorBlink: true,
    theme: terminalTheme(),
    ...options,
  });
  const unwatchTheme = store.watch("theme", () => (term.options.theme = terminalTheme()));
  const fit = new FitAddon();
  const search = new SearchAddon();
  term.loadAddon(fit);
  term.loadAddon(search);
  // links open in a new tab, never the console's own
  term.loadAddon(new WebLinksAddon((ev, uri) => window.open(uri, "_blank", "noopener,noreferrer")));
  // Ctrl+Shift+C / Ctrl+Shift+V copy and paste (plain Ctrl-C is the program's)
  term.attachCustomKeyEventHandler((ev) => {
    // false: xterm leaves the key alone and the page's own handler has it
    if (isConsoleKey(ev)) return false;
    if (ev.type !== "keydown" || !ev.ctrlKey || !ev.shiftKey) return true;
    if (ev.code === "KeyC" && term.hasSelection()) {
      navigator.clipboard?.writeText(term.getSelection());
      return false;
    }
    if (ev.code === "KeyV") {
      navigator.clipboard?.readText().then((t) => term.paste(t));
      return false;
    }
    return true;
  });
  const el = h("div", { class: "term" });
  let opened = false;
  const resize = () => {
    if (!el.isConnected || el.offsetParent === null) return;
    if (!opened) {
      term.open(el);
      opened = true;
    }
    fit.fit();
  };
  const observer = new ResizeObserver(() => requestAnimationFrame(resize));
  observer.observe(el);
  const dispose = () => {
    observer.disconnect();
    unwatchTheme();
    term.dispose();
  };
  return { term, fit, search, el, resize, dispose };
}

/** The most handed to xterm.js in one write: it parses one write whole. */
const WRITE_SLICE = 16 * 1024;

/**
 * Writes `data` to `term` in slices: xterm.js yields to the page between
 * writes (12 ms at a time) but parses each write whole, so one 500 KB
 * frame written at once would hold the main thread for a few hundred ms.
 * A slice never ends between the two halves of a surrogate pair.
 */
export function writeSliced(term, data) {
  let at = 0;
  while (at < data.length) {
    let end = Math.min(data.length, at + WRITE_SLICE);
    const last = data.charCodeAt(end - 1);
    if (end < data.length && last >= 0xd800 && last <= 0xdbff) end -= 1;
    term.write(data.slice(at, end));
    at = end;
  }
}

/**
 * A search box for a terminal's scrollback (Enter: next, Shift+Enter:
 * previous). It must never sit in a form and its Enter never goes further:
 * an Enter that reached a command form would run the command again.
 */
export function searchBox(search) {
  return h("input", {
    type: "search",
    class: "term-search",
    placeholder: "Search output",
    "aria-label": "Search output",
    on: {
      keydown: (ev) => {
        if (ev.key !== "Enter") return;
        ev.preventDefault();
        ev.stopPropagation();
        if (ev.shiftKey) search.findPrevious(ev.target.value);
        else search.findNext(ev.target.value);
      },
    },
  });
}

/**
 * Mounts the lock holder's terminal in `panel` (its own element in the
 * Terminal tab): its state is on `panel.dataset` (`state`, `runs`,
 * `ended`, `reason`, `exit`) for styles and tests.
 */
export function mountStub(panel, ctx) {
  const stub = ctx.stub;
  const { term, search, el, resize } = makeTerminal();
  const server = serverSelect("term-server");
  const command = h("input", { id: "term-command", class: "grow", placeholder: "command (empty: login shell)", "aria-label": "Command", spellcheck: false });
  const stop = h("input", { id: "term-stop", placeholder: "finish when output contains", "aria-label": "Finish when the output contains", size: 22 });
  const timeout = h("input", { id: "term-timeout", type: "number", min: "0.1", step: "any", placeholder: "timeout s", "aria-label": "Timeout in seconds", class: "num" });
  const run = h("button", { id: "term-run", type: "submit", text: "Run" });
  const cancel = h("button", { id: "term-cancel", type: "button", text: "Cancel", disabled: true });
  const status = h("div", { id: "term-status", class: "status-line", role: "status" });
  // the search box is beside the form, not in it: Enter there searches
  const form = h("form", { class: "toolbar grow" }, server, command, stop, timeout, run, cancel);
  panel.append(h("div", { class: "row toolbar-row" }, form, searchBox(search)), status, el);
  panel.classList.add("terminal-panel");
  panel.addEventListener("shown", () => requestAnimationFrame(resize));

  // one command at a time on this connection; `inputId` answers its
  // keystrokes (a typed line a rule refuses is refused in reply to its
  // Enter), `held` is set while it waits for approval
  let running = null; // {id, inputId, server, command, started, done, held}
  // the run ends here whatever ended it, and with it its entry in the
  // page's running work
  const finishRun = () => {
    running?.done();
    running = null;
    delete panel.dataset.held;
  };
  // runs started and ended, so a reader (or a test) can tell this run's
  // end from the previous one's
  let runs = 0;
  const setState = (state, text) => {
    panel.dataset.state = state;
    if (state === "ended") panel.dataset.ended = String(runs);
    status.textContent = text;
    cancel.disabled = state !== "running";
    enableRun();
  };
  // a viewer watches (the daemon would refuse, 10003); an operator runs
  // once this page holds the lock, and the button says why until then
  const enableRun = () => {
    const mine = lockState.isMine();
    run.disabled = panel.dataset.state === "running" || !ctx.hasRole("operator") || !mine;
    run.title = !ctx.hasRole("operator") ? "Viewers watch; running needs an operator" : mine ? "" : lockState.NEEDS_LOCK;
  };
  store.watch("lock", enableRun);
  store.watch("connection_id", enableRun);
  setState("idle", "Take the lock, pick a server, run a command (empty: a login shell).");
  setInterval(() => {
    if (!running) return;
    const what = `${running.server}: ${running.command || "login shell"}`;
    // held, the command is in its field: the line says why it waits
    status.textContent = running.held
      ? `${running.server}: waiting for approval (${heldWhy(running.held)}) for ${duration(Date.now() - running.held.since)}`
      : `${what} · running ${duration(Date.now() - running.started)}`;
  }, 1000);

  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    if (running) return;
    const frame = { type: "ssh_command", server: server.value, command: command.value };
    if (stop.value) frame.stop_phrase = stop.value;
    if (timeout.value) frame.timeout_s = Number(timeout.value);
    // the PTY gets the pane's size before the command starts
    stub.send({ type: "resize", cols: term.cols, rows: term.rows });
    const id = stub.nextId();
    const done = work.begin(`the command ${frame.command ? `"${frame.command}"` : "(login shell)"} on ${frame.server}`, { underLock: true });
    running = { id, inputId: `${id}-input`, server: frame.server, command: frame.command, started: Date.now(), done, held: null };
    runs += 1;
    panel.dataset.runs = String(runs);
    term.reset();
    setState("running", `${frame.server}: starting…`);
    if (!stub.send({ ...frame, request_id: id })) {
      finishRun();
      setState("ended", "not connected to the daemon");
    }
    term.focus();
  });
  cancel.addEventListener("click", () => stub.send({ type: "cancel" }));
  term.onData((data) => {
    if (running) stub.send({ type: "ssh_input", data, request_id: running.inputId });
  });
  term.onResize(({ cols, rows }) => stub.send({ type: "resize", cols, rows }));

  let lastError = null;
  stub.on("ssh_command_started", (f) => {
    if (running && f.request_id === running.id) status.textContent = `${f.server}: ${running.command || "login shell"} · running`;
  });
  // a workflow's command steps (frames with a run_id) belong to the Workflows tab
  stub.on("ssh_output", (f) => {
    if (f.run_id) return;
    writeSliced(term, f.data);
    ctx.activity();
  });
  // a command held for review: it waits (keeping the lock) until an
  // approver answers; Cancel withdraws it
  stub.on("command_held", (f) => {
    if (!running || f.request_id !== running.id) return;
    running.held = { ...f, since: Date.now() };
    panel.dataset.held = f.held_id;
    writeNotice(term, `Waiting for approval (${heldWhy(f)}). An approver answers it under Reviews; Cancel withdraws it.`, "held");
    status.textContent = `${running.server}: waiting for approval (${heldWhy(f)})`;
    ctx.activity();
  });
  stub.on("command_released", (f) => {
    if (!running || f.request_id !== running.id) return;
    running.held = null;
    delete panel.dataset.held;
    writeNotice(term, "Approved: running.", "released");
    status.textContent = `${running.server}: ${running.command} · approved, running`;
    ctx.activity();
  });
  stub.on("error", (f) => {
    if (!running) return;
    // a keystroke refused: a line a rule refuses at the prompt (the
    // daemon killed the line instead of its Enter: the prompt comes back)
    if (f.request_id === running.inputId) {
      writeNotice(term, errorText(f.error), "refused");
      ctx.activity();
      return;
    }
    if (f.request_id !== running.id) return;
    lastError = f.error;
    writeNotice(term, errorText(f.error), "refused");
    // connection, login and timeout errors (20000-22999), and a held
    // command rejected or left unanswered (55001, 55002), precede the
    // completion frame; any other (no lock 50008, busy, bad request, a
    // rule's refusal 55000) is a refusal that ends the attempt without one
    const code = Number(f.error.code);
    const completes = (code >= 20000 && code < 23000) || code === 55001 || code === 55002;
    if (running.held) {
      running.held = null;
      delete panel.dataset.held;
    }
    if (!completes) {
      finishRun();
      setState("ended", `refused: ${errorText(f.error)}`);
    }
  });
  stub.on("ssh_command_complete", (f) => {
    if (!running || f.run_id) return;
    const took = duration(Date.now() - running.started);
    finishRun();
    const exit = f.exit_status !== undefined && f.exit_status !== null ? `, exit status ${f.exit_status}` : "";
    const err = lastError && f.reason !== "exit" ? ` (${errorText(lastError)})` : "";
    lastError = null;
    setState("ended", `${f.server}: ended: ${f.reason}${exit} after ${took}${err}`);
    panel.dataset.reason = f.reason;
    panel.dataset.exit = f.exit_status ?? "";
    ctx.activity();
  });
  stub.on("_dropped", () => {
    if (!running) return;
    finishRun();
    setState("ended", "the connection dropped: the command was stopped and the lock released");
  });
}
