// pullman's dashboard: the daemon's queue, live, over its own HTTP API (pullman/api).
// No framework, no build step, nothing from the network but this daemon. Data comes from
// GET /api/jobs, the event stream GET /api/events (hello, job, progress, limit) and each job's
// GET /api/jobs/{id}/history; changes go out with the cookie the token was traded for and the
// X-Pullman-CSRF header the API asks of state-changing requests. Text from the daemon is only
// ever set as textContent (a ref is untrusted text).
"use strict";

const ACTIVE = ["running", "waiting", "queued", "paused"];
const FINISHED_SHOWN = 20;
const CHART_W = 600;
const CHART_H = 120;

const jobs = new Map(); // id -> job row (as /api/jobs gives it)
const live = new Map(); // id -> the latest progress event (connections, recycles, retries)
const series = new Map(); // id -> {samples: [[t, rate, done]], marks: [{at, kind}]}
const cards = new Map(); // id -> its <article>
const asked = new Set(); // ids whose history was fetched

const $ = (id) => document.getElementById(id);

// ----------------------------------------------------------------------------- formatting

function human(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (Math.abs(n) >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
  return i === 0 ? `${Math.round(n)} B` : `${n.toFixed(1)} ${units[i]}`;
}

function rate(r) {
  if (!r || r <= 0) return "";
  for (const [unit, scale] of [["GB/s", 1e9], ["MB/s", 1e6], ["kB/s", 1e3]]) {
    if (r >= scale) return `${(r / scale).toPrecision(3)} ${unit}`;
  }
  return `${Math.round(r)} B/s`;
}

function duration(s) {
  s = Math.max(0, Math.round(s));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  if (h) return `${h} h ${String(m).padStart(2, "0")} min`;
  if (m) return `${m} min ${String(sec).padStart(2, "0")} s`;
  return `${sec} s`;
}

function clock(t) {
  return new Date(t * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", hour12: false });
}

// ----------------------------------------------------------------------------- the API

async function api(method, path, body) {
  const init = { method, credentials: "same-origin", headers: { "X-Pullman-CSRF": "1" } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  const doc = await response.json().catch(() => ({}));
  if (!response.ok) {
    const e = doc.error || {};
    const text = [e.what || `HTTP ${response.status}`, e.hint].filter(Boolean).join(" — ");
    throw new Error(text);
  }
  return doc;
}

function say(text, ok = false) {
  const box = $("message");
  box.textContent = text;
  box.classList.toggle("ok", ok);
  box.hidden = !text;
}

async function act(what, fn) {
  try {
    await fn();
    say("");
  } catch (err) {
    say(`${what}: ${err.message}`);
  }
}

// ----------------------------------------------------------------------------- the queue

function setJob(job) {
  jobs.set(job.id, job);
  if (job.state !== "running") live.delete(job.id);
}

async function loadHistory(id) {
  try {
    const doc = await api("GET", `/api/jobs/${id}/history`);
    const s = chartData(id);
    const known = new Set(s.samples.map((x) => x[0]));
    s.samples = doc.samples.filter((x) => !known.has(x[0])).concat(s.samples);
    s.samples.sort((a, b) => a[0] - b[0]);
    s.marks = doc.marks.map((e) => ({ at: e.at, kind: e.kind, detail: e.detail })).concat(s.marks);
    draw(id);
  } catch (err) {
    // a job from before this daemon started has no history: the chart stays hidden
  }
}

function chartData(id) {
  if (!series.has(id)) series.set(id, { samples: [], marks: [] });
  return series.get(id);
}

function order(a, b) {
  const rank = (j) => ACTIVE.indexOf(j.state);
  return rank(a) - rank(b) || b.priority - a.priority || a.id - b.id;
}

function render() {
  const all = [...jobs.values()];
  const active = all.filter((j) => ACTIVE.includes(j.state)).sort(order);
  const done = all
    .filter((j) => !ACTIVE.includes(j.state))
    .sort((a, b) => (b.finished_at || b.updated_at) - (a.finished_at || a.updated_at))
    .slice(0, FINISHED_SHOWN);
  place($("jobs"), active);
  place($("finished"), done);
  $("queue-count").textContent = active.length ? `(${active.length})` : "";
  $("finished-count").textContent = `(${all.length - active.length})`;
  $("finished-box").hidden = all.length === active.length;
  $("empty").hidden = active.length > 0;
  for (const [id, card] of cards) {
    if (!jobs.has(id) || (!active.includes(jobs.get(id)) && !done.includes(jobs.get(id)))) {
      card.remove();
      cards.delete(id);
    }
  }
}

function place(container, list) {
  list.forEach((job, i) => {
    const card = cards.get(job.id) || makeCard(job.id);
    fill(card, job);
    if (container.children[i] !== card) container.insertBefore(card, container.children[i] || null);
  });
}

function makeCard(id) {
  const card = $("job-template").content.firstElementChild.cloneNode(true);
  card.dataset.job = String(id);
  card.querySelectorAll("button[data-action]").forEach((button) => {
    button.addEventListener("click", () =>
      act(button.dataset.action, async () => {
        button.disabled = true;
        try {
          const doc = await api("POST", `/api/jobs/${id}/${button.dataset.action}`);
          setJob(doc.job);
          render();
        } finally {
          button.disabled = false;
        }
      }),
    );
  });
  const prio = card.querySelector("input.priority");
  prio.addEventListener("change", () =>
    act("priority", async () => {
      const doc = await api("PUT", `/api/jobs/${id}/priority`, { priority: Number(prio.value) });
      setJob(doc.job);
      render();
    }),
  );
  cards.set(id, card);
  return card;
}

function fill(card, job) {
  if (!asked.has(job.id) && job.started_at) { // its chart so far, once it is on the page
    asked.add(job.id);
    loadHistory(job.id);
  }
  const p = live.get(job.id);
  const size = (p && p.size) || job.bytes_total || 0;
  const done = p ? p.done : job.bytes_done;
  const speed = job.state === "running" ? (p ? p.rate : job.rate) : 0;
  const eta = job.state === "running" ? (p ? p.eta : job.eta) : null;
  card.className = `job s-${job.state}`;
  card.querySelector(".badge").textContent = job.state;
  card.querySelector(".ref").textContent = job.ref;
  card.querySelector(".job-id").textContent = `job ${job.id}`;
  const bar = card.querySelector("progress.bar");
  const fraction = job.state === "done" ? 1 : size ? Math.min(1, done / size) : 0;
  bar.value = fraction;
  bar.setAttribute("aria-label", `${job.ref}: ${(fraction * 100).toFixed(1)} %`);
  const text = (cls, value) => { card.querySelector(cls).textContent = value; };
  text(".f-percent", size ? `${(fraction * 100).toFixed(1)} %` : "");
  text(".f-bytes", size ? `${human(done)} / ${human(size)}` : done ? human(done) : "");
  text(".f-rate", rate(speed));
  text(".f-eta", eta ? `${duration(eta)} left, done by ${clock(Date.now() / 1000 + eta)}` : "");
  text(".f-conns", p && job.state === "running" ? `${p.connections} connections` : "");
  const recycles = p ? p.recycles : 0;
  const retries = p ? p.retries : 0;
  text(".f-recycles", recycles || retries ? `${recycles} recycled, ${retries} retried` : "");
  const window = job.options && job.options.window;
  text(".f-window", window ? `window ${window}` : "");
  const why = card.querySelector(".why");
  const reason = job.state === "failed" ? job.error : job.wait_reason;
  why.textContent = reason ? (job.state === "failed" ? reason : `waiting: ${reason}`) : "";
  if (job.state === "paused" && reason) why.textContent = `paused: ${reason}`;
  why.hidden = !reason || !["waiting", "paused", "failed"].includes(job.state);
  const can = {
    pause: ["queued", "waiting", "running"].includes(job.state),
    resume: ["paused", "failed"].includes(job.state),
    cancel: ["queued", "waiting", "running", "paused", "failed"].includes(job.state),
  };
  card.querySelectorAll("button[data-action]").forEach((b) => { b.hidden = !can[b.dataset.action]; });
  const prio = card.querySelector("input.priority");
  if (document.activeElement !== prio) prio.value = String(job.priority);
  card.querySelector(".prio").hidden = !ACTIVE.includes(job.state);
  draw(job.id, card);
}

// ----------------------------------------------------------------------------- the chart

const SVG = "http://www.w3.org/2000/svg";

function draw(id, card = cards.get(id)) {
  const s = series.get(id);
  const job = jobs.get(id);
  if (!card || !job) return;
  const figure = card.querySelector(".chart");
  if (!s || s.samples.length < 2) { figure.hidden = true; return; }
  figure.hidden = false;
  const t0 = Math.min(job.started_at || s.samples[0][0], s.samples[0][0]);
  const last = s.samples[s.samples.length - 1][0];
  const t1 = Math.max(last, job.state === "running" ? Date.now() / 1000 : last);
  const peak = Math.max(1, ...s.samples.map((x) => x[1]));
  const x = (t) => ((t - t0) / Math.max(1, t1 - t0)) * CHART_W;
  const y = (r) => CHART_H - (r / (peak * 1.1)) * CHART_H;
  const points = s.samples.map((p) => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`);
  card.querySelector(".line").setAttribute("d", `M${points.join("L")}`);
  const first = x(s.samples[0][0]).toFixed(1);
  const end = x(last).toFixed(1);
  card.querySelector(".area").setAttribute("d", `M${first},${CHART_H}L${points.join("L")}L${end},${CHART_H}Z`);
  const group = card.querySelector(".marks");
  group.replaceChildren();
  for (const mark of s.marks) {
    if (mark.at < t0 || mark.at > t1) continue;
    const kind = mark.kind === "recycled" || mark.kind === "retried" ? mark.kind
      : ["paused", "waiting"].includes(mark.kind) ? "stop" : null;
    if (!kind) continue;
    const line = document.createElementNS(SVG, "line");
    const at = x(mark.at).toFixed(1);
    line.setAttribute("x1", at);
    line.setAttribute("x2", at);
    line.setAttribute("y1", "0");
    line.setAttribute("y2", String(CHART_H));
    line.setAttribute("class", kind);
    const title = document.createElementNS(SVG, "title");
    title.textContent = `${clock(mark.at)} ${mark.kind}${mark.detail ? `: ${mark.detail}` : ""}`;
    line.appendChild(title);
    group.appendChild(line);
  }
  card.querySelector(".c-peak").textContent = `peak ${rate(peak)}`;
  card.querySelector(".c-span").textContent = `${clock(t0)} – ${clock(t1)} (${duration(t1 - t0)})`;
}

// ----------------------------------------------------------------------------- events

function onProgress(p) {
  const before = live.get(p.job_id);
  live.set(p.job_id, p);
  const s = chartData(p.job_id);
  const at = p.at || Date.now() / 1000;
  if (!s.samples.length || s.samples[s.samples.length - 1][0] < at) s.samples.push([at, p.rate, p.done]);
  if (before && p.recycles > before.recycles) s.marks.push({ at, kind: "recycled", detail: `${p.recycles - before.recycles} connections` });
  if (before && p.retries > before.retries) s.marks.push({ at, kind: "retried", detail: `${p.retries - before.retries} requests` });
  const job = jobs.get(p.job_id);
  if (job) {
    Object.assign(job, { bytes_done: p.done, bytes_total: p.size, rate: p.rate, eta: p.eta });
    const card = cards.get(job.id);
    if (card) fill(card, job);
  }
}

function onJob(doc) {
  const job = doc.job;
  if (doc.from && doc.to !== doc.from && ["paused", "waiting"].includes(doc.to)) {
    chartData(job.id).marks.push({ at: job.updated_at, kind: doc.to, detail: job.wait_reason || "" });
  }
  setJob(job);
  render();
}

function showLimit(doc) {
  $("limit-shown").textContent = doc.shown || (doc.limit ? rate(doc.limit) : "unlimited");
}

function connect() {
  const source = new EventSource("/api/events");
  const status = $("live");
  source.addEventListener("open", () => { status.textContent = "live"; status.className = "live on"; });
  source.addEventListener("error", () => { status.textContent = "reconnecting…"; status.className = "live off"; });
  source.addEventListener("hello", (e) => {
    const doc = JSON.parse(e.data);
    const seen = new Set(doc.jobs.map((j) => j.id));
    for (const id of [...jobs.keys()]) if (!seen.has(id)) jobs.delete(id);
    doc.jobs.forEach(setJob);
    showLimit(doc);
    render();
  });
  source.addEventListener("job", (e) => onJob(JSON.parse(e.data)));
  source.addEventListener("progress", (e) => onProgress(JSON.parse(e.data)));
  source.addEventListener("limit", (e) => showLimit(JSON.parse(e.data)));
}

// ----------------------------------------------------------------------------- controls

function wire() {
  $("add").addEventListener("submit", (e) => {
    e.preventDefault();
    const ref = $("add-ref").value.trim();
    if (!ref) return;
    act("add", async () => {
      const priority = Number($("add-priority").value) || 0;
      const doc = await api("POST", "/api/jobs", { refs: [ref], priority });
      $("add-ref").value = "";
      for (const j of doc.jobs) say(`queued job ${j.id}: ${j.ref}`, true);
    });
  });
  $("limit").addEventListener("submit", (e) => {
    e.preventDefault();
    const value = $("limit-value").value.trim() || "off";
    act("limit", async () => {
      showLimit(await api("PUT", "/api/limit", { limit: value }));
      $("limit-value").value = "";
    });
  });
}

async function start() {
  wire();
  try {
    const doc = await api("GET", "/api/jobs");
    doc.jobs.forEach(setJob);
    showLimit(doc);
    render();
  } catch (err) {
    say(`cannot reach the daemon: ${err.message}`);
  }
  connect();
  setInterval(() => { for (const id of live.keys()) draw(id); }, 5000); // the time axis moves on
}

document.addEventListener("DOMContentLoaded", start);
