// failover-lab dashboard: one page for a run, live or recorded. Live, it renders the snapshots
// the server pushes over server-sent events (/events); recorded (`failover-lab replay`, the
// body's data-source="recording"), it makes the same snapshots from the recording (/recording)
// and plays them back with its time controls. Either way: the system diagram, one card per
// adapter, the score chart, the data coverage, the endpoint's audit and the story. Buttons
// POST to /api/action (only under `failover-lab demo --dashboard`).
"use strict";

const COLOURS = ["#6a1b9a", "#ef6c00", "#00838f", "#5d4037"];
const WINDOW_MS = 60000;
// What the page keeps to scrub back through (ten minutes of snapshots).
const KEEP_MS = 600000;
let history = [];
// Paused: the page shows history[shown] and no longer follows the pair (which goes on).
let paused = false;
let shown = 0;
let actionsEnabled = false;
let latest = null;

const $ = (sel) => document.querySelector(sel);

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}

// A number as the page shows it; "—" for what a recording does not hold.
function fmt(n) { return n == null ? "—" : Math.round(n).toLocaleString("en-US"); }
function secs(ms) { return (ms / 1000).toFixed(1) + " s"; }

function renderHeader(s) {
  $("#group").textContent = s.group;
  $("#epoch").textContent = s.epoch;
  $("#primary").textContent = s.primary || "none";
  $("#timeout").textContent = secs(s.failover_timeout_ms);
  const c = $("#connection");
  c.textContent = replaying ? "recorded" : s.connected ? "live" : "failover service unreachable";
  c.className = s.connected ? "ok" : "bad";
}

function renderAdapters(s) {
  const box = $("#adapters");
  for (const a of s.adapters) {
    let card = box.querySelector(`[data-adapter="${CSS.escape(a.id)}"]`);
    if (!card) {
      card = el("article", { class: "adapter", "data-adapter": a.id });
      card.innerHTML = `
        <h3><span class="name"></span><span class="role"></span></h3>
        <div class="score"></div>
        <div class="score-age"></div>
        <dl>
          <dt>mode</dt><dd class="mode"></dd>
          <dt>heartbeat age</dt><dd><span class="age-text"></span><div class="age"><div></div></div></dd>
          <dt>egress</dt><dd class="rate"></dd>
          <dt>buffered</dt><dd class="buffered"></dd>
          <dt>collected</dt><dd class="collected"></dd>
          <dt>egressed</dt><dd class="egressed"></dd>
        </dl>
        <div class="buttons" hidden>
          <button data-action="kill">kill</button>
          <button data-action="pause">pause</button>
          <button data-action="resume">resume</button>
          <button data-action="restart">restart</button>
          <button data-action="cut_source">cut source</button>
          <button data-action="heal_source">restore source</button>
        </div>`;
      card.querySelector(".name").textContent = a.id;
      for (const b of card.querySelectorAll("button")) b.dataset.adapter = a.id;
      box.append(card);
    }
    card.className = "adapter " + a.role;
    const role = card.querySelector(".role");
    role.textContent = a.role;
    role.className = "role " + a.role;
    // A score is what the adapter last reported: once its heartbeats are late (stale, or
    // dead), the card says how old that report is instead of showing it as current.
    const timeout = s.failover_timeout_ms || 1;
    const stale = a.heartbeat_age_ms > timeout;
    const score = card.querySelector(".score");
    score.textContent = a.score;
    score.classList.toggle("stale", stale);
    card.querySelector(".score-age").textContent = stale
      ? `last reported ${secs(a.heartbeat_age_ms)} ago`
      : "failover score";
    card.querySelector(".mode").textContent = a.mode;
    card.querySelector(".age-text").textContent = a.heartbeat_age_ms == null
      ? "not recorded"
      : `${secs(a.heartbeat_age_ms)} of failoverTimeout ${secs(timeout)}`;
    const bar = card.querySelector(".age");
    bar.firstElementChild.style.width = Math.min(100, (100 * a.heartbeat_age_ms) / timeout) + "%";
    bar.classList.toggle("late", a.heartbeat_age_ms > timeout);
    card.querySelector(".rate").textContent = fmt(a.egress_rate) + " points/s";
    card.querySelector(".buffered").textContent = fmt(a.buffered) + " points";
    card.querySelector(".collected").textContent = fmt(a.collected);
    card.querySelector(".egressed").textContent = fmt(a.egressed);
    card.querySelector(".buttons").hidden = !actionsEnabled;
  }
  for (const card of box.querySelectorAll(".adapter")) {
    if (!s.adapters.some((a) => a.id === card.dataset.adapter)) card.remove();
  }
}

