// Shared by the queue, the detail and the patrol view: labels of alarms and the lifecycle actions.
import { get, post } from "../api.js";
import { label, t } from "../i18n.js";
import { ask } from "../ui.js";

// Open states, technical alarm types and task types: the server's lists (config.js), not copies.
import { OPEN_STATES, TASK_TYPES as TASKS, TECHNICAL_TYPES as TECHNICAL } from "../config.js";

export { OPEN_STATES, TASKS, TECHNICAL };
export const OUTCOMES = ["helped", "false", "no_action", "transport", "other"];

export function kindOf(a) {
  return TASKS.has(a.type) ? "task" : TECHNICAL.has(a.type) ? "technical" : "alarm";
}

export function clientOf(a) {
  const d = a.details || {};
  return d.client_ref || d.client || a.device_id;
}

export function describeAlarm(a) {
  const d = a.details || {};
  const loc = typeof d.location === "object" && d.location ? d.location.text || d.location.code : d.location;
  return [d.text, loc].filter(Boolean).join(" · ");
}

// Alarms the queue shows: highest priority first, then oldest, then by id (the API's order).
export function compare(a, b) {
  if (a.priority !== b.priority) return b.priority - a.priority;
  const ta = Date.parse(a.stored_at);
  const tb = Date.parse(b.stored_at);
  if (ta !== tb) return ta - tb;
  return a.id - b.id;
}

export const acknowledge = (a) => post(`/api/v1/alarms/${a.id}/acknowledge`, {});

async function ensureAcknowledged(a) {
  return a.state === "new" ? acknowledge(a) : a;
}

export async function assign(a) {
  const patrols = await get("/api/v1/console/patrols");
  const v = await ask(t("assign"), [
    { name: "patrol", label: t("patrol"), type: "select", options: patrols.map((p) => [p.username, p.display_name || p.username]) },
    { name: "note", label: t("note_text") },
  ]);
  if (!v) return null;
  await ensureAcknowledged(a);
  return post(`/api/v1/alarms/${a.id}/assign`, { patrol: v.patrol, note: v.note || null });
}

export async function addNote(a) {
  const v = await ask(t("note"), [{ name: "note", label: t("note_text"), required: true }]);
  if (!v || !v.note.trim()) return null;
  return post(`/api/v1/alarms/${a.id}/notes`, { note: v.note.trim() });
}

export async function resolve(a) {
  const v = await ask(t("resolve"), [
    { name: "outcome", label: t("outcome"), type: "select", options: OUTCOMES.map((o) => [o, label("out", o)]) },
    { name: "note", label: t("note_text") },
  ]);
  if (!v) return null;
  await ensureAcknowledged(a);
  return post(`/api/v1/alarms/${a.id}/resolve`, { outcome: v.outcome, note: v.note || null });
}
