// The ops console: uses only /api/ops/. The bearer token lives in this tab's
// sessionStorage and nowhere else. Everything shown is set with textContent (dead letters
// are untrusted input), and every control is a native button, link or input, so the page
// works from the keyboard.
"use strict";

const KEY = "exchange-tokens-ops-token";
const $ = (sel) => document.querySelector(sel);
const state = { selection: null, label: "", previewed: null, canAct: false, filter: {} };

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("data-")) node.setAttribute(k, v);
    else node[k] = v;
  }
  for (const c of children) node.append(c instanceof Node ? c : String(c ?? ""));
  return node;
}

function claims(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(part));
  } catch { return null; }
}

async function api(path, options = {}) {
  const token = sessionStorage.getItem(KEY);
  const headers = { Authorization: `Bearer ${token}`, Accept: "application/json" };
  if (options.body) headers["Content-Type"] = "application/json";
  const response = await fetch(path, { ...options, headers });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const err = new Error(body.error ? `${body.error.code}: ${body.error.message}` : response.statusText);
    err.status = response.status;
    throw err;
  }
  return body;
}

function say(text, isError = false) {
  const s = $("#status");
  s.textContent = text;
  s.classList.toggle("error", isError);
}

async function guarded(fn) {
  try { await fn(); } catch (e) {
    if (e.status === 401) { logout(); $("#login-error").textContent = "The token was refused: " + e.message; }
    else say(e.message, true);
  }
}

// Sign in ------------------------------------------------------------------------------
function login(token) {
  const c = claims(token);
  const roles = (c && c.roles) || ["user"];
  if (!roles.includes("operator") && !roles.includes("viewer")) {
    $("#login-error").textContent = "This token has neither the viewer nor the operator role.";
    return;
  }
  sessionStorage.setItem(KEY, token);
  state.canAct = roles.includes("operator");
  $("#who").textContent = `${c.sub} (${state.canAct ? "operator" : "viewer"})`;
  for (const n of document.querySelectorAll("[data-role=operator]")) n.hidden = !state.canAct;
  $("#login").hidden = true;
  $("#main").hidden = false;
  $("#logout").hidden = false;
  refreshAll();
  poll();
}

function logout() {
  sessionStorage.removeItem(KEY);
  $("#main").hidden = true;
  $("#login").hidden = false;
  $("#logout").hidden = true;
  $("#who").textContent = "";
  $("#token").value = "";
  $("#token").focus();
}

// Dead letters --------------------------------------------------------------------------
function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") q.set(k, v);
  return q.toString();
}

async function loadDeadLetters() {
  const qs = query(state.filter);
  // One after the other: each read holds the whole parking queue for a moment.
  const groups = await api(`/api/ops/dead-letters/groups?${qs}`);
  const list = await api(`/api/ops/dead-letters?${qs}`);
  $("#depth").textContent = `${groups.depth} parked`;
  const gbody = $("#groups tbody");
  gbody.replaceChildren(...groups.groups.map((g) => el("tr", {},
    el("td", { class: "num" }, g.count), el("td", {}, g.exception_type), el("td", {}, g.reason),
    el("td", {}, el("button", { type: "button", "data-testid": "select-group",
      onclick: () => select({ group: { exception_type: g.exception_type, reason: g.reason } },
                            `group ${g.exception_type} / ${g.reason} (${g.count})`) },
      "Select group")))));
  if (!groups.groups.length) gbody.append(el("tr", {}, el("td", { colSpan: 4, class: "muted" }, "No dead letters.")));
  $("#shown").textContent = `(${list.messages.length} of ${list.read} matching)`;
  $("#messages tbody").replaceChildren(...list.messages.map((m) => el("tr", {},
    el("td", {}, el("input", { type: "checkbox", value: m.id, "aria-label": `select ${m.id}` })),
    el("td", {}, m.type), el("td", {}, m.reason), el("td", {}, m.exception || m.exception_type),
    el("td", { class: "num" }, m.attempts ?? "?"), el("td", {}, m.dead_lettered_at || ""),
    el("td", {}, el("button", { type: "button", onclick: () => guarded(() => showMessage(m.id)) }, "Details")))));
}