function renderChart(upto) {
  const svg = $("#chart");
  const W = 900, H = 180, top = 10, bottom = 20;
  const hist = history.slice(0, upto + 1);
  if (hist.length === 0) { svg.innerHTML = ""; return; }
  const end = hist[hist.length - 1].at_ms;
  const start = end - WINDOW_MS;
  const x = (t) => ((t - start) / WINDOW_MS) * W;
  const y = (score) => top + (1 - score / 100) * (H - top - bottom);
  const ids = [];
  for (const s of hist) for (const a of s.adapters) if (!ids.includes(a.id)) ids.push(a.id);
  let parts = [];
  for (let t = Math.ceil(start / 10000) * 10000; t <= end; t += 10000) {
    parts.push(`<line x1="${x(t)}" y1="${top}" x2="${x(t)}" y2="${H - bottom}" stroke="#e0e0e0"/>`);
    parts.push(`<text x="${x(t)}" y="${H - 5}" font-size="10" text-anchor="middle" fill="#888">${Math.round((t - end) / 1000)} s</text>`);
  }
  for (const v of [0, 50, 100]) {
    parts.push(`<text x="4" y="${y(v) + 4}" font-size="10" fill="#888">${v}</text>`);
  }
  ids.forEach((id, i) => {
    const pts = [];
    for (const s of hist) {
      if (s.at_ms < start) continue;
      const a = s.adapters.find((m) => m.id === id);
      if (a) pts.push(`${x(s.at_ms).toFixed(1)},${y(a.score).toFixed(1)}`);
    }
    parts.push(`<polyline fill="none" stroke="${COLOURS[i % COLOURS.length]}" stroke-width="2" points="${pts.join(" ")}"/>`);
    // Role band under the line: green while Primary.
    for (let k = 1; k < hist.length; k++) {
      const s = hist[k - 1];
      if (s.at_ms < start) continue;
      const a = s.adapters.find((m) => m.id === id);
      if (a && a.role === "Primary") {
        parts.push(`<rect x="${x(s.at_ms)}" y="${H - bottom - 4 - i * 5}" width="${Math.max(1, x(hist[k].at_ms) - x(s.at_ms))}" height="4" fill="${COLOURS[i % COLOURS.length]}" opacity="0.6"/>`);
      }
    }
  });
  svg.innerHTML = parts.join("");
  $("#legend").innerHTML = ids
    .map((id, i) => `<span style="color:${COLOURS[i % COLOURS.length]}">━ ${id}</span>`)
    .join("") + `<span style="color:#888">(bars at the bottom: while Primary)</span>`;
}

// The data coverage of the chart's minute: each adapter's runs of ticks in its chart colour
// (pale when late), and the ticks nobody delivered boxed in red.
function renderCoverage(s) {
  const svg = $("#coverage");
  const runs = (s.endpoint && s.endpoint.coverage) || [];
  const end = s.at_ms;
  const start = end - WINDOW_MS;
  const W = 900, H = 24;
  const x = (t) => (Math.max(start, Math.min(end, t)) - start) / WINDOW_MS * W;
  const ids = s.adapters.map((a) => a.id);
  const parts = [];
  const sorted = [...runs].sort((a, b) => a.first_seq - b.first_seq);
  for (const r of sorted) {
    if (r.to_ms < start) continue;
    const i = Math.max(0, ids.indexOf(r.adapter));
    parts.push(`<rect class="run" x="${x(r.from_ms)}" y="2" width="${Math.max(1, x(r.to_ms) - x(r.from_ms))}" height="${H - 4}" fill="${COLOURS[i % COLOURS.length]}" opacity="${r.late ? 0.35 : 0.9}"><title>ticks ${r.first_seq}-${r.last_seq} from ${r.adapter}${r.late ? ", late" : ""}</title></rect>`);
  }
  for (let k = 1; k < sorted.length; k++) {
    const a = sorted[k - 1], b = sorted[k];
    if (b.first_seq > a.last_seq + 1 && b.from_ms >= start) {
      parts.push(`<rect class="hole" x="${x(a.to_ms)}" y="2" width="${Math.max(1, x(b.from_ms) - x(a.to_ms))}" height="${H - 4}" fill="none" stroke="#c62828" stroke-width="2"><title>${b.first_seq - a.last_seq - 1} ticks delivered by nobody</title></rect>`);
    }
  }
  svg.innerHTML = parts.join("");
}

