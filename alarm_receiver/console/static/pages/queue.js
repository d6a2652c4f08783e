// The operators' queue: live over SSE, keyboard first. Triage: new, unacknowledged alarms on top (and the one
// selected first), those in progress below in their own group; inside each, priority then age. Search and
// filters (state, type, area) narrow what is shown; the sound repeats until every new priority alarm is
// acknowledged.
import { describe, get, liveFeed } from "../api.js";
import { label, t } from "../i18n.js";
import { alarmSound, flash, fmtAge, fmtTime, h, priorityBadge, priorityLevel } from "../ui.js";
import { IN_PROGRESS, OPEN_STATES, acknowledge, addNote, assign, clientOf, describeAlarm, kindOf, repeatsTag, resolve, triage } from "./common.js";

const SOUND_MIN_PRIORITY = 5; // a new alarm at or above this sounds until acknowledged (8 and up: urgent tones)
const FILTER_KEY = "trygg.queue.filters";

function loadFilters() {
  try {
    return { q: "", state: "", type: "", area: "", ...JSON.parse(sessionStorage.getItem(FILTER_KEY) || "{}") };
  } catch {
    return { q: "", state: "", type: "", area: "" };
  }
}

export async function render(main) {
  const perf = (window.__perf = window.__perf || { updates: [] });
  const rows = new Map(); // id -> {a, el, age, t0, hay}
  const filters = loadFilters();
  let selected = null;

  const group = (key, title) => {
    const list = h("ol", { class: "queue", id: `queue-${key}`, "aria-label": t(title) });
    const count = h("span", { class: "group-count" });
    const head = h("h2", { class: `group-head group-${key}`, id: `group-${key}` }, t(title), " ", count);
    return { key, order: [], list, head, count };
  };
  const groups = { new: group("new", "group_new"), open: group("open", "group_open") };
  const groupOf = (a) => (a.state === "new" ? groups.new : groups.open);

  const live = h("span", { class: "live off", id: "live", text: t("offline") });
  const count = h("span", { class: "count", id: "count" });
  const empty = h("p", { class: "notice", id: "queue-empty", text: t("queue_empty") });
  const noMatch = h("p", { class: "notice", id: "queue-no-match", text: t("no_match"), hidden: true });
  const tool = (id, key, fn) => h("button", { class: "btn small", type: "button", id, onclick: fn, text: t(key) });

  // --- search and filters
  const search = h("input", { type: "search", id: "q", value: filters.q, placeholder: t("search_placeholder"), "aria-label": t("search"), autocomplete: "off" });
  const selectEl = (id, options, value) => {
    const el = h("select", { id }, options.map(([v, l]) => h("option", { value: v, text: l })));
    el.value = value;
    return el;
  };
  const stateSel = selectEl(
    "f-state",
    [["", t("all_states")], ["new", label("st", "new")], ["progress", t("state_in_progress")], ...[...IN_PROGRESS].map((s) => [s, label("st", s)])],
    filters.state,
  );
  const typeSel = h("select", { id: "f-type" });
  const areaSel = h("select", { id: "f-area" });
  const clearBtn = h("button", { class: "btn small", type: "button", id: "f-clear", text: t("clear_filters") });
  const filterBar = h(
    "div",
    { class: "queue-filters", id: "queue-filters" },
    h("label", { class: "field inline" }, h("span", { text: t("search") }), search),
    h("label", { class: "field inline" }, h("span", { text: t("filter_state") }), stateSel),
    h("label", { class: "field inline" }, h("span", { text: t("filter_type") }), typeSel),
    h("label", { class: "field inline" }, h("span", { text: t("filter_area") }), areaSel),
    clearBtn,
  );
  // The choices offered: the types and areas seen since the page loaded (a live update adds, never rebuilds).
  const types = new Set();
  const areas = new Set();
  function noteOptions(a) {
    const area = (a.details || {}).area || "-";
    if (types.has(a.type) && areas.has(area)) return false;
    types.add(a.type);
    areas.add(area);
    return true;
  }
  function refreshOptions() {
    if (filters.type) types.add(filters.type);
    if (filters.area) areas.add(filters.area);
    typeSel.replaceChildren(
      h("option", { value: "", text: t("all_types") }),
      ...[...types].sort((x, y) => label("ty", x).localeCompare(label("ty", y))).map((ty) => h("option", { value: ty, text: label("ty", ty) })),
    );
    areaSel.replaceChildren(
      h("option", { value: "", text: t("all_areas") }),
      ...[...areas].sort().map((ar) => h("option", { value: ar, text: ar === "-" ? t("no_area") : ar })),
    );
    typeSel.value = filters.type;
    areaSel.value = filters.area;
  }

  function matches(r) {
    const a = r.a;
    const st = filters.state;
    if (st === "progress" ? !IN_PROGRESS.has(a.state) : st && a.state !== st) return false;
    if (filters.type && a.type !== filters.type) return false;
    if (filters.area && ((a.details || {}).area || "-") !== filters.area) return false;
    const q = filters.q.trim().toLowerCase();
    return !q || r.hay.includes(q);
  }

  function applyFilters() {
    sessionStorage.setItem(FILTER_KEY, JSON.stringify(filters));
    for (const r of rows.values()) r.el.hidden = !matches(r);
    if (selected !== null && (!rows.has(selected) || rows.get(selected).el.hidden)) select(firstNew());
    updateCounts();
  }
  const onFilter = () => {
    filters.q = search.value;
    filters.state = stateSel.value;
    filters.type = typeSel.value;
    filters.area = areaSel.value;
    applyFilters();
  };
  search.addEventListener("input", onFilter);
  for (const el of [stateSel, typeSel, areaSel]) el.addEventListener("change", onFilter);
  clearBtn.addEventListener("click", () => {
    search.value = stateSel.value = typeSel.value = areaSel.value = "";
    onFilter();
  });

  main.replaceChildren(
    h("div", { class: "page-head" }, h("h1", { text: t("queue_title") }), count, live),
    h(
      "div",
      { class: "toolbar queue-tools" },
      tool("act-ack", "acknowledge", () => act("a")),
      tool("act-assign", "assign", () => act("s")),
      tool("act-note", "note", () => act("n")),
      tool("act-resolve", "resolve", () => act("r")),
      tool("act-open", "open_detail", () => act("Enter")),
      h("span", { class: "keys", text: t("keys_help") }),
    ),
    filterBar,
    h("div", { id: "queue", class: "queue-groups" }, groups.new.head, groups.new.list, groups.open.head, groups.open.list),
    empty,
    noMatch,
  );

  function rowFor(a) {
    const lv = priorityLevel(a.priority);
    const age = h("span", { class: "age", text: fmtAge(Date.now() - Date.parse(a.stored_at)) });
    // the escalation frame is a call to acknowledge: it stops once the alarm is acknowledged
    const esc = a.state === "new" && a.escalation_level > 0;
    const text = describeAlarm(a);
    const el = h(
      "li",
      {
        class: `row ${lv.cls} kind-${kindOf(a)} st-${a.state}${esc ? ` esc esc-${a.escalation_level}` : ""}`,
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
        esc ? h("span", { class: "tag esc-tag", text: `⚠ ${t("escalated", { n: a.escalation_level })}` }) : null,
        repeatsTag(a),
        a.routing_missing ? h("span", { class: "tag routing-missing", text: t("routing_missing") }) : null,
      ),
      h("span", { class: "c-client" }, h("strong", { text: clientOf(a) }), h("small", { text: [a.client_address, text].filter(Boolean).join(" · ") })),
      h("span", { class: "c-state", text: label("st", a.state) }),
      h("span", { class: "c-assigned", text: a.assigned_to || "" }),
      h("span", { class: "c-age" }, age, h("small", { text: fmtTime(a.stored_at) })),
    );
    el.addEventListener("click", () => select(a.id));
    el.addEventListener("dblclick", () => (location.hash = `#/alarm/${a.id}`));
    const d = a.details || {};
    const hay = [clientOf(a), a.client_address, a.device_id, text, label("ty", a.type), label("st", a.state), a.assigned_to, d.area].filter(Boolean).join(" ").toLowerCase();
    const r = { a, el, age, t0: Date.parse(a.stored_at), hay };
    el.hidden = !matches(r);
    return r;
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

  const visible = () => [...groups.new.order, ...groups.open.order].filter((a) => !rows.get(a.id).el.hidden);
  // Preselection is always a new alarm, never one in progress (pressing `a` must acknowledge what is waiting).
  const firstNew = () => {
    const a = groups.new.order.find((x) => !rows.get(x.id).el.hidden);
    return a ? a.id : null;
  };

  function updateCounts() {
    const n = groups.new.order.length + groups.open.order.length;
    let shown = 0;
    for (const g of Object.values(groups)) {
      let vis = 0;
      for (const a of g.order) if (!rows.get(a.id).el.hidden) vis += 1;
      shown += vis;
      g.count.textContent = `(${vis})`;
      g.head.hidden = vis === 0;
    }
    count.textContent = shown === n ? t("open_count", { n }) : `${t("open_count", { n })} · ${t("filtered_count", { shown, n })}`;
    empty.hidden = n > 0;
    noMatch.hidden = n === 0 || shown > 0;
    sound();
  }

  // Sounds while a new alarm of priority >= 5 waits, urgent tones from 8; stops when all are acknowledged.
  const sound = alarmSound(() => {
    let level = null;
    for (const a of groups.new.order) {
      if (a.priority >= 8) return "urgent";
      if (a.priority >= SOUND_MIN_PRIORITY) level = "normal";
    }
    return level;
  });

  function insertIndex(g, a) {
    let lo = 0;
    let hi = g.order.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (triage(g.order[mid], a) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  function apply(a) {
    const old = rows.get(a.id);
    if (old) {
      const g = groupOf(old.a);
      const i = g.order.indexOf(old.a);
      if (i >= 0) g.order.splice(i, 1);
      old.el.remove();
      rows.delete(a.id);
    }
    if (!OPEN_STATES.has(a.state)) {
      if (selected === a.id) select(firstNew());
      updateCounts();
      return false;
    }
    const r = rowFor(a);
    const g = groupOf(a);
    const idx = insertIndex(g, a);
    g.order.splice(idx, 0, a);
    const before = g.order[idx + 1] ? rows.get(g.order[idx + 1].id) : null;
    g.list.insertBefore(r.el, before ? before.el : null);
    rows.set(a.id, r);
    // a new row, or the device pressed again (a repeat collapsed into this item): the row flashes like a new one
    if (!old || (a.repeats || 0) > (old.a.repeats || 0)) r.el.classList.add("fresh");
    if (selected === a.id) r.el.classList.add("selected");
    if (selected === null && a.state === "new" && !r.el.hidden) select(a.id);
    if (noteOptions(a)) refreshOptions();
    updateCounts();
    return !old;
  }

  async function load() {
    const t0 = performance.now();
    const alarms = await get("/api/v1/alarms?limit=5000");
    const t1 = performance.now();
    rows.clear();
    types.clear();
    areas.clear();
    for (const a of alarms) noteOptions(a);
    refreshOptions();
    const sorted = alarms.slice().sort(triage);
    groups.new.order = sorted.filter((a) => a.state === "new");
    groups.open.order = sorted.filter((a) => a.state !== "new");
    for (const g of Object.values(groups)) {
      const frag = document.createDocumentFragment();
      for (const a of g.order) {
        const r = rowFor(a);
        rows.set(a.id, r);
        frag.append(r.el);
      }
      g.list.replaceChildren(frag);
    }
    void main.offsetHeight; // layout now, so the figure includes it
    perf.renderMs = performance.now() - t1;
    perf.fetchMs = t1 - t0;
    perf.rendered = rows.size;
    if (selected === null || !rows.has(selected) || rows.get(selected).el.hidden) select(firstNew());
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
    if (ev.target === search && ev.key === "Escape") {
      search.blur();
      return;
    }
    if (["INPUT", "SELECT", "TEXTAREA"].includes(tag)) return;
    const order = visible();
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
    } else if (ev.key === "/") {
      search.focus();
    } else return;
    ev.preventDefault();
  }
  document.addEventListener("keydown", onKey);

  const tick = setInterval(() => {
    const now = Date.now();
    for (const r of rows.values()) if (!r.el.hidden) r.age.textContent = fmtAge(now - r.t0);
  }, 1000);

  const stop = liveFeed({
    onAlarm: (a, tRecv) => {
      const isNew = apply(a);
      void main.offsetHeight;
      const ms = performance.now() - tRecv;
      perf.lastUpdateMs = ms;
      perf.updates.push(ms);
      if (isNew && a.state === "new" && a.priority >= SOUND_MIN_PRIORITY) sound(true);
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
    sound.stop();
    clearInterval(tick);
    document.removeEventListener("keydown", onKey);
  };
}
