// The command policy as an operator meets it (docs/command-policy.md): a
// command a rule refuses (55000), one held for a second person's approval
// and then approved, rejected (55001) or left unanswered (55002), and too
// many held (55006). These words are shared by every place a command runs
// from: the lock holder's terminal, the operator's own shells, batch
// results, workflow steps; `reviews.js` holds the approvers' queue.
//
// A line written into a terminal is built here and nowhere else: the text
// comes from the daemon and from people (a rule's message, a reviewer's
// comment), so every control character is taken out before it reaches
// xterm.js, where an escape sequence would be obeyed, not shown.

/** The codes that mean "a rule, or its reviewer, stopped this command". */
const POLICY = new Set([55000, 55001, 55002, 55006]);

/** Whether `err` (`{code, message, detail}`) is the command policy's. */
export function isPolicyError(err) {
  return !!err && POLICY.has(Number(err.code));
}

/** Whether the daemon answered with a refusal by a rule before anything ran (55000, 55006). */
export function isRefusal(err) {
  return !!err && (Number(err.code) === 55000 || Number(err.code) === 55006);
}

/**
 * What happened, in words, with the daemon's detail (which names the rule,
 * the server and the rule's message, or the reviewer and their comment).
 */
export function policyText(err) {
  const detail = err.detail || err.message || "";
  switch (Number(err.code)) {
    case 55000:
      return `Refused by a command rule, not run: ${detail}`;
    case 55001:
      return `Rejected by its reviewer, not run: ${detail}`;
    case 55002:
      return `Not run: nobody approved it in time (${detail})`;
    case 55006:
      return `Not run: too many of your commands wait for approval (${detail})`;
    default:
      return detail;
  }
}

/** "14:05:09" from an RFC 3339 time ("" when there is none). */
export function clock(at) {
  if (!at) return "";
  const t = new Date(at);
  return Number.isNaN(t.getTime()) ? "" : t.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

/** Why and until when a command waits (a `command_held` frame): "rule X: message; expires at 14:15:09". */
export function heldWhy(f) {
  const why = f.message ? `${f.rule}: ${f.message}` : f.rule;
  const until = f.expires_at ? `; expires at ${clock(f.expires_at)}` : "";
  return `rule ${why}${until}`;
}

/** `text` without control characters (C0, DEL, C1): safe to hand to a terminal. */
export function printable(text) {
  return String(text).replace(/[\u0000-\u001f\u007f-\u009f]/g, " ");
}

const SGR = { refused: "1;31", held: "1;33", released: "1;32" };

/**
 * Writes `text` into the xterm `term` on a line of its own, coloured by
 * `kind` (`refused` red, `held` yellow, `released` green), never carrying
 * a control character of its own text. The shell's own output goes on
 * below it.
 */
export function writeNotice(term, text, kind) {
  const fresh = term.buffer.active.cursorX === 0;
  term.write(`${fresh ? "" : "\r\n"}\x1b[${SGR[kind] || "1"}m${printable(text)}\x1b[0m\r\n`);
}
