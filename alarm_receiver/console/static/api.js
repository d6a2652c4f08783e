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

// Called with (why, code) when the session ends: why is "expired", "ended" (by the server, e.g. a logout in
// another tab) or "logout" (here); code is the server's when it gave one (auth.session_expired, auth.logged_out,
// auth.session_ended). The app sends the user to login with both (#/login?reason=...&code=...), which says why.
export function onSessionEnd(fn) {
  listeners.add(fn);
}

function ended(why, code) {
  const had = sessionStorage.getItem(KEY) !== null;
  sessionStorage.removeItem(KEY);
  // Already ended (several calls failing at once, or the live feed's `session_ended` after a logout here): the
  // first reason is the one said.
  if (!had) return;
  if (expiryTimer) clearTimeout(expiryTimer);
  expiryTimer = null;
  for (const fn of listeners) fn(why, code);
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
  constructor(status, detail, code = null, params = null, retryAfter = undefined) {
    super(typeof detail === "string" ? detail : JSON.stringify(detail));
    this.status = status;
    this.detail = detail;
    this.code = code;
    this.params = params || {};
    this.retryAfter = retryAfter; // seconds, from a 429's Retry-After
  }
}

function refusal(status, data, statusText, retryAfter) {
  if (data && typeof data === "object" && "code" in data)
    return new ApiError(status, data.detail, data.code, data.params, retryAfter);
  const detail = data && typeof data === "object" && "detail" in data ? data.detail : data || statusText;
  return new ApiError(status, detail, null, null, retryAfter);
}

export async function login(username, password) {
  const r = await fetch("/api/v1/auth/token", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ username, password }),
  });
  if (!r.ok) {
    const retryAfter = Number(r.headers.get("Retry-After")) || undefined; // a throttled login: when to try again
    throw refusal(r.status, await r.json().catch(() => null), r.statusText, retryAfter);
  }
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
    throw new ApiError(401, "not logged in", "auth.not_logged_in");
  }
  const init = { method, headers: { Authorization: `Bearer ${s.token}`, Accept: "application/json" } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const r = await fetch(path, init);
  if (r.status === 401) {
    // the server says why: auth.session_expired, auth.logged_out (elsewhere), auth.session_ended
    const data = await r.json().catch(() => null);
    const code = data && typeof data === "object" && typeof data.code === "string" ? data.code : null;
    ended("expired", code);
    throw new ApiError(401, "session ended", code || "auth.session_ended");
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

// The receiver's live feed, read with fetch() so the token travels in the Authorization header, never in the
// URL (where it would land in logs and history). onAlarm(alarm) per change; onState(true|false) on
// connect/disconnect; onReconnect() after a reconnect (the page reloads its list: events may have been missed).
// The server ends the stream with `session_ended` {code} at logout or expiry: the session ends here too.
export function liveFeed({ onAlarm, onState, onReconnect, onCall }) {
  let closed = false;
  let wasOpen = false;
  let retry = null;
  let abort = null;
  const dispatch = (event, data) => {
    if (event === "hello") {
      onState && onState(true);
      if (wasOpen && onReconnect) onReconnect();
      wasOpen = true;
    } else if (event === "alarm") {
      onAlarm(JSON.parse(data), performance.now());
    } else if (event === "call") {
      if (onCall) onCall(JSON.parse(data)); // a voice call rang, was answered, ended (call.js)
    } else if (event === "session_ended") {
      closed = true;
      const code = JSON.parse(data).code;
      ended(code === "auth.session_expired" ? "expired" : "ended", code);
    }
  };
  const read = async (body) => {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    let event = "message";
    let data = [];
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let nl;
      while ((nl = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, nl).replace(/\r$/, "");
        buffer = buffer.slice(nl + 1);
        if (line === "") {
          if (data.length) dispatch(event, data.join("\n"));
          event = "message";
          data = [];
        } else if (line.startsWith("event:")) event = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      }
    }
  };
  const open = async () => {
    const s = session();
    if (!s || closed) return;
    abort = new AbortController();
    try {
      const r = await fetch("/api/v1/events", {
        headers: { Authorization: `Bearer ${s.token}`, Accept: "text/event-stream" },
        signal: abort.signal,
        cache: "no-store",
      });
      if (r.status === 401) {
        const body = await r.json().catch(() => ({}));
        ended("expired", body.code);
        return;
      }
      if (!r.ok || !r.body) throw new Error(`live feed: HTTP ${r.status}`);
      await read(r.body);
    } catch {
      /* network error or aborted: retried below unless closed */
    }
    onState && onState(false);
    if (!closed && session()) retry = setTimeout(open, 1000);
  };
  open();
  return () => {
    closed = true;
    if (retry) clearTimeout(retry);
    if (abort) abort.abort();
  };
}
