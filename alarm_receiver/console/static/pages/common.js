// Shared by the queue, the detail and the patrol view: labels of alarms, their texts, and the lifecycle actions.
import { describe, get, post } from "../api.js";
import { label, t } from "../i18n.js";
import { outcomeWord, tr } from "../messages.js";
import { ask, fmtTime, h } from "../ui.js";
import { proposals } from "../clients.js";

// Open states (and of them those in progress), technical alarm types and task types: the server's lists
// (config.js), not copies.
import { IN_PROGRESS_STATES as IN_PROGRESS, OPEN_STATES, TASK_TYPES as TASKS, TECHNICAL_TYPES as TECHNICAL } from "../config.js";

export { IN_PROGRESS, OPEN_STATES, TASKS, TECHNICAL };
export const OUTCOMES = ["helped", "false", "no_action", "transport", "other"];
export const NOTE_MAX = 2000; // the API's limit (alarm_receiver/schemas.py)

export function kindOf(a) {
  return TASKS.has(a.type) ? "task" : TECHNICAL.has(a.type) ? "technical" : "alarm";
}

export function clientOf(a) {
  const d = a.details || {};
  return a.client_name || d.client_ref || d.client || a.device_id;
}

// The alarm's text: a gateway text as a code (task, supervision) in the console's language; a device's own
// text as sent; then the location.
export function textOf(a) {
  const d = a.details || {};
  return d.text_code ? tr(d.text_code, d.text_params) : d.text || "";
}

export function describeAlarm(a) {
  const d = a.details || {};
  const loc = typeof d.location === "object" && d.location ? d.location.text || d.location.code : d.location;
  return [textOf(a), loc].filter(Boolean).join(" · ");
}

// The outcome: a code the gateway set, an operator's word, or (rows from before codes) the text stored.
export function outcomeText(a) {
  if (a.outcome_code) return tr(a.outcome_code, a.outcome_params);
  return a.outcome ? outcomeWord(a.outcome) : null;
}

// Alarms of the same type from the device collapsed into this item while it was open (issue 8): how many more and
// the latest one's time, on the row and the detail, so that a pressed-again button is never hidden.
export function repeatsTag(a) {
  if (!a.repeats) return null;
  return h("span", { class: "tag repeats-tag", text: t("repeats", { n: a.repeats, time: fmtTime(a.last_repeat_at) }) });
}

// One history line: what happened (translated) and the person's own note. Rows from before codes: the
// action's word and the note as stored.
export function eventText(e) {
  if (e.code) return { what: tr(e.code, e.params), note: (e.params && e.params.note) || null };
  return { what: label("ev", e.action), note: e.note };
}

// Alarms by priority (9 highest), then oldest, then id.
export function compare(a, b) {
  if (a.priority !== b.priority) return b.priority - a.priority;
  const ta = Date.parse(a.stored_at);
  const tb = Date.parse(b.stored_at);
  if (ta !== tb) return ta - tb;
  return a.id - b.id;
}

// The operators' triage (and the API's order): new, unacknowledged alarms first, then those in progress;
// inside each group by priority, then age.
export function triage(a, b) {
  const ga = a.state === "new" ? 0 : 1;
  const gb = b.state === "new" ? 0 : 1;
  return ga !== gb ? ga - gb : compare(a, b);
}

export const acknowledge = (a) => post(`/api/v1/alarms/${a.id}/acknowledge`, {});

// Acknowledges first when the alarm is new; once only, also when the dialog is submitted again after an error.
function acknowledgeOnce(a) {
  let done = a.state !== "new";
  return async () => {
    if (!done) {
      await acknowledge(a);
      done = true;
    }
  };
}

const noteField = (required = false) => ({ name: "note", label: t("note_text"), type: "textarea", maxLength: NOTE_MAX, required });

// The dialogs stay open on any error (shown inside them) so that nothing typed is lost.
export async function assign(a) {
  const patrols = await proposals(a); // on shift for the client's area first, with their load (issue 10)
  const ensureAcknowledged = acknowledgeOnce(a);
  return ask(
    t("assign"),
    [{ name: "patrol", label: t("patrol"), type: "select", options: patrols.map((p) => [p.username, p.display_name || p.username]) }, noteField()],
    {
      describeError: describe,
      submit: async (v) => {
        await ensureAcknowledged();
        return post(`/api/v1/alarms/${a.id}/assign`, { patrol: v.patrol, note: v.note.trim() || null });
      },
    },
  );
}

export async function addNote(a) {
  return ask(t("note"), [noteField(true)], {
    describeError: describe,
    submit: (v) => post(`/api/v1/alarms/${a.id}/notes`, { note: v.note.trim() }),
  });
}

export async function resolve(a, title = t("resolve")) {
  const ensureAcknowledged = acknowledgeOnce(a);
  return ask(
    title,
    [{ name: "outcome", label: t("outcome"), type: "select", options: OUTCOMES.map((o) => [o, label("out", o)]) }, noteField()],
    {
      describeError: describe,
      submit: async (v) => {
        await ensureAcknowledged();
        return post(`/api/v1/alarms/${a.id}/resolve`, { outcome: v.outcome, note: v.note.trim() || null });
      },
    },
  );
}
