// chainsettle status page: polls /v1/status, receives new events over
// /v1/stream (server-sent events). Everything from the API is rendered with
// textContent: event arguments come from the chain, i.e. from anyone.
"use strict";

const MAX_EVENTS = 50;
const STATUS_EVERY_MS = 2000;
const events = new Map(); // id -> event, newest first when rendered
const reorgCounts = new Map();

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}

function row(cells, attrs) {
  const tr = document.createElement("tr");
  for (const [k, v] of Object.entries(attrs || {})) tr.setAttribute(k, v);
  for (const c of cells) tr.appendChild(c instanceof Node ? c : el("td", c));
  return tr;
}

function fill(tbody, rows, emptyText, span) {
  tbody.replaceChildren(...(rows.length ? rows : [row([Object.assign(el("td", emptyText), { colSpan: span })], { class: "empty" })]));
}

function short(hex) {
  return typeof hex === "string" && hex.length > 14 ? hex.slice(0, 8) + "…" + hex.slice(-4) : hex;
}

function fmt(v) {
  return v === null || v === undefined ? "–" : v;
}

async function getJSON(url) {
  const res = await fetch(url, { headers: { Accept: "application/json" } });
  if (!res.ok) throw new Error(url + ": HTTP " + res.status);
  return res.json();
}

// ---- chains, payouts, reconciliation ------------------------------------

function renderChains(chains) {
  const rows = chains.map((c) => {
    const healthy = (c.endpoints || []).filter((e) => e && e.healthy).length;
    const lagCls = c.lag_threshold_blocks !== null && c.lag_blocks > c.lag_threshold_blocks ? "bad" : "";
    const state = c.halted_reason ? "halted: " + c.halted_reason : fmt(c.state);
    return row([
      el("td", c.chain), el("td", state, c.halted_reason ? "bad" : ""), el("td", fmt(c.head)),
      el("td", fmt(c.indexed)), el("td", fmt(c.finalized)), el("td", fmt(c.lag_blocks), lagCls),
      el("td", fmt(c.lag_seconds)), el("td", (c.endpoints || []).length ? healthy + "/" + c.endpoints.length : "–"),
      el("td", fmt(c.reorg_count)), el("td", fmt(c.last_error), c.last_error ? "warn" : ""),
    ], { "data-chain": c.chain });
  });
  fill(document.querySelector("#chains tbody"), rows, "no chains configured", 10);
}

function renderPayouts(payouts) {
  const box = document.getElementById("payouts");
  if (!payouts) return;
  const parts = [];
  const queue = payouts.queue || [];
  if (queue.length) {
    const table = el("table");
    table.appendChild(row(["chain", "asset", "state", "requests", "amount"].map((h) => el("th", h))));
    for (const q of queue) {
      table.appendChild(row([q.chain, q.asset, q.state, q.count, q.amount],
        { "data-payout-state": q.state, "data-chain": q.chain }));
    }
    parts.push(table);
  } else {
    parts.push(el("div", "no unpaid payout requests", "muted"));
  }
  for (const b of payouts.open_batches || []) {
    parts.push(el("div", b.chain + ": " + b.count + " batch(es) " + b.state));
  }
  for (const k of payouts.kill_switches || []) {
    parts.push(el("div", "payouts stopped (" + k.scope + "): " + k.reason, "bad"));
  }
  box.className = "";
  box.replaceChildren(...parts);
}

function renderReconciliation(rec) {
  const box = document.getElementById("reconciliation");
  if (!rec) return;
  const table = el("table");
  table.appendChild(row(["chain", "height", "status", "checked", "mismatches", "finished"].map((h) => el("th", h))));
  for (const r of rec.latest || []) {
    const cls = r.status === "ok" ? "good" : "bad";
    table.appendChild(row([el("td", r.chain), el("td", fmt(r.height)), el("td", r.status, cls),
      el("td", r.checked), el("td", r.mismatches), el("td", r.finished_at)], { "data-reconciliation-chain": r.chain }));
  }
  const parts = [(rec.latest || []).length ? table : el("span", "no reconciliation runs yet", "muted")];
  for (const p of rec.paused_assets || []) parts.push(el("div", "paused: " + p.asset_id + " (" + p.reason + ")", "bad"));
  box.className = "";
  box.replaceChildren(...parts);
}

async function refreshStatus() {
  try {
    const status = await getJSON("/v1/status");
    renderChains(status.chains || []);
    renderPayouts(status.payouts);
    renderReconciliation(status.reconciliation);
    let reorged = false;
    for (const c of status.chains || []) {
      if (reorgCounts.has(c.chain) && reorgCounts.get(c.chain) !== c.reorg_count) reorged = true;
      reorgCounts.set(c.chain, c.reorg_count);
    }
    // A reorg deletes events the page may show: reload the list.
    if (reorged) await loadRecentEvents(true);
    document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString();
  } catch (err) {
    document.getElementById("updated").textContent = "status unavailable: " + err.message;
  }
}

// ---- events ----------------------------------------------------------------

function addEvent(ev, fresh) {
  if (!ev || typeof ev.id !== "number" || events.has(ev.id)) return false;
  ev._fresh = fresh;
  events.set(ev.id, ev);
  return true;
}

function renderEvents() {
  const sorted = [...events.values()].sort((a, b) => b.id - a.id).slice(0, MAX_EVENTS);
  for (const id of [...events.keys()]) if (!sorted.some((e) => e.id === id)) events.delete(id);
  const rows = sorted.map((e) => {
    const tr = row([
      el("td", e.id), el("td", e.chain), el("td", e.block_number), el("td", e.event),
      el("td", short(e.address), "mono"), el("td", short(e.tx_hash), "mono"),
      el("td", JSON.stringify(e.args), "args"), el("td", e.final ? "yes" : "no"),
    ], { "data-event-id": String(e.id), "data-chain": e.chain });
    if (e._fresh) tr.classList.add("new");
    e._fresh = false;
    return tr;
  });
  fill(document.querySelector("#events tbody"), rows, "no events yet", 8);
}

async function loadRecentEvents(replace) {
  try {
    const page = await getJSON("/v1/events?order=desc&limit=" + MAX_EVENTS);
    if (replace) events.clear();
    for (const ev of page.events || []) addEvent(ev, false);
    renderEvents();
  } catch (err) {
    /* the next status poll reports the API as unavailable */
  }
}

function connectStream() {
  const badge = document.getElementById("sse-state");
  // EventSource reconnects by itself and sends Last-Event-ID, so nothing is missed.
  const source = new EventSource("/v1/stream");
  source.onopen = () => {
    badge.textContent = "live";
    badge.className = "badge on";
    // The server subscribed this stream before answering, so a list loaded
    // now overlaps it (duplicates are dropped by id) and leaves no gap.
    loadRecentEvents(false);
  };
  source.onerror = () => { badge.textContent = "reconnecting"; badge.className = "badge off"; };
  source.addEventListener("chain_event", (msg) => {
    let ev;
    try { ev = JSON.parse(msg.data); } catch (err) { return; }
    if (addEvent(ev, true)) renderEvents();
  });
  window.chainsettleStream = source;
}

connectStream();
refreshStatus();
setInterval(refreshStatus, STATUS_EVERY_MS);
