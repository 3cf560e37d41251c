// The review queue (docs/command-policy.md, "Review"): commands a `review`
// rule holds until a second person approves or rejects them. Approvers
// (a rule's `approvers`, else every admin) see each held command in the
// Reviews tab, with Approve and Reject and an optional comment; the
// requester sees their own there as "yours, waiting", without buttons. A
// badge in the top bar counts what waits, from any tab. The same tab
// lists the rules, read-only, so a refusal can be traced to its rule.
//
// The queue is `GET /api/v1/command-reviews` (on every connection, so a
// reconnect starts from the truth), kept current by the STUB connection's
// frames: `command_review_requested` adds, `command_review_ended` removes
// (the daemon sends it however the hold ended), and the requester's own
// frames (`command_held`, `command_released`, 55001/55002) ask the list
// again. Answers go as `command_review` on the same connection.
//
// Owner: this module's `queue`, changed only by the frame handlers and
// `refresh`; a refresh started before a frame is dropped (`generation`),
// so a list fetched before a hold ended never brings it back.

import { $, h, replace, duration, errorText, errorLine, notify } from "./dom.js";
import { api } from "./api.js";
import * as store from "./store.js";
import { clock } from "./policy.js";

/** held_id -> the hold (`GET /api/v1/command-reviews`'s shape; a frame's fields until the list comes). */
const queue = new Map();
/** Holds seen ending, so a list fetched meanwhile does not show them again. */
const ended = new Set();
/** Bumped by every change: a list asked for before it is stale. */
let generation = 0;
let refreshTimer = null;
/** Called after every change (the badge, the tab once mounted). */
const renders = new Set();
/** The last refusal of the list (shown in the tab), or null. */
let listError = null;
/** The connection answers go on (`ctx.stub`), set by `start`. */
let stub = null;

/** The signed-in user's name. */
function me() {
  return store.get("me")?.user;
}

/** Whether `item` is the signed-in user's own command (never theirs to answer). */
function isMine(item) {
  return item.user === me();
}

/** What waits: the holds this user may answer, and their own. */
function counts() {
  let answer = 0;
  let mine = 0;
  for (const item of queue.values()) {
    if (isMine(item)) mine += 1;
    else answer += 1;
  }
  return { answer, mine };
}

function changed() {
  for (const fn of renders) fn();
}

function forget(heldId) {
  ended.add(heldId);
  // a bounded memory: holds end for good, ids are never reused
  if (ended.size > 500) ended.delete(ended.values().next().value);
  generation += 1;
  if (queue.delete(heldId)) changed();
}

/** Asks the daemon for the queue; a change meanwhile makes the answer stale. */
export async function refresh() {
  clearTimeout(refreshTimer);
  refreshTimer = null;
  generation += 1;
  const asked = generation;
  try {
    const list = await api("GET", "/api/v1/command-reviews");
    if (asked !== generation) return;
    queue.clear();
    for (const item of list || []) if (!ended.has(item.held_id)) queue.set(item.held_id, item);
    listError = null;
  } catch (e) {
    if (asked !== generation) return;
    listError = e;
  }
  changed();
}

/** Asks again shortly (several frames in a row make one request). */
export function refreshSoon() {
  generation += 1;
  if (refreshTimer) return;
  refreshTimer = setTimeout(refresh, 150);
}

/**
 * One of the user's own holds may have ended where only the work's own
 * connection hears of it (a batch command's result): asks again while
 * any is listed.
 */
export function ownMayHaveEnded() {
  if (counts().mine) refreshSoon();
}

/** A command cut to fit a notice (the queue shows it whole). */
function short(command) {
  return command.length > 80 ? `${command.slice(0, 77)}…` : command;
}

/**
 * Starts following the queue on the STUB connection and fills the top
 * bar's badge; `ctx.showTab` opens the Reviews tab from it.
 */
