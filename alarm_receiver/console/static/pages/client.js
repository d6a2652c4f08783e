// One client (issue 10): the record as the role may see it, devices, the history in one timeline; the case
// officer's edit form (#/client/new, #/client/ID/edit) and device links.
import { describe, get, post, put } from "../api.js";
import { t } from "../i18n.js";
import { addressView, callList, commNeeds, timelineView, wayIn } from "../client_panel.js";
import { ask, dl, flash, fmtDateTime, h } from "../ui.js";

const TEXT_FIELDS = [
  ["ref", "client_ref"], ["name", "client_name"], ["street", "client_street"], ["postcode", "client_postcode"],
  ["town", "client_town"], ["floor", "client_floor_label"], ["entrance", "client_entrance_label"],
  ["door_code", "client_door_code"], ["lat", "client_lat"], ["lon", "client_lon"], ["language", "client_language_label"],
  ["care_unit", "client_care_unit"], ["area", "client_area"], ["key_safe_location", "client_key_safe_location"],
  ["key_safe_code", "client_key_safe_code"], ["key_number", "client_key_number_label"],
];
const LONG_FIELDS = [["practical_notes", "client_practical_label"], ["health_notes", "client_health_label"]];
const FLAGS = [["hard_of_hearing", "client_hard_of_hearing"], ["speech_impaired", "client_speech"], ["interpreter", "client_interpreter"]];
const CONTACTS = 3;

export async function render(main, params, ctx) {
  const manager = ["case_officer", "admin"].includes(ctx.session.role);
  if (params[0] === "new" || params[1] === "edit") return editForm(main, params[0] === "new" ? null : Number(params[0]), manager);
  const id = Number(params[0]);
  const c = await get(`/api/v1/clients/${id}`);
  const devices = manager ? await get(`/api/v1/clients/${id}/devices?history=true`) : c.devices || [];
  main.replaceChildren(
    h(
      "div",
      { class: "page-head" },
      h("a", { href: "#/clients", class: "btn small", text: `← ${t("back")}` }),
      h("h1", { id: "client-title", text: c.name || c.ref }),
      manager ? h("a", { class: "btn", id: "client-edit", href: `#/client/${id}/edit`, text: t("client_edit") }) : null,
    ),
    h(
      "section",
      { class: "cols" },
      h(
        "div",
        { class: "card" },
        dl([
          [t("client_ref"), c.ref],
          [t("client_address"), addressView(c)],
          c.contacts ? [t("client_way_in"), wayIn(c, c.key_safe_code || c.door_code ? c : null)] : null,
          c.contacts ? [t("client_call_list"), callList(c.contacts)] : null,
          c.contacts ? [t("client_comm"), commNeeds(c)] : null,
          c.contacts ? [t("client_practical"), c.practical_notes] : null,
          c.health_notes !== undefined ? [t("client_health"), h("span", { id: "client-health", text: c.health_notes || t("none") })] : null,
          [t("client_care_unit"), c.care_unit],
          [t("client_area"), c.area],
        ]),
      ),
      h(
        "div",
        { class: "card" },
        h("h2", { text: t("client_devices") }),
        h(
          "ul",
          { id: "client-devices" },
          devices.map((d) =>
            h(
              "li",
              { dataset: { device: d.device_id } },
              h("a", { href: `#/device/${encodeURIComponent(d.device_id)}`, text: d.device_id }),
              ` · ${t(`client_kind_${d.kind}`)} · ${fmtDateTime(d.linked_at)}`,
              d.unlinked_at ? ` – ${fmtDateTime(d.unlinked_at)} (${t("client_history_devices")})` : "",
            ),
          ),
        ),
        manager ? h("button", { class: "btn small", id: "client-link", type: "button", text: t("client_link_device"), onclick: () => linkDevice(id) }) : null,
      ),
    ),
    manager ? await timelineView(c, null) : null,
  );
}

async function linkDevice(id) {
  const done = await ask(
    t("client_link_device"),
    [
      { name: "device_id", label: t("device"), type: "text", required: true },
      { name: "kind", label: t("client_device_kind"), type: "select", options: ["device", "camera", "lock"].map((k) => [k, t(`client_kind_${k}`)]) },
    ],
    { describeError: describe, submit: (v) => post(`/api/v1/clients/${id}/devices`, { device_id: v.device_id.trim(), kind: v.kind }) },
  );
  if (done) location.hash = `#/client/${id}?linked=${Date.now()}`;
}

