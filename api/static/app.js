// chainsettle status page: polls /v1/status, receives new events, payout and
// batch changes, reconciliation runs, pauses and kill switches over
// /v1/stream (server-sent events). Everything from the API is rendered with
// textContent: event arguments come from the chain, i.e. from anyone.
// Events are listed in commit order (newest first), amounts in asset units
// (the exact base units in each amount's title), with what to run where a
// person must act. An admin token pasted in the header (sessionStorage, this
// tab only) adds the private panels; the page works without one.
"use strict";

const MAX_EVENTS = 50; // the live list; "older" pages add below it
const MAX_PAGED = 500;
const MAX_ACTIVITY = 20;
const STATUS_EVERY_MS = 2000;
const REFRESH_DEBOUNCE_MS = 150;
// Events newest commit first, as /v1/events?order=desc pages them and the
// stream delivers them (commit order, never id order: ids are not commit order).
let eventList = [];
const eventIds = new Set();
let olderCursor = null; // `next` of the last page loaded, for "older"
let pagedOlder = 0; // how many rows "older" added (kept beyond MAX_EVENTS)
const finalized = new Map(); // chain -> finalized height, from /v1/status: finality of shown rows stays current
const reorgCounts = new Map();
const activity = []; // payout and batch changes seen on the stream, newest first
let payouts = null; // the last /v1/status payouts, patched by stream messages
let reconciliation = null; // the same for reconciliation
let refreshTimer = null;
let unitsLoaded = false; // /v1/status brought the assets (public): units from the first render on
let deliveries = [];
let chainRows = [];
const assetUnits = new Map(); // "chain:contract" and asset id -> {symbol, decimals}, from /v1/deliveries

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

// ---- event fields -----------------------------------------------------------

const AMOUNT_KEYS = new Set(["value", "amount", "wad", "fee", "delivered_amount", "total", "amount_in", "amount_out"]);
const EVM_ADDRESS = /^0x[0-9a-fA-F]{40}$/;
const XRPL_ADDRESS = /^r[1-9A-HJ-NP-Za-km-z]{24,34}$/;
const HASH = /^0x[0-9a-fA-F]{64}$|^[0-9A-F]{64}$/;
// Bookkeeping fields of an XRPL transaction a person rarely needs: in the raw JSON, not as rows.
const QUIET_KEYS = new Set(["role", "flags", "status", "sequence", "delivered_source", "partial_payment", "close_time_iso"]);

// The unit of an amount argument: the emitting token, a `token` argument, else the chain's native asset
// (XRPL Amount/Fee strings are drops of XRP; an EVM `fee` is in the native coin).
function unitForArg(e, key) {
  const chain = e.chain;
  const contract = unitsOf(chain + ":" + String(e.address || "").toLowerCase());
  if (contract && key !== "fee") return contract;
  const token = e.args && typeof e.args.token === "string" ? unitsOf(chain + ":" + e.args.token.toLowerCase()) : null;
  if (token && key !== "fee") return token;
  return unitsOf(chain + ":native");
}

// A value a person can copy whole, shown shortened: an address, a hash.
function copyable(full, cls) {
  const span = el("span", short(full), "copyable " + (cls || "mono"));
  span.title = full;
  span.setAttribute("data-full", full);
  const btn = el("button", "copy", "copy");
  btn.type = "button";
  btn.title = "copy " + full;
  btn.setAttribute("aria-label", "copy " + full);
  btn.addEventListener("click", () => {
    const done = () => { btn.textContent = "copied"; setTimeout(() => { btn.textContent = "copy"; }, 1200); };
    if (navigator.clipboard) navigator.clipboard.writeText(full).then(done, () => {});
  });
  const wrap = el("span", null, "copywrap");
  wrap.append(span, btn);
  return wrap;
}