async function showMessage(id) {
  const m = await api(`/api/ops/dead-letters/${encodeURIComponent(id)}`);
  $("#details-empty").hidden = true;
  const pre = $("#details-body");
  pre.hidden = false;
  pre.textContent = JSON.stringify(m, null, 2);
  pre.focus();
}

function select(selection, label) {
  state.selection = selection;
  state.label = label;
  state.previewed = null;
  $("#selection").textContent = `Selected: ${label}`;
  $("#effect").replaceChildren();
  $("#preview").disabled = false;
  $("#replay").disabled = true;
  $("#purge").disabled = true;
  $("#preview").focus();
}

function selectionQuery(sel) {
  if (sel.ids) return { ids: sel.ids.join(",") };
  if (sel.group) return { group_exception_type: sel.group.exception_type, group_reason: sel.group.reason };
  return sel.filter;
}

function filterFromForm() {
  const data = Object.fromEntries(new FormData($("#filter-form")));
  const filter = {};
  for (const [k, v] of Object.entries(data)) if (v !== "") filter[k] = k === "min_age_seconds" ? Number(v) : v;
  return filter;
}

async function preview() {
  say("Judging each message against the database…");
  // An operator's dry run is kept in the history; a viewer's is a plain read.
  const r = state.canAct
    ? await api("/api/ops/jobs", { method: "POST",
      body: JSON.stringify({ kind: "replay", selection: state.selection, dry_run: true }) })
    : await api(`/api/ops/dead-letters/effect?${query(selectionQuery(state.selection))}`);
  state.previewed = r;
  const e = r.effect;
  const fig = (n, label, id) => el("div", { "data-testid": id }, el("b", {}, n), label);
  $("#effect").replaceChildren(
    el("div", { class: "effect-figures" },
      fig(e.messages, "messages", "effect-messages"),
      fig(e.points_refunded, "points would be refunded", "effect-points"),
      fig(e.users, "users", "effect-users"),
      fig(e.no_ops, "no-ops", "effect-noops"),
      fig(e.failures, "would fail", "effect-failures"),
      fig(e.other, "other effects", "effect-other")),
    el("details", {}, el("summary", {}, "Each message's verdict"),
      el("ul", {}, ...r.messages.slice(0, 500).map((m) => el("li", {}, `${m.id}: ${m.verdict}`)))));
  $("#replay").disabled = !e.messages;
  $("#purge").disabled = !e.messages;
  say(r.truncated
    ? `Preview of the oldest 10,000 parked only (there are more): nothing was changed.`
    : `Preview of ${state.label}: nothing was changed.`);
  await loadHistory();
}

function confirmThen(text, action) {
  const dialog = $("#confirm");
  $("#confirm-text").textContent = text;
  dialog.returnValue = "";
  dialog.onclose = () => { if (dialog.returnValue === "ok") guarded(action); };
  dialog.showModal();
}

function startJob(kind) {
  const e = state.previewed.effect;
  const text = kind === "replay"
    ? `Replay ${e.messages} messages (${state.label})? Expected: ${e.points_refunded} points refunded to ${e.users} users, ${e.no_ops} no-ops, ${e.failures} failures.`
    : `Purge ${e.messages} messages (${state.label}) for good? They cannot be replayed afterwards.`;
  confirmThen(text, async () => {
    const rate = Number($("#rate").value) || 100;
    const job = await api("/api/ops/jobs", { method: "POST",
      body: JSON.stringify({ kind, selection: state.selection, rate }) });
    say(`Job ${job.id} queued: ${kind} of ${state.label}.`);
    state.previewed = null;
    $("#replay").disabled = true;
    $("#purge").disabled = true;
    await loadJobs();
  });
}

