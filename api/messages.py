"""Error messages in English and French, chosen by ``Accept-Language``."""

from __future__ import annotations

from typing import Any

from flask import request

LANGUAGES = ("en", "fr")

# code -> (English, French). ``{...}`` fields come from the error's details.
MESSAGES: dict[str, tuple[str, str]] = {
    "bad_request": ("The request body is not valid JSON.",
                    "Le corps de la requête n'est pas du JSON valide."),
    "unauthorized": ("A valid bearer token is required.",
                     "Un jeton d'authentification valide est requis."),
    "forbidden": ("Your role does not allow this action.",
                  "Votre rôle ne permet pas cette action."),
    "not_found": ("No such route.", "Cette route n'existe pas."),
    "method_not_allowed": ("This method is not allowed on this route.",
                           "Cette méthode n'est pas permise sur cette route."),
    "payload_too_large": ("The request body is larger than 64 KiB.",
                          "Le corps de la requête dépasse 64 Kio."),
    "validation_error": ("The request is invalid; see details for the fields at fault.",
                         "La requête est invalide ; voir les détails pour les champs en cause."),
    "insufficient_points": ("Not enough points: the balance is {balance}.",
                            "Points insuffisants : le solde est de {balance}."),
    "too_many_active_tokens": ("Too many active tokens (at most {limit}).",
                               "Trop de jetons actifs (au plus {limit})."),
    "token_not_found": ("No such token.", "Ce jeton n'existe pas."),
    "token_already_redeemed": ("This token was already redeemed.",
                               "Ce jeton a déjà été utilisé."),
    "token_expired_expired": (
        "This token expired; its {points_restored} points were restored to the balance.",
        "Ce jeton a expiré ; ses {points_restored} points ont été rendus au solde.",
    ),
    "token_expired_cancelled": (
        "This token was cancelled; its {points_restored} points were restored to the balance.",
        "Ce jeton a été annulé ; ses {points_restored} points ont été rendus au solde.",
    ),
    "too_many_attempts": ("Too many failed attempts; try again in {retry_after} s.",
                          "Trop de tentatives échouées ; réessayez dans {retry_after} s."),
    "idempotency_conflict": (
        "This Idempotency-Key was already used with another request.",
        "Cette Idempotency-Key a déjà servi pour une autre requête.",
    ),
    "dead_letter_not_found": ("No dead letter with this id is parked.",
                              "Aucun message en lettre morte ne porte cet identifiant."),
    "job_not_found": ("No such ops job.", "Cette tâche d'exploitation n'existe pas."),
    "service_unavailable": ("The service is temporarily unavailable; please retry.",
                            "Le service est momentanément indisponible ; veuillez réessayer."),
    "internal_error": ("An unexpected error occurred.", "Une erreur inattendue est survenue."),
}


def language() -> str:
    """``fr`` when the client's most preferred language we speak is French, else ``en``.

    Compared by primary subtag, in the client's order of preference (werkzeug sorts by
    q-value): ``en-GB, fr;q=0.5`` is English, ``fr-CA`` is French.
    """
    try:
        preferences = list(request.accept_languages)
    except RuntimeError:  # outside a request
        return "en"
    for tag, quality in preferences:
        primary = tag.split("-")[0].split("_")[0].lower()
        if quality > 0 and primary in LANGUAGES:
            return primary
    return "en"


def message(code: str, details: dict[str, Any]) -> str:
    key = code
    if code == "token_expired":
        key = f"token_expired_{details.get('reason', 'expired')}"
    english, french = MESSAGES.get(key, (code.replace("_", " ").capitalize() + ".",) * 2)
    template = french if language() == "fr" else english
    try:
        return template.format(**details)
    except (KeyError, IndexError, ValueError):
        return template
