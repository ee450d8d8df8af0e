// Sign-in shared by the wallet and the till: the page asks for a bearer token (a real app
// gets one from its identity provider) and keeps it for this tab only.
import { bearer, configure, signIn, signOut, subject } from "./api.js";
import { refusal, t, translatePage } from "./i18n.js";

const $ = (id) => document.getElementById(id);

export function show(id, text) {
  const el = $(id);
  el.textContent = text;
  el.hidden = !text;
}

// Shows an API refusal (or a network failure) in words, in the page's refusal box.
export function refuse(error) {
  if (!("code" in error)) throw error;  // a bug, not a refusal: let it surface
  show("refusal", error.code === "network" ? t("error.network") : refusal(error));
}

export async function start(onSignedIn) {
  translatePage();
  // The form's handler goes on before the configuration arrives: a sign-in submitted
  // earlier would otherwise be the browser's own submit, a reload that loses it.
  const configured = configure();
  const enter = async () => {
    await configured;
    $("signin").hidden = true;
    $("signed-in").hidden = false;
    show("who", t("signin.as", { sub: subject() }));
    show("refusal", "");
    try { await onSignedIn(); } catch (error) { refuse(error); }
  };
  $("signin-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    signIn($("bearer").value);
    await enter();
  });
  $("signout").addEventListener("click", () => { signOut(); location.reload(); });
  await configured;
  if (bearer()) await enter();
}
