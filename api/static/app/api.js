// The API client of the wallet and the till: where the API is (config.json, served with
// this page), the bearer token, Accept-Language, and errors as {status, code, details}.
import { lang } from "./i18n.js";

let base = "";
const SESSION_KEY = "exchange-tokens.bearer";

export async function configure() {
  const config = await (await fetch("config.json", { cache: "no-store" })).json();
  base = config.api_url || "";
}

export function bearer() { return sessionStorage.getItem(SESSION_KEY); }
export function signIn(token) { sessionStorage.setItem(SESSION_KEY, token.trim()); }
export function signOut() { sessionStorage.removeItem(SESSION_KEY); }

// The token's subject, read from the JWT for display only (the API checks the signature).
export function subject() {
  try {
    const payload = bearer().split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(payload)).sub;
  } catch { return ""; }
}

export class ApiError extends Error {
  constructor(status, code, details = {}, message = "") {
    super(message || code);
    Object.assign(this, { status, code, details });
  }
}

// fetch() with the headers every call needs. Resolves to the Response for 2xx and 304;
// rejects with an ApiError otherwise (status 0, code "network": the API was not reached,
// which is also what a browser makes of a refused CORS check).
export async function call(path, { method = "GET", body, headers = {} } = {}) {
  const init = {
    method,
    headers: { "Accept-Language": lang, ...headers },
    cache: "no-store",  // tokens and QR codes are bearer secrets: never in the HTTP cache
  };
  if (bearer()) init.headers.Authorization = `Bearer ${bearer()}`;
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(base + path, init);
  } catch {
    throw new ApiError(0, "network");
  }
  if (response.ok || response.status === 304) return response;
  let error = {};
  try { error = (await response.json()).error || {}; } catch { /* not JSON: keep the status */ }
  const details = error.details || {};
  if (response.headers.get("Retry-After") && details.retry_after === undefined) {
    details.retry_after = Number(response.headers.get("Retry-After"));
  }
  throw new ApiError(response.status, error.code || "other", details, error.message);
}

export async function json(path, options) {
  return (await call(path, options)).json();
}

// A key for one intended action, reused when that same action is sent again.
export function newKey() { return crypto.randomUUID(); }
