import { describe, login } from "../api.js";
import { t } from "../i18n.js";
import { known, tr } from "../messages.js";
import { h } from "../ui.js";

export function render(main, _params, ctx) {
  const user = h("input", { id: "username", name: "username", autocomplete: "username", required: true });
  const pass = h("input", { id: "password", name: "password", type: "password", autocomplete: "current-password", required: true });
  // Sent here because the session ended: say why (?reason=expired | logout | ended, ?code= the server's code).
  const reason = ctx.query.get("reason");
  const code = ctx.query.get("code");
  const why =
    reason === "logout" ? t("logged_out") : code && known(code) ? tr(code) : reason === "expired" || reason === "ended" ? t("session_expired") : "";
  const msg = h("p", { id: "login-error", class: reason === "logout" ? "notice" : "error", role: "alert", text: why });
  const form = h(
    "form",
    { class: "form login", id: "login-form" },
    h("h1", { text: `${t("app")} – ${t("login")}` }),
    h("label", { class: "field" }, h("span", { text: t("username") }), user),
    h("label", { class: "field" }, h("span", { text: t("password") }), pass),
    h("button", { class: "btn primary big", type: "submit", id: "login-submit", text: t("login") }),
    msg,
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    msg.textContent = "";
    try {
      const s = await login(user.value.trim(), pass.value);
      location.hash = ctx.landing(s.role);
    } catch (err) {
      msg.className = "error";
      if (err.status === 401) msg.textContent = t("login_failed");
      else if (err.status === 429)
        // throttled (auth.login_throttled) or busy (auth.login_busy): said plainly, with when to try again
        msg.textContent = tr(err.code || "auth.login_throttled", {
          retry_after_s: (err.params && err.params.retry_after_s) ?? err.retryAfter ?? 60,
        });
      else msg.textContent = t("error", { msg: describe(err) });
    }
  });
  main.replaceChildren(form);
  user.focus();
}
