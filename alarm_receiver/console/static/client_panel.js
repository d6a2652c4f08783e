// The person behind an alarm (issue 10): the client panel of the alarm detail and the patrol view, and the
// pieces the client pages share: address with a geo: link, way in, call list with tel: links, communication
// needs, notes. Health notes and codes are fetched apart (GET /api/v1/clients/{id}/protected?alarm=), only on a
// click, and every such view is logged by the server.
import { describe, get } from "./api.js";
import { label, t } from "./i18n.js";
import { tr } from "./messages.js";
import { dl, flash, fmtDateTime, h } from "./ui.js";
import { OPEN_STATES } from "./config.js";

export const BROKEN_LOCK = new Set(["jammed", "offline"]);

export function addressLines(c) {
  const extra = [c.floor ? t("client_floor", { floor: c.floor }) : null, c.entrance ? t("client_entrance", { entrance: c.entrance }) : null];
  return [c.street, [c.postcode, c.town].filter(Boolean).join(" "), extra.filter(Boolean).join(", ")].filter(Boolean);
}

// geo: URI (RFC 5870): the phone's own map app, no map tiles from anywhere.
export function geoLink(c) {
  if (c.lat === null || c.lat === undefined || c.lon === null || c.lon === undefined) return null;
  const q = encodeURIComponent(addressLines(c).slice(0, 2).join(", "));
  return h("a", { class: "btn small geo", id: "client-geo", href: `geo:${c.lat},${c.lon}?q=${q}`, text: `⌖ ${t("client_map")}` });
}

export function addressView(c) {
  return h("div", { class: "client-address", id: "client-address" }, addressLines(c).map((l) => h("div", { text: l })), geoLink(c));
}

export function lockLine(lk) {
  const state = label("lock_state", lk.state);
  const door = lk.door ? ` · ${t(`door_${lk.door}`)}` : "";
  const battery = lk.battery_pct !== null && lk.battery_pct !== undefined ? ` · ${lk.battery_pct} %` : "";
  return h("span", { class: `lock-state ls-${lk.state}`, dataset: { lock: lk.device_id, state: lk.state }, text: `${t("client_lock")}: ${state}${door}${battery}` });
}

// How to get in: a digital lock (with its state), the key safe's place, the key's number. A lock that is jammed
// or offline shows the fallback first (the key safe's code comes with the protected fields).
export function wayIn(c, prot) {
  const locks = c.locks || [];
  const broken = locks.some((lk) => BROKEN_LOCK.has(lk.state));
  const items = [];
  if (broken) items.push(h("p", { class: "notice error lock-fallback", id: "lock-fallback", text: `⚠ ${t("lock_fallback")}` }));
  for (const lk of locks) items.push(h("div", {}, lockLine(lk)));
  if (c.key_safe_location) items.push(h("div", { id: "key-safe" }, `${t("client_key_safe")}: ${c.key_safe_location}`));
  if (prot && prot.key_safe_code) items.push(h("div", { class: "protected", id: "key-safe-code" }, `${t("client_key_safe_code")}: `, h("strong", { text: prot.key_safe_code })));
  if (c.key_number) items.push(h("div", { id: "key-number", text: t("client_key_number", { n: c.key_number }) }));
  if (prot && prot.door_code) items.push(h("div", { class: "protected", id: "door-code" }, `${t("client_door_code")}: `, h("strong", { text: prot.door_code })));
  if (!items.length) items.push(h("p", { class: "notice", text: t("client_no_way_in") }));
  return h("div", { class: `way-in${broken ? " broken" : ""}`, id: "way-in" }, items);
}

export function callList(contacts) {
  return h(
    "ol",
    { class: "call-list", id: "call-list" },
    (contacts || []).map((p) =>
      h(
        "li",
        {},
        h("a", { href: `tel:${p.phone.replace(/[^0-9+]/g, "")}`, class: "tel", text: `☎ ${p.phone}` }),
        ` ${p.name}`,
        p.relation ? ` (${p.relation})` : "",
        p.has_key ? h("span", { class: "tag", text: t("client_has_key") }) : null,
        p.call_at_night === false ? h("span", { class: "tag warn", text: t("client_not_at_night") }) : null,
      ),
    ),
  );
}

