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
  flash.timer = setTimeout(() => {
    el.textContent = "";
    el.className = "status";
  }, 6000);
}

// A modal form. fields: [{name, label, type: "text"|"select"|"date"|"number", options: [[value, label]], value}].
// Resolves with {name: value} or null (Esc / cancel). Enter submits.
export function ask(title, fields) {
  const dlg = document.getElementById("dialog");
  return new Promise((resolve) => {
    const inputs = {};
    let settled = false;
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
    const form = h(
      "form",
      { class: "form" },
      h("h2", { text: title }),
      fields.map((f) => {
        let input;
        if (f.type === "select") {
          input = h("select", { name: f.name, id: `f-${f.name}` }, f.options.map(([v, l]) => h("option", { value: v, text: l })));
          if (f.value !== undefined) input.value = f.value;
        } else {
          input = h("input", { name: f.name, id: `f-${f.name}`, type: f.type || "text", value: f.value ?? "", required: f.required, autocomplete: "off" });
        }
        inputs[f.name] = input;
        return h("label", { class: "field" }, h("span", { text: f.label }), input);
      }),
      h(
        "div",
        { class: "actions" },
        h("button", { class: "btn primary", type: "submit", id: "dialog-ok", text: t("ok") }),
        h("button", { class: "btn", type: "button", id: "dialog-cancel", text: t("cancel"), onclick: () => finish(null) }),
      ),
    );
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const out = {};
      for (const [k, el] of Object.entries(inputs)) out[k] = el.value;
      finish(out);
    });
    dlg.replaceChildren(form);
    dlg.addEventListener("cancel", onCancel);
    if (!dlg.open) dlg.showModal();
    const first = Object.values(inputs)[0];
    if (first) first.focus();
  });
}

// A short beep from WebAudio (no sound file). Muted by the toggle stored in localStorage.
let audio = null;
export const isMuted = () => localStorage.getItem("trygg.mute") === "1";
export function setMuted(v) {
  localStorage.setItem("trygg.mute", v ? "1" : "0");
}
export function unlockAudio() {
  if (!audio && window.AudioContext) audio = new AudioContext();
  if (audio && audio.state === "suspended") audio.resume().catch(() => null);
}
export function beep(urgent) {
  window.__beeps = (window.__beeps || 0) + 1;
  if (isMuted() || !audio) return;
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

export function dl(pairs) {
  return h(
    "dl",
    { class: "dl" },
    pairs.filter(Boolean).map(([k, v]) => [h("dt", { text: k }), h("dd", {}, v ?? t("none"))]),
  );
}
