// Technicians: the fleet with health filters.
import { describe, get } from "../api.js";
import { label, t } from "../i18n.js";
import { fmtDateTime, h } from "../ui.js";
import { mainsText } from "./alarm.js";
import { routingDefects } from "../clients.js";

const FLAGS = ["offline", "low_battery", "mains_lost", "at_risk_network", "stale_firmware"];

export async function render(main, _params, ctx) {
  const wanted = new Set((ctx.query.get("flag") || "").split(",").filter(Boolean));
  const table = h("tbody", { id: "devices" });
  const msg = h("p", { class: "notice", id: "devices-msg", hidden: true });
  const filters = h(
    "div",
    { class: "filters", id: "filters" },
    h("strong", { text: `${t("filter")}:` }),
    FLAGS.map((f) => {
      const box = h("input", { type: "checkbox", id: `flag-${f}`, checked: wanted.has(f) });
      box.addEventListener("change", () => {
        if (box.checked) wanted.add(f);
        else wanted.delete(f);
        load();
      });
      return h("label", {}, box, `⚑ ${label("fl", f)}`);
    }),
  );
  main.replaceChildren(
    h("h1", { text: t("devices_title") }),
    filters,
    h(
      "table",
      { class: "table" },
      h("thead", {}, h("tr", {}, [t("device"), t("type"), t("client"), t("status"), t("last_seen"), t("battery"), t("mains"), t("network"), t("flags")].map((x) => h("th", { text: x })))),
      table,
    ),
    msg,
  );
  routingDefects().then((box) => box && main.append(box)); // registry defects (issue 10)
  async function load() {
    const q = [...wanted].map((f) => `flag=${encodeURIComponent(f)}`).join("&");
    try {
      const rows = await get(`/gw/api/v1/devices${q ? `?${q}` : ""}`);
      table.replaceChildren(
        ...rows.map((d) => {
          const hl = d.health;
          return h(
            "tr",
            { dataset: { id: d.id } },
            h("td", {}, h("a", { href: `#/device/${encodeURIComponent(d.id)}`, text: d.id })),
            h("td", { text: label("dt", d.type) }),
            h("td", { text: d.client_ref || "" }),
            h("td", {}, hl ? h("span", { class: `dev-status ds-${hl.status}`, text: label("ds", hl.status) }) : t("unknown")),
            h("td", { text: hl ? fmtDateTime(hl.last_seen) : "" }),
            h("td", { text: hl && hl.battery_pct !== null ? `${hl.battery_pct} %` : "" }),
            h("td", { class: "c-mains", text: hl ? mainsText(hl) : "" }),
            h("td", { text: (hl && hl.network) || d.network || "" }),
            h("td", {}, ((hl && hl.flags) || []).map((f) => h("span", { class: `tag flag-${f}`, text: `⚑ ${label("fl", f)}` }))),
          );
        }),
      );
      msg.hidden = rows.length > 0;
      msg.textContent = t("no_devices");
    } catch (err) {
      msg.hidden = false;
      msg.textContent = t("error", { msg: describe(err) });
    }
  }
  await load();
  const timer = setInterval(load, 10000);
  return () => clearInterval(timer);
}
