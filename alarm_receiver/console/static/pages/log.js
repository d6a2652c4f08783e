// The client's supervision log for a period (case officers), printable.
import { describe, get } from "../api.js";
import { t } from "../i18n.js";
import { known, tr } from "../messages.js";
import { dateInput, fmtDateTime, h, isIsoDate, localDate, localMoment } from "../ui.js";

// An entry's details as data (key: value); a refusal's reason in the console's language when it has a code.
function detailsText(details) {
  const shown = { ...details };
  if (shown.code && known(shown.code)) {
    shown.reason = tr(shown.code, shown);
    delete shown.code;
  }
  return Object.entries(shown)
    .map(([k, v]) => `${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`)
    .join("; ");
}

// An entry's action in the console's language (the code itself when the console has no word for it).
const actionText = (action) => {
  const key = `log_${String(action).replaceAll(".", "_")}`;
  const word = t(key);
  return word === key ? action : word;
};

export async function render(main, _params, ctx) {
  const client = h("input", { id: "log-client", required: true, value: ctx.query.get("client") || "" });
  const since = dateInput({ id: "log-since", value: ctx.query.get("since") || localDate(new Date(Date.now() - 7 * 864e5)) });
  const until = dateInput({ id: "log-until", value: ctx.query.get("until") || localDate(new Date()) });
  const body = h("tbody", { id: "log" });
  const head = h("p", { class: "print-head", id: "log-head" });
  const form = h(
    "form",
    { class: "form inline no-print", id: "log-form" },
    h("label", { class: "field" }, h("span", { text: t("client") }), client),
    h("label", { class: "field" }, h("span", { text: t("since") }), since),
    h("label", { class: "field" }, h("span", { text: t("until") }), until),
    h("button", { class: "btn primary", type: "submit", id: "log-show", text: t("show") }),
    h("button", { class: "btn", type: "button", id: "log-print", text: t("print"), onclick: () => window.print() }),
  );
  main.replaceChildren(
    h("h1", { text: t("log_title") }),
    form,
    head,
    h("table", { class: "table" }, h("thead", {}, h("tr", {}, [t("at"), t("actor"), t("action"), t("subject"), t("details")].map((x) => h("th", { text: x })))), body),
  );
  async function load() {
    if (!client.value.trim() || !isIsoDate(since.value.trim()) || !isIsoDate(until.value.trim())) return;
    // the period's dates are local dates (the `timezone` setting): from the start of `since` to the end of `until`
    const from = localMoment(since.value.trim(), "00:00:00");
    const to = localMoment(until.value.trim(), "23:59:59");
    try {
      const rows = await get(`/gw/api/v1/clients/${encodeURIComponent(client.value.trim())}/log?since=${encodeURIComponent(from.toISOString())}`);
      const inPeriod = rows.filter((e) => Date.parse(e.at) <= to.getTime());
      head.textContent = `${t("log_title")}: ${client.value.trim()} · ${since.value} – ${until.value} · ${inPeriod.length}`;
      body.replaceChildren(
        ...(inPeriod.length
          ? inPeriod.map((e) =>
              h(
                "tr",
                { dataset: { action: e.action } },
                h("td", { text: fmtDateTime(e.at) }),
                h("td", { text: e.actor }),
                h("td", { text: actionText(e.action) }),
                h("td", { text: e.subject || "" }),
                h("td", { class: "log-details", text: detailsText(e.details || {}) }),
              ),
            )
          : [h("tr", {}, h("td", { colspan: "5", text: t("no_entries") }))]),
      );
    } catch (err) {
      head.textContent = t("error", { msg: describe(err) });
    }
  }
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    load();
  });
  await load();
}
