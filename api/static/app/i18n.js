// English and French for the wallet and the till. The language is the browser's first
// preference we speak (or ?lang=fr / ?lang=en), and is sent to the API as
// Accept-Language so its own messages match.

const WORDS = {
  en: {
    "app.title": "Exchange tokens",
    "app.intro": "A reference wallet and till for the exchange-tokens API.",
    "app.wallet": "Wallet", "app.till": "Till",
    "signin.label": "Bearer token (JWT)", "signin.button": "Sign in",
    "signin.out": "Sign out", "signin.as": "Signed in as {sub}",
    "wallet.title": "Wallet", "wallet.balance": "Balance",
    "wallet.points": "Points", "wallet.reward": "Reward (optional)",
    "wallet.create": "Create a token", "wallet.current": "Your code",
    "wallet.show": "Show this code to the merchant.",
    "wallet.left": "{seconds} s left",
    "wallet.redeemed": "Redeemed: {points} points spent.",
    "wallet.expired": "Expired: your {points} points are back on your balance.",
    "wallet.cancelled": "Cancelled: your {points} points are back on your balance.",
    "wallet.cancel": "Cancel this token",
    "wallet.history.redeemed": "{points} points redeemed",
    "wallet.history.expired": "{points} points back (expired)",
    "wallet.history.cancelled": "{points} points back (cancelled)",
    "till.title": "Till", "till.code": "Code (scan, type or paste)",
    "till.preview": "Check", "till.confirm": "Confirm the redeem", "till.clear": "New sale",
    "till.worth": "{points} points", "till.reward": "Reward: {reward}",
    "till.customer": "Customer: {user}", "till.left": "Valid for {seconds} s more",
    "till.receipt": "Receipt", "till.receipt.done": "Redeemed {points} points at {at}.",
    "till.receipt.token": "Token {id}",
    "error.token_not_found": "Unknown code: check it and try again.",
    "error.token_already_redeemed": "Already redeemed: this code was used before.",
    "error.token_expired.expired": "Expired: the points went back to the customer.",
    "error.token_expired.cancelled": "Cancelled by the customer: the points went back to them.",
    "error.too_many_attempts": "Too many unknown codes: wait {retry_after} s before trying again.",
    "error.insufficient_points": "Not enough points (balance {balance}).",
    "error.too_many_active_tokens": "Too many active tokens: use or cancel one first.",
    "error.unauthorized": "Sign-in needed: the bearer token is missing, invalid or expired.",
    "error.forbidden": "This sign-in may not do that (wrong role).",
    "error.validation_error": "Check the form: a value is not accepted.",
    "error.idempotency_conflict": "This request was already sent with other values.",
    "error.service_unavailable": "The service is unavailable for a moment: try again.",
    "error.network": "Cannot reach the API (offline, or this page's origin is not allowed).",
    "error.other": "Something went wrong ({status}).",
  },
  fr: {
    "app.title": "Jetons d'échange",
    "app.intro": "Un portefeuille et une caisse de référence pour l'API des jetons d'échange.",
    "app.wallet": "Portefeuille", "app.till": "Caisse",
    "signin.label": "Jeton d'authentification (JWT)", "signin.button": "Se connecter",
    "signin.out": "Se déconnecter", "signin.as": "Connecté en tant que {sub}",
    "wallet.title": "Portefeuille", "wallet.balance": "Solde",
    "wallet.points": "Points", "wallet.reward": "Récompense (facultatif)",
    "wallet.create": "Créer un jeton", "wallet.current": "Votre code",
    "wallet.show": "Présentez ce code au commerçant.",
    "wallet.left": "encore {seconds} s",
    "wallet.redeemed": "Utilisé : {points} points dépensés.",
    "wallet.expired": "Expiré : vos {points} points sont revenus sur votre solde.",
    "wallet.cancelled": "Annulé : vos {points} points sont revenus sur votre solde.",
    "wallet.cancel": "Annuler ce jeton",
    "wallet.history.redeemed": "{points} points utilisés",
    "wallet.history.expired": "{points} points rendus (expiré)",
    "wallet.history.cancelled": "{points} points rendus (annulé)",
    "till.title": "Caisse", "till.code": "Code (scanné, tapé ou collé)",
    "till.preview": "Vérifier", "till.confirm": "Confirmer l'encaissement",
    "till.clear": "Nouvelle vente",
    "till.worth": "{points} points", "till.reward": "Récompense : {reward}",
    "till.customer": "Client : {user}", "till.left": "Valable encore {seconds} s",
    "till.receipt": "Reçu", "till.receipt.done": "{points} points encaissés à {at}.",
    "till.receipt.token": "Jeton {id}",
    "error.token_not_found": "Code inconnu : vérifiez-le et réessayez.",
    "error.token_already_redeemed": "Déjà utilisé : ce code a servi auparavant.",
    "error.token_expired.expired": "Expiré : les points sont revenus au client.",
    "error.token_expired.cancelled": "Annulé par le client : les points lui sont revenus.",
    "error.too_many_attempts": "Trop de codes inconnus : attendez {retry_after} s avant de réessayer.",
    "error.insufficient_points": "Points insuffisants (solde {balance}).",
    "error.too_many_active_tokens": "Trop de jetons actifs : utilisez-en ou annulez-en un d'abord.",
    "error.unauthorized": "Connexion requise : le jeton est absent, invalide ou expiré.",
    "error.forbidden": "Cette connexion ne permet pas cette action (mauvais rôle).",
    "error.validation_error": "Vérifiez le formulaire : une valeur n'est pas acceptée.",
    "error.idempotency_conflict": "Cette requête a déjà été envoyée avec d'autres valeurs.",
    "error.service_unavailable": "Le service est momentanément indisponible : réessayez.",
    "error.network": "L'API est injoignable (hors ligne, ou l'origine de cette page n'est pas autorisée).",
    "error.other": "Une erreur est survenue ({status}).",
  },
};

function chooseLanguage() {
  const asked = new URLSearchParams(location.search).get("lang");
  if (asked && asked in WORDS) return asked;
  for (const tag of navigator.languages || [navigator.language || "en"]) {
    const primary = tag.toLowerCase().split("-")[0];
    if (primary in WORDS) return primary;
  }
  return "en";
}

export const lang = chooseLanguage();

export function t(key, vars = {}) {
  const template = WORDS[lang][key] ?? WORDS.en[key] ?? key;
  return template.replace(/\{(\w+)\}/g, (_, name) => String(vars[name] ?? ""));
}

// The words of an API refusal: the app's own sentence for each error code.
export function refusal(error) {
  if (error.code === "token_expired") {
    return t(`error.token_expired.${error.details?.reason === "cancelled" ? "cancelled" : "expired"}`);
  }
  const key = `error.${error.code}`;
  if (key in WORDS.en) return t(key, { ...error.details, status: error.status });
  return t("error.other", { status: error.status });
}

// Fills every element with data-i18n="key" with its words, and sets <html lang>.
export function translatePage() {
  document.documentElement.lang = lang;
  for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
}
