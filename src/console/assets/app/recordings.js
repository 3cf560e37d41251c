// The Recordings tab: every PTY's recording (asciicast v2), filtered by
// user, server, time and text in the command, newest first, a page at a
// time; and a player for one of them: the asciinema-player (vendored) with
// its own bar for seeking, a speed pick, and search in what the session
// printed, each match listed with its time and a click seeking there.
//
// A recording has an address, `#recordings/<id>` (its id is the PTY's
// id): the audit view and a workflow run's steps link to it, and opening
// one puts it in the address bar so it can be passed on.
//
// The page's main thread never parses a cast: the player runs its parser
// and clock in its own Web Worker (the player's split build), and search
// runs in another (`recording-search.js`), which reads at most 32 MB.

import { h, replace, bytes, duration, errorLine, errorText, confirmDialog, notify } from "./dom.js";
import { api, query, ApiError } from "./api.js";
import { field } from "./forms.js";
import * as store from "./store.js";

/** Recordings per page. */
const PAGE = 25;
/** The speeds offered; 1 is where a player starts. */
const SPEEDS = [0.5, 1, 2, 4];
const VENDOR = "vendor/asciinema-player";
/** The terminal font of the console's own terminals (terminal.js). */
const FONT = '"DejaVu Sans Mono", "Noto Sans Mono CJK KR", "Noto Sans CJK KR", monospace';
/** The address of a recording: `#recordings/<id>`. */
const ROUTE = /^#recordings\/(.+)$/;

/** Where recording `id`'s cast is streamed from. */
function castUrl(id) {
  return new URL(`/api/v1/recordings/${encodeURIComponent(id)}`, location.href).href;
}

/** The id a `#recordings/<id>` address names, or null. */
export function fromHash(hash) {
  const m = ROUTE.exec(hash || "");
  if (!m) return null;
  try {
    return decodeURIComponent(m[1]);
  } catch {
    return null;
  }
}

/**
 * Shows recording `id` in the Recordings tab, from anywhere in the page,
 * and puts its address in the address bar.
 */
export function show(ctx, id) {
  const hash = `#recordings/${encodeURIComponent(id)}`;
  if (location.hash !== hash) history.pushState(null, "", hash);
  // a new object each time: the same recording asked for twice opens twice
  store.set("recording", { id });
  ctx.showTab("recordings");
}

/** A link to recording `id` (a real address, opened in place on a click). */
export function link(ctx, id, text = "Recording") {
  return h("a", {
    href: `#recordings/${encodeURIComponent(id)}`,
    class: "rec-link",
    dataset: { recording: id },
    text,
    on: {
      click: (ev) => {
        ev.preventDefault();
        show(ctx, id);
      },
    },
  });
}

/** `el` (a script or a style sheet) added to the page, once it has loaded. */
function loaded(el) {
  return new Promise((resolve, reject) => {
    el.addEventListener("load", resolve);
    el.addEventListener("error", () => reject(new Error("the player could not be loaded")));
    document.head.append(el);
  });
}

/**
 * The player's script and styles, loaded on first use (the first visit
 * does not pay for them). Both must be in before a player is made: it
 * reads its theme's colours from the style sheet once, as it starts, and
 * a player made first draws every colour black for good.
 */
let library = null;
function loadPlayer() {
  if (!library) {
    library = Promise.all([
      loaded(h("link", { rel: "stylesheet", href: `${VENDOR}/asciinema-player.css` })),
      loaded(h("script", { src: `${VENDOR}/asciinema-player-ui.min.js` })),
    ]).then(
      () => window.AsciinemaPlayer,
      (e) => {
        library = null;
        throw e;
      },
    );
  }
  return library;
}

/**
 * Runs `make` and returns what it made with the Web Worker it started.
 * The player's split build starts a Worker in `create` and never ends it:
 * `dispose()` leaves it running, holding the parsed recording. It is
 * caught here as it is made (create is synchronous), so a closed player
 * (or one replaced by a new speed) ends its worker too.
 */
function catchingWorker(make) {
  const Real = window.Worker;
  let worker = null;
  window.Worker = class extends Real {
    constructor(...args) {
      super(...args);
      worker = this;
    }
  };
  try {
    return { value: make(), worker };
  } finally {
    window.Worker = Real;
  }
}

