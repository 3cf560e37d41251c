// One WebSocket client per endpoint: reconnects by itself with backoff and
// says so (a visible state), matches replies to requests by request_id
// (a promise per request), and hands every frame to the subscribers of its
// type (broadcasts: session_status, server_health).

const MAX_BACKOFF_MS = 15000;

/** A WebSocket to one endpoint of the daemon (`/ws/v1/stub`, ...). */
export class WsClient {
  constructor(endpoint) {
    this.endpoint = endpoint;
    this.prefix = endpoint.split("/").pop();
    this.ws = null;
    this.seq = 0;
    this.attempt = 0;
    this.stopped = false;
    /** request_id -> {done: Set, onFrame, resolve, reject, rejectOnError} */
    this.pending = new Map();
    /** type ("*" for all) -> Set of handlers */
    this.handlers = new Map();
    this.state = "connecting";
    /** called on a drop, before the reconnect: may stop the client (signed out) */
    this.onDropped = null;
  }

  /** Opens the socket (again). */
  connect() {
    if (this.stopped) return;
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${scheme}//${location.host}${this.endpoint}`);
    this.ws = ws;
    this.setState(this.attempt === 0 ? "connecting" : this.restarting ? "restarting" : "reconnecting");
    ws.addEventListener("open", () => {
      this.attempt = 0;
      this.restarting = false;
      this.setState("open");
    });
    ws.addEventListener("message", (ev) => this.dispatch(ev.data));
    ws.addEventListener("close", (ev) => this.dropped(ev));
  }

  /** Closes for good (sign out). */
  stop() {
    this.stopped = true;
    if (this.ws) this.ws.close(1000, "signed out");
    this.setState("closed");
  }

  dispatch(text) {
    let frame;
    try {
      frame = JSON.parse(text);
    } catch {
      return;
    }
    // the daemon is stopping (30004): the drop that follows is a restart,
    // not a network fault, and says so until the daemon is back
    if (frame.type === "shutdown") this.restarting = true;
    const id = frame.request_id;
    const waiting = id !== undefined ? this.pending.get(id) : undefined;
    if (waiting) {
      if (waiting.onFrame) waiting.onFrame(frame);
      if (frame.type === "error" && waiting.rejectOnError) {
        this.pending.delete(id);
        waiting.reject(wsError(frame));
      } else if (waiting.done.has(frame.type)) {
        this.pending.delete(id);
        waiting.resolve(frame);
      }
    }
    this.emit(frame.type, frame);
    this.emit("*", frame);
  }

  dropped(ev) {
    if (this.ws && this.ws.readyState !== WebSocket.CLOSED) return;
    for (const [, waiting] of this.pending) {
      waiting.reject({ code: "disconnected", message: "the connection dropped; the request's end is unknown" });
    }
    this.pending.clear();
    this.emit("_dropped", { code: ev.code, reason: ev.reason });
    if (this.stopped) return;
    this.setState(this.restarting ? "restarting" : "reconnecting");
    const delay = Math.min(MAX_BACKOFF_MS, 250 * 2 ** this.attempt) * (0.75 + Math.random() / 2);
    this.attempt += 1;
    Promise.resolve(this.onDropped ? this.onDropped(ev) : true).then((goOn) => {
      if (goOn === false) this.stop();
      else setTimeout(() => this.connect(), delay);
    });
  }

  setState(state) {
    this.state = state;
    this.emit("_state", state);
  }

  /** Subscribes `fn` to frames of `type`; returns the unsubscribe function. */
  on(type, fn) {
    if (!this.handlers.has(type)) this.handlers.set(type, new Set());
    this.handlers.get(type).add(fn);
    return () => this.handlers.get(type).delete(fn);
  }

  emit(type, value) {
    for (const fn of this.handlers.get(type) || []) {
      try {
        fn(value);
      } catch (e) {
        console.error(e);
      }
    }
  }

  /** Sends a frame as is; false when the socket is not open. */
  send(frame) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  /** A fresh request_id for this connection. */
  nextId() {
    this.seq += 1;
    return `${this.prefix}-${this.seq}`;
  }

  /**
   * Sends `frame` with a new request_id; resolves with the first reply whose
   * type is in `done`, rejects on an error frame (unless `rejectOnError` is
   * false) or a drop. `onFrame` sees every frame of the request on the way.
   */
  request(frame, done, { onFrame = null, rejectOnError = true } = {}) {
    const id = this.nextId();
    return new Promise((resolve, reject) => {
      this.pending.set(id, { done: new Set(done), onFrame, resolve, reject, rejectOnError });
      if (!this.send({ ...frame, request_id: id })) {
        this.pending.delete(id);
        reject({ code: "disconnected", message: "not connected to the daemon" });
      }
    });
  }
}

/** The `{code, message, detail}` of an error frame. */
export function wsError(frame) {
  const e = frame.error || {};
  return { code: e.code, message: e.message || "error", detail: e.detail || null };
}
