// Work that dies with this page: a STUB command, a transfer, a batch run,
// a script, an upload. Each tab says when such work begins and ends; the
// console asks before an action that would stop it (releasing the lock,
// signing out) and the browser's own "leave page?" prompt guards a reload
// or a closed tab. Workflow runs are not listed: they belong to the daemon
// and go on without this page.
//
// Owner: this module's `running` map, changed only by `begin` and the
// function it returns; every tab runs on the page's one thread, so a check
// and the action it guards cannot interleave with a change.

import { confirmDialog } from "./dom.js";

/** id -> {label, underLock}: what runs now. */
const running = new Map();
let seq = 0;

/** Shows the count on the page (`data-work` of `<body>`) for tests and styles. */
function publish() {
  document.body.dataset.work = String(running.size);
}

/**
 * Notes that work named `label` runs from now on; `underLock`: it stops
 * when the lock is released (a STUB command, a transfer). Returns the
 * function that notes its end (calling it twice is harmless).
 */
export function begin(label, { underLock = false } = {}) {
  seq += 1;
  const id = seq;
  running.set(id, { label, underLock });
  publish();
  return () => {
    running.delete(id);
    publish();
  };
}

/** The labels of what runs now; `underLock`: only what a release stops. */
export function labels({ underLock = false } = {}) {
  return [...running.values()].filter((w) => !underLock || w.underLock).map((w) => w.label);
}

/**
 * Resolves true at once when nothing in the way runs; otherwise names it
 * in the confirmation dialog and resolves with the operator's answer.
 * `action`: what the operator is about to do ("Release the lock"),
 * `extra`: more to name than the running work (the held lock itself).
 */
export function confirmStopping(action, { underLock = false, extra = [] } = {}) {
  const names = [...labels({ underLock }), ...extra];
  if (!names.length) return Promise.resolve(true);
  return confirmDialog(`${action} stops: ${names.join("; ")}. Go on?`, action);
}

/**
 * Forgets every entry: the page is about to leave on purpose (the operator
 * confirmed signing out, or the daemon ended the sign-in and the work is
 * gone already), so the "leave page?" prompt must not stand in the way.
 */
export function abandon() {
  running.clear();
  publish();
}

// A reload or a closed tab asks first while work runs (the browser shows
// its own wording; a page cannot set the text any more).
window.addEventListener("beforeunload", (ev) => {
  if (!running.size) return;
  ev.preventDefault();
  ev.returnValue = "";
});

publish();
