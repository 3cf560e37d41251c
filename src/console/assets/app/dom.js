// Building DOM without HTML strings: every server-provided string becomes a
// text node (textContent), never markup. This is the console's only way to
// make elements; nothing here or elsewhere assigns innerHTML.

import { policyText } from "./policy.js";

/**
 * Makes an element. `attrs`: `class`, `text` (textContent), `on` (event
 * handlers by name), `dataset`, properties that exist on the element
 * (value, checked, type, disabled...), anything else as an attribute.
 * Children: elements, or strings/numbers (as text nodes); null is skipped.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "text") el.textContent = String(value);
    else if (key === "on") for (const [ev, fn] of Object.entries(value)) el.addEventListener(ev, fn);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key in el && typeof el[key] !== "function" && !key.startsWith("aria")) el[key] = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

/** Appends children (elements or text) to `el`. */
export function append(el, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** Replaces every child of `el`. */
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/** `document.getElementById`. */
export const $ = (id) => document.getElementById(id);

/** An error as the operator should see it: its code and its message. */
export function errorText(err) {
  const said = err && PHRASES[err.code];
  if (said) return said(err);
  if (err && err.code) {
    return `${err.code}: ${err.message}${err.detail ? ` (${err.detail})` : ""}`;
  }
  return String(err && err.message ? err.message : err);
}

/**
 * Refusals a person meets in the console, said in words (the daemon's
 * message names protocol frames such as `start_session`, which mean
 * nothing here). Who holds the lock is the lock bar's business: it names
 * the person, what they run and since when.
 */
/** What a control or a refusal that needs the lock says. */
export const NEEDS_LOCK = "Take the lock first (Take lock, at the top).";

const PHRASES = {
  50004: () => "Someone else holds the lock: see who at the top.",
  50005: () => "No one holds the lock.",
  50006: () => "The lock is not yours: see who holds it at the top.",
  50008: () => NEEDS_LOCK,
  10010: () => "Your access changed, so this work was stopped.",
  // the command policy (docs/command-policy.md): the detail names the
  // rule and its message, or the reviewer and their comment
  55000: policyText,
  55001: policyText,
  55002: policyText,
  55006: policyText,
  55003: () => "A second person must answer: nobody approves their own command.",
  55004: () => "That command no longer waits for approval (answered, timed out or withdrawn).",
  55005: (e) => `Not yours to answer: ${e.detail || e.message}.`,
};

/** A one-line error element (role=alert), or nothing when `err` is null. */
export function errorLine(err) {
  return err ? h("p", { class: "error", role: "alert", text: errorText(err) }) : null;
}

/** "1.2 MB" style sizes. */
export function bytes(n) {
  if (n === null || n === undefined) return "";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  let v = Number(n);
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

/** "2m 13s" style durations from milliseconds. */
export function duration(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${s % 60}s`;
  return `${Math.floor(m / 60)}h ${m % 60}m`;
}

/** Asks the operator to confirm `text` in the page's dialog; resolves true on "Confirm". */
export function confirmDialog(text, okLabel = "Confirm") {
  const dialog = $("confirm");
  $("confirm-text").textContent = text;
  $("confirm-ok").textContent = okLabel;
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.returnValue = "";
    dialog.showModal();
    $("confirm-cancel").focus();
  });
}

/** Shows a short notice in the corner stack; errors stay until dismissed. */
export function notify(text, kind = "info") {
  const box = $("notices");
  const close = h("button", { type: "button", class: "icon", "aria-label": "Dismiss", text: "×" });
  const note = h("div", { class: `notice ${kind}`, role: kind === "error" ? "alert" : "status" }, h("span", { text }), close);
  close.addEventListener("click", () => note.remove());
  box.append(note);
  if (kind !== "error") setTimeout(() => note.remove(), 6000);
  while (box.children.length > 5) box.firstElementChild.remove();
}
