// REST calls: same-origin, the HttpOnly session cookie goes by itself (the
// page never sees a credential), errors become ApiError with the catalogue's
// code and message.

/** An error body from the daemon (`{success: false, error: {code, message, detail}}`). */
export class ApiError extends Error {
  constructor(status, body, headers = null) {
    const e = (body && body.error) || {};
    super(e.message || `HTTP ${status}`);
    this.status = status;
    this.code = e.code || status;
    this.detail = e.detail || null;
    /** seconds to wait before trying again (`Retry-After`), when said */
    const wait = Number(headers?.get("retry-after"));
    this.retryAfter = Number.isFinite(wait) && wait > 0 ? wait : null;
  }
}

/** `method path` with an optional JSON body; resolves the JSON reply (or null). */
export async function api(method, path, body) {
  const init = { method, credentials: "same-origin", headers: {} };
  if (body !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path, init);
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!res.ok) throw new ApiError(res.status, data, res.headers);
  return data;
}

/** A query string from an object, skipping empty values. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : "";
}

/**
 * Uploads `file` with PUT (streamed by the browser), reporting progress
 * through `onProgress(loaded, total)`. XMLHttpRequest, because fetch has no
 * upload progress.
 */
export function upload(path, file, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("PUT", path);
    xhr.withCredentials = true;
    xhr.upload.addEventListener("progress", (e) => onProgress(e.loaded, e.total || file.size));
    xhr.addEventListener("load", () => {
      let data = null;
      try {
        data = JSON.parse(xhr.responseText);
      } catch {
        data = null;
      }
      if (xhr.status >= 200 && xhr.status < 300) resolve(data);
      else reject(new ApiError(xhr.status, data));
    });
    xhr.addEventListener("error", () => reject(new ApiError(0, { error: { code: 0, message: "network error" } })));
    xhr.send(file);
  });
}
