// What the server says to a person arrives as a code with parameters (refusals, history lines, task texts,
// supervision texts, outcomes); tr(code, params) renders it in the chosen language. The English `detail`,
// `note`, `text` and `outcome` fields are for API users: the console never shows them for a coded message.
// An unknown code shows a generic message with the code.
import { config } from "./config.js";
import { label, lang, t } from "./i18n.js";

const codes = {
  sv: {
    // refusals (trygg/errors.py, the services' routes)
    "request.invalid": "{field}: ogiltigt värde",
    "request.bad": "Felaktig begäran.",
    "request.too_large": "Begäran är för stor.",
    "auth.not_logged_in": "Du är inte inloggad.",
    "auth.session_expired": "Sessionen har gått ut. Logga in igen.",
    "auth.session_ended": "Sessionen har avslutats. Logga in igen.",
    "auth.logged_out": "Du har loggats ut.",
    "auth.forbidden": "Din roll ({role}) får inte göra detta.",
    "auth.check_unavailable": "Inloggningen kan inte kontrolleras just nu. Försök igen om en stund.",
    "auth.metrics_token": "Mätvärdena kräver en nyckel.",
    // logins and passwords (alarm_receiver/logins.py, passwords.py; issue 8)
    "auth.bad_credentials": "Fel användarnamn eller lösenord.",
    "auth.login_throttled": "För många misslyckade inloggningar. Försök igen om {retry_after_s} s.",
    "auth.login_busy": "Många inloggningar just nu. Försök igen om {retry_after_s} s.",
    "password.too_short": "Lösenordet måste ha minst {min_length} tecken.",
    "password.common": "Lösenordet finns på en lista över vanliga lösenord.",
    "password.contains_username": "Lösenordet får inte innehålla användarnamnet.",
    "password.guessable": "Lösenordet är lätt att gissa. Använd fler ord som inte hör ihop.",
    "request.bad_text": "Texten innehåller tecken som inte kan sparas.",
    "auth.intake_token": "Intaget kräver gatewayens nyckel.",
    "http.not_found": "Finns inte.",
    "http.method_not_allowed": "Det går inte att göra så här.",
    "http.conflict": "Det krockar med en annan ändring. Ladda om.",
    "http.too_many_requests": "För många försök. Vänta en stund och försök igen.",
    "http.unavailable": "Tjänsten svarar inte just nu.",
    "gateway.unreachable": "Gatewayen svarar inte just nu.",
    "feature.not_running": "Den delen av gatewayen är inte igång.",
    "alarm.not_found": "Larm {id} finns inte.",
    "alarm.not_assigned": "Larm {id} är inte tilldelat dig.",
    "alarm.transition_refused": "Det går inte att {action} larmet: det är {state}.",
    "alarm.not_a_patrol": "{patrol} är ingen patrull.",
    "device.not_found": "Enheten {device_id} finns inte.",
    "device.already_registered": "Enheten {device_id} är redan registrerad.",
    "device.retired": "Enheten {device_id} är avregistrerad.",
    "consent.not_found": "Samtycket finns inte.",
    "consent.camera_unknown": "Kameran {camera_id} är inte en registrerad, aktiv enhet.",
    "consent.not_a_camera": "Enheten {camera_id} är en {device_type}, inte en kamera.",
    "consent.camera_other_client": "Kameran {camera_id} tillhör en annan brukare.",
    "consent.camera_taken": "Kameran {camera_id} har redan ett aktivt samtycke (nr {consent_id}).",
    "consent.bad_schedule": "Tiderna passar inte i nattfönstret (eller så är fönstret tomt).",
    "consent.withdrawn": "Samtycket är återkallat. Registrera ett nytt.",
    "checkin.not_found": "Tillsynen finns inte.",
    "checkin.look_operators_only": "Bara operatörer får titta genom en brukares kamera (din roll: {role}).",
    "checkin.outcome_operators_only": "Bara operatörer får ange utfall (din roll: {role}).",
    "checkin.consent_withdrawn": "Brukaren har återkallat samtycket till kameratillsyn.",
    "checkin.is_phone_call": "Den här tillsynen är ett telefonsamtal till brukaren, ingen tittning.",
    "checkin.outside_window": "Utanför det avtalade nattfönstret {window_start}–{window_end}.",
    "checkin.night_skipped": "Brukaren har hoppat över natten {night}.",
    "checkin.not_due": "Tillsynen är inte aktuell (den är {state}).",
    "checkin.other_night": "Tillsynen hör till natten {night}, inte till i natt.",
    "checkin.look_live": "En tittning genom kameran pågår redan ({operator}).",
    "checkin.look_live_own": "Din egen tittning genom kameran pågår fortfarande. Ta över den eller avsluta den.",
    "checkin.look_failed": "Kameran kunde inte visa bild. Ett patrullbesök är skickat.",
    "checkin.no_look_on_alarm": "Samtycket tillåter ingen tittning vid larm.",
    "checkin.alarm_not_found": "Inget sådant larm från brukarens enheter.",
    "checkin.alarm_closed": "Larmet är avbrutet eller avslutat.",
    "checkin.alarm_too_old": "Larmet är äldre än {minutes} minuter.",
    "checkin.phone_not_open": "Samtalet är inte öppet (det är {state}).",
    "checkin.look_first": "Ett utfall kräver en tittning först (tillsynen är {state}).",
    "checkin.changed": "Tillsynen ändrades under tiden. Ladda om sidan.",
    "look.not_found": "Tittningen pågår inte längre.",
    "look.operators_only": "Bara operatörer avslutar tittningar (din roll: {role}).",
    // history lines (alarm_receiver/queue.py)
    "alarm.received": "mottaget",
    "alarm.test_confirmed": "installationstest: hela kedjan bekräftad (visas inte för patrullen)",
    "alarm.acknowledged": "kvitterat",
    "alarm.assigned": "tilldelat patrull {patrol}",
    "alarm.on_site": "patrullen är på plats",
    "alarm.resolved": "avslutat: {outcome}",
    "alarm.cancelled": "avbrutet av operatören",
    "alarm.cancelled_by_device": "avbrutet på enheten",
    "alarm.cancel_refused": "enheten avbröt för sent (patrullen på plats eller larmet avslutat): larmet står kvar",
    "alarm.repeated": "samma larm igen från enheten ({alarm_id})",
    "alarm.cancelled_one_by_device": "enheten avbröt larmet {alarm_id}; {standing} av dess larm här står kvar",
    "alarm.note": "anteckning",
    "alarm.escalated": "eskalerat, nivå {level}: inte kvitterat inom {after_s} s",
    // outcomes the gateway sets
    "outcome.checkin_cancelled": "tillsynen är inställd",
    "outcome.checkin_night_skipped": "inställd: brukaren hoppar över natten",
    "outcome.checkin_withdrawn": "inställd: samtycket är återkallat",
    "outcome.checkin_missed": "inte påbörjad i tid: patrullbesök skickat",
    "outcome.camera_failed": "kameran fungerade inte: patrullbesök skickat",
    "outcome.seen_ok": "sedd, allt väl",
    "outcome.needs_help_visit": "behöver hjälp: akut patrullbesök skickat",
    "outcome.not_seen_recheck": "inte sedd: ny tillsyn {at}",
    "outcome.not_seen_phone": "inte sedd: ring brukaren",
    "outcome.not_seen_visit": "inte sedd: patrullbesök skickat",
    "outcome.device_back_online": "enheten är online igen",
    "outcome.informational": "för kännedom",
    "outcome.grouped_in_area_outage": "ingår i ett områdesavbrott",
    "outcome.area_back": "{back} av {members} enheter är online igen",
    // task and supervision texts (details.text_code)
    "task.checkin_due": "Kameratillsyn ({kind}) hos {client_ref}, planerad {due_at}",
    "task.phone_client": "Ring {client_ref}: inte sedd vid kameratillsynen ({due_at})",
    "task.visit_camera_offline": "Kameran {camera_id} var offline vid tillsynen {due_at}: besök på plats",
    "task.visit_not_started": "{kind} hos {client_ref} påbörjades inte inom {minutes} min: besök på plats",
    "task.visit_look_failed": "Kameratittningen misslyckades vid tillsynen {due_at}: besök på plats",
    "task.visit_needs_help": "{client_ref} behöver hjälp (sedd vid kameratillsynen): akut besök",
    "task.visit_not_seen": "{client_ref} syntes inte ({kind}, {due_at}): besök på plats",
    "device.silent": "Inget hört från enheten på {silent_s} s ({cause})",
    "device.back_online": "Enheten är online igen efter {offline_s} s",
    "area.outage": "{count} av {supervised} enheter tysta i {area}",
    // installation tests
    "test.passed": "larmet lagrades av gatewayen och bekräftades av larmmottagningen",
    "test.no_alarm": "inget larm från enheten inom testtiden (kontrollera parkoppling, radio, broker)",
    "test.not_confirmed": "lagrat i gatewayen men inte bekräftat av larmmottagningen i tid",
    "test.replaced": "ersatt av ett nytt test",
    // 422 by constraint (params.type)
    "invalid.string_too_long": "{field}: högst {max_length} tecken",
    "invalid.string_too_short": "{field}: minst {min_length} tecken",
    "invalid.missing": "{field}: måste anges",
    "invalid.greater_than_equal": "{field}: minst {ge}",
    "invalid.greater_than": "{field}: större än {gt}",
    "invalid.less_than_equal": "{field}: högst {le}",
    "invalid.less_than": "{field}: mindre än {lt}",
    "invalid.literal_error": "{field}: inte ett tillåtet värde",
    "invalid.enum": "{field}: inte ett tillåtet värde",
    "invalid.string_pattern_mismatch": "{field}: otillåtna tecken",
    "invalid.int_parsing": "{field}: måste vara ett heltal",
    "invalid.int_type": "{field}: måste vara ett heltal",
    "invalid.float_parsing": "{field}: måste vara ett tal",
    "invalid.bool_parsing": "{field}: måste vara ja eller nej",
    "invalid.date_from_datetime_parsing": "{field}: ogiltigt datum",
    "invalid.date_parsing": "{field}: ogiltigt datum",
    "invalid.datetime_parsing": "{field}: ogiltig tidpunkt",
    "invalid.json_invalid": "Begäran är inte giltig JSON.",
    "invalid.extra_forbidden": "{field}: okänt fält",
    "invalid.list_too_short": "{field}: minst {min_length}",
    "invalid.value_error": "{field}: ogiltigt värde",
    "invalid.generic": "Uppgifterna i begäran är inte giltiga.",
    // voice calls (docs/voice.md): refusals, failures, history
    "voice.role_refused": "Din roll ({role}) får inte tala med brukaren.",
    "voice.alarm_not_found": "Larmet finns inte i kön.",
    "voice.alarm_closed": "Larmet är {state}: inget samtal.",
    "voice.not_assigned": "En patrull får bara ringa för larm som är tilldelade den.",
    "voice.patrol_callback_only": "En patrull ringer upp enheten från sin uppdragsvy.",
    "voice.other_client": "Den enheten finns inte hos den här brukaren.",
    "voice.no_voice_unit": "Brukaren har ingen enhet med högtalare och mikrofon.",
    "voice.not_your_call": "Bara den som är i samtalet kan lägga på.",
    "voice.call_not_found": "Samtalet finns inte längre.",
    "voice.call_taken": "Någon annan har redan svarat.",
    "voice.unit_busy": "Enheten är redan upptagen i ett samtal.",
    "voice.unit_offline": "Enheten är inte uppkopplad. Larmet ligger kvar i kön.",
    "voice.unit_no_answer": "Enheten svarar inte. Larmet ligger kvar i kön.",
    "voice.unit_refused": "Enheten tog inte emot samtalet. Larmet ligger kvar i kön.",
    "voice.gateway_offline": "Gatewayen når inte enheterna just nu. Larmet ligger kvar i kön.",
    "voice.ice_failed": "Ljudförbindelsen bröts. Larmet ligger kvar i kön.",
    "voice.not_answered": "Ingen svarade innan enheten gav upp.",
    "voice.failed": "Samtalet gick inte att koppla. Larmet ligger kvar i kön.",
    "voice.ended_while_connecting": "Samtalet avslutades medan det kopplades.",
    "voice.bad_offer": "Webbläsaren skickade inget ljud.",
    "voice.bad_answer": "Enheten skickade inget ljud.",
    "voice.not_running": "Samtalsdelen av gatewayen är inte igång.",
    "voice.rights_unavailable": "Behörigheten kan inte kontrolleras just nu.",
    "voice.refused": "Samtalet nekades.",
    "call.ringing": "Enheten ringer",
    "call.answered": "Samtal besvarat av {by}",
    "call.ended": "Samtal avslutat ({reason}) efter {duration_s} s",
    "call.failed": "Samtalet gick inte fram ({reason})",
    "call.help_coming": "Brukaren fick besked: hjälp är på väg",
    unknown_code: "Okänt besked från servern ({code}).",
    http_error: "Servern svarade med fel {status}.",
    network_error: "Servern kan inte nås. Kontrollera nätverket.",
  },
  en: {
    "request.invalid": "{field}: invalid value",
    "request.bad": "Bad request.",
    "request.too_large": "The request is too large.",
    "auth.not_logged_in": "You are not logged in.",
    "auth.session_expired": "Your session has expired. Log in again.",
    "auth.session_ended": "Your session has ended. Log in again.",
    "auth.logged_out": "You have been logged out.",
    "auth.forbidden": "Your role ({role}) may not do this.",
    "auth.check_unavailable": "Logins cannot be checked right now. Try again shortly.",
    "auth.metrics_token": "The metrics need a key.",
    "auth.bad_credentials": "Wrong username or password.",
    "auth.login_throttled": "Too many failed logins. Try again in {retry_after_s} s.",
    "auth.login_busy": "Many logins right now. Try again in {retry_after_s} s.",
    "password.too_short": "The password needs at least {min_length} characters.",
    "password.common": "This password is on a list of common passwords.",
    "password.contains_username": "The password must not contain the username.",
    "password.guessable": "This password is easy to guess. Use more unrelated words.",
    "request.bad_text": "The text holds characters that cannot be stored.",
    "auth.intake_token": "The intake needs the gateway's key.",
    "http.not_found": "Not found.",
    "http.method_not_allowed": "That cannot be done this way.",
    "http.conflict": "That clashes with another change. Reload.",
    "http.too_many_requests": "Too many attempts. Wait a moment and try again.",
    "http.unavailable": "The service does not answer right now.",
    "gateway.unreachable": "The gateway does not answer right now.",
    "feature.not_running": "That part of the gateway is not running.",
    "alarm.not_found": "Alarm {id} does not exist.",
    "alarm.not_assigned": "Alarm {id} is not assigned to you.",
    "alarm.transition_refused": "The alarm cannot be {action}: it is {state}.",
    "alarm.not_a_patrol": "{patrol} is not a patrol.",
    "device.not_found": "Device {device_id} does not exist.",
    "device.already_registered": "Device {device_id} is already registered.",
    "device.retired": "Device {device_id} is retired.",
    "consent.not_found": "The consent does not exist.",
    "consent.camera_unknown": "Camera {camera_id} is not a registered, active device.",
    "consent.not_a_camera": "Device {camera_id} is a {device_type}, not a camera.",
    "consent.camera_other_client": "Camera {camera_id} belongs to another client.",
    "consent.camera_taken": "Camera {camera_id} already has an active consent (no. {consent_id}).",
    "consent.bad_schedule": "The times do not fit the night window (or the window is empty).",
    "consent.withdrawn": "The consent is withdrawn. Record a new one.",
    "checkin.not_found": "The check-in does not exist.",
    "checkin.look_operators_only": "Only operators may look through a client's camera (your role: {role}).",
    "checkin.outcome_operators_only": "Only operators record outcomes (your role: {role}).",
    "checkin.consent_withdrawn": "The client has withdrawn consent to camera check-ins.",
    "checkin.is_phone_call": "This check-in is a phone call to the client, not a look.",
    "checkin.outside_window": "Outside the agreed night window {window_start}–{window_end}.",
    "checkin.night_skipped": "The client skipped the night of {night}.",
    "checkin.not_due": "This check-in is not due (it is {state}).",
    "checkin.other_night": "This check-in belongs to the night of {night}, not tonight.",
    "checkin.look_live": "A look through this camera is already live ({operator}).",
    "checkin.look_live_own": "Your own look through this camera is still live. Take it over or end it.",
    "checkin.look_failed": "The camera could not show a picture. A patrol visit has been sent.",
    "checkin.no_look_on_alarm": "The consent does not allow a look on an alarm.",
    "checkin.alarm_not_found": "No such alarm from the client's devices.",
    "checkin.alarm_closed": "The alarm is cancelled or resolved.",
    "checkin.alarm_too_old": "The alarm is older than {minutes} minutes.",
    "checkin.phone_not_open": "The call is not open (it is {state}).",
    "checkin.look_first": "An outcome needs a look first (the check-in is {state}).",
    "checkin.changed": "The check-in changed meanwhile. Reload the page.",
    "look.not_found": "The look is no longer live.",
    "look.operators_only": "Only operators end looks (your role: {role}).",
    "alarm.received": "received",
    "alarm.test_confirmed": "installation test: the whole chain confirmed (not shown to the patrol)",
    "alarm.acknowledged": "acknowledged",
    "alarm.assigned": "assigned to patrol {patrol}",
    "alarm.on_site": "the patrol is on site",
    "alarm.resolved": "resolved: {outcome}",
    "alarm.cancelled": "cancelled by the operator",
    "alarm.cancelled_by_device": "cancelled on the device",
    "alarm.cancel_refused": "the device cancelled too late (patrol on site or alarm resolved): the alarm stays",
    "alarm.repeated": "the same alarm again from the device ({alarm_id})",
    "alarm.cancelled_one_by_device": "the device cancelled {alarm_id}; {standing} of its alarms here still stand",
    "alarm.note": "note",
    "alarm.escalated": "escalated, level {level}: not acknowledged within {after_s} s",
    "outcome.checkin_cancelled": "the check-in is cancelled",
    "outcome.checkin_night_skipped": "cancelled: the client skips the night",
    "outcome.checkin_withdrawn": "cancelled: the consent is withdrawn",
    "outcome.checkin_missed": "not started in time: patrol visit sent",
    "outcome.camera_failed": "the camera failed: patrol visit sent",
    "outcome.seen_ok": "seen, all well",
    "outcome.needs_help_visit": "needs help: urgent patrol visit sent",
    "outcome.not_seen_recheck": "not seen: recheck at {at}",
    "outcome.not_seen_phone": "not seen: phone the client",
    "outcome.not_seen_visit": "not seen: patrol visit sent",
    "outcome.device_back_online": "the device is back online",
    "outcome.informational": "for information",
    "outcome.grouped_in_area_outage": "part of an area outage",
    "outcome.area_back": "{back} of {members} devices are back online",
    "task.checkin_due": "Camera check-in ({kind}) for {client_ref}, due {due_at}",
    "task.phone_client": "Phone {client_ref}: not seen at the camera check-in ({due_at})",
    "task.visit_camera_offline": "Camera {camera_id} was offline at the check-in due {due_at}: visit on site",
    "task.visit_not_started": "{kind} for {client_ref} not started within {minutes} min: visit on site",
    "task.visit_look_failed": "The camera look failed at the check-in due {due_at}: visit on site",
    "task.visit_needs_help": "{client_ref} needs help (seen at the camera check-in): urgent visit",
    "task.visit_not_seen": "{client_ref} not seen ({kind}, {due_at}): visit on site",
    "device.silent": "No word from the device for {silent_s} s ({cause})",
    "device.back_online": "The device is back online after {offline_s} s",
    "area.outage": "{count} of {supervised} devices silent in {area}",
    "test.passed": "the alarm was stored by the gateway and confirmed by the alarm receiver",
    "test.no_alarm": "no alarm from the device within the test window (check pairing, radio, broker)",
    "test.not_confirmed": "stored at the gateway but not confirmed by the alarm receiver in time",
    "test.replaced": "replaced by a new test",
    "invalid.string_too_long": "{field}: at most {max_length} characters",
    "invalid.string_too_short": "{field}: at least {min_length} characters",
    "invalid.missing": "{field}: required",
    "invalid.greater_than_equal": "{field}: at least {ge}",
    "invalid.greater_than": "{field}: more than {gt}",
    "invalid.less_than_equal": "{field}: at most {le}",
    "invalid.less_than": "{field}: less than {lt}",
    "invalid.literal_error": "{field}: not an allowed value",
    "invalid.enum": "{field}: not an allowed value",
    "invalid.string_pattern_mismatch": "{field}: characters not allowed",
    "invalid.int_parsing": "{field}: must be a whole number",
    "invalid.int_type": "{field}: must be a whole number",
    "invalid.float_parsing": "{field}: must be a number",
    "invalid.bool_parsing": "{field}: must be yes or no",
    "invalid.date_from_datetime_parsing": "{field}: invalid date",
    "invalid.date_parsing": "{field}: invalid date",
    "invalid.datetime_parsing": "{field}: invalid time",
    "invalid.json_invalid": "The request is not valid JSON.",
    "invalid.extra_forbidden": "{field}: unknown field",
    "invalid.list_too_short": "{field}: at least {min_length}",
    "invalid.value_error": "{field}: invalid value",
    "invalid.generic": "The request's data is not valid.",
    // voice calls (docs/voice.md): refusals, failures, history
    "voice.role_refused": "Your role ({role}) may not talk with the client.",
    "voice.alarm_not_found": "The alarm is not in the queue.",
    "voice.alarm_closed": "The alarm is {state}: no call.",
    "voice.not_assigned": "A patrol may call only for alarms assigned to it.",
    "voice.patrol_callback_only": "A patrol calls the unit from its own task view.",
    "voice.other_client": "That unit is not in this client's home.",
    "voice.no_voice_unit": "The client has no unit with a speaker and a microphone.",
    "voice.not_your_call": "Only the person in the call can hang up.",
    "voice.call_not_found": "The call is no longer there.",
    "voice.call_taken": "Someone else has already answered.",
    "voice.unit_busy": "The unit is already in a call.",
    "voice.unit_offline": "The unit is offline. The alarm stays in the queue.",
    "voice.unit_no_answer": "The unit does not answer. The alarm stays in the queue.",
    "voice.unit_refused": "The unit did not take the call. The alarm stays in the queue.",
    "voice.gateway_offline": "The gateway cannot reach the units right now. The alarm stays in the queue.",
    "voice.ice_failed": "The audio connection broke. The alarm stays in the queue.",
    "voice.not_answered": "Nobody answered before the unit gave up.",
    "voice.failed": "The call could not be put through. The alarm stays in the queue.",
    "voice.ended_while_connecting": "The call ended while it was being put through.",
    "voice.bad_offer": "The browser sent no audio.",
    "voice.bad_answer": "The unit sent no audio.",
    "voice.not_running": "The call part of the gateway is not running.",
    "voice.rights_unavailable": "The right to talk cannot be checked right now.",
    "voice.refused": "The call was refused.",
    "call.ringing": "The unit calls",
    "call.answered": "Call answered by {by}",
    "call.ended": "Call ended ({reason}) after {duration_s} s",
    "call.failed": "The call did not get through ({reason})",
    "call.help_coming": "The client was told: help is coming",
    unknown_code: "Unknown message from the server ({code}).",
    http_error: "The server answered with error {status}.",
    network_error: "The server cannot be reached. Check the network.",
  },
};