function renderAudit(s) {
  const e = s.endpoint;
  const box = $("#audit");
  if (!e) { box.textContent = "the endpoint's audit is not available here"; return; }
  const cell = (label, v, bad) =>
    `<div class="${bad ? "bad" : ""}"><b>${fmt(v)}</b>${label}</div>`;
  if (e.expected == null) {
    // A recording samples what the endpoint holds; its full audit is the run's report.
    box.innerHTML = cell("received", e.received) + cell("epoch", s.epoch);
    return;
  }
  box.innerHTML =
    cell("received", e.received) + cell("expected", e.expected) +
    cell("lost", e.lost, e.lost > 0) + cell("duplicated", e.duplicated, e.duplicated > 0) +
    cell("refused (stale epoch)", e.refused_stale) + cell("fenced epoch", e.fenced_epoch) +
    cell("largest gap (ms)", e.largest_gap_ms);
}

function addEvents(events) {
  const feed = $("#feed");
  for (const ev of events) {
    const li = el("li", { class: ev.kind }, el("time", {}, secs(ev.at_ms)), ev.text);
    feed.prepend(li);
  }
  while (feed.children.length > 500) feed.lastElementChild.remove();
}

const ROLE_FILL = { Primary: "#2e7d32", Secondary: "#1565c0", Stale: "#c62828" };
const SVG_NS = "http://www.w3.org/2000/svg";

function svgEl(tag, attrs, text) {
  const e = document.createElementNS(SVG_NS, tag);
  setAttrs(e, attrs || {});
  if (text !== undefined) e.textContent = text;
  return e;
}

// Sets only the attributes that changed (null removes one), so an update touches nothing else.
function setAttrs(e, attrs) {
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null) {
      if (e.hasAttribute(k)) e.removeAttribute(k);
    } else if (e.getAttribute(k) !== String(v)) {
      e.setAttribute(k, v);
    }
  }
}

function setText(e, t) {
  if (e.textContent !== t) e.textContent = t;
}

const LINK_STYLE = {
  flowing: { stroke: "#ef6c00", "stroke-width": 4, "stroke-dasharray": "10 6", class: "flowing" },
  ok: { stroke: "#607d8b", "stroke-width": 2, "stroke-dasharray": null, class: "link" },
  late: { stroke: "#c62828", "stroke-width": 2, "stroke-dasharray": "4 4", class: "link late" },
  idle: { stroke: "#cfd8dc", "stroke-width": 2, "stroke-dasharray": null, class: "link" },
};

// The diagram's elements: made once for a set of adapters (and whether the page may act), then
// updated in place at every snapshot, so a button keeps its keyboard focus and takes a click
// between two updates (rebuilding the drawing four times a second took both away).
let diagram = null;

function diagramBox(parent, x, y, w, h, lines) {
  const g = svgEl("g", { class: "node" });
  const rect = svgEl("rect", { x, y, width: w, height: h, rx: 8, fill: "#fff", stroke: "#37474f" });
  const texts = [];
  for (let i = 0; i < lines; i++) {
    texts.push(svgEl("text", {
      x: x + w / 2, y: y + 20 + i * 16, "text-anchor": "middle", fill: "#222",
      "font-size": i ? 12 : 14, "font-weight": i ? "normal" : "bold",
    }));
  }
  g.append(rect, ...texts);
  parent.append(g);
  return { rect, texts };
}

