// A Web Worker (a module, started by the Recordings tab): search in a
// recording's text. It streams the cast itself (`GET
// /api/v1/recordings/{id}`) and keeps what the output events printed,
// escape sequences stripped, with the time of each event; the page asks it
// for a string and gets each match with its time and a little context.
//
// Why a worker: a recording can be tens of megabytes, and parsing it line
// by line as JSON on the page's main thread would hold the page for
// seconds (WAVE2: no main-thread task over 200 ms). Here the page never
// sees the cast at all. And it reads at most READ_CAP bytes of it (the
// reply says so, and the tab shows it), so a huge recording costs neither
// the page's memory nor minutes of download before the first answer.
//
// Messages in: {type: "open", url} once, then {type: "find", seq, needle}.
// Messages out: {type: "header", header}; {type: "error", status, body};
// {type: "progress", read, events, done, capped}; {type: "found", seq,
// needle, matches: [{time, before, match, after}], total, complete}.

/** The most of a cast this worker reads (bytes as they arrive, after gzip). */
const READ_CAP = 32 * 1024 * 1024;
/** The most matches listed; `total` still counts them (up to COUNT_CAP). */
const MATCH_CAP = 200;
const COUNT_CAP = 100000;
/** Characters of context on each side of a match. */
const CONTEXT = 32;
/** The longest unfinished escape sequence carried to the next event. */
const CARRY_CAP = 4096;

/** What the output events printed, escape sequences stripped. */
let text = "";
/** `text`, lower-cased where that keeps its length (offsets must agree). */
let lower = "";
/** [offset in `text`, time in seconds] of each event that added text. */
const marks = [];
let events = 0;
let done = false;

// A whole escape sequence: CSI (ESC [ ... final), OSC (ESC ] ... BEL or
// ST), DCS/SOS/PM/APC strings (ESC P/X/^/_ ... ST), character set picks
// (ESC ( B), and the two-byte rest (ESC 7, ESC =, ...).
const WHOLE = /\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[PX^_][^\x1b]*\x1b\\|[()*+\-./][ -~]|[ -/]*[0-~])/g;
// What is left of a sequence the event ended inside of.
const UNFINISHED = /^\x1b(?:\[[0-?]*[ -/]*|\][^\x07\x1b]*\x1b?|[PX^_][^\x1b]*\x1b?|[()*+\-./]|[ -/]*)$/;
// Control characters a reader does not see (\r, BEL, backspace, ...);
// newlines and tabs stay.
const CONTROLS = /[\x00-\x08\x0b-\x1f\x7f]/g;

/** An event's output cut short inside an escape sequence, kept for the next. */
let carry = "";

/** The plain text of one output event's data. */
function plain(data) {
  let s = (carry + data).replace(WHOLE, "");
  carry = "";
  const esc = s.lastIndexOf("\x1b");
  if (esc >= 0 && s.length - esc <= CARRY_CAP && UNFINISHED.test(s.slice(esc))) {
    carry = s.slice(esc);
    s = s.slice(0, esc);
  }
  return s.replace(CONTROLS, "");
}

/** Adds one line of the cast (the header was read before). */
function line(raw, clock) {
  if (!raw) return;
  let ev;
  try {
    ev = JSON.parse(raw);
  } catch {
    return; // a torn last line of a running recording
  }
  if (!Array.isArray(ev) || ev[1] !== "o" || typeof ev[2] !== "string") return;
  events += 1;
  const time = clock(Number(ev[0]) || 0);
  const piece = plain(ev[2]);
  if (!piece) return;
  marks.push([text.length, time]);
  text += piece;
  const low = piece.toLowerCase();
  lower += low.length === piece.length ? low : piece;
}

/** The time of the event that printed offset `at` of `text`. */
function timeAt(at) {
  let lo = 0;
  let hi = marks.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (marks[mid][0] <= at) lo = mid;
    else hi = mid - 1;
  }
  return marks.length ? marks[lo][1] : 0;
}

function find(seq, needle) {
  const want = needle.toLowerCase();
  const matches = [];
  let total = 0;
  if (want) {
    for (let at = lower.indexOf(want); at >= 0 && total < COUNT_CAP; at = lower.indexOf(want, at + want.length)) {
      total += 1;
      if (matches.length < MATCH_CAP) {
        matches.push({
          time: timeAt(at),
          before: text.slice(Math.max(0, at - CONTEXT), at),
          match: text.slice(at, at + want.length),
          after: text.slice(at + want.length, at + want.length + CONTEXT),
        });
      }
    }
  }
  postMessage({ type: "found", seq, needle, matches, total, complete: done });
}

async function open(url) {
  let res;
  try {
    res = await fetch(url, { credentials: "same-origin" });
  } catch (e) {
    postMessage({ type: "error", status: 0, body: { error: { code: 0, message: String(e.message || e) } } });
    return;
  }
  if (!res.ok) {
    let body = null;
    try {
      body = await res.json();
    } catch {
      body = null;
    }
    postMessage({ type: "error", status: res.status, body });
    return;
  }
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let rest = "";
  let read = 0;
  let header = null;
  const readHeader = (raw) => {
    try {
      header = JSON.parse(raw) || {};
    } catch {
      header = {};
    }
    if (header.version === 3) {
      let now = 0;
      clock = (dt) => (now += dt);
    }
    postMessage({ type: "header", header });
  };
  // v2 events carry the time since the start; v3 the time since the last
  let clock = (t) => t;
  let capped = false;
  for (;;) {
    const { value, done: end } = await reader.read();
    if (end) break;
    read += value.byteLength;
    const lines = (rest + decoder.decode(value, { stream: true })).split("\n");
    rest = lines.pop();
    for (const raw of lines) {
      if (header) line(raw, clock);
      else readHeader(raw);
    }
    if (read >= READ_CAP) {
      capped = true;
      reader.cancel().catch(() => {});
      break;
    }
    postMessage({ type: "progress", read, events, done: false, capped: false });
  }
  if (!capped) {
    // the last line needs no newline to count
    rest += decoder.decode();
    if (header) line(rest, clock);
    else readHeader(rest);
  }
  done = true;
  postMessage({ type: "progress", read, events, done: true, capped });
}

onmessage = (ev) => {
  const m = ev.data;
  if (m.type === "open") open(m.url);
  else if (m.type === "find") find(m.seq, m.needle);
};