export function start(ctx) {
  stub = ctx.stub;
  stub.on("welcome", () => refresh());
  stub.on("command_review_requested", (f) => {
    if (ended.has(f.held_id)) return;
    if (!queue.has(f.held_id)) {
      queue.set(f.held_id, { held_id: f.held_id, user: f.user, server: f.server, command: f.command, rule: f.rule, message: "", approvers: [] });
      notify(`${f.user} asks to run "${short(f.command)}" on ${f.server} (rule ${f.rule}): approve or reject it under Reviews.`, "warn");
      changed();
    }
    // its message, approvers and expiry
    refreshSoon();
  });
  stub.on("command_review_ended", (f) => {
    const item = queue.get(f.held_id);
    forget(f.held_id);
    // a workflow step of one's own: its end is told here, not in a terminal
    if (item && isMine(item)) notify(`Your command on ${item.server} was ${f.decision}${f.by ? ` by ${f.by}` : ""}.`, f.decision === "approved" ? "info" : "warn");
  });
  // the user's own holds: held, released, rejected, timed out, withdrawn
  stub.on("command_held", (f) => {
    // without a request_id: a workflow step of the user's (the
    // Workflows tab's timeline shows it too)
    if (!f.request_id) notify(`A workflow step's command on ${f.server} waits for approval (rule ${f.rule}).`, "warn");
    refreshSoon();
  });
  stub.on("command_released", (f) => forget(f.held_id));
  stub.on("error", (f) => {
    const code = Number(f.error?.code);
    if (code === 55001 || code === 55002) refreshSoon();
  });
  stub.on("ssh_command_complete", ownMayHaveEnded);

  const badge = $("reviews-badge");
  badge.addEventListener("click", () => ctx.showTab?.("reviews"));
  const render = () => {
    const { answer, mine } = counts();
    const parts = [];
    if (answer) parts.push(`${answer} to review`);
    if (mine) parts.push(`${mine} of yours waiting`);
    badge.hidden = !parts.length;
    badge.textContent = parts.join(" · ");
    badge.classList.toggle("urgent", answer > 0);
    badge.dataset.answer = String(answer);
    badge.dataset.mine = String(mine);
    badge.title = answer ? "Commands wait for your approval: open Reviews" : "Your commands wait for approval: open Reviews";
  };
  renders.add(render);
  render();
}

/** Mounts the Reviews tab: the queue, then the rules. */
export function mount(panel, ctx) {
  panel.classList.add("reviews-panel");
  const list = h("ul", { id: "review-queue", class: "review-queue" });
  const empty = h("p", { id: "review-empty", class: "muted", text: "Nothing waits for approval." });
  const error = h("div");
  const rules = h("div", { id: "rules" });
  panel.append(
    h("h2", { text: "Commands waiting for approval" }),
    h("p", {
      class: "muted",
      text: "A command a review rule holds runs only once a second person approves it here. Its own user cannot; each rule names who may answer (every admin when it names no one).",
    }),
    error,
    empty,
    list,
    h("h2", { text: "Command rules" }),
    rules,
  );

  /** held_id -> its card */
  const cards = new Map();
  const render = () => {
    replace(error, listError ? errorLine(listError) : null);
    for (const [id, card] of cards) {
      if (!queue.has(id)) {
        card.el.remove();
        cards.delete(id);
      }
    }
    // oldest first, as the daemon lists them; a card keeps its element (a
    // comment being typed stays)
    for (const item of queue.values()) {
      let card = cards.get(item.held_id);
      if (!card) {
        card = reviewCard(item, ctx);
        cards.set(item.held_id, card);
        list.append(card.el);
      }
      card.update(item);
    }
    empty.hidden = queue.size > 0;
    list.hidden = queue.size === 0;
    ctx.activity();
  };
  renders.add(render);
  render();
  setInterval(() => {
    if (!panel.hidden) for (const card of cards.values()) card.tick();
  }, 1000);

  const loadRules = () =>
    api("GET", "/api/v1/command-rules")
      .then((body) => replace(rules, rulesView(body)))
      .catch((e) => replace(rules, errorLine(e)));
  panel.addEventListener("shown", () => {
    loadRules();
    refresh();
  });
}

