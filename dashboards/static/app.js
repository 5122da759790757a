// SleepLM Monitor: the nurse's page. Plain ES module, no framework, no build step, nothing from outside
// this origin (the API's Content-Security-Policy allows only 'self': no inline script or style, so all
// looks come from classes in style.css and all charts are drawn on canvases).
//
// Data: REST for the first picture (/api/ward, /api/alerts, a bed's hypnogram, events, epochs and
// waveform), then the live feed /api/stream. EventSource cannot send an Authorization header, so the
// feed is read with fetch() and a small Server-Sent-Events parser; after a drop it reconnects with
// exponential backoff (capped) and sends the last event id back as Last-Event-ID, so nothing is missed.
// The token lives in sessionStorage (this tab only: ward computers are shared) and only ever travels
// in the Authorization header, never in a URL.

const TOKEN_KEY = "sleeplm.token";
const WARD_REFRESH_MS = 15000; // safety net besides the live feed
const STALE_S = 90; // a bed without a new epoch for this long gets a warning
const FEED_BACKOFF_MS = [1000, 5000]; // first retry delay, cap
const FEED_SILENCE_MS = 45000; // the server sends a keep-alive every 15 s; silence this long = dead
const BED_EPOCHS = 40; // captions loaded when a bed view opens (more on demand)
const FEED_MAX = 300; // captions kept in the bed view's list

const PRIORITY_RANK = { high: 0, medium: 1, low: 2, advisory: 3 };
const PRIORITY_MARK = { high: "▲", medium: "◆", low: "●", advisory: "○" };
const STAGE_TEXT = { W: "Wake", R: "REM", N1: "N1", N2: "N2", N3: "N3", "?": "—" };
const STAGE_NAME = {
  W: "awake", R: "REM sleep", N1: "light sleep (N1)", N2: "light sleep (N2)", N3: "deep sleep (N3)", "?": "stage uncertain",
};
const HYPNOGRAM_ROWS = ["W", "R", "N1", "N2", "N3"];
const ALERT_TYPES = {
  spo2_critical: "SpO₂ critical",
  desaturation: "Desaturation",
  bradycardia: "Bradycardia",
  tachycardia: "Tachycardia",
  asystole: "Asystole",
  apnea_cluster: "Apnea cluster (last 5 min)", // the epoch caption beside it may rightly say "No events."
  respiratory_event: "Respiratory event",
};
const TECHNICAL = { spo2: "SpO₂ signal", cardiac: "cardiac signal", respiratory: "breathing signals", stream: "device stream" };
const MODALITY_TEXT = { brain: "Brain", cardiac: "Heart", respiratory: "Breathing", somatic: "Body" };

// ---------------------------------------------------------------------------------------------------------
// small helpers

const $ = (id) => document.querySelector(`[data-testid="${id}"]`);

/** An element: h("span", {class: "x", testid: "y", text: "z", data: {a: 1}, on: {click}}, ...children). */
function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "text") el.textContent = value;
    else if (key === "testid") el.dataset.testid = value;
    else if (key === "data") Object.assign(el.dataset, value);
    else if (key === "on") for (const [name, fn] of Object.entries(value)) el.addEventListener(name, fn);
    else el.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** el.replaceChildren without the null/false placeholders of optional parts. */
function fill(el, ...children) {
  el.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
}

const finite = (v) => (typeof v === "number" && Number.isFinite(v) ? v : null);
const pad = (n) => String(n).padStart(2, "0");

function clock(unixS, seconds = true) {
  if (finite(unixS) === null) return "—";
  const d = new Date(unixS * 1000);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}${seconds ? `:${pad(d.getSeconds())}` : ""}`;
}

function duration(s) {
  if (finite(s) === null || s < 0) return "";
  if (s < 90) return `${Math.round(s)} s`;
  if (s < 5400) return `${Math.round(s / 60)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}

function humanize(word) {
  const text = String(word).replaceAll("_", " ").replace(/\bspo2\b/gi, "SpO₂").replace(/\bhr\b/gi, "HR");
  return text.charAt(0).toUpperCase() + text.slice(1);
}

function alertTypeText(type) {
  if (ALERT_TYPES[type]) return ALERT_TYPES[type];
  const [kind, rest] = [type.split(":")[0], type.slice(type.indexOf(":") + 1)];
  if (kind === "technical") return `Technical: ${TECHNICAL[rest] || humanize(rest)}`;
  if (kind === "advisory") return `Advisory: ${humanize(rest).toLowerCase()}`;
  if (kind === "watch") return `Watch rule #${rest}`;
  return humanize(type);
}

// band_limited (sampled under 64 Hz, upsampled) describes a usable channel: not a bad one.
function badChannels(quality) {
  return Object.entries(quality || {})
    .filter(([, flags]) => (flags || []).some((flag) => flag !== "band_limited"))
    .map(([ch]) => ch).sort();
}

const sleep = (ms, signal) =>
  new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => { clearTimeout(timer); resolve(); }, { once: true });
  });

function cssVar(name, fallback = "#ccc") {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || fallback;
}

// ---------------------------------------------------------------------------------------------------------
// state

const state = {
  token: null,
  me: null,
  skewS: 0, // server clock minus ours (from the Date header), for "no update for 90 s"
  beds: new Map(), // bed_id -> ward tile data (+ lost device streams)
  alerts: new Map(), // id -> active alert
  bed: null, // the open bed view (see openBed)
  live: null, // AbortController of the feed and timers while signed in
};

const serverNow = () => Date.now() / 1000 + state.skewS;
const canAcknowledge = () => state.me && (state.me.role === "nurse" || state.me.role === "admin");

// ---------------------------------------------------------------------------------------------------------
// the API

class ApiError extends Error {
  constructor(status, detail) {
    super(detail || `the server answered ${status}`);
    this.status = status;
  }
}

function noteServerClock(response) {
  const date = Date.parse(response.headers.get("date") || "");
  if (Number.isFinite(date)) state.skewS = (date - Date.now()) / 1000;
}

function detailText(body, status) {
  const detail = body && body.detail;
  if (Array.isArray(detail)) return detail.map((d) => d.msg || JSON.stringify(d)).join("; ");
  return typeof detail === "string" ? detail : `the server answered ${status}`;
}

