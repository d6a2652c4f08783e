// DOM helpers (text only: never innerHTML with data), local time (the `timezone` setting), priorities, dialogs,
// the audible cue.
import { config } from "./config.js";
import { lang, t } from "./i18n.js";

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") el.className = v;
      else if (k === "text") el.textContent = v;
      else if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
      else if (k === "dataset") Object.assign(el.dataset, v);
      else if (v === true) el.setAttribute(k, "");
      else el.setAttribute(k, String(v));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

const SVG_NS = "http://www.w3.org/2000/svg";
export function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "text") el.textContent = v;
    else if (k === "class") el.setAttribute("class", v);
    else if (v !== undefined && v !== null) el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

const formats = new Map();
function fmt(kind) {
  const TZ = config.timezone;
  const key = `${lang()}-${kind}-${TZ}`;
  if (!formats.has(key)) {
    const locale = lang() === "en" ? "en-GB" : "sv-SE";
    const opts =
      kind === "time"
        ? { timeZone: TZ, hour: "2-digit", minute: "2-digit", second: "2-digit" }
        : kind === "hm"
          ? { timeZone: TZ, hour: "2-digit", minute: "2-digit" }
          : { timeZone: TZ, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit" };
    formats.set(key, new Intl.DateTimeFormat(locale, opts));
  }
  return formats.get(key);
}

export const fmtTime = (iso) => (iso ? fmt("time").format(new Date(iso)) : t("none"));
export const fmtHM = (iso) => (iso ? fmt("hm").format(new Date(iso)) : t("none"));
export const fmtDateTime = (iso) => (iso ? fmt("full").format(new Date(iso)) : t("none"));

// The local calendar date of a moment (in the `timezone` setting), YYYY-MM-DD.
export function localDate(d) {
  return new Intl.DateTimeFormat("sv-SE", { timeZone: config.timezone, year: "numeric", month: "2-digit", day: "2-digit" }).format(d);
}

// How far the `timezone` setting's wall clock is ahead of UTC at moment d, in ms.
function zoneOffset(d) {
  const parts = new Intl.DateTimeFormat("en-US", {
    timeZone: config.timezone,
    hourCycle: "h23",
    year: "numeric",
    month: "2-digit",
    day: "2-digit",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
  }).formatToParts(d);
  const n = Object.fromEntries(parts.filter((p) => p.type !== "literal").map((p) => [p.type, Number(p.value)]));
  return Date.UTC(n.year, n.month - 1, n.day, n.hour, n.minute, n.second) - (d.getTime() - d.getMilliseconds());
}

// The moment a local date and wall-clock time (YYYY-MM-DD, HH:MM:SS) name in the `timezone` setting, whatever
// zone the browser is in (twice: the offset at the guess can differ from the offset at the answer near DST).
export function localMoment(day, hms = "00:00:00") {
  const wall = Date.parse(`${day}T${hms}Z`);
  const first = wall - zoneOffset(new Date(wall));
  return new Date(wall - zoneOffset(new Date(first)));
}

export function fmtAge(ms) {
  const sec = Math.max(0, Math.floor(ms / 1000));
  const hh = Math.floor(sec / 3600);
  const mm = Math.floor((sec % 3600) / 60);
  const ss = sec % 60;
  const two = (n) => String(n).padStart(2, "0");
  return hh > 0 ? `${hh}:${two(mm)}:${two(ss)}` : `${two(mm)}:${two(ss)}`;
}

// Priority 0-9 in four levels, each with a colour (CSS class), an icon and a word: never colour alone.
export function priorityLevel(p) {
  if (p >= 8) return { cls: "p-critical", icon: "‼", word: t("prio_critical") };
  if (p >= 6) return { cls: "p-high", icon: "▲", word: t("prio_high") };
  if (p >= 4) return { cls: "p-medium", icon: "●", word: t("prio_medium") };
  return { cls: "p-low", icon: "▽", word: t("prio_low") };
}

export function priorityBadge(p) {
  const lv = priorityLevel(p);
  return h("span", { class: `prio ${lv.cls}`, title: `${lv.word} (${p})` }, h("span", { class: "prio-icon", "aria-hidden": "true", text: lv.icon }), ` ${lv.word} ${p}`);
}

export function flash(msg, kind = "info") {
  const el = document.getElementById("status");
  el.textContent = msg;
  el.className = `status ${kind}`;
  clearTimeout(flash.timer);
  flash.timer = setTimeout(clearFlash, 6000);
}

// A message belongs to the page it was shown on: navigation clears it.
export function clearFlash() {
  clearTimeout(flash.timer);
  const el = document.getElementById("status");
  if (el) {
    el.textContent = "";
    el.className = "status";
  }
}

// A date as the console writes it everywhere: ISO, YYYY-MM-DD, whatever the browser's locale (a type="date"
// field shows the browser's own format, 11/29/2026 in an American Chromium). onDate(value) on a valid change;
// attrs.max (YYYY-MM-DD, e.g. today in the `timezone` setting) refuses later dates.
export function dateInput(attrs, onDate) {
  const input = h("input", {
    type: "text",
    inputmode: "numeric",
    pattern: "\\d{4}-\\d{2}-\\d{2}",
    placeholder: t("date_placeholder"),
    maxlength: "10",
    size: "10",
    autocomplete: "off",
    title: t("date_placeholder"),
    ...attrs,
  });
  let last = input.value;
  const commit = () => {
    const v = input.value.trim();
    const max = input.getAttribute("max");
    const ok = isIsoDate(v) && !(max && v > max);
    input.setCustomValidity(ok ? "" : isIsoDate(v) ? t("date_too_late", { max }) : t("bad_date"));
    if (!ok) input.reportValidity();
    else if (onDate && v !== last) {
      last = v;
      onDate(v);
    }
  };
  input.addEventListener("change", commit);
  if (onDate) {
    input.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter") {
        ev.preventDefault();
        commit();
      }
    });
  }
  return input;
}

