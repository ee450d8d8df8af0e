// The wallet: balance, create a token, show its QR code and a countdown, and learn by
// polling (ETag / If-None-Match: a 304 costs no body) the moment it is redeemed, or the
// moment its points come back.
import { call, json, newKey } from "./api.js";
import { t } from "./i18n.js";
import { refuse, show, start } from "./signin.js";

const $ = (id) => document.getElementById(id);
const POLL_MS = 1000;
let current = null;    // {id, points, etag, deadline}
let createKey = null;  // kept until the create is answered, so a resend cannot issue twice

async function refresh() {
  const status = await json("/api/exchange-tokens/status/");
  $("balance").textContent = String(status.balance);
  const lines = [
    ...status.redeemed.map((r) => [r.redeemed_at, t("wallet.history.redeemed", r)]),
    ...status.restored.map((r) => [r.restored_at, t(`wallet.history.${r.reason}`, r)]),
  ].sort((a, b) => (a[0] < b[0] ? 1 : -1)).slice(0, 8);
  $("history").replaceChildren(...lines.map(([, text]) => {
    const li = document.createElement("li");
    li.textContent = text;
    return li;
  }));
  return status;
}

// After a reload: show the newest active token again (the list is soonest expiry first).
async function resume(status) {
  const latest = status.active[status.active.length - 1];
  if (!latest || current) return;
  const response = await call(`/api/exchange-tokens/${latest.id}`);
  await showToken(await response.json(), response.headers.get("ETag"));
}

async function showToken(token, etag) {
  current = { id: token.id, points: token.points, etag,
              deadline: Date.now() + token.expires_in * 1000 };
  const qr = await call(`/api/exchange-tokens/${token.id}/qr.svg`);
  const old = $("qr").src;
  $("qr").src = URL.createObjectURL(await qr.blob());
  if (old.startsWith("blob:")) URL.revokeObjectURL(old);
  $("code").textContent = token.code;
  $("qr").hidden = false;
  show("outcome", "");
  $("cancel").hidden = false;
  $("current").hidden = false;
  tick();
}

function tick() {
  if (!current) return;
  const seconds = Math.max(0, Math.floor((current.deadline - Date.now()) / 1000));
  $("countdown").textContent = t("wallet.left", { seconds });
}

function finish(text) {
  current = null;
  $("countdown").textContent = "";
  $("cancel").hidden = true;
  $("qr").hidden = true;  // a used or refunded code is no longer shown
  URL.revokeObjectURL($("qr").src);
  $("qr").removeAttribute("src");
  $("code").textContent = "";
  show("outcome", text);
  return refresh();
}

async function poll() {
  if (!current) return;
  const token = current;
  try {
    const response = await call(`/api/exchange-tokens/${token.id}`,
                                { headers: { "If-None-Match": token.etag } });
    if (response.status === 304 || current !== token) return;
    const body = await response.json();
    token.etag = response.headers.get("ETag");
    if (body.status === "redeemed") {
      await finish(t("wallet.redeemed", { points: body.points }));
    }
  } catch (error) {
    if (error.code === "token_expired" && current === token) {
      const reason = error.details.reason === "cancelled" ? "cancelled" : "expired";
      await finish(t(`wallet.${reason}`, { points: error.details.points_restored }));
    } else if (error.code !== "network") {
      refuse(error);
    }  // offline for a moment: the next poll tries again
  }
}

async function create(event) {
  event.preventDefault();
  show("refusal", "");
  const body = { points: Number($("points").value) };
  if ($("reward").value.trim()) body.reward = $("reward").value.trim();
  createKey = createKey || newKey();
  try {
    const response = await call("/api/exchange-tokens/",
                                { method: "POST", body, headers: { "Idempotency-Key": createKey } });
    createKey = null;
    const issued = await response.json();
    $("balance").textContent = String(issued.balance);
    const first = await call(`/api/exchange-tokens/${issued.token.id}`);
    await showToken(await first.json(), first.headers.get("ETag"));
  } catch (error) {
    if (error.code !== "network") createKey = null;  // answered: a new submit is a new token
    refuse(error);
  }
}

async function cancel() {
  if (!current) return;
  const token = current;
  try {
    const done = await json(`/api/exchange-tokens/${token.id}`, { method: "DELETE" });
    await finish(t("wallet.cancelled", { points: done.points_restored }));
  } catch (error) {
    if (error.code === "token_expired" || error.code === "token_already_redeemed") {
      await poll();  // it was settled meanwhile: say how
    } else {
      refuse(error);
    }
  }
}

start(async () => {
  $("create-form").addEventListener("submit", create);
  $("cancel").addEventListener("click", cancel);
  setInterval(tick, 250);
  setInterval(poll, POLL_MS);
  await resume(await refresh());
});
