// The night overview: a timeline per client and the shift's figures, drawn as SVG in the page (no library).
import { describe, get } from "../api.js";
import { label, lang, t } from "../i18n.js";
import { dateInput, fmtDateTime, fmtHM, h, localDate, s } from "../ui.js";
import { TASKS, TECHNICAL, outcomeText } from "./common.js";

const kind = (type) => (TASKS.has(type) ? "task" : TECHNICAL.has(type) ? "technical" : "alarm");
// Seconds: one decimal under ten (0,3 s), whole seconds above; the locale's decimal sign.
const secs = (v) => {
  if (v === null || v === undefined) return t("none");
  const digits = Math.abs(v) < 10 ? 1 : 0;
  const n = new Intl.NumberFormat(lang() === "en" ? "en-GB" : "sv-SE", { maximumFractionDigits: digits }).format(v);
  return t("seconds", { s: n });
};

// A time figure: the median, then p90 and n; with few values, the values themselves.
function figureCard(id, title, f) {
  const few = Array.isArray(f.values) ? ` · ${t("values", { v: f.values.map(secs).join(", ") || t("none") })}` : "";
  return h(
    "div",
    { class: "card" },
    h("h3", { text: title }),
    h("div", { class: "figure", id, text: `${t("p50")} ${secs(f.p50)}` }),
    h("div", { class: "figure-detail", id: `${id}-detail`, text: `${t("n_values", { n: f.n })} · ${t("p90")} ${secs(f.p90)}${few}` }),
  );
}

function barChart(id, entries) {
  const w = 560;
  const row = 26;
  const hgt = Math.max(1, entries.length) * row + 10;
  const max = Math.max(1, ...entries.map(([, v]) => v));
  return s(
    "svg",
    { class: "chart", id, viewBox: `0 0 ${w} ${hgt}`, role: "img" },
    entries.map(([name, v], i) => [
      s("text", { x: 4, y: i * row + 20, text: name }),
      s("rect", { class: "bar", x: 200, y: i * row + 6, height: row - 8, width: Math.max(2, ((w - 260) * v) / max) }),
      s("text", { x: 206 + ((w - 260) * v) / max, y: i * row + 20, text: String(v) }),
    ]),
  );
}

function timeline(data) {
  const from = Date.parse(data.since);
  const to = Date.parse(data.until);
  const left = 150;
  const w = 1100;
  const row = 30;
  const x = (iso) => left + ((w - left - 10) * (Date.parse(iso) - from)) / Math.max(1, to - from);
  const hours = [];
  for (let tm = Math.ceil(from / 3600e3) * 3600e3; tm <= to; tm += 3600e3) hours.push(tm);
  const hgt = data.clients.length * row + 40;
  return s(
    "svg",
    { class: "chart", id: "timeline", viewBox: `0 0 ${w} ${hgt}`, role: "img" },
    hours.map((tm) => [
      s("line", { class: "axis", x1: x(new Date(tm).toISOString()), x2: x(new Date(tm).toISOString()), y1: 0, y2: hgt - 20, stroke: "#39414d" }),
      s("text", { x: x(new Date(tm).toISOString()) - 16, y: hgt - 4, text: fmtHM(new Date(tm).toISOString()) }),
    ]),
    data.clients.map((c, i) => [
      s("text", { x: 4, y: i * row + 22, text: c.client.slice(0, 18) }),
      c.items.map((it) => {
        const cx = x(it.at);
        const y = i * row + 17;
        const k = it.checkin === "done" ? "done" : kind(it.type);
        // shape AND colour: circle = alarm, square = task, triangle = technical
        const title = s("title", { text: `${fmtHM(it.at)} ${label("ty", it.type)} ${label("st", it.state)} ${outcomeText(it) || ""}` });
        if (kind(it.type) === "task") return s("rect", { class: `m-${k}`, x: cx - 6, y: y - 6, width: 12, height: 12, "data-type": it.type }, title);
        if (kind(it.type) === "technical") return s("polygon", { class: `m-${k}`, points: `${cx},${y - 7} ${cx + 7},${y + 6} ${cx - 7},${y + 6}`, "data-type": it.type }, title);
        return s("circle", { class: `m-${k}`, cx, cy: y, r: 7, "data-type": it.type }, title);
      }),
    ]),
  );
}

