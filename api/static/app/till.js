// The till: a code typed, pasted or scanned; a preview (what it is worth, whose, how long
// it stays valid; nothing changes); a confirmed redeem; a receipt. Every refusal in words.
// The redeem carries an Idempotency-Key, so resending it after a network error gets the
// till its own answer again rather than "already redeemed".
import { ApiError, json, newKey } from "./api.js";
import { lang, t } from "./i18n.js";
import { refuse, show, start } from "./signin.js";

const $ = (id) => document.getElementById(id);
const RETRIES = 3;
let sale = null;  // {code, key}: the previewed code and the key of its one redeem

function reset() {
  sale = null;
  $("preview-box").hidden = true;
  $("receipt").hidden = true;
  show("refusal", "");
}

async function preview(event) {
  event.preventDefault();
  reset();
  const code = $("code").value.trim();
  if (!code) return;
  try {
    const { token, user_id } = await json("/api/exchange-tokens/redeem/preview/",
                                          { method: "POST", body: { code } });
    sale = { code, key: newKey() };
    $("worth").textContent = t("till.worth", token);
    show("reward-line", token.reward ? t("till.reward", token) : "");
    show("customer", t("till.customer", { user: user_id }));
    show("valid", t("till.left", { seconds: token.expires_in }));
    $("preview-box").hidden = false;
  } catch (error) {
    refuse(error);
  }
}

async function redeemOnce(current) {
  for (let attempt = 1; ; attempt++) {
    try {
      return await json("/api/exchange-tokens/redeem/", {
        method: "POST", body: { code: current.code },
        headers: { "Idempotency-Key": current.key },
      });
    } catch (error) {
      // Lost on the way: the same key again is safe (the first redeem's answer, if any).
      if (!(error instanceof ApiError) || error.code !== "network" || attempt >= RETRIES) throw error;
      await new Promise((resolve) => setTimeout(resolve, 500 * attempt));
    }
  }
}

async function confirm() {
  if (!sale) return;
  const current = sale;
  $("confirm").disabled = true;
  try {
    const { token } = await redeemOnce(current);
    $("preview-box").hidden = true;
    const at = new Date(token.redeemed_at).toLocaleTimeString(lang);
    $("receipt-text").textContent = t("till.receipt.done", { points: token.points, at });
    $("receipt-token").textContent = t("till.receipt.token", token);
    $("receipt").hidden = false;
  } catch (error) {
    $("preview-box").hidden = true;
    refuse(error);
  } finally {
    $("confirm").disabled = false;
  }
}

start(async () => {
  $("code-form").addEventListener("submit", preview);
  $("confirm").addEventListener("click", confirm);
  $("clear").addEventListener("click", () => { reset(); $("code").value = ""; $("code").focus(); });
});
