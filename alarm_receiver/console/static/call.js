// Voice calls with a client's base unit (docs/voice.md): an incoming call rings in its alarm's row and detail
// (answer with a click, or the key "c"); the in-call panel shows the client, a timer, mute, volume, hang-up
// and "help is coming"; the alarm detail has a callback button, the patrol view a call button. Audio goes
// browser <-> gateway (WebRTC, Opus); the gateway relays it to the unit. Nothing is recorded.
import { ApiError, describe, get, liveFeed, post, session } from "./api.js";
import { config } from "./config.js";
import { t } from "./i18n.js";
import { known, tr } from "./messages.js";
import { h } from "./ui.js";
import { clientOf } from "./pages/common.js";

const ringing = new Map(); // call_id -> {call_id, device_id, alarm_id, alarm_pk, unit_id}
let active = null; // {call_id, alarm, pc, mic, audio, ctx, analyser, t0, timer, state}
let panel = null;
let stopFeed = null;
let observer = null;
const state = (window.__call = { state: "idle", ringing: 0 });

const key = (deviceId, alarmId) => `${deviceId}/${alarmId}`;
const ringFor = (a) => [...ringing.values()].find((c) => c.device_id === a.device_id && c.alarm_id === a.alarm_id);

// Keep only 127.0.0.1 UDP host candidates (test/demo setups on loopback; docs/console.md).
function loopbackOnly(sdp) {
  return sdp
    .split("\r\n")
    .filter((line) => !line.startsWith("a=candidate:") || (/ udp /i.test(line) && / 127\.0\.0\.1 /.test(line)))
    .join("\r\n");
}

function gatheringDone(pc, timeoutMs) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => pc.iceGatheringState === "complete" && resolve();
    pc.addEventListener("icegatheringstatechange", done);
    setTimeout(resolve, timeoutMs);
  });
}

// ---------------------------------------------------------------- ringing: rows, detail, keys
function sync() {
  state.ringing = ringing.size;
  for (const c of ringing.values()) {
    if (c.alarm_pk == null) continue;
    const row = document.getElementById(`alarm-${c.alarm_pk}`);
    if (row && !row.querySelector(".ring-btn")) {
      row.classList.add("ringing");
      row.append(h("button", { class: "btn small primary ring-btn", id: `ring-${c.alarm_pk}`, text: `☎ ${t("call_answer")}`, onclick: (ev) => (ev.stopPropagation(), answer(c)) }));
    }
  }
  for (const row of document.querySelectorAll("li.ringing")) {
    const pk = Number(row.dataset.id);
    if (![...ringing.values()].some((c) => c.alarm_pk === pk)) {
      row.classList.remove("ringing");
      row.querySelectorAll(".ring-btn").forEach((b) => b.remove());
    }
  }
  for (const slot of document.querySelectorAll("[data-call-slot]")) fillSlot(slot);
}

function fillSlot(slot) {
  const a = slot.__alarm;
  if (!a) return;
  const ring = ringFor(a);
  const open = ["new", "acknowledged", "assigned", "on_site"].includes(a.state);
  const patrol = slot.dataset.callSlot === "patrol";
  // only when something changed: the page's observer sees every change this makes
  const want = ring && !patrol ? `answer:${ring.call_id}` : open && !active ? "callback" : "none";
  if (slot.dataset.callState === want) return;
  slot.dataset.callState = want;
  const buttons = [];
  if (ring && !patrol) {
    buttons.push(h("button", { class: "btn primary ringing", id: patrol ? `p-answer-${a.id}` : "d-answer", text: `☎ ${t("call_answer")}`, onclick: () => answer(ring) }));
  } else if (open && !active) {
    buttons.push(h("button", { class: patrol ? "btn big" : "btn", id: patrol ? `p-call-${a.id}` : "d-callback", text: `☎ ${t(patrol ? "call_unit" : "call_back")}`, onclick: () => callBack(a) }));
  }
  slot.replaceChildren(...buttons);
}

// A place for the call buttons of alarm ``a``: "answer" while its unit rings, else "call back" (open alarms).
export function callButtons(a, where = "detail") {
  const slot = h("span", { class: "call-slot", dataset: { callSlot: where } });
  slot.__alarm = a;
  fillSlot(slot);
  return slot;
}

async function findPk(c) {
  if (c.alarm_pk != null) return;
  try {
    const rows = await get(`/api/v1/alarms?device_id=${encodeURIComponent(c.device_id)}&all_states=true`);
    const a = rows.find((r) => r.alarm_id === c.alarm_id);
    if (a) c.alarm_pk = a.id;
  } catch {
    /* a patrol does not see every alarm */
  }
}

function onCallEvent(ev) {
  const c = { call_id: ev.call_id, device_id: ev.device_id, alarm_id: ev.alarm_id, alarm_pk: ev.alarm_pk, unit_id: ev.unit_id };
  if (ev.event === "ringing") ringing.set(ev.call_id, c);
  else ringing.delete(ev.call_id);
  if (active && active.call_id === ev.call_id && (ev.event === "ended" || ev.event === "failed")) {
    finish(ev.event === "failed" ? "failed" : "ended", ev.reason);
  }
  sync();
}

