// The top bar: the environment badge, the session lock bar (take, release,
// force release for admins behind a confirmation), the connection state and
// the user menu.

import { $, h, replace, duration, errorText, confirmDialog, notify } from "./dom.js";
import { api } from "./api.js";
import * as store from "./store.js";
import * as work from "./work.js";
import * as theme from "./theme.js";
import * as lockState from "./lock.js";

/** Fills the top bar; `ctx.stub` carries the lock. */
export function mountTopbar(ctx) {
  api("GET", "/api/v1/health")
    .then((d) => {
      const badge = $("env-badge");
      badge.textContent = d.env;
      badge.classList.toggle("prod", /^prod/i.test(d.env));
      badge.title = `environment ${d.env}, version ${d.version || ""}`;
    })
    .catch(() => {});

  const toggle = $("theme-toggle");
  toggle.addEventListener("click", theme.toggle);
  store.watch("theme", (t) => {
    toggle.textContent = `Theme: ${t.pick}`;
    toggle.setAttribute("aria-label", `Theme: ${t.pick}; click for the next`);
  });

  const me = store.get("me");
  $("user-name").textContent = me.user;
  $("user-role").textContent = `role: ${me.role}${me.servers ? `, servers: ${me.servers.join(", ")}` : ""}`;
  $("sign-out").addEventListener("click", () => ctx.signOut());

  const bar = $("lockbar");
  let lastOwner;
  // the running "for 2m 13s" is redrawn every second without replacing
  // the buttons (focus and a pending click stay where they are)
  let lockText = null;
  let lockLabel = () => "";
  const render = () => {
    const lock = store.get("lock");
    if (!lock) return replace(bar, h("span", { class: "muted", text: "Lock: …" }));
    const mine = lockState.isMine();
    const pieces = [];
    if (!lock.active) {
      bar.dataset.lock = "free";
      lockText = null;
      pieces.push(h("span", { class: "lock-text", id: "lock-text", text: "Lock: free" }));
      if (ctx.hasRole("operator")) pieces.push(button("Take lock", "take-lock", take));
    } else {
      const otherTab = lockState.isMyOtherTab();
      bar.dataset.lock = mine ? "mine" : otherTab ? "my-other-tab" : "other";
      // a person, what they run and since when; the running time beside
      const who = lockState.holder(lock);
      lockLabel = () => `Lock: held by ${who}${lock.since ? ` · ${duration(Date.now() - Date.parse(lock.since))}` : ""}`;
      lockText = h("span", { class: "lock-text", id: "lock-text", text: lockLabel(), title: lock.since ? `since ${new Date(lock.since).toLocaleString()}` : "" });
      pieces.push(lockText);
      // the lock holder's terminal is one click from the lock
      if (mine) pieces.push(button("Release", "release-lock", release), button("Run under lock", "goto-stub", () => ctx.showStub(), "small"));
      else if (otherTab && ctx.hasRole("operator")) pieces.push(button("Take over", "take-over", takeOver));
      else if (ctx.hasRole("admin")) pieces.push(button("Force release", "force-release", forceRelease, "danger"));
    }
    replace(bar, pieces);
  };
  const take = () => ctx.stub.request({ type: "start_session" }, ["session_started"]).catch(showError);
  // releasing stops what runs under the lock: it is named and asked first
  const release = async () => {
    if (!(await work.confirmStopping("Release the lock", { underLock: true }))) return;
    ctx.stub.request({ type: "end_session" }, ["session_ended"]).catch(showError);
  };
  // the same user's other tab holds the lock: end that session (its
  // command stops) and take the lock here, after a confirmation
  const takeOver = async () => {
    const ok = await confirmDialog("Take the lock over from your other tab? Whatever runs there under the lock is stopped.", "Take over");
    if (!ok) return;
    try {
      await ctx.stub.request({ type: "end_session", take_over: true }, ["session_ended"]);
      await ctx.stub.request({ type: "start_session" }, ["session_started"]);
    } catch (e) {
      showError(e);
    }
  };
  const forceRelease = async () => {
    const lock = store.get("lock");
    const ok = await confirmDialog(`Force release the lock held by ${lockState.holder(lock)}? Its running command is stopped.`, "Force release");
    if (ok) api("DELETE", "/api/v1/session").catch(showError);
  };
  store.watch("lock", (lock) => {
    const owner = lock && lock.active ? lock.owner_user : null;
    if (lastOwner !== undefined && owner !== lastOwner) notify(owner ? `Lock taken by ${owner}` : "Lock released");
    lastOwner = owner;
    render();
  });
  store.watch("connection_id", render);
  store.watch("me", render);
  setInterval(() => {
    if (lockText) lockText.textContent = lockLabel();
  }, 1000);

  store.watch("connection", (state) => {
    const el = $("conn-state");
    el.dataset.state = state;
    el.textContent =
      state === "open"
        ? "connected"
        : state === "reconnecting"
          ? "reconnecting…"
          : state === "restarting"
            ? "the daemon is restarting (30004); reconnecting when it is back…"
            : state;
  });
}

function button(label, id, onClick, cls = "") {
  return h("button", { type: "button", id, class: cls, text: label, on: { click: onClick } });
}

function showError(e) {
  notify(errorText(e), "error");
}