async function api(path, { method = "GET", body, signal } = {}) {
  if (!state.token) throw new ApiError(401, "not signed in");
  const headers = { Authorization: `Bearer ${state.token}`, Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method, headers, signal, cache: "no-store", credentials: "omit",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  noteServerClock(response);
  let data = null;
  try { data = await response.json(); } catch { /* empty or not JSON */ }
  if (response.status === 401) {
    signOut("Token not accepted any more (revoked or expired). Sign in again.");
    throw new ApiError(401, detailText(data, 401));
  }
  if (!response.ok) throw new ApiError(response.status, detailText(data, response.status));
  return data;
}

const bedPath = (bed, rest) => `/api/beds/${encodeURIComponent(bed)}/${rest}`;

// ---------------------------------------------------------------------------------------------------------
// sign-in and sign-out

function showSignIn(message = "") {
  $("workspace").hidden = true;
  $("session").hidden = true;
  $("signin").hidden = false;
  $("signin-message").textContent = message;
  const input = $("signin-token");
  input.value = "";
  input.focus();
}

async function signIn(token) {
  const message = $("signin-message");
  const button = $("signin-button");
  message.textContent = "";
  if (!token) {
    message.textContent = "Enter your access token.";
    return false;
  }
  button.disabled = true;
  let response;
  try {
    response = await fetch("/api/me", { headers: { Authorization: `Bearer ${token}` }, cache: "no-store", credentials: "omit" });
  } catch {
    message.textContent = "Cannot reach the monitor server. Check the network and try again.";
    button.disabled = false;
    return false;
  }
  button.disabled = false;
  if (response.status === 401 || response.status === 403) {
    sessionStorage.removeItem(TOKEN_KEY);
    showSignIn("Token not accepted. Check it and try again.");
    return false;
  }
  if (!response.ok) {
    message.textContent = `The server answered ${response.status}. Try again in a moment.`;
    return false;
  }
  noteServerClock(response);
  state.me = await response.json();
  state.token = token;
  sessionStorage.setItem(TOKEN_KEY, token);
  $("signin").hidden = true;
  $("workspace").hidden = false;
  $("session").hidden = false;
  $("whoami").textContent = `Signed in as ${state.me.name} (${state.me.role})`;
  document.body.dataset.role = state.me.role;
  $("view-only").hidden = canAcknowledge();
  startLive();
  route();
  return true;
}

function signOut(message = "Signed out.") {
  state.live?.abort();
  state.live = null;
  state.token = null;
  state.me = null;
  state.beds.clear();
  state.alerts.clear();
  closeBed();
  sessionStorage.removeItem(TOKEN_KEY);
  delete document.body.dataset.role;
  $("ward").replaceChildren();
  $("alert-list").replaceChildren();
  $("advisory-list").replaceChildren();
  setFeedState("off", "not connected");
  if (location.hash) history.replaceState(null, "", location.pathname);
  showSignIn(message);
}

// ---------------------------------------------------------------------------------------------------------
// the live feed: fetch + ReadableStream + SSE parser, resumed with Last-Event-ID

function setFeedState(name, text) {
  const el = $("feed-status");
  el.dataset.state = name;
  el.querySelector(".feed-text").textContent = text;
}

/** Parse an SSE byte stream; calls onEvent({event, data, id}) per dispatched event, onActivity per chunk. */
async function readSse(body, onEvent, onActivity, feed) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let data = [];
  let type = "";
  let id = null; // becomes the last event id only when its event is dispatched (the blank line)
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      onActivity();
      buffer += value;
      // a chunk may end between \r and \n: keep a trailing \r until the next chunk
      const held = buffer.endsWith("\r") ? "\r" : "";
      const lines = (held ? buffer.slice(0, -1) : buffer).split(/\r\n|\r|\n/);
      buffer = lines.pop() + held;
      for (const line of lines) {
        if (line === "") {
          if (data.length) {
            try {
              onEvent({ event: type || "message", data: data.join("\n"), id: id ?? feed.lastId });
            } catch (error) {
              console.error("live feed event not shown:", error); // one bad event must not stop the feed
            }
          }
          if (id !== null) feed.lastId = id;
          data = [];
          type = "";
          id = null;
          continue;
        }
        if (line.startsWith(":")) continue; // comment / keep-alive
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let val = colon < 0 ? "" : line.slice(colon + 1);
        if (val.startsWith(" ")) val = val.slice(1);
        if (field === "data") data.push(val);
        else if (field === "event") type = val;
        else if (field === "id" && !val.includes("\0")) id = val;
        else if (field === "retry" && /^\d+$/.test(val)) feed.retryMs = Number(val);
      }
    }
  } finally {
    reader.releaseLock?.();
  }
}

async function runFeed(signal) {
  const feed = { lastId: null, retryMs: FEED_BACKOFF_MS[0], connects: 0 };
  let delay = FEED_BACKOFF_MS[0];
  while (!signal.aborted) {
    const connection = new AbortController();
    const stop = () => connection.abort();
    signal.addEventListener("abort", stop, { once: true });
    let silence = null;
    const activity = () => {
      clearTimeout(silence);
      silence = setTimeout(() => connection.abort(), FEED_SILENCE_MS);
    };
    try {
      setFeedState(feed.connects ? "reconnecting" : "connecting", feed.connects ? "reconnecting…" : "connecting…");
      const headers = { Authorization: `Bearer ${state.token}`, Accept: "text/event-stream" };
      if (feed.lastId) headers["Last-Event-ID"] = feed.lastId;
      activity();
      const response = await fetch("/api/stream", { headers, signal: connection.signal, cache: "no-store", credentials: "omit" });
      if (response.status === 401) {
        signOut("Token not accepted any more (revoked or expired). Sign in again.");
        return;
      }
      if (!response.ok || !response.body) throw new Error(`live feed answered ${response.status}`);
      feed.connects += 1;
      delay = Math.max(FEED_BACKOFF_MS[0], Math.min(feed.retryMs, FEED_BACKOFF_MS[1]));
      setFeedState("live", "live");
      if (feed.connects > 1) refreshAll(); // whatever a reconnect without a cursor could not replay
      await readSse(response.body, dispatchFeedEvent, activity, feed);
      throw new Error("live feed closed");
    } catch (error) {
      if (signal.aborted) break;
      const wait = delay + Math.random() * 250;
      setFeedState("reconnecting", `feed lost, retrying in ${Math.ceil(wait / 1000)} s`);
      await sleep(wait, signal);
      delay = Math.min(delay * 2, FEED_BACKOFF_MS[1]);
    } finally {
      clearTimeout(silence);
      signal.removeEventListener("abort", stop);
      connection.abort();
    }
  }
}

function dispatchFeedEvent({ event, data }) {
  let item;
  try { item = JSON.parse(data); } catch { return; }
  if (event === "epoch") onEpoch(item);
  else if (event === "alert") onAlert(item);
  else if (event === "device") onDevice(item);
}

// ---------------------------------------------------------------------------------------------------------
// live session: first picture, feed, safety refresh, clock

function startLive() {
  state.live?.abort();
  const live = new AbortController();
  state.live = live;
  refreshAll();
  runFeed(live.signal);
  const refresh = setInterval(refreshAll, WARD_REFRESH_MS);
  const tick = setInterval(() => { renderClock(); renderAges(); }, 1000);
  live.signal.addEventListener("abort", () => { clearInterval(refresh); clearInterval(tick); }, { once: true });
}

let wardRefreshTimer = null;
function scheduleWardRefresh(ms = 500) {
  clearTimeout(wardRefreshTimer);
  wardRefreshTimer = setTimeout(() => refreshWard(), ms);
}

async function refreshAll() {
  await Promise.all([refreshWard(), refreshAlerts()]);
}

