// chainsettle status page: polls /v1/status, receives new events, payout and
// batch changes, reconciliation runs, pauses and kill switches over
// /v1/stream (server-sent events). Everything from the API is rendered with
// textContent: event arguments come from the chain, i.e. from anyone.
// Without a token the page shows what is public (README "Read scopes"): chain
// status and events, aggregate payout and reconciliation figures; a panel
// whose data needs the admin token says so. An operator may type the token:
// it is kept in sessionStorage (this tab only) and sent as a bearer token; the
// stream is then read with fetch, as EventSource cannot send a header.
"use strict";

const MAX_EVENTS = 50;
const MAX_ACTIVITY = 20;
const STATUS_EVERY_MS = 2000;
const REFRESH_DEBOUNCE_MS = 150;
const events = new Map(); // id -> event, newest first when rendered
const reorgCounts = new Map();
const activity = []; // payout and batch changes seen on the stream, newest first
let payouts = null; // the last /v1/status payouts, patched by stream messages
let reconciliation = null; // the same for reconciliation
let refreshTimer = null;
const TOKEN_KEY = "chainsettle.admin_token";
const token = sessionStorage.getItem(TOKEN_KEY) || "";
const assetUnits = new Map(); // "chain:contract" and asset id -> {symbol, decimals}, from /v1/status

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
  const headers = { Accept: "application/json" };
  if (token) headers.Authorization = "Bearer " + token;
  const res = await fetch(url, { headers });
  if (!res.ok) throw Object.assign(new Error(url + ": HTTP " + res.status), { status: res.status });
  return res.json();
}

// ---- amounts in an asset's units ------------------------------------------

// An amount from the API as exact integer text ("-0" as "0"), or null when it
// is not one: the API sends base units as integer strings; a float or an
// exponent form would have lost digits, so it is flagged, never shown.
function exactAmount(raw) {
  if (typeof raw === "number" && Number.isSafeInteger(raw)) raw = String(raw);
  if (typeof raw !== "string" || !/^-?[0-9]+$/.test(raw)) return null;
  const neg = raw.startsWith("-");
  const digits = (neg ? raw.slice(1) : raw).replace(/^0+(?=.)/, "");
  return (neg && digits !== "0" ? "-" : "") + digits;
}

// Base units (a decimal string of any size) as units, by string arithmetic: every digit kept.
function formatUnits(raw, decimals) {
  const text = exactAmount(raw);
  if (text === null || !Number.isInteger(decimals)) return null;
  const neg = text.startsWith("-");
  const digits = (neg ? text.slice(1) : text).padStart(decimals + 1, "0");
  const whole = digits.slice(0, digits.length - decimals).replace(/^0+(?=.)/, "");
  const frac = decimals ? digits.slice(digits.length - decimals).replace(/0+$/, "") : "";
  return (neg ? "-" : "") + whole + (frac ? "." + frac : "");
}

function unitsOf(key) {
  const u = assetUnits.get(key);
  return u && Number.isInteger(u.decimals) ? u : null;
}

// For a person: asset units with the symbol when known, else the exact base units.
function amountText(raw, unit) {
  if (raw === null || raw === undefined) return fmt(raw);
  const exact = exactAmount(raw);
  if (exact === null) return "not an integer amount";
  const shown = unit ? formatUnits(exact, unit.decimals) : null;
  return shown === null ? exact : (shown + " " + (unit.symbol || "")).trim();
}

// A table cell: the amount as amountText, the exact base units in its title and data attribute.
function amountCell(raw, unit) {
  const td = el("td", amountText(raw, unit), "amount");
  const exact = exactAmount(raw);
  if (exact !== null) {
    td.title = exact + " base units";
    td.setAttribute("data-base-units", exact);
  } else if (raw !== null && raw !== undefined) {
    td.classList.add("bad");
  }
  return td;
}

// A cell with the amounts in units and the raw JSON one click away; plain JSON when no unit is known.
function argsCell(e) {
  const raw = JSON.stringify(e.args);
  const unit = unitsOf(e.chain + ":" + String(e.address || "").toLowerCase());
  const amounts = unit && e.args && typeof e.args === "object"
    ? Object.entries(e.args).filter(([k, v]) => ["value", "amount", "wad"].includes(k) && formatUnits(v, unit.decimals) !== null)
    : [];
  if (!amounts.length) return el("td", raw, "args");
  const td = el("td", null, "args");
  td.appendChild(el("span", amounts.map(([k, v]) => k + " " + amountText(v, unit)).join(", "), "amount"));
  const details = el("details");
  details.appendChild(el("summary", "raw"));
  details.appendChild(el("pre", raw));
  td.appendChild(details);
  return td;
}

// ---- deliveries -------------------------------------------------------------

function setAssets(assets) {
  assetUnits.clear();
  for (const a of assets || []) {
    const unit = { symbol: a.symbol, decimals: a.decimals };
    assetUnits.set(a.id, unit);
    if (a.contract) assetUnits.set(a.chain + ":" + a.contract.toLowerCase(), unit);
  }
}