function fillBox(box, fill, lines) {
  setAttrs(box.rect, { fill });
  const ink = fill === "#fff" ? "#222" : "#fff";
  box.texts.forEach((t, i) => {
    setAttrs(t, { fill: ink });
    setText(t, lines[i] || "");
  });
}

function buildDiagram(svg, ids) {
  const links = svgEl("g", { class: "links" });
  const nodes = svgEl("g", { class: "nodes" });
  svg.replaceChildren(links, nodes);
  const n = Math.max(1, ids.length);
  const rowH = 240 / n;
  const d = { key: ids.join("\n"), adapters: new Map() };
  ids.forEach((id, i) => {
    const cy = 15 + rowH * i + rowH / 2;
    const y = cy - 32;
    const a = {
      source: svgEl("line", { x1: 170, y1: 135, x2: 330, y2: cy }),
      endpoint: svgEl("line", { x1: 500, y1: cy, x2: 650, y2: 205 }),
      service: svgEl("line", { x1: 500, y1: cy, x2: 650, y2: 65 }),
    };
    links.append(a.source, a.endpoint, a.service);
    a.box = diagramBox(nodes, 330, y, 170, 64, 3);
    d.adapters.set(id, a);
  });
  d.source = diagramBox(nodes, 20, 105, 150, 60, 2);
  fillBox(d.source, "#fff", ["data source", "collected from"]);
  d.service = diagramBox(nodes, 650, 35, 230, 60, 2);
  d.endpoint = diagramBox(nodes, 650, 175, 230, 60, 2);
  diagram = d;
}

// The five processes and their links, live: who collects and egresses (moving dashes), whose
// heartbeats are late (red), the epoch the endpoint is fenced at. It is a picture only: the
// page's actions are on the adapters' cards (one per adapter) and the pair's mode buttons.
// `before` is the previous snapshot (for what moved since).
function renderDiagram(s, before) {
  const svg = $("#diagram");
  const ids = s.adapters.map((a) => a.id);
  if (!diagram || diagram.key !== ids.join("\n")) {
    buildDiagram(svg, ids);
  }
  const e = s.endpoint;
  const timeout = s.failover_timeout_ms || 1;
  for (const a of s.adapters) {
    const d = diagram.adapters.get(a.id);
    const prev = before && before.adapters.find((b) => b.id === a.id);
    const collecting = prev ? a.collected > prev.collected : false;
    setAttrs(d.source, LINK_STYLE[collecting ? "flowing" : "idle"]);
    setAttrs(d.endpoint, LINK_STYLE[a.egress_rate > 0 ? "flowing" : "idle"]);
    setAttrs(d.service, LINK_STYLE[a.heartbeat_age_ms > timeout ? "late" : "ok"]);
    const score = a.heartbeat_age_ms > timeout
      ? `last ${a.score} · ${secs(a.heartbeat_age_ms)} ago`
      : `score ${a.score}`;
    fillBox(d.box, ROLE_FILL[a.role] || "#9e9e9e",
      [a.id, `${a.role} · ${score}`, `${a.mode} · ${fmt(a.egress_rate)} points/s out`]);
  }
  fillBox(diagram.service, "#fff", ["failover service", `epoch ${s.epoch} · Primary ${s.primary || "nobody"}`]);
  const fenced = e && e.fenced_epoch != null ? `fenced at epoch ${e.fenced_epoch} · ` : "";
  fillBox(diagram.endpoint, "#fff", ["data endpoint", e ? `${fenced}${fmt(e.received)} points` : "audit not available"]);
}

// Draws history[i]: the header, the cards, the diagram, the chart, the coverage and the audit.
function renderSnapshot(i) {
  const s = history[i];
  renderHeader(s);
  renderAdapters(s);
  // Adapters report what they collected with their heartbeats (every failoverTimeout/2): compare
  // with a snapshot a failoverTimeout back to see who collects.
  const back = Math.max(1000, s.failover_timeout_ms || 0);
  let j = i - 1;
  while (j > 0 && history[j].at_ms > s.at_ms - back) j--;
  renderDiagram(s, j >= 0 ? history[j] : undefined);
  renderChart(i);
  renderCoverage(s);
  renderAudit(s);
  // How many times the page has drawn a snapshot (tests wait on it).
  document.body.dataset.renders = String(Number(document.body.dataset.renders || 0) + 1);
}