/** One held command: who, where, what, which rule, until when; answers when they are the user's to give. */
function reviewCard(item, ctx) {
  const mine = isMine(item);
  const who = h("span", { class: "review-who" });
  const command = h("pre", { class: "review-command mono" });
  const rule = h("div", { class: "review-rule" });
  const times = h("div", { class: "review-times muted" });
  const answerers = h("div", { class: "review-approvers muted" });
  const said = h("div", { class: "review-said" });
  const el = h("li", { class: `review-item${mine ? " mine" : ""}`, dataset: { held: item.held_id } }, who, command, rule, times, answerers);
  let current = item;

  if (mine) {
    el.append(h("p", { class: "review-yours", text: "Yours, waiting: another person must approve it." }));
  } else {
    const comment = h("input", {
      class: "review-comment",
      placeholder: "Comment (optional; the requester sees it)",
      "aria-label": "Comment for the requester",
      maxlength: 1000,
    });
    const approve = h("button", { type: "button", class: "review-approve primary", text: "Approve" });
    const reject = h("button", { type: "button", class: "review-reject danger", text: "Reject" });
    const answer = async (decision) => {
      approve.disabled = true;
      reject.disabled = true;
      replace(said);
      try {
        await ctx.stub.request({ type: "command_review", held_id: current.held_id, decision, comment: comment.value }, ["command_reviewed"]);
        notify(`${decision === "approve" ? "Approved" : "Rejected"}: ${current.user}'s "${current.command}" on ${current.server}.`);
        forget(current.held_id);
      } catch (e) {
        // gone meanwhile (answered by someone else, timed out, withdrawn)
        if (e.code === 55004) {
          notify(errorText(e), "warn");
          forget(current.held_id);
          return;
        }
        replace(said, errorLine(e));
        approve.disabled = false;
        reject.disabled = false;
      }
    };
    approve.addEventListener("click", () => answer("approve"));
    reject.addEventListener("click", () => answer("reject"));
    el.append(h("div", { class: "row review-answer" }, comment, approve, reject));
  }
  el.append(said);

  const tick = () => {
    if (!current.expires_at) return (times.textContent = "");
    const left = Date.parse(current.expires_at) - Date.now();
    const held = current.held_at ? `held at ${clock(current.held_at)} · ` : "";
    times.textContent = `${held}expires at ${clock(current.expires_at)} (${left > 0 ? `in ${duration(left)}` : "now"}); unanswered, it is rejected`;
  };
  return {
    el,
    tick,
    update(next) {
      current = next;
      replace(who, mine ? "You" : h("strong", { text: next.user }), " want", mine ? "" : "s", " to run on ", h("strong", { text: next.server }), ":");
      command.textContent = next.command;
      replace(rule, "Rule ", h("strong", { text: next.rule }), next.message ? `: ${next.message}` : "");
      answerers.textContent = next.approvers?.length ? `Answered by: ${next.approvers.join(", ")}` : "Answered by: any admin";
      tick();
    },
  };
}

/** The rules, read-only, in the order they are tried. */
function rulesView(body) {
  const rules = body.rules || [];
  const intro = h("p", {
    class: "muted",
    text: `Tried in order: the first rule that applies to the server and the user and matches the command decides. No rule matching: ${body.default}. A held command waits up to ${duration(body.review_timeout_s * 1000)} for an answer.`,
  });
  if (!rules.length) return [intro, h("p", { class: "muted", text: "No rules: every command runs." })];
  return [
    intro,
    h(
      "table",
      { id: "rules-table", class: "grid rules" },
      h("thead", {}, h("tr", {}, ["rule", "action", "matches", "servers tagged", "roles", "approvers", "message"].map((t) => h("th", { text: t })))),
      h(
        "tbody",
        {},
        rules.map((r) =>
          h(
            "tr",
            { dataset: { rule: r.name, action: r.action } },
            h("td", { class: "mono", text: r.name }),
            h("td", { class: `rule-action action-${r.action}`, text: r.action }),
            h("td", { class: "mono" }, r.regex ? `regex ${r.regex}` : `words ${r.words.map((w) => `"${w}"`).join(", ")}`),
            h("td", { text: r.tags.length ? r.tags.join(", ") : "all" }),
            h("td", { text: r.roles.length ? r.roles.join(", ") : "all" }),
            h("td", { text: r.action !== "review" ? "" : r.approvers.length ? r.approvers.join(", ") : "any admin" }),
            h("td", { text: r.message }),
          ),
        ),
      ),
    ),
  ];
}