async function refreshWard() {
  if (!state.token) return;
  let tiles;
  try { tiles = await api("/api/ward"); } catch { return; }
  const seen = new Set();
  for (const tile of tiles) {
    seen.add(tile.bed_id);
    const old = state.beds.get(tile.bed_id);
    // the feed may already be ahead of this answer: keep the newer epoch, take the alert summary
    if (old && old.recording_id === tile.recording_id && old.last_epoch > tile.last_epoch) {
      Object.assign(old, { active_alerts: tile.active_alerts, top_alert: tile.top_alert, status: tile.status });
    } else {
      const same = old && old.recording_id === tile.recording_id && old.last_epoch === tile.last_epoch;
      state.beds.set(tile.bed_id, { lost: old?.lost || new Set(), updatedBy: same ? old.updatedBy : "ward", ...tile });
    }
  }
  for (const bed of [...state.beds.keys()]) if (!seen.has(bed)) state.beds.delete(bed);
  renderWard();
  if (state.bed) renderBedHead();
}

async function refreshAlerts() {
  if (!state.token) return;
  let alerts;
  try { alerts = await api("/api/alerts?state=active&limit=500"); } catch { return; }
  state.alerts = new Map(alerts.map((a) => [a.id, a]));
  renderAlerts();
}

function onEpoch(epoch) {
  const bed = state.beds.get(epoch.bed_id);
  if (!bed || bed.recording_id !== epoch.recording_id) {
    scheduleWardRefresh(200); // a new bed or a new night
  } else if (epoch.epoch >= bed.last_epoch) {
    Object.assign(bed, {
      last_epoch: epoch.epoch,
      stage: epoch.stage,
      caption: epoch.captions?.stage_event ?? null,
      spo2: finite(epoch.features?.spo2_mean),
      hr: finite(epoch.features?.hr_bpm),
      bad_channels: badChannels(epoch.quality),
      updated_at: serverNow(),
      status: "live",
      updatedBy: "feed",
    });
    renderWard();
  }
  if (state.bed && state.bed.id === epoch.bed_id) bedOnEpoch(epoch);
}

function onAlert(alert) {
  if (alert.state === "resolved") state.alerts.delete(alert.id);
  else state.alerts.set(alert.id, { ...state.alerts.get(alert.id), ...alert });
  renderAlerts();
  const bed = state.beds.get(alert.bed_id);
  if (bed?.top_alert?.id === alert.id && alert.state !== "resolved") { // show it now; the refresh confirms
    Object.assign(bed.top_alert, { state: alert.state, escalated: alert.escalated });
    renderWard();
  }
  scheduleWardRefresh(300); // which alert is a tile's top one comes from the store
  if (state.bed && state.bed.id === alert.bed_id) {
    state.bed.alerts.set(alert.id, alert);
    drawEvents();
  }
}

function onDevice(device) {
  const bed = state.beds.get(device.bed_id);
  if (!bed) return;
  if (device.type === "stream_lost") bed.lost.add(device.stream);
  else if (device.type === "stream_resumed") bed.lost.delete(device.stream);
  renderWard();
}

// ---------------------------------------------------------------------------------------------------------
// keyed lists: reuse elements so focus, open <details> and screen readers are not disturbed

function syncChildren(container, items, keyOf, make, update) {
  const existing = new Map([...container.children].map((el) => [el.dataset.key, el]));
  let previous = null;
  for (const item of items) {
    const key = keyOf(item);
    let el = existing.get(key);
    if (el) existing.delete(key);
    else {
      el = make(item);
      el.dataset.key = key;
    }
    update(el, item);
    const wanted = previous ? previous.nextSibling : container.firstChild;
    if (el !== wanted) container.insertBefore(el, wanted);
    previous = el;
  }
  for (const el of existing.values()) el.remove();
}

// ---------------------------------------------------------------------------------------------------------
// ward view

function bedAge(bed) {
  return finite(bed.updated_at) === null ? Infinity : Math.max(0, serverNow() - bed.updated_at);
}

const isStale = (bed) => bed.status === "stale" || bedAge(bed) > STALE_S;

function wardOrder(a, b) {
  const rank = (bed) => (bed.top_alert ? PRIORITY_RANK[bed.top_alert.priority] ?? 9 : 9);
  return (
    rank(a) - rank(b) ||
    Number(Boolean(b.top_alert?.escalated)) - Number(Boolean(a.top_alert?.escalated)) ||
    Number(b.top_alert?.state === "raised") - Number(a.top_alert?.state === "raised") ||
    Number(isStale(b)) - Number(isStale(a)) ||
    a.bed_id.localeCompare(b.bed_id, undefined, { numeric: true })
  );
}

function makeTile(bed) {
  const parts = {
    bed: h("span", { class: "tile-bed", testid: "tile-bed" }),
    stage: h("span", { class: "stage-chip tile-stage", testid: "tile-stage" }),
    stageName: h("span", { class: "tile-stage-name" }),
    spo2: h("span", { class: "vital-value", testid: "tile-spo2" }),
    hr: h("span", { class: "vital-value", testid: "tile-hr" }),
    alert: h("span", { class: "tile-alert", testid: "tile-alert" }),
    stale: h("span", { class: "tile-stale", testid: "tile-stale" }),
    device: h("span", { class: "tile-device", testid: "tile-device" }),
    caption: h("span", { class: "tile-caption", testid: "tile-caption" }),
    epoch: h("span", { class: "tile-epoch", testid: "tile-epoch" }),
    bad: h("span", { class: "tile-bad", testid: "tile-bad" }),
  };
  const button = h(
    "button",
    { type: "button", class: "tile", testid: `tile-${bed.bed_id}`, on: { click: () => { location.hash = `#/bed/${encodeURIComponent(bed.bed_id)}`; } } },
    h("span", { class: "tile-top" }, parts.bed, h("span", { class: "tile-stage-box" }, parts.stage, parts.stageName)),
    h(
      "span",
      { class: "tile-vitals" },
      h("span", { class: "vital" }, h("span", { class: "vital-label" }, "SpO₂"), parts.spo2, h("span", { class: "vital-unit" }, "%")),
      h("span", { class: "vital" }, h("span", { class: "vital-label" }, "HR"), parts.hr, h("span", { class: "vital-unit" }, "bpm")),
    ),
    parts.alert,
    parts.stale,
    parts.device,
    parts.caption,
    parts.bad,
    h("span", { class: "tile-foot" }, parts.epoch),
  );
  const item = h("div", { role: "listitem", class: "tile-wrap" }, button);
  item.parts = parts;
  item.button = button;
  return item;
}

