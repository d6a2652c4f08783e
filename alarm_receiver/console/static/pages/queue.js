// The operators' queue: live over SSE, priority then age, keyboard first.
import { describe, get, liveFeed } from "../api.js";
import { label, t } from "../i18n.js";
import { beep, flash, fmtAge, fmtTime, h, priorityBadge, priorityLevel } from "../ui.js";
import { OPEN_STATES, acknowledge, addNote, assign, clientOf, compare, describeAlarm, kindOf, resolve } from "./common.js";

const BEEP_MIN_PRIORITY = 5;

export async function render(main) {
  const perf = (window.__perf = window.__perf || { updates: [] });
  const rows = new Map(); // id -> {a, el, age}
  let order = []; // sorted alarms
  let selected = null;

  const list = h("ol", { class: "queue", id: "queue", "aria-label": t("queue_title") });
  const live = h("span", { class: "live off", id: "live", text: t("offline") });
  const count = h("span", { class: "count", id: "count" });
  const empty = h("p", { class: "notice", id: "queue-empty", text: t("queue_empty") });
  const tool = (id, key, fn) => h("button", { class: "btn", type: "button", id, onclick: fn, text: t(key) });
  const toolbar = h(
    "div",
    { class: "toolbar" },
    tool("act-ack", "acknowledge", () => act("a")),
    tool("act-assign", "assign", () => act("s")),
    tool("act-note", "note", () => act("n")),
    tool("act-resolve", "resolve", () => act("r")),
    tool("act-open", "open_detail", () => act("Enter")),
  );
  main.replaceChildren(
    h("div", { class: "page-head" }, h("h1", { text: t("queue_title") }), count, live),
    toolbar,
    h("p", { class: "keys", text: t("keys_help") }),
    list,
    empty,
  );

  function rowFor(a) {
    const lv = priorityLevel(a.priority);
    const age = h("span", { class: "age", text: fmtAge(Date.now() - Date.parse(a.stored_at)) });
    const el = h(
      "li",
      {
        class: `row ${lv.cls} kind-${kindOf(a)} st-${a.state}${a.escalation_level ? ` esc esc-${a.escalation_level}` : ""}`,
        dataset: { id: String(a.id), state: a.state, type: a.type },
        id: `alarm-${a.id}`,
        tabindex: "-1",
      },
      h("span", { class: "c-prio" }, priorityBadge(a.priority)),
      h(
        "span",
        { class: "c-type" },
        h("strong", { text: label("ty", a.type) }),
        a.is_test ? h("span", { class: "tag", text: t("test") }) : null,
        a.escalation_level ? h("span", { class: "tag esc-tag", text: `⚠ ${t("escalated", { n: a.escalation_level })}` }) : null,
      ),
      h("span", { class: "c-client" }, h("strong", { text: clientOf(a) }), h("small", { text: describeAlarm(a) })),
      h("span", { class: "c-state", text: label("st", a.state) }),
      h("span", { class: "c-assigned", text: a.assigned_to || "" }),
      h("span", { class: "c-age" }, age, h("small", { text: fmtTime(a.stored_at) })),
    );
    el.addEventListener("click", () => select(a.id));
    el.addEventListener("dblclick", () => (location.hash = `#/alarm/${a.id}`));
    return { a, el, age, t0: Date.parse(a.stored_at) };
  }

  function select(id) {
    if (selected !== null && rows.has(selected)) rows.get(selected).el.classList.remove("selected");
    selected = id;
    const r = id !== null ? rows.get(id) : null;
    if (r) {
      r.el.classList.add("selected");
      r.el.scrollIntoView({ block: "nearest" });
    }
  }

  function updateCounts() {
    count.textContent = t("open_count", { n: order.length });
    empty.hidden = order.length > 0;
  }

  function insertIndex(a) {
    let lo = 0;
    let hi = order.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (compare(order[mid], a) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  function apply(a) {
    const old = rows.get(a.id);
    let i = -1;
    if (old) {
      i = order.indexOf(old.a);
      if (i >= 0) order.splice(i, 1);
      old.el.remove();
      rows.delete(a.id);
    }
    if (!OPEN_STATES.has(a.state)) {
      if (selected === a.id) {
        const next = order[Math.min(order.length - 1, Math.max(0, i))];
        select(next ? next.id : null);
      }
      updateCounts();
      return;
    }
    const r = rowFor(a);
    const idx = insertIndex(a);
    order.splice(idx, 0, a);
    const before = order[idx + 1] ? rows.get(order[idx + 1].id) : null;
    list.insertBefore(r.el, before ? before.el : null);
    rows.set(a.id, r);
    if (!old) r.el.classList.add("fresh");
    if (selected === a.id) r.el.classList.add("selected");
    if (selected === null) select(a.id);
    updateCounts();
    return !old;
  }

  async function load() {
    const t0 = performance.now();
    const alarms = await get("/api/v1/alarms?limit=5000");
    const t1 = performance.now();
    rows.clear();
    order = alarms.slice().sort(compare);
    const frag = document.createDocumentFragment();
    for (const a of order) {
      const r = rowFor(a);
      rows.set(a.id, r);
      frag.append(r.el);
    }
    list.replaceChildren(frag);
    void list.offsetHeight; // layout now, so the figure includes it
    perf.renderMs = performance.now() - t1;
    perf.fetchMs = t1 - t0;
    perf.rendered = order.length;
    if (selected === null || !rows.has(selected)) select(order.length ? order[0].id : null);
    else select(selected);
    updateCounts();
  }

  async function act(key) {
    const r = selected !== null ? rows.get(selected) : null;
    if (!r) return;
    try {
      let changed = null;
      if (key === "a") changed = await acknowledge(r.a);
      else if (key === "s") changed = await assign(r.a);
      else if (key === "n") changed = await addNote(r.a);
      else if (key === "r") changed = await resolve(r.a);
      else if (key === "Enter") location.hash = `#/alarm/${r.a.id}`;
      if (changed) apply(changed);
    } catch (err) {
      flash(t("error", { msg: describe(err) }), "error");
    }
  }

  function onKey(ev) {
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const dlg = document.getElementById("dialog");
    if (dlg.open) return;
    const tag = (ev.target && ev.target.tagName) || "";
    if (["INPUT", "SELECT", "TEXTAREA"].includes(tag) && !dlg.contains(ev.target)) return;
    const i = order.findIndex((a) => a.id === selected);
    if (ev.key === "j" || ev.key === "ArrowDown") {
      if (order.length) select(order[Math.min(order.length - 1, i + 1)].id);
    } else if (ev.key === "k" || ev.key === "ArrowUp") {
      if (order.length) select(order[Math.max(0, i - 1)].id);
    } else if (["a", "s", "n", "r", "Enter"].includes(ev.key)) {
      if (ev.key === "Enter" && tag === "BUTTON") return;
      act(ev.key);
    } else if (ev.key === "m") {
      document.getElementById("mute").click();
    } else return;
    ev.preventDefault();
  }
  document.addEventListener("keydown", onKey);

  const tick = setInterval(() => {
    const now = Date.now();
    for (const r of rows.values()) r.age.textContent = fmtAge(now - r.t0);
  }, 1000);

  const stop = liveFeed({
    onAlarm: (a, tRecv) => {
      const isNew = apply(a);
      void list.offsetHeight;
      const ms = performance.now() - tRecv;
      perf.lastUpdateMs = ms;
      perf.updates.push(ms);
      if (isNew && a.state === "new" && a.priority >= BEEP_MIN_PRIORITY) beep(a.priority >= 8);
    },
    onState: (up) => {
      live.textContent = up ? t("live") : t("offline");
      live.className = `live ${up ? "on" : "off"}`;
    },
    onReconnect: () => load().catch(() => null),
  });

  await load();
  return () => {
    stop();
    clearInterval(tick);
    document.removeEventListener("keydown", onKey);
  };
}