function renderDeliveries(data) {
  const rows = (data.subscriptions || []).map((s) => {
    const bad = s.state !== "active" || s.dead > 0;
    const state = s.state_reason ? s.state + ": " + s.state_reason : s.state;
    return row([
      el("td", s.id), el("td", s.sink), el("td", fmt(s.target)), el("td", s.finality + ", " + s.ordering),
      el("td", state, s.state === "active" ? "" : "bad"), el("td", fmt(s.pending)),
      el("td", s.lag_seconds === null || s.lag_seconds === undefined ? "–" : Math.round(s.lag_seconds)),
      el("td", fmt(s.dead), s.dead > 0 ? "bad" : ""),
    ], { "data-delivery": s.id, "data-state": s.state, class: bad ? "warn" : "" });
  });
  fill(document.querySelector("#deliveries tbody"), rows, "no subscriptions", 8);
}

async function refreshDeliveries() {
  try {
    renderDeliveries(await getJSON("/v1/deliveries"));
  } catch (err) {
    if (err.status === 401 || err.status === 403) {
      const note = row([Object.assign(el("td", "private: needs the admin token (or api.public = [\"deliveries\"])"),
        { colSpan: 8 })], { class: "empty", "data-needs-token": "deliveries" });
      document.querySelector("#deliveries tbody").replaceChildren(note);
    }
    /* otherwise the status poll reports the API as unavailable */
  }
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

function renderActivity() {
  if (!activity.length) return null;
  const table = el("table");
  table.id = "payout-activity";
  table.appendChild(row(["change", "id", "chain", "amount", "state"].map((h) => el("th", h))));
  for (const a of activity) {
    const attrs = a.kind === "payout" ? { "data-payout-id": String(a.id) } : { "data-batch-id": a.id };
    attrs["data-state"] = a.state;
    table.appendChild(row([a.kind, a.kind === "batch" ? short(a.id) : a.id, a.chain, amountCell(a.amount, unitsOf(a.chain + ":" + a.asset)),
      (a.previous ? a.previous + " → " : "") + a.state], attrs));
  }
  return table;
}

function renderPayouts() {
  const box = document.getElementById("payouts");
  if (!payouts) return;
  const parts = [];
  const queue = payouts.queue || [];
  if (queue.length) {
    const table = el("table");
    table.appendChild(row(["chain", "asset", "state", "requests", "amount"].map((h) => el("th", h))));
    for (const q of queue) {
      table.appendChild(row([q.chain, q.asset, q.state, q.count, amountCell(q.amount, unitsOf(q.chain + ":" + q.asset))],
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
    const div = el("div", "payouts stopped (" + k.scope + "): " + k.reason, "bad");
    div.setAttribute("data-kill-switch", k.scope);
    parts.push(div);
  }
  if (payouts.frozen_accounts) {
    const div = el("div", payouts.frozen_accounts + " account(s) frozen: no withdrawal or transfer out of them", "bad");
    div.setAttribute("data-frozen-accounts", String(payouts.frozen_accounts));
    parts.push(div);
  }
  const recent = renderActivity();
  if (recent) {
    parts.push(el("h3", "recent changes"), recent);
  } else {
    const note = el("div", "each payout's changes: private (admin token, or api.public = [\"payouts\"])", "muted");
    note.setAttribute("data-needs-token", "payouts");
    parts.push(note);
  }
  box.className = "";
  box.replaceChildren(...parts);
}

function renderReconciliation() {
  const rec = reconciliation;
  const box = document.getElementById("reconciliation");
  if (!rec) return;
  const table = el("table");
  table.appendChild(row(["chain", "height", "status", "checked", "mismatches", "finished"].map((h) => el("th", h))));
  for (const r of rec.latest || []) {
    const cls = r.status === "ok" ? "good" : "bad";
    table.appendChild(row([el("td", r.chain), el("td", fmt(r.height)), el("td", r.status, cls),
      el("td", r.checked), el("td", r.mismatches), el("td", r.finished_at)],
      { "data-reconciliation-chain": r.chain, "data-run-id": String(r.id) }));
  }
  const parts = [(rec.latest || []).length ? table : el("span", "no reconciliation runs yet", "muted")];
  for (const p of rec.paused_assets || []) {
    // The reason names an account and amounts: only shown to a reader of reconciliation details.
    const div = el("div", "paused: " + p.asset_id + (p.reason ? " (" + p.reason + ")" : ""), "bad");
    div.setAttribute("data-paused-asset", p.asset_id);
    parts.push(div);
  }
  box.className = "";
  box.replaceChildren(...parts);
}

async function refreshStatus() {
  try {
    const status = await getJSON("/v1/status");
    const unitsBefore = JSON.stringify([...assetUnits]);
    setAssets(status.assets);
    if (JSON.stringify([...assetUnits]) !== unitsBefore) renderEvents();
    renderChains(status.chains || []);
    payouts = status.payouts;
    reconciliation = status.reconciliation;
    renderPayouts();
    renderReconciliation();
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
      argsCell(e), el("td", e.final ? "yes" : "no"),
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

// ---- payout and reconciliation messages --------------------------------------

// Queue counts are aggregates the messages do not carry: fetch them soon after.
function refreshSoon() {
  if (refreshTimer !== null) return;
  refreshTimer = setTimeout(() => { refreshTimer = null; refreshStatus(); }, REFRESH_DEBOUNCE_MS);
}

function noteActivity(kind, data) {
  const id = kind === "payout" ? data.id : data.batch_id;
  activity.unshift({ kind, id, chain: data.chain, asset: data.asset, amount: kind === "payout" ? data.amount : data.total,
    state: data.state, previous: data.previous_state });
  activity.length = Math.min(activity.length, MAX_ACTIVITY);
  renderPayouts();
  refreshSoon();
}

function onReconciliation(run) {
  if (!reconciliation) return;
  const latest = (reconciliation.latest || []).filter((r) => r.chain !== run.chain || r.id > run.id);
  if (!latest.some((r) => r.chain === run.chain)) latest.push(run);
  latest.sort((a, b) => (a.chain < b.chain ? -1 : a.chain > b.chain ? 1 : 0));
  reconciliation.latest = latest;
  renderReconciliation();
}

function onAssetPause(p) {
  if (!reconciliation) return;
  const rest = (reconciliation.paused_assets || []).filter((x) => x.asset_id !== p.asset_id);
  if (p.paused) rest.push(p);
  reconciliation.paused_assets = rest;
  renderReconciliation();
}

function onPayoutControl(c) {
  if (!payouts) return;
  const rest = (payouts.kill_switches || []).filter((k) => k.scope !== c.scope);
  if (c.killed) rest.push(c);
  payouts.kill_switches = rest.sort((a, b) => (a.scope < b.scope ? -1 : 1));
  renderPayouts();
}

const streamHandlers = {
  chain_event: (ev) => { if (addEvent(ev, true)) renderEvents(); },
  payout: (p) => noteActivity("payout", p),
  batch: (b) => noteActivity("batch", b),
  reconciliation: onReconciliation,
  asset_pause: onAssetPause,
  payout_control: onPayoutControl,
};

function dispatch(name, text) {
  const handler = streamHandlers[name];
  if (!handler) return;
  let data;
  try { data = JSON.parse(text); } catch (err) { return; }
  handler(data);
}

function streamState(live) {
  const badge = document.getElementById("sse-state");
  badge.textContent = live ? "live" : "reconnecting";
  badge.className = live ? "badge on" : "badge off";
  // The server subscribed this stream before answering, so a list loaded
  // now overlaps it (duplicates are dropped by id) and leaves no gap.
  if (live) loadRecentEvents(false);
}

function connectStream() {
  if (token) return connectStreamWithToken();
  // EventSource reconnects by itself and sends Last-Event-ID, so nothing is missed.
  const source = new EventSource("/v1/stream");
  source.onopen = () => streamState(true);
  source.onerror = () => streamState(false);
  for (const name of Object.keys(streamHandlers)) source.addEventListener(name, (msg) => dispatch(name, msg.data));
  window.chainsettleStream = source;
}

// The same protocol over fetch, with the token: parse the event stream, resume with Last-Event-ID.
async function connectStreamWithToken() {
  let lastId = null;
  for (;;) {
    try {
      const headers = { Accept: "text/event-stream", Authorization: "Bearer " + token };
      if (lastId !== null) headers["Last-Event-ID"] = lastId;
      const res = await fetch("/v1/stream", { headers, cache: "no-store" });
      if (!res.ok || !res.body) throw new Error("HTTP " + res.status);
      streamState(true);
      const reader = res.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          let name = "message", data = "", id = null;
          for (const line of block.split("\n")) {
            const at = line.indexOf(": ");
            const [key, val] = at < 0 ? [line, ""] : [line.slice(0, at), line.slice(at + 2)];
            if (key === "event") name = val;
            else if (key === "data") data += val;
            else if (key === "id") id = val;
          }
          if (id !== null) lastId = id;
          if (data) dispatch(name, data);
        }
      }
    } catch (err) {
      /* reconnect below */
    }
    streamState(false);
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
}

function setupToken() {
  const input = document.getElementById("token");
  const forget = document.getElementById("token-forget");
  forget.hidden = !token;
  input.placeholder = token ? "admin token in use" : "admin token (optional)";
  document.getElementById("token-use").addEventListener("click", () => {
    if (!input.value.trim()) return;
    sessionStorage.setItem(TOKEN_KEY, input.value.trim());
    location.reload();
  });
  forget.addEventListener("click", () => { sessionStorage.removeItem(TOKEN_KEY); location.reload(); });
}

setupToken();
connectStream();
refreshStatus();
refreshDeliveries();
setInterval(refreshStatus, STATUS_EVERY_MS);
setInterval(refreshDeliveries, STATUS_EVERY_MS);
