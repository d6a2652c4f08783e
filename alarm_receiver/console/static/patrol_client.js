// The patrol view's part of issue 10: the client of each task (address with a geo: map link, way in, call list,
// communication needs), the unlock button for a digital lock, the fallback (key safe and its code, key number)
// the moment the lock is jammed or offline, and signing on and off for areas.
import { describe, get, post } from "./api.js";
import { t } from "./i18n.js";
import { BROKEN_LOCK, addressView, callList, commNeeds, wayIn } from "./client_panel.js";
import { flash, h } from "./ui.js";

// The record for this task, and the protected fields when the lock cannot be used (the server logs both).
export async function loadClient(a) {
  if (!a || !a.client_id) return null;
  try {
    const c = await get(`/api/v1/clients/${a.client_id}?alarm=${a.id}`);
    const broken = (c.locks || []).some((lk) => BROKEN_LOCK.has(lk.state));
    const prot = broken || !(c.locks || []).length ? await get(`/api/v1/clients/${a.client_id}/protected?alarm=${a.id}`).catch(() => null) : null;
    return { c, prot };
  } catch {
    return null;
  }
}

export function clientBlock(a, info, refresh) {
  if (!info) return null;
  const { c, prot } = info;
  const usable = (c.locks || []).some((lk) => !BROKEN_LOCK.has(lk.state));
  const unlock = async () => {
    try {
      await post(`/api/v1/alarms/${a.id}/unlock`, {});
      flash(t("unlock_sent"));
      await refresh();
    } catch (err) {
      flash(t("error", { msg: describe(err) }), "error");
    }
  };
  return h(
    "div",
    { class: "patrol-client", id: `client-${a.id}` },
    h("p", { class: "client-name" }, h("strong", { text: c.name })),
    addressView(c),
    wayIn(c, prot),
    usable && ["assigned", "on_site"].includes(a.state) ? h("button", { class: "btn big primary", id: `unlock-${a.id}`, type: "button", text: `🔓 ${t("unlock")}`, onclick: unlock }) : null,
    commNeeds(c) ? h("p", { class: "comm", text: commNeeds(c) }) : null,
    c.practical_notes ? h("p", { class: "practical", text: c.practical_notes }) : null,
    callList(c.contacts),
  );
}

// Sign on for areas (the shift roster) or off again.
export async function rosterBar() {
  const bar = h("div", { class: "card roster", id: "roster" });
  let areas = [];
  try {
    areas = await get("/api/v1/areas");
  } catch {
    return bar;
  }
  const draw = async () => {
    const mine = (await get("/api/v1/roster")).map((s) => s.area);
    const boxes = areas.map((a) => h("input", { type: "checkbox", value: a.code, id: `area-${a.code}`, checked: mine.includes(a.code) }));
    const save = async (on) => {
      try {
        const picked = boxes.filter((b) => b.checked).map((b) => b.value);
        if (on) await post("/api/v1/roster/sign-on", { areas: picked });
        else await post("/api/v1/roster/sign-off", { areas: null });
        await draw();
      } catch (err) {
        flash(t("error", { msg: describe(err) }), "error");
      }
    };
    bar.replaceChildren(
      h("strong", { id: "shift-state", text: mine.length ? t("shift_for", { areas: mine.join(", ") }) : t("not_on_shift") }),
      h("span", {}, areas.map((a, i) => h("label", { class: "check" }, boxes[i], ` ${a.name}`))),
      h("button", { class: "btn small", id: "sign-on", type: "button", text: t("sign_on"), onclick: () => save(true) }),
      mine.length ? h("button", { class: "btn small", id: "sign-off", type: "button", text: t("sign_off"), onclick: () => save(false) }) : null,
    );
  };
  await draw();
  return bar;
}