const hm = (iso) => {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return new Intl.DateTimeFormat(lang() === "en" ? "en-GB" : "sv-SE", { timeZone: config.timezone, hour: "2-digit", minute: "2-digit" }).format(d);
};

// How a parameter is shown: codes inside parameters (a state, a kind, a role) become words; times become
// clock times in the `timezone` setting (config.js). Everything else (a patrol's name, a client reference, a count) is shown as it is.
function param(code, key, value) {
  if (value === null || value === undefined) return t("none");
  switch (key) {
    case "state":
      return (code.startsWith("checkin.") ? label("ckstate", value) : label("st", value)).toLowerCase();
    case "action":
      return label("act", value);
    case "kind":
      return label("ckkind", value);
    case "role":
      return label("role", value);
    case "type":
    case "device_type":
      return label("dt", value);
    case "cause":
      return label("cause", value);
    case "reason":
      return code.startsWith("call.") ? label("callr", value) : String(value);
    case "field":
      return label("field", value);
    case "outcome":
      return label("out", value);
    case "area":
      return value === "*" ? t("whole_fleet") : t("area_named", { area: value });
    case "due_at":
    case "at":
      return hm(value);
    default:
      return String(value);
  }
}

function fill(template, code, params) {
  return template.replace(/\{(\w+)\}/g, (_, key) => param(code, key, params[key]));
}

