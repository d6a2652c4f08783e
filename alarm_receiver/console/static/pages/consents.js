// Consents: case officers create and change them; skip a night and withdraw (also operators, at the client's
// request). Operators read them.
import { describe, get, patch, post } from "../api.js";
import { label, t } from "../i18n.js";
import { ask, flash, fmtDateTime, h, localDate } from "../ui.js";

export async function render(main, _params, ctx) {
  const officer = ["case_officer", "admin"].includes(ctx.session.role);
  const table = h("tbody", { id: "consents" });
  const parts = [h("h1", { text: t("consents_title") })];
  if (!officer) parts.push(h("p", { class: "notice", id: "read-only", text: t("read_only") }));
  if (officer) {
    const f = (name, key, attrs = {}) => h("label", { class: "field" }, h("span", { text: t(key) }), h("input", { id: `c-${name}`, name, ...attrs }));
    const form = h(
      "form",
      { class: "form inline card", id: "new-consent" },
      h("h2", { text: t("new_consent") }),
      f("client_ref", "client_ref", { required: true }),
      f("camera_id", "camera_id", { required: true }),
      f("name", "consent_names", { required: true }),
      f("cohabitant", "cohabitant"),
      f("basis", "basis", { required: true }),
      f("window_start", "window", { value: "22:00" }),
      f("window_end", "until", { value: "06:30" }),
      f("times", "times", { value: "23:00, 02:00, 05:00" }),
      f("max_look_s", "max_look", { type: "number", min: "10", max: "60", value: "30" }),
      h(
        "label",
        { class: "field" },
        h("span", { text: t("privacy") }),
        h("select", { id: "c-privacy" }, ["full", "blurred", "silhouette"].map((p) => h("option", { value: p, text: label("priv", p) }))),
      ),
      h("button", { class: "btn primary", type: "submit", id: "c-create", text: t("create") }),
    );
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const v = (n) => document.getElementById(`c-${n}`).value.trim();
      const people = [{ name: v("name"), role: "client" }];
      if (v("cohabitant")) people.push({ name: v("cohabitant"), role: "cohabitant" });
      try {
        await post("/gw/api/v1/consents", {
          client_ref: v("client_ref"),
          camera_id: v("camera_id"),
          consented_by: people,
          basis: v("basis"),
          window_start: v("window_start"),
          window_end: v("window_end"),
          times: v("times").split(/[ ,]+/).filter(Boolean),
          max_look_s: Number(v("max_look_s")),
          privacy: v("privacy"),
        });
        flash(t("consent_created"));
        form.reset();
        load();
      } catch (err) {
        flash(t("error", { msg: describe(err) }), "error");
      }
    });
    parts.push(form);
  }
  parts.push(
    h(
      "table",
      { class: "table" },
      h("thead", {}, h("tr", {}, ["#", t("client"), t("camera"), t("window"), t("times"), t("max_look"), t("privacy"), t("consented_by"), t("state"), ""].map((x) => h("th", { text: x })))),
      table,
    ),
  );
  main.replaceChildren(...parts);

  const run = async (fn, okKey) => {
    try {
      if ((await fn()) !== null) {
        flash(t(okKey));
        load();
      }
    } catch (err) {
      flash(t("error", { msg: describe(err) }), "error");
    }
  };

  async function load() {
    const rows = await get("/gw/api/v1/consents?include_withdrawn=true");
    table.replaceChildren(
      ...(rows.length
        ? rows.map((c) => {
            const active = !c.withdrawn_at;
            const buttons = [];
            if (active && officer)
              buttons.push(
                h("button", {
                  class: "btn small",
                  id: `change-${c.id}`,
                  text: t("change"),
                  onclick: () =>
                    run(
                      () =>
                        ask(
                          t("change"),
                          [
                            { name: "times", label: t("times"), value: c.times.join(", ") },
                            { name: "max_look_s", label: t("max_look"), type: "number", value: String(c.max_look_s) },
                            { name: "privacy", label: t("privacy"), type: "select", value: c.privacy, options: ["full", "blurred", "silhouette"].map((p) => [p, label("priv", p)]) },
                          ],
                          {
                            describeError: describe,
                            submit: (v) => patch(`/gw/api/v1/consents/${c.id}`, { times: v.times.split(/[ ,]+/).filter(Boolean), max_look_s: Number(v.max_look_s), privacy: v.privacy }),
                          },
                        ),
                      "consent_changed",
                    ),
                }),
              );
            if (active)
              buttons.push(
                h("button", {
                  class: "btn small",
                  id: `skip-${c.id}`,
                  text: t("skip_night"),
                  onclick: () =>
                    run(
                      () =>
                        ask(t("skip_night"), [{ name: "night", label: t("night"), type: "date", value: localDate(new Date()), required: true }], {
                          describeError: describe,
                          submit: (v) => post(`/gw/api/v1/consents/${c.id}/skip`, { night: v.night.trim() }).then(() => true),
                        }),
                      "night_skipped",
                    ),
                }),
                h("button", {
                  class: "btn small",
                  id: `withdraw-${c.id}`,
                  text: t("withdraw"),
                  onclick: () =>
                    run(
                      () =>
                        ask(t("withdraw"), [{ name: "reason", label: t("reason"), type: "textarea", maxLength: 2000 }], {
                          describeError: describe,
                          submit: (v) => post(`/gw/api/v1/consents/${c.id}/withdraw`, { reason: v.reason.trim() || null }),
                        }),
                      "consent_withdrawn",
                    ),
                }),
              );
            if (["case_officer", "admin"].includes(ctx.session.role))
              buttons.push(h("a", { class: "btn small", href: `#/log?client=${encodeURIComponent(c.client_ref)}`, text: t("nav_log") }));
            return h(
              "tr",
              { class: active ? "" : "withdrawn", id: `consent-${c.id}`, dataset: { id: String(c.id) } },
              h("td", { text: String(c.id) }),
              h("td", { text: c.client_ref }),
              h("td", { text: c.camera_id }),
              h("td", { text: `${c.window_start}–${c.window_end}` }),
              h("td", { class: "c-times", text: c.times.join(", ") }),
              h("td", { class: "c-max", text: `${c.max_look_s} s` }),
              h("td", { class: "c-privacy", text: label("priv", c.privacy) }),
              h("td", { text: c.consented_by.map((p) => `${p.name} (${label("person", p.role)})`).join(", ") }),
              h("td", { class: "c-state", text: active ? t("active") : `${t("withdrawn")} ${fmtDateTime(c.withdrawn_at)}` }),
              h("td", {}, buttons),
            );
          })
        : [h("tr", {}, h("td", { colspan: "10", text: t("no_consents") }))]),
    );
  }
  await load();
}