async function loadRinging() {
  try {
    const calls = await get("/gw/api/v1/voice/calls");
    ringing.clear();
    for (const c of calls.filter((x) => x.phase === "ringing")) {
      const item = { call_id: c.call_id, device_id: c.alarm_device_id, alarm_id: c.alarm_id, alarm_pk: null, unit_id: c.unit_id };
      ringing.set(c.call_id, item);
      await findPk(item);
    }
  } catch {
    /* the gateway away: the live feed still rings */
  }
  sync();
}

function onKey(ev) {
  if (ev.key !== "c" || ev.ctrlKey || ev.metaKey || ev.altKey || active) return;
  const tag = (ev.target && ev.target.tagName) || "";
  if (["INPUT", "SELECT", "TEXTAREA"].includes(tag) || document.getElementById("dialog").open) return;
  const m = /^#\/alarm\/(\d+)/.exec(location.hash);
  const here = m ? [...ringing.values()].find((c) => c.alarm_pk === Number(m[1])) : null;
  const c = here || ringing.values().next().value;
  if (c) {
    ev.preventDefault();
    answer(c);
  }
}

// Start once per login (operators and patrols): the live feed's call events, the calls already ringing.
export function startPhone() {
  const s = session();
  if (!s || stopFeed || !["operator", "patrol", "admin"].includes(s.role)) return;
  stopFeed = liveFeed({ onAlarm: () => null, onCall: onCallEvent, onReconnect: () => loadRinging() });
  observer = new MutationObserver(() => sync());
  observer.observe(document.getElementById("main"), { childList: true, subtree: true });
  document.addEventListener("keydown", onKey);
  loadRinging();
}

export function stopPhone() {
  if (active) hangUp();
  if (stopFeed) stopFeed();
  if (observer) observer.disconnect();
  document.removeEventListener("keydown", onKey);
  stopFeed = observer = null;
  ringing.clear();
}

// ---------------------------------------------------------------- a call
async function answer(c) {
  await start({ path: `/gw/api/v1/voice/calls/${encodeURIComponent(c.call_id)}/answer`, body: {}, pk: c.alarm_pk, callId: c.call_id });
}

async function callBack(a) {
  await start({ path: "/gw/api/v1/voice/callback", body: { device_id: a.device_id, alarm_id: a.alarm_id }, pk: a.id, alarm: a });
}

async function start({ path, body, pk, alarm, callId }) {
  if (active) return;
  active = { call_id: callId || null, alarm: alarm || null, pk, state: "connecting", muted: false };
  state.state = "connecting";
  state.reason = null;
  drawPanel();
  try {
    if (!active.alarm && pk != null) active.alarm = await get(`/api/v1/alarms/${pk}`);
    drawPanel();
    active.mic = await navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: true, noiseSuppression: true } });
    const pc = (active.pc = new RTCPeerConnection({ iceServers: [] }));
    for (const track of active.mic.getAudioTracks()) pc.addTrack(track, active.mic);
    pc.addEventListener("track", (ev) => hear(ev.streams && ev.streams[0] ? ev.streams[0] : new MediaStream([ev.track])));
    pc.addEventListener("connectionstatechange", () => {
      if (pc.connectionState === "failed" && active && active.pc === pc) finish("failed", "ice_failed");
    });
    await pc.setLocalDescription(await pc.createOffer());
    await gatheringDone(pc, 3000);
    let sdp = pc.localDescription.sdp;
    if (config.loopback_only) sdp = loopbackOnly(sdp);
    const answer = await post(path, { ...body, sdp, type: "offer" });
    if (!active || active.pc !== pc) return;
    active.call_id = answer.call_id;
    await pc.setRemoteDescription({ type: answer.type, sdp: answer.sdp });
    // the gateway hanging up closes its DTLS side: the transport says so before the peer connection does
    const dtls = pc.getSenders()[0] && pc.getSenders()[0].transport;
    if (dtls) dtls.addEventListener("statechange", () => dtls.state === "closed" && active && active.pc === pc && finish("ended", "gateway"));
    active.state = "live";
    active.t0 = Date.now();
    active.timer = setInterval(tickTimer, 1000);
    state.state = "live";
    state.call_id = answer.call_id;
    drawPanel();
  } catch (err) {
    finish("failed", null, err);
  }
  sync();
}

function hear(stream) {
  if (!active) return;
  const audio = (active.audio = h("audio", { id: "call-audio", autoplay: true }));
  audio.srcObject = stream;
  audio.volume = active.volume ?? 1;
  audio.play().catch(() => null);
  document.body.append(audio);
  try {
    const ctx = (active.ctx = new AudioContext());
    const analyser = (active.analyser = ctx.createAnalyser());
    analyser.fftSize = 4096;
    ctx.createMediaStreamSource(stream).connect(analyser); // measured only, not played twice
    ctx.resume().catch(() => null);
  } catch {
    active.analyser = null;
  }
}

