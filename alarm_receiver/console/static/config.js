// What the server says about itself (GET /console/config.json), loaded once before the first page renders:
// the time zone of the `timezone` setting, the alarm states that are open, which alarm types are technical and
// which are tasks. One source of truth: these come from Python (alarm_receiver/queue.py, devices/types.py),
// never copied here.
export const config = {
  loopback_only: false,
  timezone: undefined, // until loaded (or if the server cannot be reached): the browser's own zone
  default_language: "sv",
  open_states: [],
  technical_types: [],
  task_types: [],
};
export const OPEN_STATES = new Set();
export const IN_PROGRESS_STATES = new Set(); // the open states after "new": someone is on it
export const TECHNICAL_TYPES = new Set();
export const TASK_TYPES = new Set();

export async function loadConfig() {
  try {
    const r = await fetch("/console/config.json");
    if (r.ok) Object.assign(config, await r.json());
  } catch {
    /* defaults: the pages still load, and say so when the API cannot be reached */
  }
  for (const [set, values] of [
    [OPEN_STATES, config.open_states],
    [TECHNICAL_TYPES, config.technical_types],
    [TASK_TYPES, config.task_types],
  ]) {
    set.clear();
    for (const v of values) set.add(v);
  }
  IN_PROGRESS_STATES.clear();
  for (const v of config.open_states) if (v !== "new") IN_PROGRESS_STATES.add(v);
  return config;
}
