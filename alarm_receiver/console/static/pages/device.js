// Technicians: one device, its health, configuration (heartbeat) and installation tests (polled).
import { describe, get, post, put } from "../api.js";
import { label, t } from "../i18n.js";
import { tr } from "../messages.js";
import { dl, flash, fmtDateTime, h } from "../ui.js";
import { healthView } from "./alarm.js";

export async function render(main, params, ctx) {
  const id = params[0];
  const tech = ["technician", "admin"].includes(ctx.session.role);
  const box = h("div", {});
  main.replaceChildren(h("div", { class: "page-head" }, h("a", { href: "#/devices", class: "btn small", text: `← ${t("back")}` }), h("h1", { text: t("device_title", { id }) })), box);
  let poll = null;

  function testLine(tst) {
    const cls = tst.state === "passed" ? "passed" : tst.state === "failed" || tst.state === "expired" ? "failed" : "waiting";
    const text =
      cls === "passed"
        ? t("test_passed", { ms: Math.round(tst.end_to_end_ms || 0) })
        : cls === "failed"
          ? t("test_failed", { d: tst.detail_code ? tr(tst.detail_code) : label("ckstate", tst.state) })
          : t("test_waiting");
    return h("li", { dataset: { state: tst.state, id: String(tst.id) } }, h("span", { class: "ev-time", text: `${fmtDateTime(tst.started_at)} ` }), h("span", { class: `test-result ${cls}`, text }), ` (${tst.started_by})`);
  }

  async function draw() {
    let dev;
    try {
      dev = await get(`/gw/api/v1/devices/${encodeURIComponent(id)}`);
    } catch (err) {
      box.replaceChildren(h("p", { class: "notice error", text: t("error", { msg: describe(err) }) }));
      return;
    }
    const hb = h("input", { id: "heartbeat", type: "number", min: "60", max: "86400", value: dev.config ? dev.config.heartbeat_interval_s : Math.round(dev.health ? dev.health.heartbeat_interval_s : 300) });
    const cfgForm = h(
      "form",
      { class: "form inline", id: "config-form" },
      h("label", { class: "field" }, h("span", { text: t("heartbeat") }), hb),
      h("button", { class: "btn primary", type: "submit", id: "config-save", text: t("save") }),
    );
    cfgForm.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      try {
        const c = await put(`/gw/api/v1/devices/${encodeURIComponent(id)}/config`, { heartbeat_interval_s: Number(hb.value) });
        flash(t("config_saved", { v: c.version }));
        draw();
      } catch (err) {
        flash(t("error", { msg: describe(err) }), "error");
      }
    });
    const startTest = h("button", { class: "btn primary", id: "start-test", text: t("start_test") });
    startTest.addEventListener("click", async () => {
      try {
        await post(`/gw/api/v1/devices/${encodeURIComponent(id)}/install-test`, {});
        watchTests();
      } catch (err) {
        flash(t("error", { msg: describe(err) }), "error");
      }
    });
    const tests = h("ol", { class: "history", id: "tests" }, (dev.install_tests || []).map(testLine));
    box.replaceChildren(
      h(
        "section",
        { class: "cols" },
        h("div", {}, h("h2", { text: t("device_health") }), healthView(dev)),
        h(
          "div",
          {},
          h("h2", { text: t("config") }),
          dev.config ? dl([[t("version"), String(dev.config.version)], [t("heartbeat"), String(dev.config.heartbeat_interval_s)], [t("applied"), fmtDateTime(dev.config.applied_at)]]) : null,
          tech ? cfgForm : null,
          h("h2", { text: t("install_test") }),
          tech ? startTest : null,
          tests,
        ),
      ),
    );
  }

  function watchTests() {
    if (poll) clearInterval(poll);
    const tick = async () => {
      try {
        const rows = await get(`/gw/api/v1/devices/${encodeURIComponent(id)}/install-tests`);
        const el = document.getElementById("tests");
        if (el) el.replaceChildren(...rows.slice(0, 10).map(testLine));
        if (!rows.length || rows[0].state !== "waiting") {
          clearInterval(poll);
          poll = null;
        }
      } catch {
        /* next tick */
      }
    };
    tick();
    poll = setInterval(tick, 1000);
  }

  await draw();
  return () => poll && clearInterval(poll);
}