// What the operator hears, as a spectrum (dB per bin) and its sample rate: the level meter, and the tests.
state.spectrum = () => {
  if (!active || !active.analyser) return null;
  const data = new Float32Array(active.analyser.frequencyBinCount);
  active.analyser.getFloatFrequencyData(data);
  return { db: Array.from(data), rate: active.ctx.sampleRate, fft: active.analyser.fftSize };
};

function tickTimer() {
  if (!active || !active.t0) return;
  const s = Math.floor((Date.now() - active.t0) / 1000);
  const el = document.getElementById("call-timer");
  if (el) el.textContent = `${String(Math.floor(s / 60)).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}`;
  state.seconds = s;
  const level = document.getElementById("call-level");
  const spec = state.spectrum();
  if (level && spec) level.value = Math.max(0, Math.min(100, 100 + Math.max(...spec.db)));
}

async function hangUp() {
  if (!active) return;
  const id = active.call_id;
  // the gateway first, so that it records "the operator hung up", not "the operator's side closed"
  if (id) await post(`/gw/api/v1/voice/calls/${encodeURIComponent(id)}/end`, {}).catch(() => null);
  finish("ended", "operator");
}

function finish(how, reason, err) {
  if (!active) return;
  const a = active;
  if (a.timer) clearInterval(a.timer);
  if (a.pc) a.pc.close();
  if (a.mic) a.mic.getTracks().forEach((tr) => tr.stop());
  if (a.audio) a.audio.remove();
  if (a.ctx) a.ctx.close().catch(() => null);
  active = null;
  state.state = how;
  state.reason = reason;
  const failure = known(`voice.${reason}`) ? tr(`voice.${reason}`) : t("call_failed");
  const msg = err ? (err instanceof ApiError ? describe(err) : t("call_media_error")) : how === "failed" ? failure : t("call_ended_msg");
  state.message = msg;
  drawPanel({ done: how, msg, alarm: a.alarm });
  sync();
}

function drawPanel(end) {
  if (!panel) {
    panel = h("aside", { id: "call-panel", class: "call-panel", role: "region", "aria-live": "polite" });
    document.body.append(panel);
  }
  const a = active ? active.alarm : end && end.alarm;
  const client = a ? clientOf(a) : "";
  if (!active) {
    panel.replaceChildren(
      h("strong", { text: `☎ ${client}` }),
      h("p", { id: "call-state", class: end && end.done === "failed" ? "notice error" : "notice", text: end ? end.msg : "" }),
      h("button", { class: "btn small", id: "call-close", text: t("call_close"), onclick: () => (panel.hidden = true) }),
    );
    panel.hidden = !end;
    return;
  }
  panel.hidden = false;
  const vol = h("input", { type: "range", id: "call-volume", min: "0", max: "100", value: String(Math.round((active.volume ?? 1) * 100)), "aria-label": t("call_volume") });
  vol.addEventListener("input", () => {
    active.volume = Number(vol.value) / 100;
    if (active.audio) active.audio.volume = active.volume;
  });
  const mute = h("button", { class: "btn", id: "call-mute", "aria-pressed": String(active.muted), text: active.muted ? t("call_unmute") : t("call_mute") });
  mute.addEventListener("click", () => {
    active.muted = !active.muted;
    if (active.mic) active.mic.getAudioTracks().forEach((tr) => (tr.enabled = !active.muted));
    state.muted = active.muted;
    drawPanel();
  });
  panel.replaceChildren(
    h("strong", { id: "call-client", text: `☎ ${client}` }),
    h("p", { id: "call-state", class: "notice", text: active.state === "live" ? t("call_live") : t("call_connecting") }),
    h("span", { id: "call-timer", class: "call-timer", text: "00:00" }),
    h("meter", { id: "call-level", min: "0", max: "100", value: "0", "aria-label": t("call_level") }),
    h("div", { class: "toolbar" },
      mute,
      h("label", { class: "call-vol" }, `${t("call_volume")} `, vol),
      h("button", { class: "btn primary", id: "call-help", text: t("call_help_coming"), disabled: !active.pk, onclick: helpComing }),
      h("button", { class: "btn danger", id: "call-hangup", text: t("call_hang_up"), onclick: hangUp }),
    ),
  );
  tickTimer();
}

async function helpComing() {
  if (!active || !active.pk) return;
  try {
    await post(`/api/v1/alarms/${active.pk}/help-coming`, {});
    state.helpComing = true;
    const el = document.getElementById("call-state");
    if (el) el.textContent = t("call_help_sent");
  } catch (err) {
    const el = document.getElementById("call-state");
    if (el) el.textContent = t("error", { msg: describe(err) });
  }
}

