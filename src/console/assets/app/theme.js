// Light or dark: the system's choice unless the operator picked one with
// the toggle in the top bar; the pick is remembered in this browser
// (localStorage) and applies before the console draws.
//
// The page's colours follow `data-theme` on <html> (console.css); xterm
// panes take their colours from `terminalTheme()` and follow changes
// through the store's "theme" key.

import * as store from "./store.js";

const KEY = "pinkpage.theme";
/** The toggle's order: what a click moves to. */
const NEXT = { system: "dark", dark: "light", light: "system" };
const system = matchMedia("(prefers-color-scheme: dark)");

/** The operator's pick: `system`, `dark` or `light`. */
export function pick() {
  const saved = localStorage.getItem(KEY);
  return saved === "dark" || saved === "light" ? saved : "system";
}

/** Whether the page is dark now. */
export function isDark() {
  const p = pick();
  return p === "dark" || (p === "system" && system.matches);
}

/** xterm.js colours for the page's theme. */
export function terminalTheme() {
  return isDark() ? {} : { background: "#1e1e1e" };
}

function apply() {
  const p = pick();
  if (p === "system") delete document.documentElement.dataset.theme;
  else document.documentElement.dataset.theme = p;
  store.set("theme", { pick: p, dark: isDark() });
}

/** Moves the pick to the next one and remembers it. */
export function toggle() {
  const next = NEXT[pick()];
  if (next === "system") localStorage.removeItem(KEY);
  else localStorage.setItem(KEY, next);
  apply();
}

system.addEventListener("change", apply);
apply();
