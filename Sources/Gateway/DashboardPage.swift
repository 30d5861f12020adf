/// The live dashboard served at `/`: one self-contained page (no build step, no CDN).
///
/// It subscribes to every camera over `/ws`, keeps each camera's last position and resumes with
/// `since` after a reconnect (so nothing is missed), renders at most once per animation frame,
/// and passes a `?token=` of its own URL on to the WebSocket and the API.
enum DashboardPage {
    static let html = Array(#"""
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Traffic risk — live</title>
<style>
  :root {
    --bg: #0f1419; --panel: #171d24; --card: #1c232c; --line: #2a333e; --text: #e6edf3; --muted: #8b98a5;
    --none: #3b4754; --low: #2f9e6e; --medium: #d6a526; --high: #e8663d; --critical: #e5484d; --accent: #4aa3ff;
  }
  * { box-sizing: border-box; }
  body { margin: 0; background: var(--bg); color: var(--text); font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
  header { display: flex; align-items: center; gap: 24px; padding: 14px 24px; background: var(--panel); border-bottom: 1px solid var(--line); position: sticky; top: 0; z-index: 2; }
  header h1 { font-size: 17px; margin: 0; font-weight: 600; letter-spacing: .2px; }
  .pill { display: inline-flex; align-items: center; gap: 8px; padding: 4px 12px; border-radius: 999px; background: var(--card); border: 1px solid var(--line); font-size: 13px; }
  .dot { width: 9px; height: 9px; border-radius: 50%; background: var(--muted); }
  #status[data-state="live"] .dot { background: var(--low); box-shadow: 0 0 8px var(--low); }
  #status[data-state="connecting"] .dot, #status[data-state="redis-down"] .dot { background: var(--medium); }
  #status[data-state="offline"] .dot { background: var(--critical); }
  .stats { display: flex; gap: 20px; margin-left: auto; color: var(--muted); font-size: 13px; }
  .stats b { color: var(--text); font-variant-numeric: tabular-nums; font-weight: 600; }
  main { display: grid; grid-template-columns: 1fr 360px; gap: 20px; padding: 20px 24px; align-items: start; }
  #grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(190px, 1fr)); gap: 12px; }
  .camera-card { background: var(--card); border: 1px solid var(--line); border-left: 5px solid var(--none); border-radius: 10px; padding: 12px 14px; contain: content; transition: border-color .3s; }
  .camera-card .top { display: flex; justify-content: space-between; align-items: baseline; }
  .camera-card .name { font-weight: 600; font-size: 15px; }
  .camera-card .age { color: var(--muted); font-size: 12px; font-variant-numeric: tabular-nums; }
  .camera-card.stale { opacity: .55; }
  .frame { position: relative; margin: 8px 0 4px; border-radius: 6px; overflow: hidden; background: #0a0e12; }
  .frame[hidden] { display: none; }
  .frame img { display: block; width: 100%; height: auto; }
  .frame svg { position: absolute; inset: 0; width: 100%; height: 100%; }
  .frame rect { fill: none; stroke: var(--medium); stroke-width: 2px; vector-effect: non-scaling-stroke; }
  .frame-time { position: absolute; right: 6px; bottom: 4px; font-size: 11px; color: #fff; text-shadow: 0 0 3px #000; }
  .level { display: inline-block; margin: 8px 0 6px; padding: 2px 10px; border-radius: 6px; font-size: 12px; font-weight: 700; text-transform: uppercase; letter-spacing: .6px; background: var(--none); }
  .meta { display: grid; grid-template-columns: auto 1fr; gap: 2px 10px; color: var(--muted); font-size: 12px; }
  .meta span:nth-child(even) { color: var(--text); text-align: right; font-variant-numeric: tabular-nums; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
  .flag { display: block; color: var(--critical); font-weight: 600; font-size: 12px; margin: -2px 0 6px; }
  .flag[hidden] { display: none; }
  [data-level="low"] { border-left-color: var(--low); } [data-level="low"] .level { background: var(--low); }
  [data-level="medium"] { border-left-color: var(--medium); } [data-level="medium"] .level { background: var(--medium); color: #1b1400; }
  [data-level="high"] { border-left-color: var(--high); } [data-level="high"] .level { background: var(--high); }
  [data-level="critical"] { border-left-color: var(--critical); } [data-level="critical"] .level { background: var(--critical); }
  .flash { animation: flash 1.2s ease-out; }
  @keyframes flash { 0% { box-shadow: 0 0 0 3px var(--critical); background: #3a1d20; } 100% { box-shadow: 0 0 0 0 transparent; } }
  aside { background: var(--panel); border: 1px solid var(--line); border-radius: 10px; position: sticky; top: 76px; max-height: calc(100vh - 96px); display: flex; flex-direction: column; }
  aside h2 { font-size: 14px; margin: 0; padding: 12px 16px; border-bottom: 1px solid var(--line); display: flex; justify-content: space-between; }
  #alert-list { list-style: none; margin: 0; padding: 0; overflow-y: auto; }
  #alert-list li { padding: 10px 16px; border-bottom: 1px solid var(--line); display: grid; grid-template-columns: auto 1fr auto; gap: 4px 10px; align-items: center; }
  #alert-list li.new { animation: flash 1.2s ease-out; }
  #alert-list .cam { font-weight: 600; }
  #alert-list .level { justify-self: start; }
  #alert-list .when { color: var(--muted); font-size: 12px; font-variant-numeric: tabular-nums; }
  #alert-list .what { grid-column: 1 / -1; color: var(--muted); font-size: 12px; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
  .empty { color: var(--muted); padding: 24px 16px; text-align: center; }
  #banner { display: none; margin: 0 24px; margin-top: 12px; padding: 10px 14px; border-radius: 8px; background: #3a2f12; border: 1px solid var(--medium); color: #f5dca0; }
  #banner.show { display: block; }
  @media (max-width: 900px) { main { grid-template-columns: 1fr; } aside { position: static; max-height: 50vh; } }
</style>
</head>
<body>
<header>
  <h1>Traffic risk · live</h1>
  <span id="status" class="pill" data-state="connecting"><span class="dot"></span><span id="status-text">Connecting…</span></span>
  <div class="stats">
    <span>Cameras <b id="stat-cameras">0</b></span>
    <span>Results/s <b id="stat-rate">0</b></span>
    <span>Alerts <b id="stat-alerts">0</b></span>
  </div>
</header>
<div id="banner"></div>
<main>
  <section id="grid" aria-label="Cameras"><div class="empty" id="grid-empty">Waiting for camera results…</div></section>
  <aside aria-label="Alerts"><h2>Alerts <span id="alert-count" class="when">0</span></h2><ul id="alert-list"><li class="empty" id="alerts-empty">No alerts yet</li></ul></aside>
</main>
<script>
"use strict";
const LEVELS = ["none", "low", "medium", "high", "critical"];
const ALERT_LEVEL = LEVELS.indexOf("high");
const MAX_ALERTS = 100;
const token = new URLSearchParams(location.search).get("token");
const suffix = token ? "?token=" + encodeURIComponent(token) : "";
const cameras = new Map();      // id → {el, result, receivedAt}
const positions = {};           // id → {offset, epoch}: resume point after a reconnect
const pending = new Map();      // id → result, rendered on the next animation frame
const seenAlerts = new Set();
let socket = null, retry = 500, frameQueued = false, received = 0, alertTotal = 0;
const rateWindow = [];

function setStatus(state, text) {
  const el = document.getElementById("status");
  el.dataset.state = state;
  document.getElementById("status-text").textContent = text;
}
function banner(text) {
  const el = document.getElementById("banner");
  el.textContent = text || "";
  el.classList.toggle("show", !!text);
}
function isAlert(r) {
  const a = r.riskAssessment || {};
  return LEVELS.indexOf(a.maxRiskLevel) >= ALERT_LEVEL || a.hasDangerousDriving === true;
}
function ageText(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return s + "s ago";
  if (s < 3600) return Math.floor(s / 60) + "m ago";
  return Math.floor(s / 3600) + "h ago";
}
function card(id) {
  let c = cameras.get(id);
  if (c) return c;
  const el = document.createElement("article");
  el.className = "camera-card";
  el.dataset.camera = id;
  el.innerHTML = '<div class="top"><span class="name">Camera ' + id + '</span><span class="age">—</span></div>' +
    '<div class="frame" hidden><img alt=""><svg preserveAspectRatio="none"></svg><span class="frame-time"></span></div>' +
    '<span class="level">—</span><span class="flag" hidden>⚠ dangerous driving</span>' +
    '<div class="meta"><span>Objects</span><span class="objects">—</span><span>Groups</span><span class="groups">—</span>' +
    '<span>Model</span><span class="model">—</span><span>LLM latency</span><span class="latency">—</span></div>';
  c = { el, result: null, receivedAt: 0 };
  cameras.set(id, c);
  const grid = document.getElementById("grid");
  const empty = document.getElementById("grid-empty");
  if (empty) empty.remove();
  const after = [...grid.children].find(n => Number(n.dataset.camera) > id);
  grid.insertBefore(el, after || null);
  document.getElementById("stat-cameras").textContent = cameras.size;
  return c;
}
function render(id, r, flash) {
  const c = card(id);
  c.result = r; c.receivedAt = Date.now();
  const a = r.riskAssessment || {};
  const el = c.el;
  el.dataset.level = a.maxRiskLevel || "none";
  el.dataset.request = r.requestId || "";
  el.querySelector(".level").textContent = a.maxRiskLevel || "none";
  el.querySelector(".flag").hidden = a.hasDangerousDriving !== true;
  el.querySelector(".objects").textContent = Array.isArray(r.detectedObjects) ? r.detectedObjects.length : "—";
  el.querySelector(".groups").textContent = Array.isArray(r.trafficGroups) ? r.trafficGroups.length : "—";
  el.querySelector(".model").textContent = r.llmModel || "—";
  el.querySelector(".latency").textContent = typeof r.llmLatency === "number" ? r.llmLatency.toFixed(2) + " s" : "—";
  el.querySelector(".age").textContent = "just now";
  // The last frame stays until a newer one comes, captioned with its own time and boxes.
  if (r.frameImageRef && typeof r.frameImageRef.url === "string") showFrame(el, r);
  el.classList.remove("stale");
  if (flash) { el.classList.remove("flash"); void el.offsetWidth; el.classList.add("flash"); }
}
// The frame image of a result (served by the gateway, not carried in the result) with the
// detection boxes drawn over it in the frame's own pixel coordinates.
function showFrame(el, r) {
  const box = el.querySelector(".frame");
  const img = box.querySelector("img");
  const svg = box.querySelector("svg");
  img.onload = () => {
    const w = Number(r.frameWidth) || img.naturalWidth, h = Number(r.frameHeight) || img.naturalHeight;
    svg.setAttribute("viewBox", "0 0 " + w + " " + h);
    svg.replaceChildren();
    for (const o of Array.isArray(r.detectedObjects) ? r.detectedObjects : []) {
      const b = o && o.bbox;
      if (!Array.isArray(b) || b.length < 4 || !b.every(Number.isFinite)) continue;
      const rect = document.createElementNS("http://www.w3.org/2000/svg", "rect");
      rect.setAttribute("x", Math.min(b[0], b[2])); rect.setAttribute("y", Math.min(b[1], b[3]));
      rect.setAttribute("width", Math.abs(b[2] - b[0])); rect.setAttribute("height", Math.abs(b[3] - b[1]));
      svg.appendChild(rect);
    }
    box.hidden = false;
    box.dataset.request = r.requestId || "";
    box.querySelector(".frame-time").textContent = r.timestamp ? "frame " + new Date(r.timestamp).toLocaleTimeString() : "";
  };
  img.src = r.frameImageRef.url + suffix;
}
// A snapshot entry too large for the snapshot frame is read from the API instead.
async function loadOmitted(id, url, offset) {
  try {
    const response = await fetch(url + suffix);
    // Only if no newer result arrived meanwhile.
    if (response.ok && (positions[id] || {}).offset === offset) render(id, await response.json(), false);
  } catch { /* the next live result fills it */ }
}
function addAlert(id, r, fresh) {
  if (!r.requestId || seenAlerts.has(r.requestId)) return;
  seenAlerts.add(r.requestId);
  alertTotal++;
  const list = document.getElementById("alert-list");
  const empty = document.getElementById("alerts-empty");
  if (empty) empty.remove();
  const li = document.createElement("li");
  const a = r.riskAssessment || {};
  li.dataset.request = r.requestId;
  li.innerHTML = '<span class="cam"></span><span class="level" style="margin:0"></span><span class="when"></span><span class="what"></span>';
  li.querySelector(".cam").textContent = "Camera " + id;
  const level = li.querySelector(".level");
  level.textContent = a.maxRiskLevel || "none";
  level.style.background = "var(--" + (LEVELS.includes(a.maxRiskLevel) ? a.maxRiskLevel : "none") + ")";
  li.querySelector(".when").textContent = r.timestamp ? new Date(r.timestamp).toLocaleTimeString() : "";
  li.querySelector(".what").textContent = (a.hasDangerousDriving ? "Dangerous driving · " : "") + (r.requestId || "");
  if (fresh) li.className = "new";
  // Newest first by frame time, whether the alert came live or from the API.
  const ts = Date.parse(r.timestamp) || Date.now();
  li.dataset.ts = ts;
  const before = [...list.children].find(n => Number(n.dataset.ts) < ts);
  list.insertBefore(li, before || null);
  while (list.children.length > MAX_ALERTS) list.lastChild.remove();
  document.getElementById("stat-alerts").textContent = alertTotal;
  document.getElementById("alert-count").textContent = list.children.length;
}
function queue(id, r) {
  pending.set(id, r);
  if (isAlert(r)) addAlert(id, r, true);
  if (!frameQueued) { frameQueued = true; requestAnimationFrame(flush); }
}
function flush() {
  frameQueued = false;
  for (const [id, r] of pending) render(id, r, isAlert(r));
  pending.clear();
}
function remember(id, offset, epoch) {
  if (typeof offset === "number" && epoch) positions[id] = { offset, epoch };
}
function connect() {
  setStatus("connecting", "Connecting…");
  const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws" + suffix;
  const ws = new WebSocket(url);
  socket = ws;
  ws.onopen = () => {
    retry = 500;
    const since = Object.keys(positions).length ? positions : undefined;
    ws.send(JSON.stringify({ type: "subscribe", cameras: "*", since, batch: true }));
  };
  ws.onmessage = (event) => {
    let m;
    try { m = JSON.parse(event.data); } catch { return; }
    switch (m.type) {
      case "result":
        received++;
        remember(m.camera, m.offset, m.epoch);
        queue(m.camera, m.result);
        break;
      case "results": // batched: each element is a "result" message, in order
        for (const r of m.results || []) {
          received++;
          remember(r.camera, r.offset, r.epoch);
          queue(r.camera, r.result);
        }
        break;
      case "snapshot":
        for (const c of m.cameras || []) {
          if (c.omitted && c.omitted.url) { remember(c.camera, c.offset, c.epoch); loadOmitted(c.camera, c.omitted.url, c.offset); continue; }
          if (!c.result) continue;
          remember(c.camera, c.offset, c.epoch);
          render(c.camera, c.result, false);
        }
        setStatus("live", "Live");
        break;
      case "recovered":
        if (m.recovered === false) banner("Camera " + m.camera + ": missed results could not be recovered (" + m.reason + "); showing its latest state.");
        setStatus("live", "Live");
        break;
      case "gap":
        banner("Camera " + m.camera + ": some results were lost" + (m.reason ? " (" + m.reason + ")" : "") + ".");
        break;
      case "status":
        if (m.shutdown) { setStatus("connecting", "Server restarting…"); break; }
        if (m.redis === "down") { setStatus("redis-down", "Redis unavailable — waiting"); banner("The live stream is interrupted; missed results will be recovered."); }
        else if (m.redis === "up" && ws.readyState === WebSocket.OPEN && document.getElementById("status").dataset.state === "redis-down") { setStatus("live", "Live"); banner(""); }
        break;
      case "error":
        banner("Server: " + m.reason + " — " + m.detail);
        break;
    }
  };
  ws.onclose = () => {
    if (socket !== ws) return;
    setStatus("offline", "Disconnected — retrying");
    setTimeout(connect, retry + Math.random() * retry);
    retry = Math.min(retry * 2, 10000);
  };
}
async function loadRecentAlerts() {
  try {
    const response = await fetch("/api/cameras" + suffix);
    if (!response.ok) return;
    const list = await response.json();
    for (const camera of list.slice(0, 50)) {
      const r = await fetch("/api/cameras/" + camera.camera + "/alerts" + (suffix ? suffix + "&" : "?") + "limit=5");
      if (!r.ok) continue;
      const body = await r.json();
      for (const alert of (body.alerts || []).reverse()) addAlert(camera.camera, alert, false);
    }
  } catch { /* the live stream fills the list anyway */ }
}
setInterval(() => {
  const now = Date.now();
  for (const c of cameras.values()) {
    if (!c.receivedAt) continue;
    c.el.querySelector(".age").textContent = ageText(now - c.receivedAt);
    c.el.classList.toggle("stale", now - c.receivedAt > 60000);
  }
  rateWindow.push(received); if (rateWindow.length > 5) rateWindow.shift();
  document.getElementById("stat-rate").textContent = rateWindow.length > 1 ? Math.round((rateWindow[rateWindow.length - 1] - rateWindow[0]) / (rateWindow.length - 1)) : 0;
}, 1000);
connect();
loadRecentAlerts();
</script>
</body>
</html>
"""#.utf8)
}