// YYYY-MM-DD plus n days (calendar arithmetic in UTC: no daylight-saving edge can move the date).
function addDays(day, n) {
  const d = new Date(`${day}T12:00:00Z`);
  d.setUTCDate(d.getUTCDate() + n);
  return d.toISOString().slice(0, 10);
}

// Choose a night (the local date on which it began), step to the one before or after, or go back to the last hours.
function nightPicker(night, hours) {
  const go = (n) => {
    location.hash = n ? `#/overview?night=${n}` : "#/overview";
  };
  const current = night || localDate(new Date(Date.now() - 12 * 3600 * 1000));
  const input = dateInput({ id: "night-date", value: current, max: localDate(new Date()) }, (v) => go(v));
  const btn = (id, text, onClick, attrs = {}) => {
    const b = h("button", { class: "btn small", type: "button", id, text, ...attrs });
    b.addEventListener("click", onClick);
    return b;
  };
  return h(
    "div",
    { class: "toolbar", id: "night-picker" },
    btn("night-prev", `‹ ${t("night_prev")}`, () => go(addDays(current, -1))),
    h("label", { class: "field inline" }, h("span", { text: t("night_of") }), input),
    btn("night-next", `${t("night_next")} ›`, () => go(addDays(current, 1)), night && night >= localDate(new Date()) ? { disabled: true } : {}),
    btn("night-latest", t("last_hours", { n: hours }), () => go(null), night ? {} : { disabled: true }),
  );
}

export async function render(main, _params, ctx) {
  const hours = Number(ctx.query.get("hours") || 12);
  const nightParam = ctx.query.get("night");
  const night = nightParam && /^\d{4}-\d{2}-\d{2}$/.test(nightParam) ? nightParam : null;
  let data;
  try {
    data = await get(night ? `/api/v1/overview/night?night=${night}` : `/api/v1/overview/night?hours=${hours}`);
  } catch (err) {
    main.replaceChildren(nightPicker(night, hours), h("p", { class: "notice error", text: t("error", { msg: describe(err) }) }));
    return;
  }
  const ck = data.checkins;
  main.replaceChildren(
    h(
      "div",
      { class: "page-head" },
      h("h1", { text: night ? t("overview_night", { night }) : t("overview_title") }),
      h("span", { class: "count", id: "period", text: `${night ? fmtDateTime(data.since) : fmtHM(data.since)}–${fmtHM(data.until)} · ${data.repeats ? t("total_repeats", { n: data.total, r: data.repeats }) : t("total", { n: data.total })}` }),
    ),
    nightPicker(night, hours),
    h("h2", { text: t("figures") }),
    h(
      "div",
      { class: "figures", id: "figures" },
      figureCard("fig-ack", t("ack_time"), data.ack_s),
      figureCard("fig-onsite", t("onsite_time"), data.on_site_s),
      h("div", { class: "card" }, h("h3", { text: t("checkins") }), h("div", { class: "figure", id: "fig-checkins", text: `${ck.done} ${t("ck_done")} · ${ck.missed} ${t("ck_missed")}` }), h("div", { text: `${ck.open} ${t("ck_open")} · ${ck.cancelled} ${t("ck_cancelled")}` })),
    ),
    h("h2", { text: t("by_type") }),
    barChart("by-type", Object.entries(data.by_type).map(([k, v]) => [label("ty", k), v])),
    h("h2", { text: t("timeline") }),
    h("p", { class: "keys", text: `${t("legend")}: ${t("legend_text")}` }),
    timeline(data),
  );
}