function fieldValue(e, key, v) {
  if (typeof v === "string" && (EVM_ADDRESS.test(v) || XRPL_ADDRESS.test(v) || HASH.test(v))) return copyable(v);
  if (AMOUNT_KEYS.has(key) && exactAmount(v) !== null) {
    const unit = unitForArg(e, key);
    const span = el("span", amountText(v, unit), "amount");
    span.title = exactAmount(v) + " base units";
    span.setAttribute("data-base-units", exactAmount(v));
    return span;
  }
  if (v && typeof v === "object" && typeof v.value === "string" && (v.currency || v.mpt_issuance_id)) {
    return el("span", v.value + " " + (v.currency || "MPT"), "amount"); // an XRPL issued amount: already in units
  }
  if (v !== null && typeof v === "object") return el("span", JSON.stringify(v), "mono");
  return el("span", fmt(v));
}

// The arguments as labelled fields (amounts in units, addresses shortened with a copy control),
// the raw JSON one click away.
function argsCell(e) {
  const td = el("td", null, "args");
  const args = e.args && typeof e.args === "object" && !Array.isArray(e.args) ? e.args : null;
  if (!args) {
    td.appendChild(el("span", JSON.stringify(e.args), "mono"));
    return td;
  }
  for (const [k, v] of Object.entries(args)) {
    if (QUIET_KEYS.has(k)) continue;
    const div = el("div", null, "field");
    div.setAttribute("data-key", k);
    div.append(el("span", k, "k"), fieldValue(e, k, v));
    td.appendChild(div);
  }
  const details = el("details");
  details.appendChild(el("summary", Object.keys(args).some((k) => QUIET_KEYS.has(k)) ? "all fields (raw)" : "raw"));
  details.appendChild(el("pre", JSON.stringify(args)));
  td.appendChild(details);
  return td;
}

// A unit for an asset id ("local:Token"): its symbol, else its name, so a converted amount never stands bare.
function setUnits(assets) {
  assetUnits.clear();
  for (const a of assets || []) {
    const unit = { symbol: a.symbol || a.name, decimals: a.decimals };
    assetUnits.set(a.id, unit);
    if (a.contract) assetUnits.set(a.chain + ":" + a.contract.toLowerCase(), unit);
  }
}

// ---- deliveries -------------------------------------------------------------

function renderDeliveries(data) {
  if (!unitsLoaded) setUnits(data.assets);
  deliveries = data.subscriptions || [];
  const rows = (data.subscriptions || []).map((s) => {
    const bad = s.state !== "active" || s.dead > 0;
    const state = s.state_reason ? s.state + ": " + s.state_reason : s.state;
    return row([
      el("td", s.id), el("td", s.sink), el("td", fmt(s.target)), el("td", s.finality + ", " + s.ordering),
      el("td", state, s.state === "active" ? "" : "bad"), el("td", fmt(s.pending)),
      el("td", s.lag_seconds === null || s.lag_seconds === undefined ? "–" : Math.round(s.lag_seconds)),
      el("td", fmt(s.dead), s.dead > 0 ? "bad" : ""),
      el("td", s.last_outcome ? s.last_outcome + ": " + fmt(s.last_error) : "–", s.last_outcome ? "bad why" : "why"),
    ], { "data-delivery": s.id, "data-state": s.state, class: bad || s.last_outcome ? "warn" : "" });
  });
  fill(document.querySelector("#deliveries tbody"), rows, "no subscriptions", 9);
  renderGlance();
}

async function refreshDeliveries() {
  try {
    renderDeliveries(await (adminToken() ? adminGet("/v1/deliveries") : getJSON("/v1/deliveries")));
    renderEvents();
  } catch (err) {
    // Private without the token (README "Read scopes"); anything else: the status poll reports it.
    if (err.status === 401 || err.status === 403) {
      const note = row([Object.assign(el("td", "private: needs the admin token (or api.public = [\"deliveries\"])"),
        { colSpan: 8 })], { class: "empty", "data-needs-token": "deliveries" });
      document.querySelector("#deliveries tbody").replaceChildren(note);
    }
  }
}

