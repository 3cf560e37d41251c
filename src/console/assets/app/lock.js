// The session lock as a person reads it: who holds it (a name, what they
// run, since when; "you" or "you, in another tab"), and whether this page
// holds it, for the controls that need it. The state is the store's
// "lock" (from `session_status`) and "connection_id" (this page's STUB
// connection); this module only reads them.

import * as store from "./store.js";

/** What a control that needs the lock says while it is disabled (a refusal says the same). */
export { NEEDS_LOCK } from "./dom.js";

/** Whether this page's connection holds the lock. */
export function isMine() {
  const lock = store.get("lock");
  return !!lock?.active && lock.owner === store.get("connection_id");
}

/** Whether the lock is held by the signed-in user on another connection (a second tab). */
export function isMyOtherTab() {
  const lock = store.get("lock");
  return !!lock?.active && !isMine() && !lock.workflow_run && lock.owner_user === store.get("me")?.user;
}

/** "10:42" from an RFC 3339 time. */
function clock(since) {
  return since ? new Date(since).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) : "";
}

/**
 * Who holds the lock: "you", "you, in another tab", or "alice (workflow
 * unload_copy_load, since 10:42)"; null when it is free.
 */
export function holder(lock = store.get("lock")) {
  if (!lock?.active) return null;
  const what = [];
  if (lock.workflow_run) what.push(`workflow ${lock.workflow_run.workflow}`);
  if (lock.since) what.push(`since ${clock(lock.since)}`);
  const tail = what.length ? ` (${what.join(", ")})` : "";
  if (isMine()) return `you${tail}`;
  if (isMyOtherTab()) return `you, in another tab${tail}`;
  return `${lock.owner_user || "another user"}${tail}`;
}