/** "0:07.3", "12:01.0": where in a recording. */
export function clock(seconds) {
  const s = Math.max(0, seconds);
  const m = Math.floor(s / 60);
  return `${m}:${(s - m * 60).toFixed(1).padStart(4, "0")}`;
}

/** How a recording ended, in words: "exit status 0", "cancelled", "still recording". */
function outcome(r) {
  if (r.state === "recording") return "still recording";
  const parts = [];
  // a failed recording says why (a full disk): the PTY went on unrecorded
  if (r.state === "failed" && r.error) parts.push(`failed: ${r.error}`);
  else if (r.state !== "ended") parts.push(r.state);
  if (r.exit_status !== null && r.exit_status !== undefined) parts.push(`exit status ${r.exit_status}`);
  else if (r.reason) parts.push(r.reason);
  return parts.join(", ") || r.state;
}

/** What ran: the command, or "interactive shell" for a login shell. */
function what(r) {
  return r.command ? r.command : "interactive shell";
}

/** A value of an `<input type=datetime-local>` as RFC 3339 (UTC), or "". */
function rfc3339(local) {
  if (!local) return "";
  const t = new Date(local);
  return Number.isNaN(t.getTime()) ? "" : t.toISOString();
}

/** Mounts the tab. */
export function mount(panel, ctx) {
  const admin = ctx.hasRole("admin");
  panel.classList.add("recordings-panel");

  /** The recording in the player: {id, row (from the list, when there), header}. */
  let opened = null;
  let player = null;
  /** The player's Web Worker, ended with it (see catchingWorker). */
  let playerThread = null;
  let speed = 1;
  /** The search worker of the opened recording. */
  let search = null;
  let searchSeq = 0;
  /** Bumps on every open and close: answers about an earlier one are dropped. */
  let generation = 0;

  // ---- filters and the list
  const user = h("input", { id: "rec-user", placeholder: "any", size: 12, "aria-label": "User", spellcheck: false });
  const server = h("select", { id: "rec-server", "aria-label": "Server" });
  store.watch("servers", (names) => {
    const was = server.value;
    replace(server, h("option", { value: "", text: "any" }), (names || []).map((n) => h("option", { value: n, text: n })));
    server.value = (names || []).includes(was) ? was : "";
  });
  const since = h("input", { id: "rec-since", type: "datetime-local", "aria-label": "Since" });
  const until = h("input", { id: "rec-until", type: "datetime-local", "aria-label": "Until" });
  const text = h("input", { id: "rec-q", type: "search", placeholder: "text in the command", "aria-label": "Text in the command", spellcheck: false });
  const showButton = h("button", { id: "rec-show", type: "submit", text: "Show" });
  const filters = h(
    "form",
    { id: "rec-filters", class: "toolbar" },
    // only admins see other people's recordings: a user filter is theirs
    admin ? field("User", user) : null,
    field("Server", server),
    field("Since", since),
    field("Until", until),
    field("Command", text),
    showButton,
  );
  const table = h("table", { id: "rec-table", class: "grid rec-table" });
  const newer = h("button", { id: "rec-newer", type: "button", class: "small", text: "Newer", disabled: true });
  const older = h("button", { id: "rec-older", type: "button", class: "small", text: "Older", disabled: true });
  const pageText = h("span", { id: "rec-page", class: "muted small-text" });
  const listError = h("div", { id: "rec-list-error" });

  // ---- the player
  const title = h("h3", { id: "rec-title" });
  const facts = h("p", { id: "rec-facts", class: "muted small-text" });
  const note = h("p", { id: "rec-note", class: "small-text", role: "status" });
  const speedButtons = SPEEDS.map((s) =>
    h("button", {
      type: "button",
      class: "small rec-speed",
      dataset: { speed: s },
      text: `${s}×`,
      "aria-pressed": String(s === 1),
      on: { click: () => setSpeed(s) },
    }),
  );
  const speeds = h("span", { id: "rec-speeds", class: "rec-speeds", role: "group", "aria-label": "Playback speed" }, h("span", { class: "muted small-text", text: "Speed" }), speedButtons);
  const remove = h("button", { id: "rec-delete", type: "button", class: "small danger", text: "Delete", hidden: !admin });
  const close = h("button", { id: "rec-close", type: "button", class: "small", text: "Close" });
  const box = h("div", { id: "rec-player", class: "rec-player" });
  const needle = h("input", { id: "rec-search", type: "search", class: "grow", placeholder: "find in the output", "aria-label": "Find in the output", spellcheck: false });
  const findButton = h("button", { id: "rec-find", type: "submit", text: "Find" });
  const found = h("span", { id: "rec-found", class: "muted small-text", role: "status" });
  const searchForm = h("form", { id: "rec-search-form", class: "toolbar" }, needle, findButton, found);
  const matches = h("ol", { id: "rec-matches", class: "rec-matches" });
  const viewError = h("div", { id: "rec-error" });
  const viewer = h(
    "section",
    { id: "rec-view", class: "rec-view", hidden: true, "aria-labelledby": "rec-title" },
    h("div", { class: "rec-head" }, title, h("div", { class: "spacer" }), speeds, remove, close),
    facts,
    note,
    viewError,
    box,
    searchForm,
    matches,
  );

  panel.append(h("h2", { text: "Recordings" }), viewer, filters, listError, table, h("div", { class: "row" }, newer, older, pageText));

  // ---- the list
  let offset = 0;
  let rows = [];
  // the answer to the latest ask wins (a tab shown while a filter's answer
  // is on its way asks again)
  let asked = 0;
  const load = async () => {
    const mine = ++asked;
    panel.dataset.list = "loading";
    try {
      const got = await api(
        "GET",
        `/api/v1/recordings${query({
          user: admin ? user.value.trim() : "",
          server: server.value,
          since: rfc3339(since.value),
          until: rfc3339(until.value),
          q: text.value.trim(),
          limit: PAGE,
          offset,
        })}`,
      );
      if (mine !== asked) return;
      rows = got || [];
      replace(listError);
      // a recording opened from a link is named better once its row is known
      const row = opened && !opened.row ? rows.find((r) => r.id === opened.id) : null;
      if (row) describe(row);
      renderList();
      newer.disabled = offset === 0;
      older.disabled = rows.length < PAGE;
      pageText.textContent = rows.length ? `${offset + 1}–${offset + rows.length}` : "";
      panel.dataset.list = "loaded";
    } catch (e) {
      if (mine !== asked) return;
      replace(listError, errorLine(e));
      panel.dataset.list = "failed";
    }
  };
  const renderList = () => {
    const now = Date.now();
    replace(
      table,
      h("tr", {}, ["when", "user", "server", "kind", "command", "duration", "size", "state", ""].map((t) => h("th", { text: t }))),
      rows.length
        ? rows.map((r) => {
            const end = r.ended_at ? Date.parse(r.ended_at) : now;
            const play = h("button", { type: "button", class: "small rec-play", text: "Play", "aria-label": `Play the recording of ${what(r)} on ${r.server}`, on: { click: () => show(ctx, r.id) } });
            return h(
              "tr",
              { class: `rec-row ${r.state}${opened?.id === r.id ? " selected" : ""}`, dataset: { id: r.id, state: r.state } },
              h("td", { class: "nowrap", text: new Date(r.started_at).toLocaleString() }),
              h("td", { text: r.user }),
              h("td", { text: r.server }),
              h("td", { text: r.kind.replace("_", " ") }),
              h("td", { class: r.command ? "mono rec-command" : "muted rec-command", text: what(r) }),
              h("td", { class: "nowrap", text: duration(end - Date.parse(r.started_at)) }),
              h("td", { class: "nowrap", text: bytes(r.bytes) }),
              h("td", { class: `rec-state ${r.state}`, text: outcome(r) }),
              h("td", { class: "actions" }, play),
            );
          })
        : h("tr", {}, h("td", { colspan: 9, class: "muted", text: offset ? "No older recordings." : "No recordings match." })),
    );
  };
  filters.addEventListener("submit", (ev) => {
    ev.preventDefault();
    offset = 0;
    load();
  });
  newer.addEventListener("click", () => {
    offset = Math.max(0, offset - PAGE);
    load();
  });
  older.addEventListener("click", () => {
    offset += PAGE;
    load();
  });
  panel.addEventListener("shown", load);

  // ---- the player
  const setState = (state) => (viewer.dataset.state = state);

  const stopPlayer = () => {
    if (player) {
      try {
        player.dispose();
      } catch {
        // a player that never got going has nothing to let go of
      }
    }
    player = null;
    playerThread?.terminate();
    playerThread = null;
    replace(box);
  };

  // A player for the opened recording at `speed`, at `at` seconds,
  // playing or not. The player has no speed setter: a new speed is a new
  // player where the old one stood.
  const startPlayer = async (at, play) => {
    const gen = generation;
    let lib;
    try {
      lib = await loadPlayer();
    } catch (e) {
      replace(viewError, errorLine(e));
      return;
    }
    if (gen !== generation) return;
    stopPlayer();
    const url = castUrl(opened.id);
    const worker = new URL(`${VENDOR}/asciinema-player-worker.min.js`, document.baseURI).href;
    const { value: p, worker: thread } = catchingWorker(() =>
      lib.create({ url }, box, worker, {
        preload: true,
        autoPlay: play && at === 0,
        speed,
        controls: true,
        fit: "both",
        terminalFontFamily: FONT,
      }),
    );
    player = p;
    playerThread = thread;
    setState("loading");
    p.addEventListener("playing", () => player === p && setState("playing"));
    p.addEventListener("pause", () => player === p && setState("paused"));
    p.addEventListener("ended", () => player === p && setState("ended"));
    // the length as played (a running recording's: what is there so far)
    Promise.resolve(p.getDuration())
      .then((d) => {
        if (player !== p || !opened || typeof d !== "number") return;
        opened.duration = d;
        viewer.dataset.duration = String(d);
        facts.textContent = factsOf(opened.row, opened.header);
      })
      .catch(() => {});
    if (at > 0) {
      await p.seek(at);
      if (player !== p) return;
      if (play) await p.play();
      else setState("paused");
    } else if (!play) {
      setState("paused");
    }
    // the speed of the player in place (a new speed is a new player)
    viewer.dataset.speed = String(speed);
  };

  const setSpeed = async (s) => {
    if (s === speed) return;
    speed = s;
    for (const b of speedButtons) b.setAttribute("aria-pressed", String(Number(b.dataset.speed) === s));
    if (!player) return;
    const was = player;
    let at = 0;
    try {
      at = await was.getCurrentTime();
    } catch {
      at = 0;
    }
    if (was !== player) return;
    // an ended recording stays at its end; its play button starts it over
    const playing = viewer.dataset.state === "playing";
    startPlayer(at || 0, playing);
  };

  const factsOf = (r, header) => {
    const parts = [];
    const started = r?.started_at ? new Date(r.started_at) : header?.timestamp ? new Date(header.timestamp * 1000) : null;
    if (started) parts.push(started.toLocaleString());
    if (r) {
      parts.push(r.kind.replace("_", " "));
      if (r.run_id) parts.push(`workflow run ${r.run_id}${r.step !== null && r.step !== undefined ? `, step ${r.step}` : ""}`);
      parts.push(outcome(r));
      parts.push(bytes(r.bytes));
    }
    if (opened?.duration !== undefined) parts.push(`${clock(opened.duration)} long`);
    const w = header?.width ?? header?.term?.cols;
    const hgt = header?.height ?? header?.term?.rows;
    if (w && hgt) parts.push(`${w}×${hgt}`);
    return parts.join(" · ");
  };

  // names the opened recording from its list row
  const describe = (row) => {
    opened.row = row;
    title.textContent = `${row.user}@${row.server}: ${what(row)}`;
    facts.textContent = factsOf(row, opened.header);
    note.textContent = row.state === "recording" ? "Still recording: this plays what was recorded until now (open it again for more)." : "";
  };

  const open = (id) => {
    generation += 1;
    const gen = generation;
    stopPlayer();
    search?.terminate();
    const row = rows.find((r) => r.id === id) || null;
    opened = { id, row: null, header: null };
    delete viewer.dataset.duration;
    delete viewer.dataset.seeked;
    viewer.hidden = false;
    viewer.dataset.id = id;
    setState("loading");
    replace(viewError);
    replace(matches);
    found.textContent = "";
    needle.value = "";
    title.textContent = `recording ${id}`;
    facts.textContent = "";
    note.textContent = "";
    if (row) describe(row);
    remove.disabled = false;
    renderList();
    viewer.scrollIntoView({ block: "start" });

    // The search worker reads the cast first: its header names what is
    // played (when the list did not), and an error (not yours, unknown)
    // is said in words instead of a player that cannot load.
    search = new Worker(new URL("./recording-search.js", import.meta.url), { type: "module" });
    const worker = search;
    worker.onmessage = (ev) => {
      if (gen !== generation || worker !== search) return;
      const m = ev.data;
      if (m.type === "header") {
        opened.header = m.header;
        if (!opened.row) {
          const head = m.header || {};
          title.textContent = [head.title, head.command].filter(Boolean).join(": ") || `recording ${id}`;
        }
        facts.textContent = factsOf(opened.row, m.header);
        startPlayer(0, true);
      } else if (m.type === "error") {
        const err = new ApiError(m.status, m.body);
        replace(viewError, errorLine(err));
        setState("failed");
      } else if (m.type === "progress") {
        searchForm.dataset.indexed = m.done ? "done" : "reading";
        if (m.done && m.capped) note.textContent = `${note.textContent} Search covers the first ${bytes(m.read)} of this recording.`.trim();
        // a search typed while the cast was still arriving is asked again
        if (m.done && needle.value) find();
      } else if (m.type === "found" && m.seq === searchSeq) {
        showMatches(m);
      }
    };
    worker.postMessage({ type: "open", url: castUrl(id) });
  };

  const find = () => {
    if (!search) return;
    searchSeq += 1;
    search.postMessage({ type: "find", seq: searchSeq, needle: needle.value });
  };
  const showMatches = (m) => {
    const more = m.total > m.matches.length ? ` (the first ${m.matches.length} listed)` : "";
    const partial = m.complete ? "" : " so far";
    found.textContent = m.needle ? `${m.total} ${m.total === 1 ? "match" : "matches"}${partial}${more}` : "";
    replace(
      matches,
      m.matches.map((x) =>
        h(
          "li",
          {},
          h(
            "button",
            { type: "button", class: "rec-match", dataset: { time: x.time }, on: { click: () => seekTo(x.time) } },
            h("span", { class: "rec-time", text: clock(x.time) }),
            h(
              "span",
              { class: "rec-context" },
              x.before.replace(/\n/g, " ↵ "),
              h("mark", { text: x.match }),
              x.after.replace(/\n/g, " ↵ "),
            ),
          ),
        ),
      ),
    );
  };
  // Pauses at the match, so its line stays in sight (play goes on from there).
  const seekTo = async (time) => {
    if (!player) return;
    const p = player;
    await p.pause();
    // a hair past the event, so the frame shown includes it
    await p.seek(time + 0.001);
    if (p === player) {
      setState("paused");
      viewer.dataset.seeked = String(time);
    }
  };
  searchForm.addEventListener("submit", (ev) => {
    ev.preventDefault();
    find();
  });

  close.addEventListener("click", () => {
    generation += 1;
    stopPlayer();
    search?.terminate();
    search = null;
    opened = null;
    viewer.hidden = true;
    delete viewer.dataset.state;
    if (fromHash(location.hash)) history.pushState(null, "", location.pathname + location.search);
    renderList();
  });

  remove.addEventListener("click", async () => {
    if (!opened) return;
    const id = opened.id;
    const r = opened.row;
    const said = r ? `the recording of ${what(r)} by ${r.user} on ${r.server} (${new Date(r.started_at).toLocaleString()})` : `recording ${id}`;
    if (!(await confirmDialog(`Delete ${said}? It cannot be brought back; the audit trail keeps that you deleted it.`, "Delete"))) return;
    remove.disabled = true;
    try {
      await api("DELETE", `/api/v1/recordings/${encodeURIComponent(id)}`);
      notify(`Deleted ${said}.`);
      close.click();
      load();
    } catch (e) {
      remove.disabled = false;
      replace(viewError, errorLine(e));
      notify(errorText(e), "error");
    }
  });

  // a link anywhere in the page (or the address) asks for a recording
  store.watch("recording", (want) => want && open(want.id));
}