export function isIsoDate(v) {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(v)) return false;
  const d = new Date(`${v}T12:00:00Z`);
  return !Number.isNaN(d.getTime()) && d.toISOString().slice(0, 10) === v;
}

// A modal form. fields: [{name, label, type: "text"|"textarea"|"select"|"date"|"number", options: [[value, label]],
// value, maxLength, required}]. With ``submit(values)`` the dialog stays open until it succeeds: an error is shown
// inside it and nothing typed is lost; it resolves with submit's result, or null (Esc / cancel). Without
// ``submit`` it resolves with the values. Enter confirms (Ctrl+Enter in a multi-line field).
export function ask(title, fields, { submit, describeError } = {}) {
  const dlg = document.getElementById("dialog");
  return new Promise((resolve) => {
    const inputs = {};
    const counters = [];
    let settled = false;
    let busy = false;
    const error = h("p", { class: "dialog-error", id: "dialog-error", role: "alert", hidden: true });
    const finish = (value) => {
      if (settled) return;
      settled = true;
      dlg.removeEventListener("cancel", onCancel);
      if (dlg.contains(document.activeElement)) document.activeElement.blur();
      if (dlg.open) dlg.close();
      resolve(value);
    };
    const onCancel = (ev) => {
      ev.preventDefault();
      finish(null);
    };
    const showError = (msg) => {
      error.textContent = msg;
      error.hidden = !msg;
    };
    const tooLong = () => {
      for (const c of counters) {
        const n = c.input.value.length;
        if (n > c.max) return t("note_too_long", { n, max: c.max });
      }
      return null;
    };
    const form = h(
      "form",
      { class: "form", novalidate: true },
      h("h2", { text: title }),
      fields.map((f) => {
        let input;
        const common = { name: f.name, id: `f-${f.name}`, autocomplete: "off" };
        if (f.type === "select") {
          input = h("select", common, f.options.map(([v, l]) => h("option", { value: v, text: l })));
          if (f.value !== undefined) input.value = f.value;
        } else if (f.type === "textarea") {
          input = h("textarea", { ...common, rows: "4", required: f.required });
          input.value = f.value ?? "";
          input.addEventListener("keydown", (ev) => {
            if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) {
              ev.preventDefault();
              form.requestSubmit();
            }
          });
        } else if (f.type === "date") {
          input = dateInput({ ...common, value: f.value ?? "", required: f.required });
        } else {
          input = h("input", { ...common, type: f.type || "text", value: f.value ?? "", required: f.required });
        }
        inputs[f.name] = input;
        const parts = [h("span", { text: f.label }), input];
        if (f.maxLength) {
          // the limit is shown, not enforced by the field: text pasted over it is kept, and the form says so
          const counter = h("small", { class: "counter", id: `f-${f.name}-count`, "aria-live": "polite" });
          const update = () => {
            const n = input.value.length;
            counter.textContent = t("note_counter", { n, max: f.maxLength });
            counter.classList.toggle("over", n > f.maxLength);
          };
          input.addEventListener("input", update);
          update();
          counters.push({ input, max: f.maxLength });
          parts.push(counter);
          if (f.type === "textarea") parts.push(h("small", { class: "hint", text: t("note_hint") }));
        }
        return h("label", { class: "field" }, parts);
      }),
      error,
      h(
        "div",
        { class: "actions" },
        h("button", { class: "btn primary", type: "submit", id: "dialog-ok", text: t("ok") }),
        h("button", { class: "btn", type: "button", id: "dialog-cancel", text: t("cancel"), onclick: () => finish(null) }),
      ),
    );
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      if (busy) return;
      const long = tooLong();
      if (long) return showError(long);
      for (const f of fields) {
        const el = inputs[f.name];
        if (f.required && !el.value.trim()) {
          el.focus();
          return showError(`${f.label}: ${t("required")}`);
        }
        if (f.type === "date" && el.value && !isIsoDate(el.value.trim())) {
          el.focus();
          return showError(t("bad_date"));
        }
      }
      const out = {};
      for (const [k, el] of Object.entries(inputs)) out[k] = el.value;
      if (!submit) return finish(out);
      busy = true;
      showError("");
      try {
        finish(await submit(out));
      } catch (err) {
        showError(describeError ? describeError(err) : String(err));
      } finally {
        busy = false;
      }
    });
    dlg.replaceChildren(form);
    dlg.addEventListener("cancel", onCancel);
    if (!dlg.open) dlg.showModal();
    const first = Object.values(inputs)[0];
    if (first) first.focus();
  });
}

