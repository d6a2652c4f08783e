// Every visible string, Swedish first. t(key, vars) looks up the current language; {name} is replaced.
const dict = {
  sv: {
    app: "Trygg", login: "Logga in", username: "Användarnamn", password: "Lösenord", logout: "Logga ut",
    login_failed: "Fel användarnamn eller lösenord", session_expired: "Sessionen har gått ut. Logga in igen.",
    lang_switch: "English", mute: "Ljud av", unmute: "Ljud på",
    nav_queue: "Larmkö", nav_patrol: "Mina uppdrag", nav_devices: "Enheter", nav_consents: "Samtycken",
    nav_log: "Tillsynslogg", nav_overview: "Nattöversikt",
    forbidden: "Du har inte behörighet till den här sidan.", not_found: "Sidan finns inte.",
    loading: "Laddar…", error: "Fel: {msg}", gateway_down: "Gatewayen svarar inte just nu.",
    queue_title: "Larmkö", queue_empty: "Inga öppna larm eller uppgifter.", live: "Live", offline: "Frånkopplad",
    col_priority: "Prio", col_type: "Typ", col_client: "Brukare / enhet", col_state: "Status", col_age: "Ålder",
    col_assigned: "Patrull", open_count: "{n} öppna",
    keys_help: "j/k flytta · Enter öppna · a kvittera · s tilldela · n anteckning · r avsluta · m ljud",
    prio_critical: "KRITISK", prio_high: "HÖG", prio_medium: "MEDEL", prio_low: "LÅG",
    escalated: "ESKALERAT {n}", test: "TEST",
    acknowledge: "Kvittera", assign: "Tilldela patrull", note: "Anteckning", resolve: "Avsluta", cancel_alarm: "Falsklarm",
    open_detail: "Öppna", back: "Tillbaka", save: "Spara", cancel: "Avbryt", ok: "OK",
    patrol: "Patrull", outcome: "Utfall", note_text: "Anteckning",
    out_helped: "Hjälp given", out_false: "Falsklarm", out_no_action: "Ingen åtgärd behövdes",
    out_transport: "Ambulans/transport", out_other: "Annat",
    st_new: "Nytt", st_acknowledged: "Kvitterat", st_assigned: "Tilldelat", st_on_site: "På plats",
    st_resolved: "Avslutat", st_cancelled: "Avbrutet",
    ty_assistance: "Hjälplarm", ty_fall: "Fall", ty_smoke: "Brand/rök", ty_door: "Dörr", ty_bed_exit: "Lämnat sängen",
    ty_checkin_due: "Kameratillsyn", ty_patrol_visit: "Patrullbesök", ty_device_offline: "Enhet offline",
    ty_area_outage: "Områdesavbrott", ty_low_battery: "Lågt batteri", ty_mains_lost: "Nätström borta",
    ty_tamper: "Sabotage", ty_inactivity: "Inaktivitet", ty_medical: "Medicinskt",
    detail_title: "Larm {id}", history: "Historik", device_health: "Enhetens hälsa", details: "Detaljer",
    device: "Enhet", client: "Brukare", location: "Plats", text: "Text", stored: "Lagrat", received: "Mottaget",
    status: "Status", last_seen: "Senast sedd", battery: "Batteri", mains: "Nätström", network: "Nät",
    flags: "Flaggor", signal: "Signal", firmware: "Firmware", yes: "ja", no: "nej", unknown: "okänt",
    no_health: "Ingen hälsoinformation för enheten.",
    ev_created: "skapat", ev_acknowledge: "kvitterat", ev_assign: "tilldelat", ev_on_site: "på plats",
    ev_resolve: "avslutat", ev_cancel: "avbrutet", ev_note: "anteckning", ev_escalate: "eskalerat", ev_received: "mottaget",
    start_checkin: "Starta kameratillsyn",
    patrol_title: "Mina uppdrag", patrol_empty: "Inga tilldelade uppdrag.", on_the_way: "På väg",
    on_site: "På plats", done: "Klar", on_the_way_note: "på väg", notes: "Anteckningar", address: "Adress",
    checkin_title: "Kameratillsyn {id}", start_look: "Starta tittning", end_look: "Avsluta tittning",
    seen_ok: "Sedd, allt väl", not_seen: "Inte sedd", needs_help: "Behöver hjälp", time_left: "{s} s kvar",
    look_ended: "Tittningen är avslutad.", outcome_saved: "Utfall sparat: {o}", consent_terms: "Samtyckets villkor",
    privacy: "Integritetsläge", priv_full: "fullt", priv_blurred: "suddigt", priv_silhouette: "siluett",
    ckkind_scheduled: "planerad tillsyn", ckkind_recheck: "omtillsyn", ckkind_phone: "telefonsamtal",
    ckstate_pending: "väntar", ckstate_due: "att göra", ckstate_started: "pågår", ckstate_done: "utförd",
    ckstate_cancelled: "inställd", person_client: "brukaren", person_cohabitant: "sambo/vuxen i hemmet",
    person_legal_representative: "legal företrädare",
    window: "Nattfönster", times: "Tider", max_look: "Längsta tittning", consented_by: "Samtycke från",
    basis: "Grund", audio: "Ljud", connecting: "Ansluter…", refused: "Nekat: {msg}", phone_call: "Ring brukaren",
    kind: "Typ", due: "Planerad", state: "Läge", camera: "Kamera",
    devices_title: "Enheter", filter: "Filter", all: "Alla", fl_offline: "offline", fl_low_battery: "lågt batteri",
    fl_mains_lost: "nätström borta", fl_at_risk_network: "nät som stängs (2G/3G)", fl_stale_firmware: "gammal firmware",
    device_title: "Enhet {id}", type: "Typ", area: "Område", config: "Konfiguration",
    heartbeat: "Kontrollsignal (sekunder)", config_saved: "Konfiguration sparad (version {v})",
    install_test: "Installationstest", start_test: "Starta installationstest",
    test_waiting: "Väntar på provlarm… tryck på larmknappen", test_passed: "Godkänt ({ms} ms)", test_failed: "Underkänt: {d}",
    no_devices: "Inga enheter matchar.", applied: "tillämpad",
    consents_title: "Samtycken", new_consent: "Nytt samtycke", client_ref: "Brukar-id", camera_id: "Kamera-id",
    consent_names: "Samtycke från (namn på brukaren)", cohabitant: "Sambo/vuxen i hemmet (namn, valfritt)",
    create: "Skapa", change: "Ändra", skip_night: "Hoppa över natt", withdraw: "Återkalla", withdrawn: "Återkallat",
    night: "Natt (datum då fönstret börjar)", reason: "Orsak", active: "Aktivt", consent_created: "Samtycke skapat",
    consent_changed: "Samtycke ändrat", night_skipped: "Natten hoppas över", consent_withdrawn: "Samtycket är återkallat",
    no_consents: "Inga samtycken.", read_only: "Endast läsning: bara biståndshandläggare ändrar samtycken.",
    log_title: "Tillsynslogg", since: "Från", until: "Till", show: "Visa", print: "Skriv ut", at: "Tid",
    actor: "Vem", action: "Händelse", subject: "Avser", no_entries: "Inga poster för perioden.",
    overview_night: "Natten från {night}", night_of: "Natt som började", night_prev: "Föregående natt", night_next: "Nästa natt", last_hours: "Senaste {n} timmarna",
    overview_title: "Nattöversikt", hours: "Timmar", figures: "Passets siffror", by_type: "Larm per typ",
    ack_time: "Tid till kvittering", onsite_time: "Tid till på plats", checkins: "Kameratillsyner",
    ck_done: "utförda", ck_missed: "missade", ck_open: "öppna", ck_cancelled: "inställda",
    timeline: "Tidslinje per brukare", total: "Totalt {n}", p50: "median", p90: "90:e percentil", seconds: "{s} s",
    none: "–", legend: "Förklaring", legend_text: "● larm (röd) · ■ uppgift (gul, grön = utförd tillsyn) · ▲ teknisk (blå)",
  },
  en: {
    app: "Trygg", login: "Log in", username: "Username", password: "Password", logout: "Log out",
    login_failed: "Wrong username or password", session_expired: "Your session has expired. Log in again.",
    lang_switch: "Svenska", mute: "Sound off", unmute: "Sound on",
    nav_queue: "Queue", nav_patrol: "My tasks", nav_devices: "Devices", nav_consents: "Consents",
    nav_log: "Supervision log", nav_overview: "Night overview",
    forbidden: "You are not allowed to see this page.", not_found: "No such page.",
    loading: "Loading…", error: "Error: {msg}", gateway_down: "The gateway does not answer right now.",
    queue_title: "Alarm queue", queue_empty: "No open alarms or tasks.", live: "Live", offline: "Disconnected",
    col_priority: "Prio", col_type: "Type", col_client: "Client / device", col_state: "State", col_age: "Age",
    col_assigned: "Patrol", open_count: "{n} open",
    keys_help: "j/k move · Enter open · a acknowledge · s assign · n note · r resolve · m sound",
    prio_critical: "CRITICAL", prio_high: "HIGH", prio_medium: "MEDIUM", prio_low: "LOW",
    escalated: "ESCALATED {n}", test: "TEST",
    acknowledge: "Acknowledge", assign: "Assign patrol", note: "Note", resolve: "Resolve", cancel_alarm: "False alarm",
    open_detail: "Open", back: "Back", save: "Save", cancel: "Cancel", ok: "OK",
    patrol: "Patrol", outcome: "Outcome", note_text: "Note",
    out_helped: "Help given", out_false: "False alarm", out_no_action: "No action needed",
    out_transport: "Ambulance/transport", out_other: "Other",
    st_new: "New", st_acknowledged: "Acknowledged", st_assigned: "Assigned", st_on_site: "On site",
    st_resolved: "Resolved", st_cancelled: "Cancelled",
    ty_assistance: "Assistance", ty_fall: "Fall", ty_smoke: "Fire/smoke", ty_door: "Door", ty_bed_exit: "Left bed",
    ty_checkin_due: "Camera check-in", ty_patrol_visit: "Patrol visit", ty_device_offline: "Device offline",
    ty_area_outage: "Area outage", ty_low_battery: "Low battery", ty_mains_lost: "Mains lost",
    ty_tamper: "Tamper", ty_inactivity: "Inactivity", ty_medical: "Medical",
    detail_title: "Alarm {id}", history: "History", device_health: "Device health", details: "Details",
    device: "Device", client: "Client", location: "Location", text: "Text", stored: "Stored", received: "Received",
    status: "Status", last_seen: "Last seen", battery: "Battery", mains: "Mains", network: "Network",
    flags: "Flags", signal: "Signal", firmware: "Firmware", yes: "yes", no: "no", unknown: "unknown",
    no_health: "No health information for this device.",
    ev_created: "created", ev_acknowledge: "acknowledged", ev_assign: "assigned", ev_on_site: "on site",
    ev_resolve: "resolved", ev_cancel: "cancelled", ev_note: "note", ev_escalate: "escalated", ev_received: "received",
    start_checkin: "Start camera check-in",
    patrol_title: "My tasks", patrol_empty: "No tasks assigned to you.", on_the_way: "On the way",
    on_site: "On site", done: "Done", on_the_way_note: "on the way", notes: "Notes", address: "Address",
    checkin_title: "Camera check-in {id}", start_look: "Start look", end_look: "End look",
    seen_ok: "Seen, all well", not_seen: "Not seen", needs_help: "Needs help", time_left: "{s} s left",
    look_ended: "The look has ended.", outcome_saved: "Outcome saved: {o}", consent_terms: "Consent terms",
    privacy: "Privacy mode", priv_full: "full", priv_blurred: "blurred", priv_silhouette: "silhouette",
    ckkind_scheduled: "scheduled check-in", ckkind_recheck: "recheck", ckkind_phone: "phone call",
    ckstate_pending: "pending", ckstate_due: "due", ckstate_started: "in progress", ckstate_done: "done",
    ckstate_cancelled: "cancelled", person_client: "client", person_cohabitant: "cohabitant / adult in the home",
    person_legal_representative: "legal representative",
    window: "Night window", times: "Times", max_look: "Longest look", consented_by: "Consent from",
    basis: "Basis", audio: "Audio", connecting: "Connecting…", refused: "Refused: {msg}", phone_call: "Phone the client",
    kind: "Kind", due: "Due", state: "State", camera: "Camera",
    devices_title: "Devices", filter: "Filter", all: "All", fl_offline: "offline", fl_low_battery: "low battery",
    fl_mains_lost: "mains lost", fl_at_risk_network: "closing network (2G/3G)", fl_stale_firmware: "stale firmware",
    device_title: "Device {id}", type: "Type", area: "Area", config: "Configuration",
    heartbeat: "Heartbeat (seconds)", config_saved: "Configuration saved (version {v})",
    install_test: "Installation test", start_test: "Start installation test",
    test_waiting: "Waiting for the test alarm… press the alarm button", test_passed: "Passed ({ms} ms)", test_failed: "Failed: {d}",
    no_devices: "No devices match.", applied: "applied",
    consents_title: "Consents", new_consent: "New consent", client_ref: "Client id", camera_id: "Camera id",
    consent_names: "Consent from (client's name)", cohabitant: "Cohabitant / adult in the home (name, optional)",
    create: "Create", change: "Change", skip_night: "Skip a night", withdraw: "Withdraw", withdrawn: "Withdrawn",
    night: "Night (date the window starts)", reason: "Reason", active: "Active", consent_created: "Consent created",
    consent_changed: "Consent changed", night_skipped: "The night is skipped", consent_withdrawn: "Consent withdrawn",
    no_consents: "No consents.", read_only: "Read only: only case officers change consents.",
    log_title: "Supervision log", since: "From", until: "To", show: "Show", print: "Print", at: "Time",
    actor: "Who", action: "Event", subject: "Subject", no_entries: "No entries in the period.",
    overview_night: "The night of {night}", night_of: "Night beginning", night_prev: "Previous night", night_next: "Next night", last_hours: "Last {n} hours",
    overview_title: "Night overview", hours: "Hours", figures: "The shift's figures", by_type: "Alarms by type",
    ack_time: "Time to acknowledge", onsite_time: "Time to on site", checkins: "Camera check-ins",
    ck_done: "done", ck_missed: "missed", ck_open: "open", ck_cancelled: "cancelled",
    timeline: "Timeline per client", total: "Total {n}", p50: "median", p90: "90th percentile", seconds: "{s} s",
    none: "–", legend: "Legend", legend_text: "● alarm (red) · ■ task (yellow, green = check-in done) · ▲ technical (blue)",
  },
};

const KEY = "trygg.lang";

export function lang() {
  const v = localStorage.getItem(KEY);
  return v === "en" ? "en" : "sv";
}

export function setLang(v) {
  localStorage.setItem(KEY, v === "en" ? "en" : "sv");
  document.documentElement.lang = lang();
}

export function t(key, vars) {
  let s = dict[lang()][key];
  if (s === undefined) s = dict.sv[key];
  if (s === undefined) return key;
  if (vars) for (const [k, v] of Object.entries(vars)) s = s.replaceAll(`{${k}}`, String(v));
  return s;
}

// A label for a code (alarm type, state...) with a prefix; unknown codes are shown as they are.
export function label(prefix, code) {
  const s = dict[lang()][`${prefix}_${code}`];
  return s === undefined ? String(code).replaceAll("_", " ") : s;
}

export const dictionaries = dict;
