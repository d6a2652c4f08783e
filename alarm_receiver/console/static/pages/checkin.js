// A camera check-in: receive-only WebRTC look through the gateway (privacy applied there), the cap's
// countdown, the outcome, and the consent's terms. No getUserMedia: the operator sends nothing.
// Leaving the page (navigation, reload, a closed tab) ends the live look at once and says so to the gateway;
// the operator's own look still live elsewhere (another tab) can be taken over or ended from here.
import { ApiError, describe, get, post, session } from "../api.js";
import { label, t } from "../i18n.js";
import { dl, fmtDateTime, h } from "../ui.js";

// Keep only 127.0.0.1 UDP host candidates (test/demo setups on loopback; docs/console.md).
export function loopbackOnly(sdp) {
  return sdp
    .split("\r\n")
    .filter((line) => !line.startsWith("a=candidate:") || (/ udp /i.test(line) && / 127\.0\.0\.1 /.test(line)))
    .join("\r\n");
}

function gatheringDone(pc, timeoutMs) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      if (pc.iceGatheringState === "complete") {
        pc.removeEventListener("icegatheringstatechange", done);
        resolve();
      }
    };
    pc.addEventListener("icegatheringstatechange", done);
    setTimeout(resolve, timeoutMs);
  });
}

export async function render(main, params, ctx) {
  const id = Number(params[0]);
  const alarmPk = ctx.query.get("alarm");
  const state = (window.__look = { state: "idle" });
  const msg = h("p", { class: "notice", id: "checkin-msg", role: "alert" });
  const fix = h("div", { class: "toolbar", id: "look-fix", hidden: true });
  const showError = (err) => {
    msg.className = "notice error";
    msg.textContent = err instanceof ApiError && err.status === 403 ? t("refused", { msg: describe(err) }) : t("error", { msg: describe(err) });
    // the operator's own look is still live (a reloaded page, another tab): take it over, or end it
    if (err instanceof ApiError && err.code === "checkin.look_live_own") {
      fix.replaceChildren(
        h("button", { class: "btn primary", id: "take-over", text: t("take_over"), onclick: () => startLook(true) }),
        h("button", { class: "btn", id: "end-own", text: t("end_own_look"), onclick: () => endOwn(err.params.look_id) }),
      );
      fix.hidden = false;
    }
  };
  let ck;
  let consent = null;
  try {
    ck = await get(`/gw/api/v1/checkins/${id}`);
    consent = await get(`/gw/api/v1/consents/${ck.consent_id}`);
  } catch (err) {
    main.replaceChildren(h("h1", { text: t("checkin_title", { id }) }), msg);
    showError(err);
    return null;
  }
  const phone = ck.kind === "phone";
  const video = h("video", { id: "video", class: "video", autoplay: true, muted: true, playsinline: true });
  video.muted = true;
  const countdown = h("div", { class: "countdown", id: "countdown", "aria-live": "polite" });
  const startBtn = h("button", { class: "btn primary big", id: "start-look", text: `▶ ${t("start_look")}` });
  const endBtn = h("button", { class: "btn big", id: "end-look", text: `■ ${t("end_look")}`, disabled: true });
  const outcomeBtns = ["seen_ok", "not_seen", "needs_help"].map((o) =>
    h("button", { class: `btn big out-${o}`, id: `out-${o}`, text: t(o), onclick: () => outcome(o) }),
  );
  let pc = null;
  let look = null;
  let timer = null;

  async function endLook(reason) {
    if (timer) clearInterval(timer);
    timer = null;
    const current = look;
    look = null;
    if (current) {
      try {
        await post(`/gw/api/v1/looks/${current.look_id}/end`, { reason: reason === "page_left" ? "page_left" : "operator" });
      } catch {
        /* already ended by the gateway (cap, camera) */
      }
    }
    if (pc) pc.close();
    pc = null;
    video.srcObject = null;
    endBtn.disabled = true;
    state.state = "ended";
    state.reason = reason;
    countdown.textContent = t("look_ended");
    countdown.className = "countdown ended";
  }

  async function endOwn(lookId) {
    try {
      await post(`/gw/api/v1/looks/${lookId}/end`, { reason: "operator" });
    } catch (err) {
      if (!(err instanceof ApiError && err.code === "look.not_found")) return showError(err);
    }
    fix.hidden = true;
    msg.className = "notice";
    msg.textContent = t("look_ended");
    startBtn.disabled = false;
  }

  async function startLook(takeOver = false) {
    startBtn.disabled = true;
    fix.hidden = true;
    msg.textContent = t("connecting");
    msg.className = "notice";
    state.state = "connecting";
    try {
      pc = new RTCPeerConnection({ iceServers: [] });
      pc.addTransceiver("video", { direction: "recvonly" });
      pc.addEventListener("track", (ev) => {
        video.srcObject = ev.streams && ev.streams[0] ? ev.streams[0] : new MediaStream([ev.track]);
        video.play().catch(() => null);
      });
      pc.addEventListener("connectionstatechange", () => {
        state.connection = pc && pc.connectionState;
        if (pc && ["failed", "closed"].includes(pc.connectionState) && look) endLook(pc.connectionState);
      });
      await pc.setLocalDescription(await pc.createOffer());
      await gatheringDone(pc, 3000);
      let sdp = pc.localDescription.sdp;
      if (ctx.config.loopback_only) sdp = loopbackOnly(sdp);
      const answer = await post(`/gw/api/v1/checkins/${id}/look`, { sdp, type: "offer", take_over: takeOver });
      look = answer;
      state.look_id = answer.look_id;
      state.max_s = answer.max_s;
      await pc.setRemoteDescription({ type: answer.type, sdp: answer.sdp });
      // The gateway ending the look (its cap, a take-over from another tab, the camera) closes its DTLS side;
      // the peer connection's own state does not show that, the transport's does.
      const dtls = pc.getReceivers()[0] && pc.getReceivers()[0].transport;
      if (dtls) {
        dtls.addEventListener("statechange", () => {
          state.transport = dtls.state;
          if (["closed", "failed"].includes(dtls.state) && look && look.look_id === answer.look_id) endLook("gateway");
        });
      }
      state.state = "live";
      ck = { ...ck, state: "started" };
      drawTerms();
      msg.textContent = `${t("privacy")}: ${label("priv", answer.privacy)}`;
      endBtn.disabled = false;
      const deadline = performance.now() + answer.max_s * 1000;
      const draw = () => {
        const left = Math.max(0, Math.ceil((deadline - performance.now()) / 1000));
        countdown.textContent = t("time_left", { s: left });
        countdown.className = `countdown${left <= 5 ? " low" : ""}`;
        if (left <= 0) endLook("cap");
      };
      draw();
      timer = setInterval(draw, 250);
    } catch (err) {
      if (pc) pc.close();
      pc = null;
      state.state = "refused";
      startBtn.disabled = false;
      showError(err);
    }
  }

  async function outcome(o) {
    try {
      if (look) await endLook("operator");
      const done = await post(`/gw/api/v1/checkins/${id}/outcome`, { outcome: o });
      state.outcome = done.outcome;
      ck = done; // the card follows: "utförd", not "att göra"
      drawTerms();
      msg.className = "notice ok";
      msg.textContent = t("outcome_saved", { o: t(o) });
      outcomeBtns.forEach((b) => (b.disabled = true));
      startBtn.disabled = true;
    } catch (err) {
      showError(err);
    }
  }

  startBtn.addEventListener("click", () => startLook(false));
  endBtn.addEventListener("click", () => endLook("operator"));
  const terms = h("div", { id: "checkin-terms" });
  function drawTerms() {
    terms.replaceChildren(
      dl([
        [t("client"), ck.client_ref],
        [t("camera"), ck.camera_id],
        [t("kind"), label("ckkind", ck.kind)],
        [t("due"), fmtDateTime(ck.due_at)],
        [t("state"), h("span", { id: "checkin-state", dataset: { state: ck.state }, text: label("ckstate", ck.state) })],
        [t("privacy"), label("priv", consent.privacy)],
        [t("window"), `${consent.window_start}–${consent.window_end}`],
        [t("times"), consent.times.join(", ")],
        [t("max_look"), `${consent.max_look_s} s`],
        [t("audio"), consent.audio ? t("yes") : t("no")],
        [t("consented_by"), consent.consented_by.map((p) => `${p.name} (${label("person", p.role)})`).join(", ")],
        [t("basis"), consent.basis],
      ]),
    );
  }
  drawTerms();
  main.replaceChildren(
    h("div", { class: "page-head" }, h("a", { href: alarmPk ? `#/alarm/${alarmPk}` : "#/queue", class: "btn small", text: `← ${t("back")}` }), h("h1", { text: t("checkin_title", { id }) })),
    h(
      "section",
      { class: "cols" },
      h("div", {}, phone ? h("p", { class: "notice", text: t("phone_call") }) : [h("div", { class: "video-box" }, video, countdown), h("div", { class: "toolbar" }, startBtn, endBtn)], h("div", { class: "toolbar outcomes" }, outcomeBtns), msg, fix),
      h("div", { class: "card" }, h("h2", { text: t("consent_terms") }), terms),
    ),
  );
  // A reload or a closed tab: end the look now (keepalive lets the request outlive the page), so that the
  // gateway does not keep it live until its cap and the log says what happened.
  const onPageHide = () => {
    const s = session();
    if (!look || !s) return;
    fetch(`/gw/api/v1/looks/${look.look_id}/end`, {
      method: "POST",
      keepalive: true,
      headers: { Authorization: `Bearer ${s.token}`, "Content-Type": "application/json" },
      body: JSON.stringify({ reason: "page_left" }),
    }).catch(() => null);
  };
  window.addEventListener("pagehide", onPageHide);
  return () => {
    window.removeEventListener("pagehide", onPageHide);
    if (look) endLook("page_left");
    else if (pc) pc.close();
  };
}