// Jobs, history, books, timers -----------------------------------------------------------
async function loadJobs() {
  const { jobs } = await api("/api/ops/jobs");
  $("#jobs tbody").replaceChildren(...jobs.map((j) => {
    const total = j.total ?? 0;
    return el("tr", { "data-testid": `job-${j.id}` },
      el("td", {}, `#${j.id}`), el("td", {}, j.kind), el("td", {}, j.actor),
      el("td", { class: j.status, "data-testid": "job-status" }, j.status),
      el("td", {}, el("progress", { max: total || 1, value: j.done + j.failed, "aria-label": `job ${j.id} progress` }),
        el("span", { "data-testid": "job-progress" }, ` ${j.done + j.failed} / ${j.total ?? "?"}`)),
      el("td", { class: j.failed ? "failed" : "" }, j.failed));
  }));
  return jobs;
}

function summary(result) {
  if (result.effect) return `dry run: ${result.effect.points_refunded} points to ${result.effect.users} users, ${result.effect.no_ops} no-ops, ${result.effect.failures} failures`;
  if ("succeeded" in result) return `${result.status}: ${result.succeeded} ok, ${result.failed} failed`;
  return result.status || JSON.stringify(result);
}

async function loadHistory() {
  const { entries } = await api("/api/ops/audit");
  $("#history tbody").replaceChildren(...entries.map((a) => el("tr", {},
    el("td", {}, a.at), el("td", {}, a.actor), el("td", {}, a.dry_run ? `${a.action} (dry run)` : a.action),
    el("td", { class: "num" }, a.message_ids.length), el("td", {}, summary(a.result)))));
}

async function loadBooks() {
  say("Checking the books…");
  const b = await api("/api/ops/books");
  $("#books").replaceChildren(
    el("p", { class: b.clean ? "done" : "failed", "data-testid": "books-status" },
      b.clean ? "Balanced: every point is accounted for." : `${b.problems.length} problems found.`),
    el("p", { class: "muted" }, `${b.accounts} accounts, ${b.tokens} tokens, ${b.ledger_rows} ledger rows, checked at ${b.checked_at} in ${b.elapsed_ms} ms.`),
    ...(b.problems.length ? [problemsTable(b.problems)] : []));
  say("");
}