// ---- chains, payouts, reconciliation ------------------------------------

function renderChains(chains) {
  chainRows = chains;
  for (const c of chains) if (c.finalized !== null && c.finalized !== undefined) finalized.set(c.chain, c.finalized);
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
  renderGlance();
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
  for (const b of payouts.open_batches || []) parts.push(openBatchLine(b));
  for (const q of queue.filter((x) => x.state === "held")) parts.push(heldLine(q));
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
  } else if (!adminToken()) {
    const note = el("div", "each payout's changes: private (admin token, or api.public = [\"payouts\"])", "muted");
    note.setAttribute("data-needs-token", "payouts");
    parts.push(note);
  }
  box.className = "";
  box.replaceChildren(...parts);
  renderGlance();
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
      el("td", r.checked), el("td", r.mismatches), el("td", when(r.finished_at), "when")],
      { "data-reconciliation-chain": r.chain, "data-run-id": String(r.id) }));
  }
  const parts = [(rec.latest || []).length ? table : el("span", "no reconciliation runs yet", "muted")];
  for (const p of rec.paused_assets || []) {
    const div = el("div", "paused: " + p.asset_id + (p.reason ? " (" + p.reason + ")" : ""), "bad");
    div.setAttribute("data-paused-asset", p.asset_id);
    parts.push(div);
  }
  const evidence = renderEvidence();
  if (evidence) parts.push(evidence);
  box.className = "";
  box.replaceChildren(...parts);
  renderGlance();
}

