// The patrol's phone view: tasks assigned to me, address and notes, on the way / on site / done.
import { describe, get, liveFeed, post } from "../api.js";
import { callButtons } from "../call.js";
import { label, t } from "../i18n.js";
import { beep, flash, fmtAge, fmtTime, h, priorityBadge, priorityLevel } from "../ui.js";
import { OPEN_STATES, clientOf, compare, describeAlarm, eventText, repeatsTag, resolve } from "./common.js";
import { clientBlock, loadClient, rosterBar } from "../patrol_client.js";

export async function render(main) {
  const list = h("div", { class: "patrol-list", id: "patrol-list" });
  main.replaceChildren(h("h1", { text: t("patrol_title") }), await rosterBar(), list);
  const items = new Map();

  async function detail(id) {
    try {
      const a = await get(`/api/v1/alarms/${id}`);
      a.client = await loadClient(a); // the person, the way in, the lock (issue 10)
      return a;
    } catch {
      return null;
    }
  }

  function card(a) {
    const d = a.details || {};
    const lv = priorityLevel(a.priority);
    const loc = typeof d.location === "object" && d.location ? d.location.text || d.location.code : d.location;
    // the people's own notes (an operator's, the patrol's), not what the system wrote
    const notes = (a.events || []).map((e) => ({ e, note: eventText(e).note })).filter((x) => x.note);
    const doAct = async (fn) => {
      try {
        const changed = await fn();
        if (changed) {
          items.set(a.id, await detail(a.id));
          draw();
        }
      } catch (err) {
        flash(t("error", { msg: describe(err) }), "error");
      }
    };
    return h(
      "article",
      { class: `task ${lv.cls} st-${a.state}`, id: `task-${a.id}`, dataset: { id: String(a.id), state: a.state } },
      h("div", { class: "task-head" }, priorityBadge(a.priority), h("strong", { text: ` ${label("ty", a.type)}` }), repeatsTag(a), h("span", { class: "state", text: label("st", a.state) })),
      a.client
        ? clientBlock(a, a.client, async () => {
            items.set(a.id, await detail(a.id));
            draw();
          })
        : h("p", { class: "address" }, h("span", { text: `${t("address")}: ` }), h("strong", { text: loc || clientOf(a) })),
      h("p", { text: `${t("client")}: ${clientOf(a)} · ${describeAlarm(a)}` }),
      h("p", { class: "age-line", text: `${fmtTime(a.stored_at)} · ${fmtAge(Date.now() - Date.parse(a.stored_at))}` }),
      notes.length
        ? h("ul", { class: "notes" }, notes.map(({ e, note }) => h("li", { text: `${fmtTime(e.at)} ${e.actor}: ${note}` })))
        : null,
      h(
        "div",
        { class: "task-actions" },
        a.state === "assigned"
          ? h("button", { class: "btn big", id: `way-${a.id}`, text: t("on_the_way"), onclick: () => doAct(() => post(`/api/v1/alarms/${a.id}/notes`, { note: t("on_the_way_note") })) })
          : null,
        a.state === "assigned"
          ? h("button", { class: "btn big primary", id: `onsite-${a.id}`, text: t("on_site"), onclick: () => doAct(() => post(`/api/v1/alarms/${a.id}/on-site`, {})) })
          : null,
        callButtons(a, "patrol"), // voice: call the client's unit (call.js)
        h("button", {
          class: "btn big",
          id: `done-${a.id}`,
          text: t("done"),
          onclick: () => doAct(() => resolve(a, t("done"))),
        }),
      ),
    );
  }

  function draw() {
    const open = [...items.values()].filter((a) => a && OPEN_STATES.has(a.state)).sort(compare);
    list.replaceChildren(...(open.length ? open.map(card) : [h("p", { class: "notice", id: "patrol-empty", text: t("patrol_empty") })]));
  }

  async function load() {
    const alarms = await get("/api/v1/alarms");
    items.clear();
    const full = await Promise.all(alarms.map((a) => detail(a.id)));
    for (const a of full) if (a) items.set(a.id, a);
    draw();
  }

  const stop = liveFeed({
    onAlarm: async (a) => {
      const isNew = !items.has(a.id);
      if (!OPEN_STATES.has(a.state)) items.delete(a.id);
      else items.set(a.id, (await detail(a.id)) || a);
      draw();
      if (isNew && OPEN_STATES.has(a.state)) beep(a.priority >= 8);
    },
    onReconnect: () => load().catch(() => null),
  });
  await load();
  const tick = setInterval(draw, 15000);
  return () => {
    stop();
    clearInterval(tick);
  };
}