export function known(code) {
  return typeof code === "string" && codes[lang()][code] !== undefined;
}

// A coded message in the chosen language; never the server's English.
export function tr(code, params) {
  const p = params || {};
  const dict = codes[lang()];
  if (code === "request.invalid") {
    if (!p.field) return dict["invalid.generic"]; // a server that names no field
    const key = `invalid.${p.type}`;
    return fill(dict[key] || dict["request.invalid"], code, p);
  }
  if (code === "alarm.resolved") {
    // the outcome is an operator's word ("helped"), a gateway outcome code, or (older rows) the API user's text
    const outcome = p.outcome_code ? tr(p.outcome_code, p) : outcomeWord(p.outcome);
    return dict[code].replace("{outcome}", outcome);
  }
  if (typeof code !== "string" || dict[code] === undefined) return fill(dict.unknown_code, "", { code: String(code) });
  return fill(dict[code], code, p);
}

// An operator's outcome (one of the console's words), or text an API user wrote (shown as written).
export function outcomeWord(outcome) {
  if (outcome === null || outcome === undefined || outcome === "") return t("none");
  const word = label("out", outcome);
  return word === String(outcome).replaceAll("_", " ") ? String(outcome) : word;
}

// A generic message for an HTTP status without a code, or for a failed network call.
export const httpError = (status) => fill(codes[lang()].http_error, "", { status });
export const networkError = () => codes[lang()].network_error;

export const messageDictionaries = codes;