async function editForm(main, id, manager) {
  if (!manager) {
    main.replaceChildren(h("p", { class: "notice error", id: "forbidden", text: t("forbidden") }));
    return;
  }
  const c = id ? await get(`/api/v1/clients/${id}`) : { contacts: [] };
  const inputs = {};
  const field = (name, key, el) => {
    inputs[name] = el;
    return h("label", { class: "field" }, h("span", { text: t(key) }), el);
  };
  const text = (name, key) => field(name, key, h("input", { type: "text", id: `f-${name}`, value: c[name] ?? "" }));
  const long = (name, key) => {
    const el = h("textarea", { id: `f-${name}`, rows: "3" });
    el.value = c[name] ?? "";
    return field(name, key, el);
  };
  const flag = (name, key, checked) => {
    const el = h("input", { type: "checkbox", id: `f-${name}`, checked: Boolean(checked) });
    inputs[name] = el;
    return h("label", { class: "check" }, el, ` ${t(key)}`);
  };
  const contactRows = [];
  for (let n = 0; n < CONTACTS; n += 1) {
    const p = (c.contacts || [])[n] || {};
    const row = {
      name: h("input", { type: "text", id: `f-c${n}-name`, value: p.name || "" }),
      relation: h("input", { type: "text", id: `f-c${n}-relation`, value: p.relation || "" }),
      phone: h("input", { type: "tel", id: `f-c${n}-phone`, value: p.phone || "" }),
      has_key: h("input", { type: "checkbox", id: `f-c${n}-key`, checked: Boolean(p.has_key) }),
      night: h("input", { type: "checkbox", id: `f-c${n}-night`, checked: p.call_at_night !== false }),
    };
    contactRows.push(row);
  }
  const error = h("p", { class: "notice error", id: "client-form-error", hidden: true });
  const form = h(
    "form",
    { id: "client-form", class: "client-form" },
    h("div", { class: "grid" }, TEXT_FIELDS.map(([n, k]) => text(n, k))),
    h("div", {}, FLAGS.map(([n, k]) => flag(n, k, c[n]))),
    LONG_FIELDS.map(([n, k]) => long(n, k)),
    contactRows.map((r, n) =>
      h(
        "fieldset",
        {},
        h("legend", { text: t("client_contact_n", { n: n + 1 }) }),
        h("label", { class: "field inline" }, h("span", { text: t("client_name") }), r.name),
        h("label", { class: "field inline" }, h("span", { text: t("client_relation") }), r.relation),
        h("label", { class: "field inline" }, h("span", { text: t("client_phone") }), r.phone),
        h("label", { class: "check" }, r.has_key, ` ${t("client_contact_has_key")}`),
        h("label", { class: "check" }, r.night, ` ${t("client_contact_night")}`),
      ),
    ),
    error,
    h("button", { class: "btn primary", id: "client-save", type: "submit", text: t("save") }),
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const body = {};
    for (const [n] of TEXT_FIELDS) {
      const v = inputs[n].value.trim();
      body[n] = ["lat", "lon"].includes(n) ? (v ? Number(v.replace(",", ".")) : null) : n === "ref" || n === "name" || ["street", "postcode", "town"].includes(n) ? v : v || null;
    }
    for (const [n] of LONG_FIELDS) body[n] = inputs[n].value.trim() || null;
    for (const [n] of FLAGS) body[n] = inputs[n].checked;
    body.contacts = contactRows
      .filter((r) => r.name.value.trim() || r.phone.value.trim())
      .map((r) => ({ name: r.name.value.trim(), relation: r.relation.value.trim() || null, phone: r.phone.value.trim(), has_key: r.has_key.checked, call_at_night: r.night.checked }));
    try {
      const saved = id ? await put(`/api/v1/clients/${id}`, body) : await post("/api/v1/clients", body);
      flash(t("client_saved"));
      location.hash = `#/client/${saved.id}`;
    } catch (err) {
      error.hidden = false;
      error.textContent = describe(err);
    }
  });
  main.replaceChildren(
    h("div", { class: "page-head" }, h("a", { href: id ? `#/client/${id}` : "#/clients", class: "btn small", text: `← ${t("back")}` }), h("h1", { text: id ? c.name : t("client_new") })),
    form,
  );
}