export function commNeeds(c) {
  const needs = [
    c.hard_of_hearing ? t("client_hard_of_hearing") : null,
    c.speech_impaired ? t("client_speech") : null,
    c.interpreter ? t("client_interpreter") : null,
    c.language ? t("client_language", { lang: c.language }) : null,
  ].filter(Boolean);
  return needs.length ? needs.join(" · ") : null;
}

// The panel: the record as this user may see it for this alarm, and a button for the protected fields.
export async function clientPanel(a, { timeline = true } = {}) {
  const box = h("div", { class: "card client-panel", id: "client-panel" });
  if (!a.client_id) {
    box.replaceChildren(h("p", { class: "notice", id: "client-none", text: t("client_no_client") }));
    return box;
  }
  // the alarm gives the reason to look while it is open; afterwards an operator sees the record without it
  const open = OPEN_STATES.has(a.state);
  let c;
  try {
    c = await get(`/api/v1/clients/${a.client_id}${open ? `?alarm=${a.id}` : ""}`);
  } catch (err) {
    box.replaceChildren(h("p", { class: "notice error", text: t("error", { msg: describe(err) }) }));
    return box;
  }
  let prot = null;
  const health = h("dd", { id: "client-health" });
  const showBtn = h("button", { class: "btn small", id: "client-protected", type: "button", text: t("client_show_protected") });
  const draw = () => {
    box.replaceChildren(
      h("h2", { text: c.name || t("client_panel") }),
      dl([
        [t("client_address"), addressView(c)],
        [t("client_way_in"), wayIn(c, prot)],
        [t("client_call_list"), callList(c.contacts)],
        [t("client_comm"), commNeeds(c)],
        [t("client_practical"), c.practical_notes],
        [t("client_area"), c.area],
      ]),
      h("dl", { class: "dl" }, h("dt", { text: t("client_health") }), health),
      prot || !open ? null : showBtn,
    );
    health.textContent = prot ? prot.health_notes || t("none") : "";
  };
  showBtn.addEventListener("click", async () => {
    try {
      prot = await get(`/api/v1/clients/${a.client_id}/protected?alarm=${a.id}`);
      draw();
    } catch (err) {
      flash(t("error", { msg: describe(err) }), "error");
    }
  });
  draw();
  if (timeline && open) box.append(await timelineView(c, a));
  return box;
}

// The client's alarms, tasks, notes, visits, unlocks and door events in one list (check-ins from the gateway).
export async function timelineView(c, a) {
  const list = h("ol", { class: "history timeline", id: "client-timeline" });
  const wrap = h("div", {}, h("h3", { text: t("client_timeline") }), list);
  let items = [];
  try {
    items = await get(`/api/v1/clients/${c.id}/timeline${a ? `?alarm=${a.id}` : ""}`);
  } catch {
    return wrap; // a role without the history sees the panel without it
  }
  try {
    const cks = await get(`/gw/api/v1/checkins?client_ref=${encodeURIComponent(c.ref)}`);
    for (const ck of cks) items.push({ at: ck.due_at, alarm_id: null, alarm_type: "checkin_due", action: `checkin_${ck.state}`, actor: ck.outcome_by || "", code: null, params: {}, checkin: ck });
  } catch {
    /* the gateway's part is optional */
  }
  items.sort((x, y) => Date.parse(y.at) - Date.parse(x.at));
  list.replaceChildren(
    ...(items.length
      ? items.slice(0, 200).map((e) =>
          h(
            "li",
            { dataset: { code: e.code || "", alarm: e.alarm_id ? String(e.alarm_id) : "" } },
            h("span", { class: "ev-time", text: fmtDateTime(e.at) }),
            " ",
            h("strong", { text: label("ty", e.alarm_type) }),
            " ",
            h("span", { text: e.code ? tr(e.code, e.params) : e.checkin ? label("ckstate", e.checkin.state) : label("ev", e.action) }),
            e.actor ? h("span", { class: "ev-actor", text: ` (${e.actor})` }) : null,
          ),
        )
      : [h("li", { class: "notice", text: t("client_timeline_empty") })]),
  );
  return wrap;
}