// Shows history[i]: the newest when following the pair, an earlier one when paused.
function renderAt(i) {
  const s = history[i];
  if (!s) return;
  renderSnapshot(i);
  const newest = history[history.length - 1];
  $("#rewind").max = String(history.length - 1);
  $("#rewind").value = String(i);
  $("#shown").textContent = paused
    ? `paused: ${secs(newest.at_ms - s.at_ms)} before now`
    : "live";
}

function render(s) {
  latest = s;
  if (!paused) renderAt(history.length - 1);
  else renderAt(shown);
}

function setPaused(on) {
  paused = on;
  shown = history.length - 1;
  $("#pause").textContent = on ? "back to live" : "pause";
  if (history.length) renderAt(shown);
}

async function act(button) {
  const body = { action: button.dataset.action };
  if (button.dataset.adapter) body.adapter = button.dataset.adapter;
  if (button.dataset.mode) body.mode = button.dataset.mode;
  const out = $("#action-result");
  out.className = "";
  out.textContent = "…";
  try {
    const r = await fetch("/api/action", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    const answer = await r.json();
    out.textContent = answer.done || answer.error;
    out.className = r.ok ? "" : "error";
  } catch (err) {
    out.textContent = "the dashboard server did not answer: " + err;
    out.className = "error";
  }
}

$("#pause").addEventListener("click", () => setPaused(!paused));
$("#rewind").addEventListener("input", (e) => {
  if (replaying) { scrubTo(Number(e.target.value)); return; }
  if (!paused) setPaused(true);
  shown = Number(e.target.value);
  renderAt(shown);
});

document.addEventListener("click", (e) => {
  const b = e.target.closest("[data-action]");
  if (b) act(b);
});
function connect() {
  const source = new EventSource("/events");
  source.addEventListener("initial", (m) => {
    const init = JSON.parse(m.data);
    actionsEnabled = init.actions;
    $("#controls").hidden = !actionsEnabled;
    history = init.history;
    paused = false;
    $("#feed").innerHTML = "";
    addEvents(init.events);
    if (history.length) render(history[history.length - 1]);
  });
  source.addEventListener("snapshot", (m) => {
    const s = JSON.parse(m.data);
    addEvents(s.events);
    history.push(s);
    while (history.length && history[0].at_ms < s.at_ms - KEEP_MS) {
      history.shift();
      // A paused page keeps showing the same snapshot while older ones are let go.
      if (paused) shown = Math.max(0, shown - 1);
    }
    render(s);
  });
  source.addEventListener("lagged", () => { source.close(); connect(); });
  source.onerror = () => {
    const c = $("#connection");
    c.textContent = "dashboard server unreachable; retrying";
    c.className = "bad";
  };
}

// ---- A recorded run: the same snapshots, made from the recording, and its time controls ----

let replaying = false;
let story = [];      // the recording's events, oldest first
let now = 0;         // ms since the recording began
let end = 0;
let playing = false;
let lastFrame = null;

// The recording's items as the live page's snapshots: one at each status and each sample, with
// each adapter's role and score (the service's view), the points the endpoint accepted from it
// and its egress rate (the samples), and what the recording does not hold left empty.
function snapshotsOf(rec) {
  const h = rec.header;
  const coverage = (rec.items.find((it) => it.coverage) || {}).coverage || [];
  const staleSince = {};
  const rates = {};
  let status = null, sample = null, before = null;
  const snaps = [];
  for (const it of rec.items) {
    if (it.status) status = it.status;
    else if (it.sample) {
      before = sample;
      sample = it.sample;
      for (const id of h.adapters) {
        const a = sample.adapters[id], b = before && before.adapters[id];
        const dt = before ? (sample.at_ms - before.at_ms) / 1000 : 0;
        rates[id] = a && b && dt > 0 ? (a.accepted - b.accepted) / dt : 0;
      }
    } else continue;
    const t = it.at_ms;
    const adapters = h.adapters.map((id) => {
      const m = status && status.adapters.find((x) => x[0] === id);
      const role = m ? m[1] : "None";
      if (role === "Stale") { if (staleSince[id] === undefined) staleSince[id] = t; } else delete staleSince[id];
      const a = sample && sample.adapters[id];
      return {
        id, role, mode: h.mode, score: m ? m[2] : 0,
        // A member is stale once its last heartbeat is failoverTimeout old.
        heartbeat_age_ms: role === "Stale" ? t - staleSince[id] + h.failover_timeout_ms : null,
        buffered: null, collected: null,
        egressed: a ? a.accepted : 0, egress_rate: rates[id] || 0,
      };
    });
    snaps.push({
      at_ms: t, group: "recorded", connected: true,
      epoch: status ? status.epoch : 0, primary: (status && status.primary) || "",
      failover_timeout_ms: h.failover_timeout_ms, note: "", adapters,
      endpoint: {
        received: sample ? sample.received : 0, expected: null, fenced_epoch: null,
        coverage: coverage.filter((c) => c.from_ms <= t).map((c) => ({ ...c, to_ms: Math.min(c.to_ms, t) })),
      },
      events: [],
    });
  }
  return snaps;
}

// The story up to `now`, newest first: what is still to come greyed, the latest event marked.
function renderStory() {
  const feed = $("#feed");
  feed.replaceChildren();
  let current = null;
  for (const ev of story) {
    const li = el("li", { "data-kind": ev.kind }, el("time", {}, secs(ev.at_ms)), ev.text);
    if (ev.at_ms > now) li.classList.add("future");
    else current = li;
    feed.prepend(li);
  }
  if (current) current.classList.add("current");
}

// Moves to `t` (clamped): the last snapshot at or before it, and the story up to it.
function scrubTo(t) {
  now = Math.max(0, Math.min(end, Math.round(t)));
  if (now >= end) setPlaying(false);
  let i = 0;
  while (i + 1 < history.length && history[i + 1].at_ms <= now) i++;
  if (history.length) renderSnapshot(i);
  renderStory();
  $("#rewind").value = String(now);
  $("#shown").textContent = `t = ${secs(now)} of ${secs(end)}`;
}

function step(forward) {
  const times = story.map((e) => e.at_ms);
  const t = forward ? times.find((x) => x > now) : [...times].reverse().find((x) => x < now);
  scrubTo(t === undefined ? (forward ? end : 0) : t);
}

function setPlaying(on) {
  playing = on;
  $("#play").textContent = on ? "pause" : "play";
  lastFrame = null;
  if (on) requestAnimationFrame(frame);
}

function frame(ts) {
  if (!playing) return;
  if (lastFrame !== null) scrubTo(now + (ts - lastFrame) * Number($("#speed").value));
  lastFrame = ts;
  if (playing) requestAnimationFrame(frame);
}

async function replay() {
  replaying = true;
  const rec = await (await fetch("/recording")).json();
  history = snapshotsOf(rec);
  story = rec.items.filter((it) => it.event).map((it) => ({ at_ms: it.at_ms, ...it.event }));
  end = rec.items.length ? rec.items[rec.items.length - 1].at_ms : 0;
  document.title = "failover-lab replay";
  $("#title").textContent = rec.header.title;
  $("#title").hidden = false;
  $("#pause").hidden = true;
  for (const p of document.querySelectorAll(".player")) p.hidden = false;
  $("#rewind").max = String(end);
  $("#rewind").step = "10";
  $("#prev").addEventListener("click", () => step(false));
  $("#next").addEventListener("click", () => step(true));
  $("#play").addEventListener("click", () => {
    if (!playing && now >= end) now = 0;
    setPlaying(!playing);
  });
  scrubTo(0);
  document.body.dataset.loaded = "1";
}

// For tests and the console.
window.lab = { scrubTo, step, setPlaying, get now() { return now; } };

if (document.body.dataset.source === "recording") replay();
else connect();