function updateTile(item, bed) {
  const p = item.parts;
  const top = bed.top_alert;
  const stale = isStale(bed);
  const shown = top && top.priority !== "advisory" ? top.priority : "none"; // advisories never colour a tile
  item.button.className = `tile prio-${shown}${top?.escalated ? " escalated" : ""}${stale ? " stale" : ""}`;
  Object.assign(item.button.dataset, {
    epoch: String(bed.last_epoch),
    priority: top ? top.priority : "none",
    stale: String(stale),
    updatedBy: bed.updatedBy || "ward",
  });
  p.bed.textContent = bed.bed_id;
  p.stage.textContent = STAGE_TEXT[bed.stage] ?? bed.stage;
  p.stage.className = `stage-chip tile-stage stage-${bed.stage === "?" ? "U" : bed.stage}`;
  p.stageName.textContent = STAGE_NAME[bed.stage] ?? "";
  p.spo2.textContent = finite(bed.spo2) === null ? "—" : String(Math.round(bed.spo2));
  p.hr.textContent = finite(bed.hr) === null ? "—" : String(Math.round(bed.hr));
  showTopAlert(p.alert, bed);
  p.stale.hidden = !stale;
  p.stale.textContent = stale ? `⚠ NO NEW DATA for ${duration(bedAge(bed)) || "a while"}: check the bed` : "";
  const lost = [...(bed.lost || [])];
  p.device.hidden = lost.length === 0;
  p.device.textContent = lost.length ? `⚠ Device stream lost: ${lost.join(", ")}` : "";
  p.caption.textContent = bed.caption || "No caption yet.";
  p.epoch.textContent = `epoch ${bed.last_epoch} · ${ageText(bed)}`;
  const bad = bed.bad_channels;
  p.bad.hidden = bad.length === 0;
  p.bad.textContent = bad.length > 4 ? `⚠ Bad signal on ${bad.length} channels: ${bad.slice(0, 3).join(", ")} …`
    : bad.length ? `⚠ Bad signal: ${bad.join(", ")}` : "";
  p.bad.title = bad.join(", ");
}

/** The bed's highest active alert as a strip: priority word and mark, type, badges (tile and bed header). */
function showTopAlert(el, bed, extraClass = "") {
  const top = bed.top_alert;
  el.hidden = !top;
  if (!top) {
    el.replaceChildren();
    return;
  }
  if (top.priority === "advisory") {
    // Advisories are folded: one quiet line, never a coloured strip like a clinical alert's.
    const n = Math.max(1, bed.active_alerts || 1);
    el.className = `tile-alert ${extraClass} advisory-folded`;
    fill(el, h("span", { class: "tile-advisory", testid: "tile-advisory" }, `○ ${n} ${n === 1 ? "advisory" : "advisories"}`));
    return;
  }
  el.className = `tile-alert ${extraClass} prio-${top.priority}${top.state === "acknowledged" ? " acked" : ""}`;
  const more = bed.active_alerts > 1 ? `+${bed.active_alerts - 1} more` : "";
  fill(el,
    h("span", { class: "prio-mark", "aria-hidden": "true" }, PRIORITY_MARK[top.priority] || ""),
    h("span", { class: "prio-word" }, top.priority.toUpperCase()),
    h("span", { class: "tile-alert-type" }, alertTypeText(top.type)),
    top.escalated ? h("span", { class: "badge badge-escalated", testid: "tile-escalated" }, "ESCALATED") : null,
    top.state === "acknowledged" ? h("span", { class: "badge badge-acked" }, "ACK’D") : null,
    more ? h("span", { class: "tile-more" }, more) : null,
  );
}

function ageText(bed) {
  const age = bedAge(bed);
  if (!Number.isFinite(age)) return "no update yet";
  return age < 5 ? "just now" : `${duration(age)} ago`;
}

function renderWard() {
  const beds = [...state.beds.values()].sort(wardOrder);
  syncChildren($("ward"), beds, (b) => b.bed_id, makeTile, updateTile);
  $("ward-empty").hidden = beds.length > 0;
  const high = beds.filter((b) => b.top_alert?.priority === "high").length;
  const stale = beds.filter(isStale).length;
  $("ward-summary").textContent = [
    `${beds.length} bed${beds.length === 1 ? "" : "s"}`,
    high ? `${high} with a high alert` : "",
    stale ? `${stale} without new data` : "",
  ].filter(Boolean).join(" · ");
}

function renderAges() {
  for (const item of $("ward").children) {
    const bed = state.beds.get(item.dataset.key);
    if (!bed) continue;
    const staleNow = isStale(bed);
    if (String(staleNow) !== item.button.dataset.stale) renderWard();
    else {
      item.parts.epoch.textContent = `epoch ${bed.last_epoch} · ${ageText(bed)}`;
      if (staleNow) item.parts.stale.textContent = `⚠ NO NEW DATA for ${duration(bedAge(bed)) || "a while"}: check the bed`;
    }
  }
  if (state.bed) renderBedStale();
}

function renderClock() {
  $("clock").textContent = clock(Date.now() / 1000, false);
}

// ---------------------------------------------------------------------------------------------------------
// alert panel

function alertOrder(a, b) {
  return (
    (PRIORITY_RANK[a.priority] ?? 9) - (PRIORITY_RANK[b.priority] ?? 9) ||
    Number(Boolean(b.escalated)) - Number(Boolean(a.escalated)) ||
    Number(b.state === "raised") - Number(a.state === "raised") ||
    b.raised_at - a.raised_at
  );
}

function evidenceText(alert) {
  const ev = alert.evidence || {};
  const bits = [];
  for (const [key, value] of Object.entries(ev.values || {})) {
    if (finite(value) === null) continue;
    const unit = /spo2/i.test(key) ? " %" : /hr|bpm|heart/i.test(key) ? " bpm" : "";
    const shown = key === "score" ? value.toFixed(2) : unit ? String(Math.round(value * 10) / 10) : String(value);
    bits.push(`${humanize(key).replace(/^Min /, "Lowest ").replace(/^Max /, "Highest ")} ${shown}${unit}`);
  }
  if (finite(ev.start) !== null && finite(ev.end) !== null && ev.end > ev.start) bits.push(`over ${duration(ev.end - ev.start)}`);
  if (finite(ev.count) !== null && ev.count > 1) bits.push(`${ev.count}× repeated`);
  return bits.join(" · ");
}

function makeAlert(alert) {
  return h("li", { class: "alert", testid: `alert-${alert.id}` });
}

function updateAlert(el, alert) {
  const acked = alert.state === "acknowledged";
  el.className = `alert prio-${alert.priority} state-${alert.state}${alert.escalated ? " escalated" : ""}`;
  el.dataset.state = alert.state;
  el.dataset.priority = alert.priority;
  const evidence = evidenceText(alert);
  const caption = alert.evidence?.caption;
  const stateText = acked
    ? `Acknowledged by ${alert.acknowledged_by || "?"}${alert.acknowledged_at ? ` at ${clock(alert.acknowledged_at, false)}` : ""}`
    : "Not acknowledged";
  fill(el,
    h(
      "div",
      { class: "alert-top" },
      h("span", { class: `prio-badge prio-${alert.priority}` },
        h("span", { class: "prio-mark", "aria-hidden": "true" }, PRIORITY_MARK[alert.priority] || ""), ` ${alert.priority.toUpperCase()}`),
      alert.escalated ? h("span", { class: "badge badge-escalated", testid: "alert-escalated" }, "ESCALATED") : null,
      h("span", { class: "alert-time", title: "device time the alert was raised" }, clock(alert.raised_at)),
    ),
    h(
      "div",
      { class: "alert-title" },
      h("button", { type: "button", class: "link bed-link", on: { click: () => { location.hash = `#/bed/${encodeURIComponent(alert.bed_id)}`; } } }, alert.bed_id),
      h("span", { class: "alert-type" }, alertTypeText(alert.type)),
    ),
    evidence ? h("div", { class: "alert-evidence" }, evidence) : null,
    caption ? h("div", { class: "alert-caption" }, caption) : null,
    h(
      "div",
      { class: "alert-foot" },
      h("span", { class: `alert-state ${acked ? "is-acked" : "is-raised"}`, testid: "alert-state" }, acked ? `✓ ${stateText}` : stateText),
      !acked && canAcknowledge()
        ? h("button", { type: "button", class: "btn btn-ack", testid: `ack-${alert.id}`, on: { click: (e) => acknowledge(alert.id, e.currentTarget) } }, "Acknowledge")
        : null,
    ),
  );
}

