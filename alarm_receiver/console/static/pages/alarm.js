// One alarm: details, history, the device's recent health, the actions. The age counts up.
import { describe, get, liveFeed } from "../api.js";
import { callButtons } from "../call.js";
import { label, t } from "../i18n.js";
import { dl, flash, fmtAge, fmtDateTime, fmtTime, h, priorityBadge } from "../ui.js";
import { OPEN_STATES, acknowledge, addNote, assign, clientOf, describeAlarm, eventText, outcomeText, repeatsTag, resolve } from "./common.js";
import { clientPanel } from "../client_panel.js";

// Mains: on, lost, or none at all (a battery-only device says so: never "lost").
export function mainsText(hl) {
  if (!hl) return t("unknown");
  if (hl.has_mains === false) return t("mains_none");
  return hl.mains === null || hl.mains === undefined ? t("unknown") : hl.mains ? t("yes") : t("no");
}

export function healthView(dev) {
  if (!dev) return h("p", { class: "notice", id: "health", text: t("no_health") });
  const hl = dev.health;
  return h(
    "div",
    { id: "health", class: "card" },
    dl([
      [t("device"), `${dev.id} (${label("dt", dev.type)})`],
      [t("client"), dev.client_ref],
      [t("location"), dev.location],
      [t("status"), hl ? h("span", { class: `dev-status ds-${hl.status}`, text: label("ds", hl.status) }) : t("unknown")],
      [t("last_seen"), hl ? fmtDateTime(hl.last_seen) : null],
      [t("battery"), hl && hl.battery_pct !== null ? `${hl.battery_pct} %` : t("unknown")],
      [t("mains"), mainsText(hl)],
      [t("network"), (hl && hl.network) || dev.network || t("unknown")],
      [t("signal"), hl && hl.signal_dbm !== null ? `${hl.signal_dbm} dBm` : null],
      [t("firmware"), (hl && hl.firmware) || dev.firmware_version],
      [
        t("flags"),
        hl && hl.flags.length ? h("span", {}, hl.flags.map((f) => h("span", { class: `tag flag-${f}`, text: `⚑ ${label("fl", f)}` }))) : t("none"),
      ],
    ]),
  );
}

export async function render(main, params) {
  const id = Number(params[0]);
  let a = await get(`/api/v1/alarms/${id}`);
  let dev = null;
  try {
    dev = await get(`/gw/api/v1/devices/${encodeURIComponent(a.device_id)}`);
  } catch {
    dev = null;
  }
  const body = h("div", { class: "detail" });
  const panel = await clientPanel(a); // the person behind the alarm (issue 10)
  main.replaceChildren(body);
  let age = null;

  const run = async (fn) => {
    try {
      const changed = await fn(a);
      if (changed) {
        a = await get(`/api/v1/alarms/${id}`);
        draw();
      }
    } catch (err) {
      flash(t("error", { msg: describe(err) }), "error");
    }
  };

  function draw() {
    const d = a.details || {};
    const open = OPEN_STATES.has(a.state);
    const checkin = a.type === "checkin_due" && d.checkin_id && open;
    const esc = a.state === "new" && a.escalation_level > 0; // the frame asks to acknowledge: gone once done
    age = h("span", { class: "age", id: "detail-age", text: fmtAge(Date.now() - Date.parse(a.stored_at)) });
    body.replaceChildren(
      h("div", { class: "page-head" }, h("a", { href: "#/queue", class: "btn small", text: `← ${t("back")}` }), h("h1", { text: t("detail_title", { id: a.id }) })),
      h(
        "div",
        { class: `card alarm-head st-${a.state}${esc ? " esc esc-" + a.escalation_level : ""}` },
        priorityBadge(a.priority),
        h("strong", { class: "big-type", text: ` ${label("ty", a.type)} ` }),
        h("span", { class: "state", id: "detail-state", dataset: { state: a.state }, text: label("st", a.state) }),
        esc ? h("span", { class: "tag esc-tag", text: `⚠ ${t("escalated", { n: a.escalation_level })}` }) : null,
        repeatsTag(a),
        open ? age : null,
      ),
      h(
        "div",
        { class: "toolbar" },
        open && a.state === "new" ? h("button", { class: "btn primary", id: "d-ack", text: t("acknowledge"), onclick: () => run(acknowledge) }) : null,
        open ? h("button", { class: "btn", id: "d-assign", text: t("assign"), onclick: () => run(assign) }) : null,
        h("button", { class: "btn", id: "d-note", text: t("note"), onclick: () => run(addNote) }),
        open && a.state !== "new" ? h("button", { class: "btn", id: "d-resolve", text: t("resolve"), onclick: () => run(resolve) }) : null,
        callButtons(a), // voice: answer while the client's unit rings, else call back (call.js)
        checkin
          ? h("a", { class: "btn primary", id: "d-checkin", href: `#/checkin/${d.checkin_id}?alarm=${a.id}`, text: `▶ ${d.kind === "phone" ? t("phone_call") : t("start_checkin")}` })
          : null,
      ),
      h(
        "section",
        { class: "cols" },
        h(
          "div",
          {},
          h("h2", { text: t("details") }),
          dl([
            [t("client"), clientOf(a)],
            [t("device"), a.device_id],
            [t("text"), describeAlarm(a)],
            [t("stored"), fmtDateTime(a.stored_at)],
            [t("received"), fmtDateTime(a.received_at)],
            [t("patrol"), a.assigned_to],
            [t("outcome"), outcomeText(a)],
            d.protocol ? [t("protocol"), label("proto", d.protocol)] : null,
          ]),
        ),
        h("div", {}, h("h2", { text: t("device_health") }), healthView(dev)),
      ),
      panel,
      h("h2", { text: t("history") }),
      h(
        "ol",
        { class: "history", id: "history" },
        (a.events || []).map((e) => {
          const { what, note } = eventText(e);
          return h(
            "li",
            { dataset: { action: e.action, code: e.code || "" } },
            h("span", { class: "ev-time", text: fmtTime(e.at) }),
            h("strong", { text: ` ${what} ` }),
            h("span", { text: e.to_state && e.to_state !== e.from_state ? `→ ${label("st", e.to_state)} ` : "" }),
            h("span", { class: "ev-actor", text: `(${e.actor})` }),
            note ? h("div", { class: "ev-note", text: note }) : null,
          );
        }),
      ),
    );
  }
  draw();
  const tick = setInterval(() => {
    if (age) age.textContent = fmtAge(Date.now() - Date.parse(a.stored_at));
  }, 1000);
  const stop = liveFeed({
    onAlarm: async (x) => {
      if (x.id !== id) return;
      a = await get(`/api/v1/alarms/${id}`);
      draw();
    },
  });
  return () => {
    stop();
    clearInterval(tick);
  };
}
