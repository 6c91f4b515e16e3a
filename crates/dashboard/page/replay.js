// failover-lab replay: plays a recording back (GET /recording: its header and items in time
// order). Play and pause, step to the previous or next event, scrub, change the speed; the
// page shows the failover service's view, the data received and the story at the chosen time.
"use strict";

const $ = (sel) => document.querySelector(sel);
let rec = null;      // { header, items }
let now = 0;         // ms since the recording began
let end = 0;
let playing = false;
let lastFrame = null;

function secs(ms) { return (ms / 1000).toFixed(2) + " s"; }

// The last item of `key` at or before `t`.
function lastAt(key, t) {
  let found = null;
  for (const it of rec.items) {
    if (it.at_ms > t) break;
    if (it[key]) found = it[key];
  }
  return found;
}

function eventTimes() {
  return rec.items.filter((it) => it.event).map((it) => it.at_ms);
}

function render() {
  $("#now").textContent = secs(now);
  $("#scrub").value = String(now);
  const status = lastAt("status", now);
  const sample = lastAt("sample", now);
  $("#epoch").textContent = status ? status.epoch : "…";
  $("#primary").textContent = status && status.primary ? status.primary : "nobody";
  $("#received").textContent = sample ? sample.received.toLocaleString("en-US") : "0";
  const box = $("#adapters");
  for (const name of rec.header.adapters) {
    let card = box.querySelector(`[data-adapter="${name}"]`);
    if (!card) {
      card = document.createElement("article");
      card.className = "adapter";
      card.dataset.adapter = name;
      card.innerHTML = `<h3><span class="name"></span><span class="role"></span></h3>
        <div class="score"></div><dl><dt>points accepted from it</dt><dd class="accepted"></dd></dl>`;
      card.querySelector(".name").textContent = name;
      box.append(card);
    }
    const member = status ? status.adapters.find((a) => a[0] === name) : null;
    const role = member ? member[1] : "None";
    card.className = "adapter " + role;
    const r = card.querySelector(".role");
    r.textContent = role;
    r.className = "role " + role;
    card.querySelector(".score").textContent = member ? member[2] : "";
    const a = sample && sample.adapters[name];
    card.querySelector(".accepted").textContent = a ? a.accepted.toLocaleString("en-US") : "0";
  }
  renderCoverage();
  const feed = $("#feed");
  feed.innerHTML = "";
  let latest = null;
  for (const it of rec.items) {
    if (!it.event) continue;
    const li = document.createElement("li");
    li.textContent = `${secs(it.at_ms)}  ${it.event.text}`;
    li.dataset.kind = it.event.kind;
    if (it.at_ms > now) li.className = "future";
    li.dataset.at = String(it.at_ms);
    if (it.at_ms <= now) latest = li;
    feed.append(li);
  }
  if (latest) latest.classList.add("current");
}

const COLOURS = ["#6a1b9a", "#00838f", "#5d4037", "#ef6c00"];

// The data coverage up to the chosen time: who delivered each tick (by data time), late ones
// pale, holes boxed in red.
function renderCoverage() {
  const item = rec.items.find((it) => it.coverage);
  $("#coverage-panel").hidden = !item;
  if (!item) return;
  const W = 900, H = 40;
  const x = (ms) => (Math.max(0, Math.min(end, ms)) / Math.max(1, end)) * W;
  const spans = [...item.coverage].sort((a, b) => a.first_seq - b.first_seq);
  const parts = [];
  for (const s of spans) {
    if (s.from_ms > now) continue;
    const i = Math.max(0, rec.header.adapters.indexOf(s.adapter));
    const to = Math.min(s.to_ms, now);
    parts.push(`<rect x="${x(s.from_ms)}" y="4" width="${Math.max(1, x(to) - x(s.from_ms))}" height="${H - 8}" fill="${COLOURS[i % COLOURS.length]}" opacity="${s.late ? 0.35 : 0.9}"><title>ticks ${s.first_seq}-${s.last_seq} from ${s.adapter}${s.late ? ", late" : ""}</title></rect>`);
  }
  for (let k = 1; k < spans.length; k++) {
    const a = spans[k - 1], b = spans[k];
    if (b.first_seq > a.last_seq + 1 && b.from_ms <= now) {
      parts.push(`<rect class="hole" x="${x(a.to_ms)}" y="4" width="${Math.max(1, x(b.from_ms) - x(a.to_ms))}" height="${H - 8}" fill="none" stroke="#c62828" stroke-width="2"><title>${b.first_seq - a.last_seq - 1} ticks delivered by nobody</title></rect>`);
    }
  }
  $("#coverage").innerHTML = parts.join("");
}

// Moves to `t` (clamped), stopping playback when the end is reached.
function scrubTo(t) {
  now = Math.max(0, Math.min(end, Math.round(t)));
  if (now >= end) setPlaying(false);
  render();
}

function step(forward) {
  const times = eventTimes();
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

// For tests and the console.
window.replay = { scrubTo, step, setPlaying, get now() { return now; } };

async function load() {
  const resp = await fetch("/recording");
  rec = await resp.json();
  end = rec.items.length ? rec.items[rec.items.length - 1].at_ms : 0;
  $("#title").textContent = rec.header.title;
  $("#end").textContent = secs(end);
  $("#scrub").max = String(end);
  $("#scrub").addEventListener("input", (e) => scrubTo(Number(e.target.value)));
  $("#prev").addEventListener("click", () => step(false));
  $("#next").addEventListener("click", () => step(true));
  $("#play").addEventListener("click", () => {
    if (!playing && now >= end) now = 0;
    setPlaying(!playing);
  });
  document.body.dataset.loaded = "1";
  render();
}

load();
