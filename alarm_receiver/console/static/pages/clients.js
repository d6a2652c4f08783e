// The client list (issue 10): search by name, address, device id or phone number. Technicians get no names.
import { describe, get } from "../api.js";
import { t } from "../i18n.js";
import { h } from "../ui.js";

export async function render(main, _params, ctx) {
  const q = h("input", { type: "search", id: "client-q", placeholder: t("client_search_placeholder"), "aria-label": t("search"), autocomplete: "off", value: ctx.query.get("q") || "" });
  const list = h("tbody", { id: "clients" });
  const msg = h("p", { class: "notice", id: "clients-msg", hidden: true });
  const manager = ["case_officer", "admin"].includes(ctx.session.role);
  main.replaceChildren(
    h("div", { class: "page-head" }, h("h1", { text: t("clients_title") }), manager ? h("a", { class: "btn", id: "client-new", href: "#/client/new", text: t("client_new") }) : null),
    h("label", { class: "field inline" }, h("span", { text: t("search") }), q),
    h(
      "table",
      { class: "table" },
      h("thead", {}, h("tr", {}, [t("client_name"), t("client_address"), t("client_area"), t("client_devices")].map((x) => h("th", { text: x })))),
      list,
    ),
    msg,
  );
  let timer = null;
  async function load() {
    try {
      const rows = await get(`/api/v1/clients?q=${encodeURIComponent(q.value.trim())}`);
      list.replaceChildren(
        ...rows.map((c) =>
          h(
            "tr",
            { dataset: { id: String(c.id) } },
            h("td", {}, h("a", { href: `#/client/${c.id}`, text: c.name || c.ref })),
            h("td", { text: c.address }),
            h("td", { text: c.area || "" }),
            h("td", { text: c.devices.join(", ") }),
          ),
        ),
      );
      msg.hidden = rows.length > 0;
      msg.textContent = t("client_none_found");
    } catch (err) {
      msg.hidden = false;
      msg.textContent = t("error", { msg: describe(err) });
    }
  }
  q.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(load, 200);
  });
  await load();
  q.focus();
  return () => clearTimeout(timer);
}
