// The tab bar: each tab's panel is mounted the first time it is shown and
// then only hidden, so a running terminal or batch keeps going and keeps
// its state. Arrow keys move between tabs (WAI-ARIA tabs pattern); a tab
// that got output while hidden shows a dot.

import { h } from "./dom.js";

/** Builds the tabs in `nav` and their panels in `panels`. */
export function mountTabs(nav, panels, tabs, ctx) {
  const buttons = [];
  const mounted = new Map();
  const select = (i, focus = false) => {
    tabs.forEach((tab, j) => {
      const on = i === j;
      buttons[j].setAttribute("aria-selected", String(on));
      buttons[j].tabIndex = on ? 0 : -1;
      if (on) buttons[j].classList.remove("activity");
      const panel = mounted.get(tab.id);
      if (panel) panel.hidden = !on;
    });
    const tab = tabs[i];
    if (!mounted.has(tab.id)) {
      const panel = h("section", { id: `panel-${tab.id}`, class: "panel", role: "tabpanel", "aria-labelledby": `tab-${tab.id}` });
      panels.append(panel);
      mounted.set(tab.id, panel);
      tab.mount(panel, {
        ...ctx,
        // a tab tells its button that something happened while hidden
        activity: () => {
          if (panel.hidden) buttons[i].classList.add("activity");
        },
      });
    }
    mounted.get(tab.id).dispatchEvent(new CustomEvent("shown"));
    if (focus) buttons[i].focus();
  };
  // other parts of the page bring a tab forward (the sidebar's "Open
  // terminal" shows the Terminal tab)
  ctx.showTab = (id) => {
    const i = tabs.findIndex((t) => t.id === id);
    if (i >= 0 && buttons[i].getAttribute("aria-selected") !== "true") select(i);
  };
  tabs.forEach((tab, i) => {
    const b = h("button", {
      type: "button",
      id: `tab-${tab.id}`,
      role: "tab",
      class: "tab",
      text: tab.label,
      on: {
        click: () => select(i),
        keydown: (ev) => {
          if (ev.key === "ArrowRight") select((i + 1) % tabs.length, true);
          else if (ev.key === "ArrowLeft") select((i + tabs.length - 1) % tabs.length, true);
        },
      },
    });
    buttons.push(b);
    nav.append(b);
  });
  select(0);
}
