// What the daemon said, in one place: who is signed in, the environment,
// the session lock, each server's health. Screens subscribe to a key and
// are called on every change (and once at once with the current value).

const values = new Map();
const subscribers = new Map();

/** The current value of `key`. */
export function get(key) {
  return values.get(key);
}

/** Sets `key` and tells its subscribers. */
export function set(key, value) {
  values.set(key, value);
  for (const fn of subscribers.get(key) || []) fn(value);
}

/** Calls `fn` with `key`'s value now (if any) and on every change. */
export function watch(key, fn) {
  if (!subscribers.has(key)) subscribers.set(key, new Set());
  subscribers.get(key).add(fn);
  if (values.has(key)) fn(values.get(key));
  return () => subscribers.get(key).delete(fn);
}

/** Merges one server's health into the `health` map. */
export function setHealth(name, status) {
  const health = new Map(get("health") || []);
  health.set(name, { ...(health.get(name) || {}), ...status });
  set("health", health);
}