function renderAlerts() {
  const all = [...state.alerts.values()].sort(alertOrder);
  const main = all.filter((a) => a.priority !== "advisory");
  const advisories = all.filter((a) => a.priority === "advisory");
  syncChildren($("alert-list"), main, (a) => a.id, makeAlert, updateAlert);
  syncChildren($("advisory-list"), advisories, (a) => a.id, makeAlert, updateAlert);
  $("advisories").hidden = advisories.length === 0;
  $("advisory-count").textContent = `(${advisories.length})`;
  $("alerts-empty").hidden = main.length > 0;
  $("alerts-empty").textContent = advisories.length ? "No alarms. Advisories below." : "No active alerts.";
  const raised = main.filter((a) => a.state === "raised").length;
  $("alert-count").textContent = main.length ? `${raised} to acknowledge · ${main.length} active` : "";
  $("alert-panel").dataset.raised = String(raised);
}

function actionMessage(text) {
  $("action-message").textContent = text;
}

async function acknowledge(id, button) {
  button.disabled = true;
  button.textContent = "Acknowledging…";
  actionMessage("");
  try {
    onAlert(await api(`/api/alerts/${encodeURIComponent(id)}/ack`, { method: "POST" }));
  } catch (error) {
    if (error.status === 409 || error.status === 404) {
      try {
        const now = await api(`/api/alerts/${encodeURIComponent(id)}`);
        onAlert(now);
        actionMessage(`Already ${now.state}${now.acknowledged_by ? ` by ${now.acknowledged_by}` : ""}.`);
      } catch { refreshAlerts(); }
    } else if (error.status === 403) {
      actionMessage("Your role cannot acknowledge alerts.");
    } else if (error.status !== 401) {
      actionMessage(`Could not acknowledge: ${error.message}. Try again.`);
      button.disabled = false;
      button.textContent = "Acknowledge";
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// routing: #/bed/<id> opens a bed, anything else is the ward

function route() {
  if (!state.token) return;
  const match = /^#\/bed\/(.+)$/.exec(location.hash);
  if (match) openBed(decodeURIComponent(match[1]));
  else closeBed();
}

function closeBed() {
  if (state.bed) {
    state.bed.abort.abort();
    window.scrollTo(0, 0); // back to the top of the ward
  }
  state.bed = null;
  $("bed-view").hidden = true;
  $("ward-view").hidden = false;
}

// ---------------------------------------------------------------------------------------------------------
// bed view

async function openBed(bedId) {
  if (state.bed && state.bed.id === bedId) return;
  closeBed();
  const view = {
    id: bedId, recording: null, abort: new AbortController(), epochs: new Map(), hyp: null, events: [],
    alerts: new Map(), wave: null, waveError: "", highlight: null, waveSeq: 0, loaded: false,
  };
  state.bed = view;
  $("ward-view").hidden = true;
  $("bed-view").hidden = false;
  window.scrollTo(0, 0);
  $("bed-title").textContent = bedId;
  $("caption-feed").replaceChildren(h("li", { class: "empty" }, "Loading…"));
  $("query-results").replaceChildren();
  $("query-status").textContent = "";
  $("query-input").value = "";
  renderBedHead();
  $("bed-back").focus();
  const signal = view.abort.signal;
  try {
    const [hyp, night] = await Promise.all([
      api(bedPath(bedId, "hypnogram"), { signal }),
      api(bedPath(bedId, "events"), { signal }),
    ]);
    if (state.bed !== view) return;
    view.recording = hyp.recording_id;
    view.hyp = hyp;
    view.events = [];
    for (const e of night.events) mergeEvent(view.events, { ...e });
    for (const a of night.alerts) view.alerts.set(a.id, a);
    const since = Math.max(0, hyp.stages.length - BED_EPOCHS);
    const epochs = await api(bedPath(bedId, `epochs?since=${since}&limit=${BED_EPOCHS + 5}`), { signal });
    if (state.bed !== view) return;
    for (const e of epochs) if (!view.epochs.has(e.epoch)) view.epochs.set(e.epoch, e);
    view.loaded = true;
    renderFeed();
    drawHypnogram();
    drawEvents();
    loadWaveform();
  } catch (error) {
    if (signal.aborted || state.bed !== view) return;
    $("caption-feed").replaceChildren(h("li", { class: "empty" }, `Could not load this bed: ${error.message}`));
  }
}

function renderBedHead() {
  const view = state.bed;
  const bed = view && state.beds.get(view.id);
  const stage = $("bed-stage");
  if (!bed) {
    stage.textContent = "";
    $("bed-alert").hidden = true;
    $("bed-vitals").textContent = "";
    $("bed-meta").textContent = "";
    return;
  }
  stage.textContent = STAGE_TEXT[bed.stage] ?? bed.stage;
  stage.className = `stage-chip stage-big stage-${bed.stage === "?" ? "U" : bed.stage}`;
  const spo2 = finite(bed.spo2) === null ? "—" : `${Math.round(bed.spo2)} %`;
  const hr = finite(bed.hr) === null ? "—" : `${Math.round(bed.hr)} bpm`;
  $("bed-vitals").textContent = `SpO₂ ${spo2} · HR ${hr}`;
  showTopAlert($("bed-alert"), bed, "bed-alert");
  $("bed-meta").textContent = `${bed.recording_id} · epoch ${bed.last_epoch}`;
  renderBedStale();
}

function renderBedStale() {
  const bed = state.bed && state.beds.get(state.bed.id);
  const banner = $("bed-stale");
  const stale = bed ? isStale(bed) : false;
  banner.hidden = !stale;
  banner.textContent = stale ? `⚠ No new data from this bed for ${duration(bedAge(bed))}. Check the devices.` : "";
}

function bedOnEpoch(epoch) {
  const view = state.bed;
  if (!view.loaded) return; // the first load will include it
  if (epoch.recording_id !== view.recording) {
    const id = view.id;
    closeBed();
    openBed(id); // a new night began on this bed
    return;
  }
  view.epochs.set(epoch.epoch, epoch);
  const stages = view.hyp.stages;
  while (stages.length < epoch.epoch) stages.push("?");
  stages[epoch.epoch] = epoch.stage;
  for (const e of epoch.events || []) mergeEvent(view.events, e);
  renderBedHead();
  renderFeed();
  drawHypnogram();
  drawEvents();
  loadWaveform();
}

/** Add a detector event to the night's list, or extend the one it continues: an event spanning epochs is
 * reported by each epoch's window (cut short at the first window's end) and stays one event on the timeline. */
function mergeEvent(events, e) {
  const end = (x) => Number(x.onset_s) + Number(x.duration_s || 0);
  const same = events.find((x) => x.type === e.type && Number(x.onset_s) <= end(e) + 1 && Number(e.onset_s) <= end(x) + 1);
  if (!same) events.push(e);
  else if (end(e) > end(same)) {
    const onset = Math.min(Number(same.onset_s), Number(e.onset_s));
    Object.assign(same, e, { onset_s: onset, duration_s: end(e) - onset });
  }
}

function feedItem(epoch) {
  const vitals = [];
  const spo2 = finite(epoch.features?.spo2_mean);
  const hr = finite(epoch.features?.hr_bpm);
  if (spo2 !== null) vitals.push(`SpO₂ ${Math.round(spo2)} %`);
  if (hr !== null) vitals.push(`HR ${Math.round(hr)} bpm`);
  const bad = badChannels(epoch.quality);
  // a channel the bed does not stream is not "lost": no chip, as the caption names no such event
  const unstreamed = (e) => e.type === "signal_loss" && (epoch.quality?.[e.channel] || []).includes("missing");
  const events = (epoch.events || []).filter((e) => !unstreamed(e)).map((e) =>
    h("span", { class: "event-chip", testid: "event-chip", data: { type: e.type } }, humanize(e.type)));
  const details = Object.entries(MODALITY_TEXT)
    .filter(([key]) => epoch.captions?.[key])
    .flatMap(([key, label]) => [h("dt", {}, label), h("dd", {}, epoch.captions[key])]);
  return h(
    "li",
    { class: "feed-item", testid: "feed-item", data: { epoch: String(epoch.epoch) } },
    h(
      "div",
      { class: "feed-head" },
      h("span", { class: "feed-time" }, clock(epoch.start_time)),
      h("span", { class: `stage-chip stage-${epoch.stage === "?" ? "U" : epoch.stage}`, data: { stage: epoch.stage } }, STAGE_TEXT[epoch.stage] ?? epoch.stage),
      h("span", { class: "feed-epoch" }, `epoch ${epoch.epoch}`),
      vitals.length ? h("span", { class: "feed-vitals" }, vitals.join(" · ")) : null,
      ...events,
      bad.length ? h("span", { class: "feed-bad" }, `bad: ${bad.join(", ")}`) : null,
    ),
    h("p", { class: "feed-caption", testid: "feed-caption" }, epoch.captions?.stage_event || "(no caption)"),
    details.length
      ? h("details", { class: "feed-more" }, h("summary", {}, "Brain, heart, breathing, body"), h("dl", {}, details))
      : null,
  );
}

function renderFeed() {
  const view = state.bed;
  const list = $("caption-feed");
  const keys = [...view.epochs.keys()].sort((a, b) => b - a);
  for (const old of keys.slice(FEED_MAX)) if (old !== view.highlight) view.epochs.delete(old);
  const shown = keys.slice(0, FEED_MAX).map((k) => view.epochs.get(k));
  if (!shown.length) {
    list.replaceChildren(h("li", { class: "empty" }, "No captions yet."));
    return;
  }
  if (list.querySelector(".empty")) list.replaceChildren();
  // Newest first: a new caption goes on top. When the nurse has scrolled down (or jumped to a search
  // match), keep what she is reading where it is instead of letting it slide down.
  const anchor = list.scrollTop > 0
    ? list.querySelector("li.highlight") || [...list.children].find((li) => li.offsetTop + li.offsetHeight > list.scrollTop)
    : null;
  const anchorOffset = anchor ? anchor.offsetTop - list.scrollTop : 0;
  syncChildren(list, shown, (e) => String(e.epoch), feedItem, (el, e) => {
    el.classList.toggle("highlight", e.epoch === view.highlight);
  });
  if (anchor && anchor.isConnected) list.scrollTop = anchor.offsetTop - anchorOffset;
  const oldest = Math.min(...keys);
  if (oldest > 0) {
    list.append(h("li", { class: "feed-older", data: { key: "older" } },
      h("button", { type: "button", class: "btn btn-quiet", testid: "feed-older", on: { click: loadOlder } }, "Load earlier captions")));
  }
}

async function loadOlder() {
  const view = state.bed;
  const oldest = Math.min(...view.epochs.keys());
  const since = Math.max(0, oldest - BED_EPOCHS);
  try {
    const epochs = await api(bedPath(view.id, `epochs?since=${since}&limit=${oldest - since}`), { signal: view.abort.signal });
    if (state.bed !== view) return;
    for (const e of epochs) if (!view.epochs.has(e.epoch)) view.epochs.set(e.epoch, e);
    renderFeed();
  } catch { /* left as it is */ }
}

async function loadWaveform() {
  const view = state.bed;
  const seq = ++view.waveSeq;
  try {
    const wave = await api(bedPath(view.id, "waveform"), { signal: view.abort.signal });
    if (state.bed !== view || seq !== view.waveSeq) return;
    view.wave = wave;
    view.waveError = "";
  } catch (error) {
    if (state.bed !== view || seq !== view.waveSeq) return;
    view.wave = null;
    view.waveError = error.status === 404 ? "No waveform stored for this bed yet." : `Waveform unavailable: ${error.message}`;
  }
  drawWaveform();
}

// --- query -------------------------------------------------------------------------------------------------

async function runQuery(event) {
  event.preventDefault();
  const view = state.bed;
  if (!view) return;
  const q = $("query-input").value.trim();
  const status = $("query-status");
  const results = $("query-results");
  if (!q) {
    status.textContent = "Type what to look for, e.g. “apnea in REM” or “low oxygen”.";
    return;
  }
  status.textContent = "Searching…";
  results.replaceChildren();
  $("query-button").disabled = true;
  try {
    const found = await api(bedPath(view.id, `query?q=${encodeURIComponent(q)}&top=10`), { signal: view.abort.signal });
    if (state.bed !== view) return;
    const how = { model: "SleepLM model, calibrated threshold", text: "what the captions state",
      latest: `latest epochs, ${(MODALITY_TEXT[found.level] || found.level).toLowerCase()}` }[found.method] || found.method;
    status.textContent = found.matches.length
      ? `${found.matches.length} match${found.matches.length === 1 ? "" : "es"} (${how}). Select one to see it in the night.`
      : `No epoch matches (${how}).`;
    results.replaceChildren(
      ...found.matches.map((m) =>
        h(
          "li",
          {},
          h(
            "button",
            { type: "button", class: "match", testid: "query-match", data: { epoch: String(m.epoch) }, on: { click: () => showEpoch(m.epoch) } },
            h("span", { class: "match-head" },
              h("span", { class: "feed-time" }, clock(m.start_time)),
              h("span", { class: `stage-chip stage-${m.stage === "?" ? "U" : m.stage}` }, STAGE_TEXT[m.stage] ?? m.stage),
              h("span", { class: "match-epoch" }, `epoch ${m.epoch}`),
              h("span", { class: "match-score" }, `score ${m.score.toFixed(2)}`)),
            h("span", { class: "match-caption" }, m.caption),
          ),
        ),
      ),
    );
  } catch (error) {
    if (state.bed === view && !view.abort.signal.aborted) status.textContent = `Search failed: ${error.message}`;
  } finally {
    $("query-button").disabled = false;
  }
}

async function showEpoch(epochIndex) {
  const view = state.bed;
  if (!view.epochs.has(epochIndex)) {
    try {
      const [epoch] = await api(bedPath(view.id, `epochs?since=${epochIndex}&limit=1`), { signal: view.abort.signal });
      if (epoch && state.bed === view) view.epochs.set(epoch.epoch, epoch);
    } catch { return; }
  }
  view.highlight = epochIndex;
  renderFeed();
  drawHypnogram();
  drawEvents();
  const feed = $("caption-feed");
  const el = feed.querySelector(`[data-epoch="${epochIndex}"]`);
  if (el) {
    el.querySelector("details")?.setAttribute("open", "");
    // scroll the caption list only (not the page: the search box stays where the nurse is looking)
    feed.scrollTop = Math.max(0, el.offsetTop - Math.max(0, feed.clientHeight - el.offsetHeight) / 2);
  }
}

// ---------------------------------------------------------------------------------------------------------
// canvases

function prepareCanvas(canvas) {
  const rect = canvas.getBoundingClientRect();
  const dpr = window.devicePixelRatio || 1;
  const w = Math.max(1, Math.round(rect.width));
  const hgt = Math.max(1, Math.round(rect.height));
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(hgt * dpr)) {
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(hgt * dpr);
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, hgt);
  ctx.font = `13px ${cssVar("--font-ui", "system-ui, sans-serif")}`;
  ctx.textBaseline = "middle";
  return { ctx, w, h: hgt };
}

/** Seconds shown on the night's x axis: what has been recorded, rounded up to 15 min (at least 15 min). */
function nightSpan(view) {
  const recorded = view.hyp ? view.hyp.stages.length * view.hyp.epoch_s : 0;
  return Math.max(900, Math.ceil(recorded / 900) * 900);
}

function drawTimeAxis(ctx, x0, x1, y, spanS, startTime) {
  const steps = [300, 600, 900, 1800, 3600, 7200];
  const step = steps.find((s) => spanS / s <= 8) || 7200;
  ctx.fillStyle = cssVar("--muted");
  ctx.strokeStyle = cssVar("--grid");
  ctx.textAlign = "center";
  // ticks on round clock times (local time zone offset included, so 02:00 lands on a tick)
  const offsetS = -new Date(startTime * 1000).getTimezoneOffset() * 60;
  const first = Math.ceil((startTime + offsetS) / step) * step - offsetS - startTime;
  const xFirst = x0 + (first / spanS) * (x1 - x0);
  if (xFirst - x0 > 70) { // label where the night began too
    ctx.textAlign = "left";
    ctx.fillText(clock(startTime, false), x0, y + 10);
    ctx.textAlign = "center";
  }
  for (let t = first; t <= spanS + 1; t += step) {
    const x = x0 + (t / spanS) * (x1 - x0);
    ctx.beginPath();
    ctx.moveTo(x, y - 4);
    ctx.lineTo(x, y);
    ctx.stroke();
    ctx.fillText(clock(startTime + t, false), Math.min(Math.max(x, x0 + 18), x1 - 18), y + 10);
  }
}

/** One labelled grid line per row of a night chart (the hypnogram's stages, the timeline's event types). */
function drawRowGrid(ctx, rows, { left, right, top, rowH, w }, styleOf) {
  ctx.textAlign = "right";
  rows.forEach((row, i) => {
    const y = top + (i + 0.5) * rowH;
    ctx.strokeStyle = cssVar("--grid");
    ctx.beginPath();
    ctx.moveTo(left, y);
    ctx.lineTo(w - right, y);
    ctx.stroke();
    const [colour, label] = styleOf(row);
    ctx.fillStyle = colour;
    ctx.fillText(label, left - 8, y);
  });
}

function drawHypnogram() {
  const view = state.bed;
  const canvas = $("hypnogram");
  if (!view || !view.hyp || $("bed-view").hidden) return;
  const { ctx, w, h: hgt } = prepareCanvas(canvas);
  const left = 52, right = 12, top = 8, bottom = 24;
  const rowH = (hgt - top - bottom) / HYPNOGRAM_ROWS.length;
  const span = nightSpan(view);
  const { stages, epoch_s: epochS, start_time: start } = view.hyp;
  const xOf = (t) => left + (t / span) * (w - left - right);
  const yOf = (stage) => top + (HYPNOGRAM_ROWS.indexOf(stage) + 0.5) * rowH;
  drawRowGrid(ctx, HYPNOGRAM_ROWS, { left, right, top, rowH, w }, (stage) => [
    cssVar(`--stage-${stage}`),
    STAGE_TEXT[stage],
  ]);
  let drawn = 0;
  let previous = null;
  ctx.lineWidth = 1.5;
  for (let i = 0; i < stages.length; i += 1) {
    const s = stages[i];
    if (!HYPNOGRAM_ROWS.includes(s)) {
      previous = null;
      continue;
    }
    const x0 = xOf(i * epochS);
    const x1 = Math.max(xOf((i + 1) * epochS), x0 + 1.5);
    const y = yOf(s);
    ctx.fillStyle = cssVar(`--stage-${s}`);
    ctx.fillRect(x0, y - rowH * 0.3, x1 - x0, rowH * 0.6);
    if (previous !== null && previous !== s) {
      ctx.strokeStyle = cssVar("--trace-dim");
      ctx.beginPath();
      ctx.moveTo(x0, yOf(previous));
      ctx.lineTo(x0, y);
      ctx.stroke();
    }
    previous = s;
    drawn += 1;
  }
  if (view.highlight !== null) {
    const x = xOf((view.highlight + 0.5) * epochS);
    ctx.strokeStyle = cssVar("--accent");
    ctx.lineWidth = 2;
    ctx.beginPath();
    ctx.moveTo(x, top);
    ctx.lineTo(x, hgt - bottom);
    ctx.stroke();
  }
  ctx.lineWidth = 1;
  drawTimeAxis(ctx, left, w - right, hgt - bottom + 6, span, start);
  canvas.dataset.epochs = String(drawn);
  canvas.setAttribute("aria-label", `hypnogram: ${drawn} scored epochs, latest ${STAGE_NAME[stages[stages.length - 1]] || "—"}`);
}

const EVENT_ORDER = ["obstructive_apnea", "central_apnea", "mixed_apnea", "apnea", "hypopnea", "desaturation", "arousal"];

function eventColour(type) {
  if (/apnea|hypopnea|respiratory/.test(type)) return cssVar("--ev-resp");
  if (/desat|spo2/.test(type)) return cssVar("--ev-spo2");
  if (/arousal/.test(type)) return cssVar("--ev-arousal");
  if (/brady|tachy|cardiac|asystole/.test(type)) return cssVar("--ev-cardiac");
  return cssVar("--ev-other");
}

function drawEvents() {
  const view = state.bed;
  const canvas = $("events-timeline");
  if (!view || !view.hyp || $("bed-view").hidden) return;
  const { ctx, w, h: hgt } = prepareCanvas(canvas);
  const left = 150, right = 12, top = 6, bottom = 24;
  const types = [...new Set(view.events.map((e) => e.type))].sort(
    (a, b) => ((EVENT_ORDER.indexOf(a) + 1 || 99) - (EVENT_ORDER.indexOf(b) + 1 || 99)) || a.localeCompare(b),
  );
  const rows = ["alerts", ...types];
  const rowH = Math.min(26, (hgt - top - bottom) / Math.max(rows.length, 3));
  const span = nightSpan(view);
  const start = view.hyp.start_time;
  const xOf = (t) => left + (Math.min(Math.max(t, 0), span) / span) * (w - left - right);
  drawRowGrid(ctx, rows, { left, right, top, rowH, w }, (row) =>
    row === "alerts" ? [cssVar("--text"), "Alerts"] : [eventColour(row), humanize(row)],
  );
  for (const e of view.events) {
    const y = top + (rows.indexOf(e.type) + 0.5) * rowH;
    const x0 = xOf(e.onset_s);
    const x1 = Math.max(xOf(e.onset_s + (e.duration_s || 0)), x0 + 3);
    ctx.fillStyle = eventColour(e.type);
    ctx.fillRect(x0, y - rowH * 0.32, x1 - x0, rowH * 0.64);
  }
  const y = top + 0.5 * rowH;
  let markers = 0;
  for (const a of view.alerts.values()) {
    const x = xOf(a.raised_at - start);
    const r = Math.max(5, rowH * 0.3);
    ctx.beginPath();
    ctx.moveTo(x, y - r);
    ctx.lineTo(x + r, y + r);
    ctx.lineTo(x - r, y + r);
    ctx.closePath();
    ctx.fillStyle = cssVar(`--${a.priority}`);
    ctx.strokeStyle = cssVar(`--${a.priority}`);
    ctx.lineWidth = 1.5;
    if (a.state === "raised") ctx.fill();
    else ctx.stroke();
    markers += 1;
  }
  ctx.lineWidth = 1;
  if (view.highlight !== null) {
    const x = xOf((view.highlight + 0.5) * view.hyp.epoch_s);
    ctx.strokeStyle = cssVar("--accent");
    ctx.lineWidth = 2;
    ctx.beginPath();
    ctx.moveTo(x, top);
    ctx.lineTo(x, hgt - bottom);
    ctx.stroke();
    ctx.lineWidth = 1;
  }
  if (!view.events.length && !markers) {
    ctx.textAlign = "center";
    ctx.fillStyle = cssVar("--muted");
    ctx.fillText("No events detected yet tonight.", (left + w) / 2, (top + hgt - bottom) / 2 + rowH / 2);
  }
  drawTimeAxis(ctx, left, w - right, hgt - bottom + 6, span, start);
  canvas.dataset.events = String(view.events.length);
  canvas.dataset.alerts = String(markers);
  canvas.setAttribute("aria-label", `timeline: ${view.events.length} detected events, ${markers} alerts`);
}

function traceColour(channel) {
  if (/^EEG/i.test(channel)) return cssVar("--tr-eeg");
  if (/^EOG/i.test(channel)) return cssVar("--tr-eog");
  if (/EMG|chin|leg/i.test(channel)) return cssVar("--tr-emg");
  if (/ECG|EKG/i.test(channel)) return cssVar("--tr-ecg");
  if (/^(ABD|THX|AF|flow|thor|abdo)/i.test(channel)) return cssVar("--tr-resp");
  return cssVar("--tr-other");
}

function drawWaveform() {
  const view = state.bed;
  const canvas = $("waveform");
  if (!view || $("bed-view").hidden) return;
  const { ctx, w, h: hgt } = prepareCanvas(canvas);
  const wave = view.wave;
  if (!wave || !wave.channels.length) {
    ctx.textAlign = "center";
    ctx.fillStyle = cssVar("--muted");
    ctx.fillText(view.waveError || "Loading…", w / 2, hgt / 2);
    $("waveform-note").textContent = "";
    canvas.dataset.traces = "0";
    return;
  }
  const left = 92, right = 10, top = 4, bottom = 22;
  const lanes = wave.channels.length;
  const laneH = (hgt - top - bottom) / lanes;
  const samples = Math.max(...wave.signals.map((s) => s.length), 1);
  const seconds = samples / wave.fs;
  const xOf = (i) => left + (i / Math.max(samples - 1, 1)) * (w - left - right);
  wave.channels.forEach((channel, lane) => {
    const mid = top + (lane + 0.5) * laneH;
    ctx.strokeStyle = cssVar("--grid");
    ctx.lineWidth = 1;
    ctx.beginPath();
    ctx.moveTo(left, mid);
    ctx.lineTo(w - right, mid);
    ctx.stroke();
    const colour = traceColour(channel);
    ctx.fillStyle = colour;
    ctx.textAlign = "right";
    ctx.fillText(channel, left - 8, mid);
    const signal = wave.signals[lane] || [];
    ctx.strokeStyle = colour;
    ctx.lineWidth = 1.2;
    ctx.beginPath();
    signal.forEach((v, i) => {
      const z = Math.max(-4, Math.min(4, finite(v) ?? 0));
      const y = mid - (z / 4) * laneH * 0.48;
      if (i === 0) ctx.moveTo(xOf(i), y);
      else ctx.lineTo(xOf(i), y);
    });
    ctx.stroke();
  });
  ctx.fillStyle = cssVar("--muted");
  ctx.textAlign = "center";
  for (let s = 0; s <= seconds + 0.01; s += 5) {
    ctx.fillText(`${s} s`, Math.min(Math.max(left + (s / seconds) * (w - left - right), left + 12), w - right - 14), hgt - bottom / 2 + 2);
  }
  $("waveform-note").textContent = `epoch ${wave.epoch} · ${clock(wave.start_time)} · ${wave.fs} Hz · scaled per channel`;
  canvas.dataset.traces = String(lanes);
  canvas.dataset.epoch = String(wave.epoch);
  canvas.setAttribute("aria-label", `waveforms of epoch ${wave.epoch}: ${wave.channels.join(", ")}`);
}

function redrawBed() {
  if (!state.bed || $("bed-view").hidden) return;
  drawHypnogram();
  drawEvents();
  drawWaveform();
}

// ---------------------------------------------------------------------------------------------------------
// boot

function boot() {
  $("signin-form").addEventListener("submit", (event) => {
    event.preventDefault();
    signIn($("signin-token").value.trim());
  });
  $("signout-button").addEventListener("click", () => signOut("Signed out."));
  $("bed-back").addEventListener("click", () => { location.hash = ""; });
  $("query-form").addEventListener("submit", runQuery);
  window.addEventListener("hashchange", route);
  let resizeTimer = null;
  window.addEventListener("resize", () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(redrawBed, 150);
  });
  renderClock();
  const saved = sessionStorage.getItem(TOKEN_KEY);
  if (saved) signIn(saved);
  else showSignIn();
}

boot();
