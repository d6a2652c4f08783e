// The console's shell: login, role-based landing, hash routes, header (language, sound, logout).
import { logout, onSessionEnd, session, watchExpiry } from "./api.js";
import { lang, setLang, t } from "./i18n.js";
import { h, isMuted, setMuted, unlockAudio } from "./ui.js";

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
};
const NAV = ["queue", "overview", "patrol", "devices", "consents", "log"];

let cleanup = null;
let config = { loopback_only: false, timezone: "Europe/Stockholm" };
// Why the last session ended (a code the login page translates), or null after a logout here.
let endNotice = null;

export function landing(role) {
  return `#/${LANDING[role] || "login"}`;
}

function parse() {
  const raw = location.hash.replace(/^#\/?/, "");
  const [path, query] = raw.split("?");
  const [name, ...rest] = path.split("/");
  return { name: name || "", params: rest.map(decodeURIComponent), query: new URLSearchParams(query || "") };
}

function renderHeader(s) {
  const top = document.getElementById("top");
  top.hidden = !s;
  document.getElementById("lang").textContent = t("lang_switch");
  document.getElementById("mute").textContent = isMuted() ? t("unmute") : t("mute");
  document.getElementById("logout").textContent = t("logout");
  if (!s) return;
  document.getElementById("who").textContent = `${s.username} (${s.role})`;
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
  const main = document.getElementById("main");
  const s = session();
  let { name, params, query } = parse();
  if (!s && name !== "login") {
    location.replace("#/login");
    return;
  }
  if (s && (name === "" || name === "login")) {
    location.replace(landing(s.role));
    return;
  }
  renderHeader(s);
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
  const ctx = { session: s, config, query, landing, notice: endNotice };
  endNotice = null;
  cleanup = (await mod.render(main, params, ctx)) || null;
  document.body.dataset.page = name;
}

async function start() {
  setLang(lang());
  try {
    const r = await fetch("/console/config.json");
    if (r.ok) config = await r.json();
  } catch {
    /* defaults */
  }
  if (new URLSearchParams(location.search).get("loopback") === "1") config.loopback_only = true;
  onSessionEnd((why, code) => {
    endNotice = why === "logout" ? null : code || "auth.session_ended";
    if (parse().name !== "login") location.hash = "#/login";
    else route();
  });
  document.getElementById("lang").addEventListener("click", () => {
    setLang(lang() === "sv" ? "en" : "sv");
    route();
  });
  document.getElementById("mute").addEventListener("click", () => {
    setMuted(!isMuted());
    renderHeader(session());
  });
  document.getElementById("logout").addEventListener("click", () => logout());
  document.addEventListener("pointerdown", unlockAudio);
  document.addEventListener("keydown", unlockAudio);
  window.addEventListener("hashchange", route);
  watchExpiry();
  await route();
  window.__consoleReady = true;
}

start();
