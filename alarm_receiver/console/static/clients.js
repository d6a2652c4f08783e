// Client register helpers shared by the shared pages (issue 10): the assign dialog's proposals, the registry
// defects (alarms without routing) on the technician's pages.
import { get } from "./api.js";
import { label, t } from "./i18n.js";
import { fmtDateTime, h } from "./ui.js";

// The assign dialog's patrols: those on shift for the client's area first, each with how many alarms it holds.
export async function proposals(a) {
  let list;
  try {
    list = await get(`/api/v1/alarms/${a.id}/proposals`);
  } catch {
    return get("/api/v1/console/patrols");
  }
  return list.map((p) => {
    const shift = p.on_shift_here ? t("proposal_here") : p.areas.length ? t("proposal_elsewhere", { areas: p.areas.join(", ") }) : t("proposal_off");
    return { username: p.username, display_name: `${p.display_name || p.username} · ${shift} · ${t("proposal_load", { n: p.load })}` };
  });
}

// Registry defects: open alarms whose device has no client, or whose client has no patrol area.
export async function routingDefects() {
  const box = h("section", { class: "card", id: "routing-defects" }, h("h2", { text: t("routing_defects") }));
  let rows = [];
  try {
    rows = await get("/api/v1/clients/routing-defects");
  } catch {
    return null;
  }
  box.append(
    rows.length
      ? h(
          "ul",
          { class: "defects" },
          rows.map((a) =>
            h(
              "li",
              { dataset: { id: String(a.id) } },
              h("a", { href: `#/device/${encodeURIComponent(a.device_id)}`, text: a.device_id }),
              ` · ${label("ty", a.type)} · ${fmtDateTime(a.stored_at)} · `,
              h("strong", { text: a.client_id ? t("routing_missing_area") : t("routing_missing_client") }),
            ),
          ),
        )
      : h("p", { class: "notice", text: t("routing_defects_none") }),
  );
  return box;
}
