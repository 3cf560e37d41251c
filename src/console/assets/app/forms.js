// Small form pieces shared by the tabs: a server picker fed by the store,
// labelled fields.

import { h, replace } from "./dom.js";
import * as store from "./store.js";

/** A `<select>` of the configured servers, kept current. */
export function serverSelect(id, label = "Server") {
  const select = h("select", { id, "aria-label": label });
  store.watch("servers", (names) => {
    const was = select.value;
    replace(select, (names || []).map((n) => h("option", { value: n, text: n })));
    if (was && (names || []).includes(was)) select.value = was;
  });
  return select;
}

/** `<label>text <control></label>`. */
export function field(text, control) {
  return h("label", { class: "field" }, h("span", { text }), control);
}