async function refreshStatus() {
  try {
    const status = await (adminToken() ? adminGet("/v1/status") : getJSON("/v1/status"));
    if (status.assets) {
      setUnits(status.assets);
      if (!unitsLoaded) { unitsLoaded = true; renderEvents(); }
    }
    renderChains(status.chains || []);
    refreshEvidence(status.reconciliation);
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

// A live event (from the stream): committed after everything shown, so it goes on top.
function addEvent(ev, fresh) {
  if (!ev || typeof ev.id !== "number" || eventIds.has(ev.id)) return false;
  ev._fresh = fresh;
  eventIds.add(ev.id);
  eventList.unshift(ev);
  const keep = MAX_EVENTS + pagedOlder;
  for (const gone of eventList.splice(keep)) eventIds.delete(gone.id);
  return true;
}

function isFinal(e) {
  return Boolean(e.final) || (finalized.has(e.chain) && e.block_number <= finalized.get(e.chain));
}

function eventRow(e) {
  const fin = isFinal(e);
  const where = el("td", null, "where");
  where.append(el("span", e.chain, "chain"), el("span", "#" + e.block_number, "block"),
    el("span", fin ? "final" : "not final", fin ? "fin good" : "fin warn"));
  const tr = row([
    el("td", e.id, "id"), where, el("td", e.event, "event"), el("td", null, "addr"),
    argsCell(e), el("td", null, "tx"),
  ], { "data-event-id": String(e.id), "data-chain": e.chain, "data-block": String(e.block_number),
       "data-final": fin ? "yes" : "no" });
  tr.cells[3].appendChild(copyable(String(e.address || "")));
  if (e.tx_hash) tr.cells[5].appendChild(copyable(e.tx_hash));
  if (!fin) tr.classList.add("unfinal");
  if (e._fresh) tr.classList.add("new");
  e._fresh = false;
  return tr;
}

function renderEvents() {
  fill(document.querySelector("#events tbody"), eventList.map(eventRow), "no events yet", 6);
  const more = document.getElementById("events-older");
  if (more) more.hidden = !olderCursor || eventList.length >= MAX_EVENTS + MAX_PAGED;
}

async function loadRecentEvents(replace) {
  try {
    const page = await getJSON("/v1/events?order=desc&limit=" + MAX_EVENTS);
    // Stream arrivals not in the page committed after it was read: they stay on top.
    const pageIds = new Set((page.events || []).map((e) => e.id));
    const live = replace ? [] : eventList.filter((e) => !pageIds.has(e.id) && e._live);
    eventList = [...live, ...(page.events || [])];
    eventIds.clear();
    for (const e of eventList) eventIds.add(e.id);
    olderCursor = page.next;
    pagedOlder = 0;
    renderEvents();
  } catch (err) {
    /* the next status poll reports the API as unavailable */
  }
}

// "older": the next page below the list, in the same order.
async function loadOlderEvents() {
  if (!olderCursor) return;
  try {
    const page = await getJSON("/v1/events?order=desc&limit=" + MAX_EVENTS + "&cursor=" + encodeURIComponent(olderCursor));
    for (const e of page.events || []) {
      if (eventIds.has(e.id)) continue;
      eventIds.add(e.id);
      eventList.push(e);
      pagedOlder += 1;
    }
    olderCursor = page.next;
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
  chain_event: (ev) => { ev._live = true; if (addEvent(ev, true)) renderEvents(); },
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
  if (adminToken()) return connectStreamWithToken();
  // EventSource reconnects by itself and sends Last-Event-ID, so nothing is missed.
  const source = new EventSource("/v1/stream");
  source.onopen = () => streamState(true);
  source.onerror = () => streamState(false);
  for (const name of Object.keys(streamHandlers)) source.addEventListener(name, (msg) => dispatch(name, msg.data));
  window.chainsettleStream = source;
}

// The same protocol over fetch, with the admin token (EventSource cannot send a header):
// parse the event stream, resume with Last-Event-ID.
let streamControl = null; // aborts the token stream when the token changes

async function connectStreamWithToken() {
  const control = new AbortController();
  streamControl = control;
  let lastId = null;
  while (!control.signal.aborted) {
    try {
      const headers = { Accept: "text/event-stream", Authorization: "Bearer " + adminToken() };
      if (lastId !== null) headers["Last-Event-ID"] = lastId;
      const res = await fetch("/v1/stream", { headers, cache: "no-store", signal: control.signal });
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
      /* reconnect below, unless the token changed */
    }
    if (control.signal.aborted) return;
    streamState(false);
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
}

// A token set or forgotten: the stream is read again with (or without) it.
function reconnectStream() {
  if (window.chainsettleStream) window.chainsettleStream.close();
  window.chainsettleStream = null;
  if (streamControl) streamControl.abort();
  streamControl = null;
  connectStream();
}

// ---- payouts: what to run ---------------------------------------------------

const BATCH_ACTIONS = {
  awaiting_approval: "chainsettle payouts approve BATCH --by NAME",
  reverted: "chainsettle payouts release BATCH --reason ... (or cancel)",
  ready: null, signed: null, dry_run: null,
};

// An open batch state as a line, with the command it needs (if any) and its oldest batch ids.
function openBatchLine(b) {
  const div = el("div", null, "batchline");
  div.setAttribute("data-open-batches", b.state);
  div.setAttribute("data-chain", b.chain);
  const waiting = b.state === "awaiting_approval";
  div.appendChild(el("span", b.chain + ": " + b.count + (b.count === 1 ? " batch " : " batches ") +
    b.state.replace(/_/g, " "), waiting ? "warn" : ""));
  const action = BATCH_ACTIONS[b.state];
  if (action) div.appendChild(el("code", action, "action"));
  for (const id of b.ids || []) div.appendChild(copyable(id));
  return div;
}

function heldLine(q) {
  const div = el("div", null, "batchline");
  div.setAttribute("data-held", q.chain + ":" + q.asset);
  div.append(el("span", q.chain + ": " + q.count + " held " + q.asset + " request(s)", "bad"),
    el("code", "chainsettle payouts held  (then release or cancel their batch)", "action"));
  return div;
}

// ---- reconciliation: the causes of a difference ------------------------------

let evidenceRuns = []; // the newest mismatch runs of chains whose latest run is a mismatch
let evidenceKey = "";

async function refreshEvidence(rec) {
  const wanted = ((rec && rec.latest) || []).filter((r) => r.status === "mismatch").map((r) => r.id);
  const key = wanted.join(",");
  if (key === evidenceKey) return;
  evidenceKey = key;
  if (!wanted.length) { evidenceRuns = []; renderReconciliation(); return; }
  try {
    const url = "/v1/reconciliation?status=mismatch&limit=" + Math.min(wanted.length * 2, 20);
    const page = await (adminToken() ? adminGet(url) : getJSON(url)); // a private read once scopes say so
    evidenceRuns = (page.runs || []).filter((r) => wanted.includes(r.id));
  } catch (err) {
    evidenceRuns = []; // a private read without the token: the table still says where to look
  }
  renderReconciliation();
}

function renderEvidence() {
  if (!evidenceRuns.length) return null;
  const box = el("div", null, "evidence");
  box.appendChild(el("h3", "why it differs"));
  for (const run of evidenceRuns) {
    for (const r of (run.results || []).filter((x) => x.status === "mismatch")) {
      const unit = unitsOf(r.asset_id);
      const head = el("div", null, "mismatch");
      head.setAttribute("data-mismatch", r.account + " " + r.asset_id);
      head.append(el("strong", r.account.replace(/0x[0-9a-fA-F]{40}/, (a) => short(a)) + " " + r.asset_id),
        el("span", " ledger " + amountText(r.expected, unit) + ", chain " + amountText(r.actual, unit) +
          ", difference " + amountText(r.difference, unit), "bad"));
      box.appendChild(head);
      const moves = r.movements || [];
      if (!moves.length) continue;
      const table = el("table", null, "movements");
      table.appendChild(row(["booked", "block", "event", "amount", "tx"].map((h) => el("th", h))));
      for (const m of moves) {
        if (m.paid !== undefined) { // an overpaid user: what was paid against what was credited
          table.appendChild(row(["–", "–", "overpaid", amountCell(m.paid, unit), "credited " + amountText(m.credited, unit)]));
          continue;
        }
        const tr = row([el("td", m.booked ? "yes" : "NO", m.booked ? "" : "bad"), el("td", fmt(m.block_number)),
          el("td", m.event), amountCell(m.amount, unit), el("td")], { "data-booked": m.booked ? "yes" : "no" });
        if (m.tx_hash) tr.cells[4].appendChild(copyable(m.tx_hash));
        table.appendChild(tr);
      }
      box.appendChild(table);
      const total = r.movements_total || moves.length;
      box.appendChild(el("div", moves.length + " of " + total + " movements since it last matched, unbooked first, " +
        "then the largest. Book what explains it (chainsettle ledger adjust), then chainsettle ledger resolve " +
        r.asset_id + " --reason ...", "muted"));
    }
  }
  return box;
}

// ---- at a glance ----------------------------------------------------------------

function badge(text, cls, attr) {
  const span = el("span", text, "pill " + (cls || ""));
  if (attr) span.setAttribute("data-glance", attr);
  return span;
}

function renderGlance() {
  const box = document.getElementById("glance");
  if (!box) return;
  const parts = [];
  const halted = chainRows.filter((c) => c.halted_reason);
  parts.push(badge(chainRows.length + " chain(s)" + (halted.length ? ", " + halted.length + " halted" : " following"),
    halted.length ? "bad" : "good", "chains"));
  const kills = (payouts && payouts.kill_switches) || [];
  parts.push(badge(kills.length ? "kill switch on: " + kills.map((k) => k.scope).join(", ") : "no kill switch",
    kills.length ? "bad" : "good", "kill"));
  const paused = (reconciliation && reconciliation.paused_assets) || [];
  parts.push(badge(paused.length ? "paused: " + paused.map((p) => p.asset_id).join(", ") : "no asset paused",
    paused.length ? "bad" : "good", "pauses"));
  const waiting = ((payouts && payouts.open_batches) || []).filter((b) => b.state === "awaiting_approval")
    .reduce((n, b) => n + b.count, 0);
  parts.push(badge(waiting + " batch(es) awaiting approval", waiting ? "warn" : "good", "approval"));
  const held = ((payouts && payouts.queue) || []).filter((q) => q.state === "held").reduce((n, q) => n + q.count, 0);
  parts.push(badge(held + " held payout(s)", held ? "bad" : "good", "held"));
  const stuck = deliveries.filter((d) => d.state !== "active" || d.last_outcome || d.dead > 0);
  parts.push(badge(stuck.length ? stuck.length + " delivery subscription(s) need a look" : "deliveries flowing",
    stuck.length ? "warn" : "good", "deliveries"));
  const frozen = (payouts && payouts.frozen_accounts) || 0;
  parts.push(badge(frozen ? frozen + " account(s) frozen" : "no account frozen", frozen ? "bad" : "good", "frozen"));
  box.replaceChildren(...parts);
}

// ---- admin token (optional): private panels --------------------------------------

const TOKEN_KEY = "chainsettle.admin_token";

function adminToken() {
  try { return sessionStorage.getItem(TOKEN_KEY) || ""; } catch (err) { return ""; }
}

async function adminGet(url) {
  const res = await fetch(url, { headers: { Accept: "application/json", Authorization: "Bearer " + adminToken() } });
  if (!res.ok) throw new Error(url + ": HTTP " + res.status);
  return res.json();
}

// The operator may paste the admin token (kept for this tab only, in sessionStorage) to see held payouts
// with their reasons; the page works without it.
function setupAdminToken() {
  const form = document.getElementById("token-form");
  if (!form) return;
  const input = form.querySelector("input");
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    try {
      if (input.value) sessionStorage.setItem(TOKEN_KEY, input.value.trim());
      else sessionStorage.removeItem(TOKEN_KEY);
    } catch (err) { /* storage refused: the token is not kept */ }
    input.value = "";
    // The private panels and the stream are read again with (or without) the token.
    refreshPrivate();
    refreshDeliveries();
    renderPayouts();
    reconnectStream();
  });
  refreshPrivate();
  setInterval(refreshPrivate, STATUS_EVERY_MS * 5);
}

async function refreshPrivate() {
  const box = document.getElementById("private");
  const state = document.getElementById("token-state");
  if (!box) return;
  if (!adminToken()) {
    box.hidden = true;
    if (state) state.textContent = "no admin token: public view";
    return;
  }
  try {
    const held = await adminGet("/v1/admin/payouts/held");
    const rows = (held.held || []).slice(0, 20).map((h) => {
      const tr = row([el("td", h.id), el("td", h.chain), amountCell(h.amount, unitsOf(h.chain + ":" + h.asset)),
        el("td", null), el("td", fmt(h.reason), "bad"), el("td", null)], { "data-held-id": String(h.id) });
      tr.cells[3].appendChild(copyable(h.recipient));
      if (h.batch_id) tr.cells[5].appendChild(copyable(h.batch_id));
      return tr;
    });
    fill(document.querySelector("#held tbody"), rows, "no held payouts", 6);
    box.hidden = false;
    if (state) state.textContent = "admin token set for this tab";
  } catch (err) {
    box.hidden = true;
    if (state) state.textContent = "admin token refused (" + err.message + ")";
  }
}

// ---- small helpers ----------------------------------------------------------------

// An ISO 8601 time as a person reads it on a status page: the time today, else the date and time.
function when(iso) {
  if (!iso) return "–";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  const today = new Date().toDateString() === d.toDateString();
  return today ? d.toLocaleTimeString() : d.toISOString().slice(0, 16).replace("T", " ") + "Z";
}

document.getElementById("events-older").addEventListener("click", loadOlderEvents);
setupAdminToken();
connectStream();
refreshStatus();
refreshDeliveries();
setInterval(refreshStatus, STATUS_EVERY_MS);
setInterval(refreshDeliveries, STATUS_EVERY_MS);