// The alarm sound: WebAudio tones (no sound file). Browsers start audio only after the user has clicked or
// pressed a key in the page, so until then a banner says so (showSoundBanner). The mute switch is stored in
// localStorage; the queue keeps sounding (alarmSound) until every new priority alarm is acknowledged.
let audio = null;
const soundListeners = new Set();
export const isMuted = () => localStorage.getItem("trygg.mute") === "1";
export function setMuted(v) {
  localStorage.setItem("trygg.mute", v ? "1" : "0");
  notifySound();
}
export const audioRunning = () => Boolean(audio && audio.state === "running");
export function onSoundChange(fn) {
  soundListeners.add(fn);
  return () => soundListeners.delete(fn);
}
function notifySound() {
  for (const fn of soundListeners) fn();
}
// Try to start audio; works without a click only where the browser allows it. Call on every gesture too.
export function unlockAudio() {
  if (!audio && window.AudioContext) {
    audio = new AudioContext();
    audio.addEventListener("statechange", notifySound);
  }
  if (audio && audio.state === "suspended") audio.resume().then(notifySound, () => null);
  notifySound();
}
export function beep(urgent) {
  window.__beeps = (window.__beeps || 0) + 1;
  if (isMuted() || !audioRunning()) return;
  const now = audio.currentTime;
  const tones = urgent ? [880, 660, 880] : [660];
  tones.forEach((f, i) => {
    const osc = audio.createOscillator();
    const gain = audio.createGain();
    osc.frequency.value = f;
    gain.gain.setValueAtTime(0.0001, now + i * 0.22);
    gain.gain.exponentialRampToValueAtTime(0.3, now + i * 0.22 + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, now + i * 0.22 + 0.2);
    osc.connect(gain).connect(audio.destination);
    osc.start(now + i * 0.22);
    osc.stop(now + i * 0.22 + 0.21);
  });
}

// Sounds now and every ``everyMs`` while ``pending()`` says a priority alarm waits: null (silence), "normal" or
// "urgent". Returns a function that re-checks at once (call it on every change) and .stop() to end it.
export function alarmSound(pending, everyMs = 4000) {
  let timer = null;
  let level = null;
  const tick = () => {
    timer = null;
    level = pending();
    if (!level) return;
    beep(level === "urgent");
    timer = setTimeout(tick, everyMs);
  };
  // ``arrived``: a new priority alarm came in: sound at once, whatever the timer says
  const check = (arrived = false) => {
    const now = pending();
    if (now && (!level || arrived)) {
      if (timer) clearTimeout(timer);
      tick();
    } else if (!now) {
      if (timer) clearTimeout(timer);
      timer = null;
      level = null;
    } else level = now;
    window.__sounding = Boolean(level);
  };
  check.stop = () => {
    if (timer) clearTimeout(timer);
    timer = null;
    level = null;
    window.__sounding = false;
  };
  return check;
}

export function dl(pairs) {
  return h(
    "dl",
    { class: "dl" },
    pairs.filter(Boolean).map(([k, v]) => [h("dt", { text: k }), h("dd", {}, v ?? t("none"))]),
  );
}