function problemsTable(problems) {
  const shown = problems.slice(0, 20);
  const details = (d) => Object.entries(d).map(([k, v]) => `${k}=${v}`).join(" ");
  return el("table", { "aria-label": "Problems in the books" },
    el("thead", {}, el("tr", {}, ...["Problem", "User", "Token", "Details"].map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, ...shown.map((p) => el("tr", {},
      el("td", {}, p.kind), el("td", {}, p.user_id ?? ""), el("td", {}, p.token_id ?? ""),
      el("td", {}, details(p.details || {}))))),
    ...(problems.length > shown.length ? [el("caption", {}, `the first ${shown.length} of ${problems.length}`)] : []));
}

const fmt = (v, unit = "") => (v === null || v === undefined ? "–" : `${Math.round(v * 1000) / 1000}${unit}`);

async function loadTimers() {
  const t = await api("/api/ops/timers");
  const l = t.expiry_lateness;
  const items = [
    ["Expiry lateness p50 / p90 / p99", `${fmt(l.p50, " s")} / ${fmt(l.p90, " s")} / ${fmt(l.p99, " s")}`],
    [`Refunds in the last ${l.window_seconds} s`, l.refunds],
    ["Tokens past due, not yet refunded", `${t.past_due.tokens} (oldest ${fmt(t.past_due.oldest_seconds, " s")})`],
    ["Outbox backlog", `${t.outbox.backlog} (oldest ${fmt(t.outbox.oldest_age_seconds, " s")})`],
    ["Dead-letter depth", t.dead_letters.depth ?? "–"],
  ];
  $("#timers").replaceChildren(...items.map(([k, v]) => el("div", {}, el("dt", {}, k), el("dd", {}, v))));
  $("#queues tbody").replaceChildren(...t.queues.map((q) => el("tr", {},
    el("td", {}, q.queue), el("td", { class: "num" }, q.messages ?? "–"), el("td", { class: "num" }, q.consumers ?? "–"))));
  const { samples } = await api("/api/ops/samples");
  chart("#chart-lateness", samples, (f) => f.expiry_lateness && f.expiry_lateness.p99);
  chart("#chart-backlog", samples, (f) => f.outbox && f.outbox.backlog);
  chart("#chart-depth", samples, (f) => f.dead_letters && f.dead_letters.depth);
}

// A line chart of the last hour, drawn as SVG by hand: no library needed.
function chart(target, samples, pick) {
  const NS = "http://www.w3.org/2000/svg";
  const W = 400, H = 140, P = 24;
  const now = Date.now(), from = now - 3600 * 1000;
  const points = samples.map((s) => [Date.parse(s.at), pick(s.figures)]).filter(([, v]) => typeof v === "number");
  const max = Math.max(1e-9, ...points.map(([, v]) => v));
  const svg = document.createElementNS(NS, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("role", "img");
  const last = points.length ? points[points.length - 1][1] : null;
  svg.setAttribute("aria-label", `${points.length} samples over the last hour; latest ${fmt(last)}; highest ${fmt(points.length ? max : null)}`);
  const text = (x, y, s) => { const t = document.createElementNS(NS, "text"); t.setAttribute("x", x); t.setAttribute("y", y); t.textContent = s; svg.append(t); };
  text(2, 10, fmt(max)); text(2, H - 4, "0"); text(P, H - 4, "−60 min"); text(W - 30, H - 4, "now");
  const line = document.createElementNS(NS, "polyline");
  line.setAttribute("points", points.map(([t, v]) =>
    `${(P + (W - P - 4) * (t - from) / (now - from)).toFixed(1)},${(H - 14 - (H - 28) * v / max).toFixed(1)}`).join(" "));
  svg.append(line);
  $(target).replaceChildren(svg);
}

async function refreshAll() {
  await guarded(async () => {
    await Promise.all([loadDeadLetters(), loadJobs(), loadHistory(), loadTimers()]);
  });
}

// Polling: jobs every second while one runs; the rest every 10 s.
let polling = null;
async function poll() {
  clearTimeout(polling);
  if ($("#main").hidden) return;
  await guarded(async () => {
    const jobs = await loadJobs();
    if (jobs.some((j) => j.status === "queued" || j.status === "running")) {
      clearTimeout(polling);
      polling = setTimeout(poll, 1000);
      state.wasRunning = true;
      return;
    }
    if (state.wasRunning) {  // a job just ended: what it changed shows everywhere
      state.wasRunning = false;
      await loadDeadLetters();
      await Promise.all([loadHistory(), loadTimers()]);
    }
    polling = setTimeout(poll, 3000);
  });
}

document.addEventListener("DOMContentLoaded", () => {
  $("#login-form").addEventListener("submit", (ev) => { ev.preventDefault(); login($("#token").value.trim()); });
  $("#logout").addEventListener("click", logout);
  $("#filter-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    state.filter = filterFromForm();
    guarded(loadDeadLetters);
  });
  $("#select-filter").addEventListener("click", () => {
    const f = filterFromForm();
    const label = Object.keys(f).length ? `everything matching ${JSON.stringify(f)}` : "everything parked";
    select({ filter: f }, label);
  });
  $("#select-checked").addEventListener("click", () => {
    const ids = [...document.querySelectorAll("#messages input:checked")].map((c) => c.value);
    if (ids.length) select({ ids }, `${ids.length} chosen message(s)`);
  });
  $("#preview").addEventListener("click", () => guarded(preview));
  $("#replay").addEventListener("click", () => startJob("replay"));
  $("#purge").addEventListener("click", () => startJob("purge"));
  $("#check-books").addEventListener("click", () => guarded(loadBooks));
  setInterval(() => { if (!$("#main").hidden) guarded(loadTimers); }, 10000);
  const saved = sessionStorage.getItem(KEY);
  if (saved) login(saved);
});
