// The Files tab (BMX5): an SFTP browser per server (navigate, sort, mkdir,
// rename, delete with confirmation), uploads by drag-and-drop or a file
// input through REST PUT with a progress bar, downloads through REST GET
// (a plain link: the browser streams it, the cookie goes along), and
// scripts from scripts.d or pasted text with arguments, output in a
// terminal pane. File names are server data: text nodes only.

import { h, replace, bytes, errorText, errorLine, confirmDialog } from "./dom.js";
import { upload, query } from "./api.js";
import { field, serverSelect } from "./forms.js";
import { makeTerminal, writeSliced } from "./terminal.js";
import * as work from "./work.js";
import * as store from "./store.js";

/** `dir` joined with `name`. */
function join(dir, name) {
  return dir.endsWith("/") ? dir + name : `${dir}/${name}`;
}

/** The parent of `path` ("/a/b" -> "/a", "/a" -> "/"). */
function parent(path) {
  const trimmed = path.replace(/\/+$/, "");
  const i = trimmed.lastIndexOf("/");
  if (i < 0) return trimmed === "." || trimmed === "" ? ".." : ".";
  return i === 0 ? "/" : trimmed.slice(0, i);
}

/** Mounts the tab. */
export function mount(panel, ctx) {
  const ws = ctx.ws("/ws/v1/bmx5");
  const server = serverSelect("files-server");
  const path = h("input", { id: "files-path", class: "grow mono", value: ".", "aria-label": "Path", spellcheck: false });
  const go = h("button", { id: "files-go", type: "submit", text: "Open" });
  const up = h("button", { id: "files-up", type: "button", text: "Up", on: { click: () => open(parent(current)) } });
  const newName = h("input", { id: "files-new-dir", placeholder: "new folder name", "aria-label": "New folder name" });
  const mkdir = h("button", { id: "files-mkdir", type: "button", text: "New folder" });
  const picker = h("input", { id: "files-upload", type: "file", multiple: true, "aria-label": "Upload files" });
  const uploadBar = h("progress", { id: "files-upload-progress", max: 1, value: 0, hidden: true });
  const uploadText = h("span", { id: "files-upload-text", class: "muted" });
  const message = h("div", { id: "files-message", role: "status" });
  const listing = h("table", { id: "files-table", class: "grid files" });
  const drop = h("div", { id: "files-drop", class: "drop", text: "Drop files here to upload into this folder" });
  panel.append(
    h("h2", { text: "Files" }),
    h("form", { class: "toolbar", on: { submit: (ev) => (ev.preventDefault(), open(path.value)) } }, server, path, go, up),
    h("div", { class: "toolbar" }, newName, mkdir, picker, uploadBar, uploadText),
    message,
    drop,
    listing,
  );

  let current = ".";
  let entries = [];
  let sort = { key: "name", dir: 1 };
  const say = (children) => replace(message, children);

  const open = async (dir) => {
    try {
      const res = await ws.request({ type: "sftp_list", server: server.value, path: dir }, ["sftp_list_result"]);
      current = res.path;
      path.value = res.path;
      entries = res.entries;
      render();
      say();
      panel.dataset.path = current;
    } catch (e) {
      say(errorLine(e));
    }
  };
  const act = async (frame, reply, what) => {
    try {
      await ws.request({ ...frame, server: server.value }, [reply]);
      say(h("p", { class: "ok", text: what }));
      await open(current);
    } catch (e) {
      say(errorLine(e));
    }
  };
  mkdir.addEventListener("click", () => {
    if (newName.value) act({ type: "sftp_mkdir", path: join(current, newName.value) }, "sftp_mkdir_result", `created ${newName.value}`).then(() => (newName.value = ""));
  });

  const sendFiles = async (files) => {
    for (const file of files) {
      const target = join(current, file.name);
      uploadBar.hidden = false;
      uploadBar.max = Math.max(1, file.size);
      uploadBar.value = 0;
      uploadText.textContent = `${file.name}: 0%`;
      const running = work.begin(`the upload of ${file.name} to ${server.value}`);
      try {
        await upload(`/api/v1/bmx5/files${query({ server: server.value, path: target })}`, file, (done, total) => {
          uploadBar.max = Math.max(1, total);
          uploadBar.value = done;
          uploadText.textContent = `${file.name}: ${Math.round((100 * done) / Math.max(1, total))}% of ${bytes(total)}`;
        });
        uploadBar.value = uploadBar.max;
        uploadText.textContent = `${file.name}: uploaded (${bytes(file.size)})`;
      } catch (e) {
        uploadText.textContent = "";
        say(errorLine(e));
        return;
      } finally {
        running();
      }
    }
    await open(current);
  };
  picker.addEventListener("change", () => sendFiles([...picker.files]).then(() => (picker.value = "")));
  drop.addEventListener("dragover", (ev) => {
    ev.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (ev) => {
    ev.preventDefault();
    drop.classList.remove("over");
    sendFiles([...ev.dataTransfer.files]);
  });

  const header = (key, label) =>
    h("th", {}, h("button", { type: "button", class: "sort", text: label + (sort.key === key ? (sort.dir > 0 ? " ▲" : " ▼") : ""), on: { click: () => ((sort = { key, dir: sort.key === key ? -sort.dir : 1 }), render()) } }));
  const render = () => {
    const rows = [...entries].sort((a, b) => {
      if ((a.kind === "dir") !== (b.kind === "dir")) return a.kind === "dir" ? -1 : 1;
      const x = a[sort.key];
      const y = b[sort.key];
      return (x < y ? -1 : x > y ? 1 : 0) * sort.dir;
    });
    replace(
      listing,
      h("thead", {}, h("tr", {}, header("name", "Name"), header("kind", "Kind"), header("size", "Size"), header("mtime", "Modified"), h("th", { text: "" }))),
      h("tbody", {}, rows.map(row)),
    );
  };
  const row = (e) => {
    const full = join(current, e.name);
    const name =
      e.kind === "dir"
        ? h("button", { type: "button", class: "link-button entry-name", text: `${e.name}/`, on: { click: () => open(full) } })
        : h("a", { class: "entry-name", href: `/api/v1/bmx5/files${query({ server: server.value, path: full })}`, download: e.name, text: e.name });
    const cell = h("td", { class: "mono" }, name);
    const rename = () => {
      const input = h("input", { class: "rename-input", value: e.name, "aria-label": `New name for ${e.name}` });
      const save = h("button", { type: "button", class: "small rename-save", text: "Save" });
      const done = () => input.value && input.value !== e.name && act({ type: "sftp_rename", from: full, to: join(current, input.value) }, "sftp_rename_result", `renamed ${e.name} to ${input.value}`);
      save.addEventListener("click", done);
      input.addEventListener("keydown", (ev) => ev.key === "Enter" && done());
      replace(cell, input, save);
      input.focus();
    };
    const remove = async () => {
      const where = `${server.value}:${full}`;
      const ok = await confirmDialog(e.kind === "dir" ? `Delete the folder ${where} and everything in it?` : `Delete ${where}?`, "Delete");
      if (ok) act({ type: "sftp_remove", path: full, recursive: e.kind === "dir" }, "sftp_remove_result", `deleted ${e.name}`);
    };
    return h(
      "tr",
      { dataset: { name: e.name, kind: e.kind } },
      cell,
      h("td", { text: e.kind }),
      h("td", { text: e.kind === "dir" ? "" : bytes(e.size) }),
      h("td", { text: e.mtime ? new Date(e.mtime * 1000).toLocaleString() : "" }),
      h(
        "td",
        { class: "actions" },
        h("button", { type: "button", class: "small rename", text: "Rename", "aria-label": `Rename ${e.name}`, on: { click: rename } }),
        h("button", { type: "button", class: "small danger delete", text: "Delete", "aria-label": `Delete ${e.name}`, on: { click: remove } }),
      ),
    );
  };

  // scripts
  const scriptName = h("input", { id: "script-name", placeholder: "name in scripts.d", "aria-label": "Script name" });
  const scriptText = h("textarea", { id: "script-text", rows: 4, class: "mono", placeholder: "or paste a script", spellcheck: false });
  const scriptArgs = h("input", { id: "script-args", class: "grow", placeholder: "arguments, separated by |", "aria-label": "Arguments separated by |" });
  const scriptRun = h("button", { id: "script-run", type: "submit", text: "Run script" });
  const scriptCancel = h("button", { id: "script-cancel", type: "button", text: "Cancel", disabled: true, on: { click: () => ws.send({ type: "script_cancel" }) } });
  const scriptStatus = h("div", { id: "script-status", role: "status" });
  const pane = makeTerminal({ disableStdin: true });
  panel.append(
    h("h2", { text: "Run a script" }),
    h(
      "form",
      {
        class: "stack",
        on: {
          submit: async (ev) => {
            ev.preventDefault();
            const frame = { type: "script_execute", server: server.value, args: scriptArgs.value ? scriptArgs.value.split("|") : [] };
            if (scriptText.value) frame.script = scriptText.value;
            else frame.script_name = scriptName.value;
            pane.term.reset();
            scriptRun.disabled = true;
            scriptCancel.disabled = false;
            scriptStatus.textContent = "running…";
            const running = work.begin(`the script ${frame.script_name || "(pasted)"} on ${frame.server}`);
            try {
              const done = await ws.request(frame, ["script_complete"]);
              scriptStatus.textContent = `ended: ${done.reason}${done.exit_status != null ? `, exit status ${done.exit_status}` : ""}`;
            } catch (e) {
              scriptStatus.textContent = errorText(e);
            } finally {
              running();
              scriptRun.disabled = false;
              scriptCancel.disabled = true;
            }
          },
        },
      },
      h("div", { class: "row" }, field("Script", scriptName), field("Arguments", scriptArgs)),
      scriptText,
      h("div", { class: "row" }, scriptRun, scriptCancel, scriptStatus),
    ),
    pane.el,
  );
  panel.addEventListener("shown", () => requestAnimationFrame(pane.resize));

  // The login directory is listed at once, and again for another server;
  // after a reconnect the folder on screen is listed again.
  ws.on("welcome", () => server.value && open(current));
  server.addEventListener("change", () => open("."));
  store.watch("servers", () => {
    if (server.value && !entries.length && ws.state === "open") open(current);
  });
  // output frames carry no request_id; one script runs per connection
  ws.on("script_output", (f) => {
    writeSliced(pane.term, f.data);
    ctx.activity();
  });
}
