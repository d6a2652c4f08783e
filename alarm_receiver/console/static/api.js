// Session (token in sessionStorage), JSON calls with the bearer token, 401 -> login, the live feed.
import { httpError, networkError, tr } from "./messages.js";

const KEY = "trygg.session";
let expiryTimer = null;
const listeners = new Set();

export function session() {
  try {
    const s = JSON.parse(sessionStorage.getItem(KEY) || "null");
    if (!s || !s.token || !s.expires_at) return null;
    if (Date.parse(s.expires_at) <= Date.now()) {
      // found expired (the tab slept past expires_at): the session ends with its reason, not silently
      ended("expired");
      return null;
    }
    return s;
  } catch {
    return null;
  }
}

// Called with "expired" or "logout" when the session ends; the app sends the user to login with the reason.
export function onSessionEnd(fn) {
  listeners.add(fn);
}

function ended(why) {
  const had = sessionStorage.getItem(KEY) !== null;
  sessionStorage.removeItem(KEY);
  if (!had && why === "expired") return; // already ended (several calls failing at once): said once
  if (expiryTimer) clearTimeout(expiryTimer);
  expiryTimer = null;
  for (const fn of listeners) fn(why);
}

export function watchExpiry() {
  if (expiryTimer) clearTimeout(expiryTimer);
  const s = session();
  if (!s) return;
  const ms = Math.max(0, Date.parse(s.expires_at) - Date.now());
  expiryTimer = setTimeout(() => ended("expired"), Math.min(ms, 2 ** 31 - 1));
}

// A refusal: the status, the code and parameters the console translates, and the English detail (API users'
// text, never shown).
export class ApiError extends Error {
  constructor(status, detail, code = null, params = null) {
    super(typeof detail === "string" ? detail : JSON.stringify(detail));
    this.status = status;
    this.detail = detail;
    this.code = code;
    this.params = params || {};
  }
}

function refusal(status, data, statusText) {
  if (data && typeof data === "object" && "code" in data) return new ApiError(status, data.detail, data.code, data.params);
  const detail = data && typeof data === "object" && "detail" in data ? data.detail : data || statusText;
  return new ApiError(status, detail);
}

export async function login(username, password) {
  const r = await fetch("/api/v1/auth/token", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ username, password }),
  });
  if (!r.ok) throw refusal(r.status, await r.json().catch(() => null), r.statusText);
  const body = await r.json();
  const s = { token: body.access_token, expires_at: body.expires_at, role: body.role, username: body.username };
  sessionStorage.setItem(KEY, JSON.stringify(s));
  watchExpiry();
  return s;
}

// The session ends here at once; the server-side revocation follows. Ending it only after the request
// returned let a slow revocation wipe a session that the next user had opened in the meantime.
export async function logout() {
  const s = session();
  ended("logout");
  if (s) {
    await fetch("/api/v1/auth/logout", {
      method: "POST",
      headers: { Authorization: `Bearer ${s.token}` },
      keepalive: true,
    }).catch(() => null);
  }
}

export async function call(method, path, body) {
  const s = session();
  if (!s) {
    ended("expired");
    throw new ApiError(401, "not logged in", "auth.expired");
  }
  const init = { method, headers: { Authorization: `Bearer ${s.token}`, Accept: "application/json" } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const r = await fetch(path, init);
  if (r.status === 401) {
    ended("expired");
    throw new ApiError(401, "session expired", "auth.expired");
  }
  const text = await r.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = text;
    }
  }
  if (!r.ok) throw refusal(r.status, data, r.statusText);
  return data;
}

export const get = (p) => call("GET", p);
export const post = (p, b) => call("POST", p, b ?? {});
export const put = (p, b) => call("PUT", p, b);
export const patch = (p, b) => call("PATCH", p, b);

// A readable message for an error, in the console's language: a refusal's code with its parameters; a status
// alone when the answer had no code; a network failure. Never the server's English.
export function describe(err) {
  if (err instanceof ApiError) return err.code ? tr(err.code, err.params) : httpError(err.status);
  return networkError();
}

// The receiver's live feed. onAlarm(alarm) per change; onState(true|false) on connect/disconnect;
// onReconnect() after a reconnect (the page reloads its list: events may have been missed).
export function liveFeed({ onAlarm, onState, onReconnect }) {
  let es = null;
  let closed = false;
  let wasOpen = false;
  let retry = null;
  const open = () => {
    const s = session();
    if (!s || closed) return;
    es = new EventSource(`/api/v1/events?access_token=${encodeURIComponent(s.token)}`);
    es.addEventListener("hello", () => {
      onState && onState(true);
      if (wasOpen && onReconnect) onReconnect();
      wasOpen = true;
    });
    es.addEventListener("alarm", (ev) => onAlarm(JSON.parse(ev.data), performance.now()));
    es.onerror = () => {
      onState && onState(false);
      es.close();
      if (closed) return;
      // a 401 (expired token) shows up as an error too: check the session before retrying
      retry = setTimeout(async () => {
        try {
          await get("/api/v1/auth/me");
          open();
        } catch {
          /* call() handled a 401; other errors: try again later */
          if (!closed && session()) retry = setTimeout(open, 3000);
        }
      }, 1000);
    };
  };
  open();
  return () => {
    closed = true;
    if (retry) clearTimeout(retry);
    if (es) es.close();
  };
}
