// The whole wallet flow against chainsettle, in plain JS (README "Wallet sign-in and the
// wallet's own account"). Tokens live in memory only; a page reload signs in again.
"use strict";

const $ = (id) => document.getElementById(id);
const session = { address: null, chain: null, token: null, refresh: null };
let socket = null;
let cursor = null; // the last cursor seen on the WebSocket: a reconnect resumes after it

function showError(err) {
  $("error").textContent = err ? String(err.message || err) : "";
}

async function api(path, options = {}, retried = false) {
  const headers = { "Content-Type": "application/json" };
  if (session.token) headers.Authorization = "Bearer " + session.token;
  const res = await fetch(path, { ...options, headers });
  if (res.status === 401 && session.refresh && !retried && !path.startsWith("/v1/auth/")) {
    await refresh(); // the access token expired: rotate the refresh token, then try once more
    return api(path, options, true);
  }
  const body = await res.json();
  if (!res.ok) {
    const err = new Error((body.field ? body.field + ": " : "") + body.message);
    err.body = body;
    throw err;
  }
  return body;
}

function keep(signin) {
  session.token = signin.token;
  session.refresh = signin.refresh_token;
}

async function refresh() {
  const out = await api("/v1/auth/refresh", { method: "POST", body: JSON.stringify({ refresh_token: session.refresh }) });
  keep(out);
}

// 1. Sign in: the wallet signs the EIP-4361 challenge, the daemon verifies it.
async function signIn() {
  showError(null);
  if (!window.ethereum) throw new Error("no injected wallet (window.ethereum)");
  const [address] = await window.ethereum.request({ method: "eth_requestAccounts" });
  const status = await api("/v1/status");
  const chain = (status.chains.find((c) => c.kind === "evm") || {}).chain;
  const challenge = await api("/v1/auth/challenge", { method: "POST", body: JSON.stringify({ chain, address }) });
  const hex = "0x" + Array.from(new TextEncoder().encode(challenge.message), (b) => b.toString(16).padStart(2, "0")).join("");
  const signature = await window.ethereum.request({ method: "personal_sign", params: [hex, address] });
  const signin = await api("/v1/auth/verify", { method: "POST", body: JSON.stringify({ chain, message: challenge.message, signature }) });
  keep(signin);
  session.address = signin.address;
  session.chain = signin.chain;
  $("who").textContent = signin.address + " on " + signin.chain;
  $("who").setAttribute("data-address", signin.address);
  $("connect").hidden = true;
  $("logout").hidden = false;
  await Promise.all([loadBalances(), loadHistory()]);
  connectFeed();
}

// 2. Balance and history: the wallet's own account, no account id in any URL.
function cell(text) {
  const td = document.createElement("td");
  td.textContent = text;
  return td;
}

function fill(tbody, rows) {
  tbody.replaceChildren(...rows.map((cells) => {
    const tr = document.createElement("tr");
    tr.append(...cells.map(cell));
    return tr;
  }));
}

function showBalances(balances) {
  const body = $("balances").tBodies[0];
  if (!balances.length) {
    fill(body, [["nothing yet", "", "", ""]]);
    return;
  }
  fill(body, balances.map((b) => [b.asset_id, b.final, b.pending, b.available]));
  body.querySelectorAll("tr").forEach((tr, i) => tr.setAttribute("data-available", balances[i].available));
}

async function loadBalances() {
  const out = await api("/v1/me/balances");
  showBalances(out.balances);
}

async function loadHistory() {
  const entries = await api("/v1/me/entries?limit=50");
  fill($("entries").tBodies[0], entries.entries.map((e) => [e.transaction_id, e.cause, e.asset_id, e.amount]));
  const payouts = await api("/v1/me/payouts");
  fill($("payouts").tBodies[0], payouts.payouts.map((p) => [p.id, p.amount, p.recipient, p.state]));
}

// 3. Withdraw: a payout from the wallet's account to its own address; the key makes a retry safe.
async function withdraw(event) {
  event.preventDefault();
  showError(null);
  const body = { chain: session.chain, asset: $("w-asset").value, amount: $("w-amount").value.trim(), key: crypto.randomUUID() };
  try {
    const out = await api("/v1/me/withdrawals", { method: "POST", body: JSON.stringify(body) });
    $("w-result").textContent = "requested: payout " + out.payout.id + " (" + out.payout.state + ")";
    $("w-result").setAttribute("data-payout", String(out.payout.id));
    await loadHistory();
  } catch (err) {
    $("w-result").textContent = "refused: " + err.message;
  }
}

// 4. Live: the account channel over the WebSocket, resumed from the last cursor on reconnect.
function connectFeed() {
  const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/v1/ws";
  socket = new WebSocket(url);
  socket.onopen = () => socket.send(JSON.stringify({ op: "subscribe", channels: ["account"], cursor, token: session.token }));
  socket.onmessage = (event) => {
    const msg = JSON.parse(event.data);
    if (msg.type === "subscribed") {
      $("live").textContent = "live";
      $("live").className = "badge on";
      return;
    }
    if (msg.cursor) cursor = msg.cursor;
    if (msg.type === "heartbeat") return;
    if (msg.type === "error") {
      showError(msg.message);
      if (msg.error === "cursor_too_old") cursor = null; // refetch, then follow from now
      return;
    }
    if (msg.type === "balance" && msg.data.balances) showBalances(msg.data.balances); // a snapshot; a change has `amount`
    const li = document.createElement("li");
    li.textContent = msg.type + " " + msg.stage + " (" + msg.finality + ")" + (msg.data.amount ? " " + msg.data.amount : "");
    li.setAttribute("data-type", msg.type);
    $("feed").prepend(li);
  };
  socket.onclose = () => {
    $("live").textContent = "offline";
    $("live").className = "badge off";
    if (session.token) setTimeout(connectFeed, 2000);
  };
}

async function logout() {
  await api("/v1/auth/logout", { method: "POST", body: "{}" });
  session.token = session.refresh = null;
  if (socket) socket.close();
  location.reload();
}

$("connect").addEventListener("click", () => signIn().catch(showError));
$("logout").addEventListener("click", () => logout().catch(showError));
$("withdraw").addEventListener("submit", withdraw);
document.body.dataset.ready = "1"; // the handlers are attached
