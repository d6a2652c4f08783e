// The console's shell: login, role-based landing, hash routes, header (language, sound, logout).
import { describe, logout, onSessionEnd, session, watchExpiry } from "./api.js";
import { startPhone, stopPhone } from "./call.js";
import { config, loadConfig } from "./config.js";
import { label, lang, setLang, t } from "./i18n.js";
import { audioRunning, clearFlash, h, isMuted, onSoundChange, setMuted, unlockAudio } from "./ui.js";
import "./clients_i18n.js"; // the client register's strings (issue 10)

const LANDING = { operator: "queue", patrol: "patrol", technician: "devices", case_officer: "consents", admin: "queue" };

// route -> [module, roles allowed]
const ROUTES = {
  login: ["./pages/login.js", null],
  queue: ["./pages/queue.js", ["operator", "admin"]],
  alarm: ["./pages/alarm.js", ["operator", "admin"]],
  patrol: ["./pages/patrol.js", ["patrol"]],
  checkin: ["./pages/checkin.js", ["operator"]],
  devices: ["./pages/devices.js", ["technician", "operator", "admin"]],
  device: ["./pages/device.js", ["technician", "operator", "admin"]],
  consents: ["./pages/consents.js", ["case_officer", "operator", "admin"]],
  log: ["./pages/log.js", ["case_officer", "admin"]],
  overview: ["./pages/overview.js", ["operator", "admin"]],
  clients: ["./pages/clients.js", ["operator", "technician", "case_officer", "admin"]],
  client: ["./pages/client.js", ["operator", "technician", "case_officer", "admin"]],
};
const NAV = ["queue", "overview", "patrol", "devices", "consents", "log", "clients"];
const SOUND_ROLES = ["operator", "admin", "patrol"]; // the roles whose pages sound an alarm

let cleanup = null;

export function landing(role) {
  return `#/${LANDING[role] || "login"}`;
}

function parse() {
  const raw = location.hash.replace(/^#\/?/, "");
  const [path, query] = raw.split("?");
  const [name, ...rest] = path.split("/");
  return { name: name || "", params: rest.map(decodeURIComponent), query: new URLSearchParams(query || "") };
}

// The sound button says the state and the action: "Ljud: på · Stäng av" (aria-pressed = muted).
function renderSound(s) {
  const btn = document.getElementById("mute");
  const muted = isMuted();
  btn.replaceChildren(
    h("span", { class: `sound-state ${muted ? "off" : "on"}`, text: muted ? t("sound_off_state") : t("sound_on_state") }),
    ` · ${muted ? t("sound_turn_on") : t("sound_turn_off")}`,
  );
  btn.setAttribute("aria-pressed", muted ? "true" : "false");
  btn.dataset.muted = muted ? "1" : "0";
  // Until the browser lets the page play sound (a click or a key in it), say so where it cannot be missed.
  const banner = document.getElementById("sound-banner");
  const locked = Boolean(s && SOUND_ROLES.includes(s.role) && !muted && !audioRunning());
  banner.hidden = !locked;
  banner.textContent = locked ? t("sound_locked") : "";
}

function renderHeader(s) {
  const top = document.getElementById("top");
  top.hidden = !s;
  document.getElementById("lang").textContent = t("lang_switch");
  document.getElementById("logout").textContent = t("logout");
  renderSound(s);
  if (!s) return;
  document.getElementById("who").textContent = `${s.username} (${label("role", s.role)})`;
  const current = parse().name;
  document.getElementById("nav").replaceChildren(
    ...NAV.filter((r) => ROUTES[r][1].includes(s.role)).map((r) =>
      h("a", { href: `#/${r}`, class: r === current ? "active" : "", id: `nav-${r}`, text: t(`nav_${r}`) }),
    ),
  );
}

async function route() {
  if (cleanup) {
    try {
      cleanup();
    } catch {
      /* a page's cleanup failing must not stop navigation */
    }
    cleanup = null;
  }
  clearFlash(); // a message belongs to the page it was shown on
  const main = document.getElementById("main");
  const s = session();
  let { name, params, query } = parse();
  if (!s && name !== "login") {
    // session() may just have ended an expired session and sent us to login with the reason: keep it
    if (parse().name !== "login") location.replace("#/login");
    return;
  }
  if (s && (name === "" || name === "login")) {
    location.replace(landing(s.role));
    return;
  }
  renderHeader(s);
  startPhone(); // voice calls ring on every page of an operator or a patrol (once per login)
  const entry = ROUTES[name];
  if (!entry) {
    main.replaceChildren(h("p", { class: "notice", id: "not-found", text: t("not_found") }));
    return;
  }
  if (entry[1] && !entry[1].includes(s.role)) {
    main.replaceChildren(h("p", { class: "notice error", id: "forbidden", text: t("forbidden") }));
    return;
  }
  main.replaceChildren(h("p", { class: "notice", text: t("loading") }));
  const mod = await import(entry[0]);
  const ctx = { session: s, config, query, landing };
  try {
    cleanup = (await mod.render(main, params, ctx)) || null;
  } catch (err) {
    // a page that cannot load (a 404, the gateway down) says why, in the console's language
    main.replaceChildren(h("p", { class: "notice error", id: "page-error", text: t("error", { msg: describe(err) }) }));
  }
  document.body.dataset.page = name;
}

async function start() {
  setLang(lang());
  await loadConfig();
  if (new URLSearchParams(location.search).get("loopback") === "1") config.loopback_only = true;
  // The session ended: to the login page, which says why (?reason=expired | logout | ended, and the server's
  // code when it gave one: ?code=auth.session_expired). In the URL, so no second routing can lose it.
  onSessionEnd((why, code) => {
    stopPhone();
    const target = `#/login?reason=${encodeURIComponent(why)}${code ? `&code=${encodeURIComponent(code)}` : ""}`;
    if (location.hash !== target) location.replace(target);
  });
  document.getElementById("lang").addEventListener("click", () => {
    setLang(lang() === "sv" ? "en" : "sv");
    route();
  });
  document.getElementById("mute").addEventListener("click", () => {
    setMuted(!isMuted());
    unlockAudio();
  });
  document.getElementById("sound-banner").addEventListener("click", unlockAudio);
  onSoundChange(() => renderSound(session()));
  document.getElementById("logout").addEventListener("click", () => logout());
  document.addEventListener("pointerdown", unlockAudio);
  document.addEventListener("keydown", unlockAudio);
  window.addEventListener("hashchange", route);
  watchExpiry();
  unlockAudio(); // runs at once where the browser allows it; otherwise the banner asks for a click
  await route();
  window.__consoleReady = true;
}

start();
