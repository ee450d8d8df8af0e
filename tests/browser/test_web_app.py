"""The reference wallet and till in headless Chromium, each page on its own origin and
the API on another: the wallet creates a token and shows its QR code; the till previews
and redeems it; the wallet sees it redeemed; another token expires and the wallet shows
the points back; the same in French; a page from an origin the API does not allow is
refused by the browser itself. Screenshots of each step are saved (build/screenshots)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from shared import jwt_tokens
from shared.services import credit
from tests.conftest import TEST_JWT_SECRET
from tests.support.web_app_sites import SHORT_TTL_SECONDS, Site, serve_sites

pytestmark = pytest.mark.slow
WAIT_MS = 15_000  # a generous bound for the page to show what it learned (polls are 1 s)


@pytest.fixture(scope="module")
def sites(settings, container):
    with serve_sites(settings, container) as served:
        yield served


@pytest.fixture(scope="session")
def screenshots() -> Path:
    """Where the run leaves its screenshots (SCREENSHOT_DIR, else build/screenshots)."""
    root = Path(__file__).resolve().parents[2]
    path = Path(os.environ.get("SCREENSHOT_DIR", root / "build" / "screenshots"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def _bearer(sub: str, role: str) -> str:
    return jwt_tokens.encode(TEST_JWT_SECRET, sub, [role], 600)


def _open(browser, site: Site, page_name: str, sub: str, role: str, locale: str = "en-US",
          origin: str | None = None):
    context = browser.new_context(locale=locale)
    page = context.new_page()
    page.console_messages = []  # type: ignore[attr-defined]
    page.on("console", lambda msg: page.console_messages.append(msg.text))
    page.goto(f"{origin or site.pages}/app/{page_name}")
    page.fill("#bearer", _bearer(sub, role))
    page.click("#signin-button")
    return page


def _expect_text(page, selector: str, pattern: str) -> str:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function(
            "([sel, pat]) => { const el = document.querySelector(sel);"
            " return el && !el.hidden && new RegExp(pat).test(el.textContent); }",
            arg=[selector, pattern], timeout=WAIT_MS)
    except PlaywrightTimeout:
        shown = {sel: page.locator(sel).text_content() for sel in (selector, "#refusal")}
        raise AssertionError(f"{selector} never matched {pattern!r}; the page shows {shown}") \
            from None
    return page.inner_text(selector)


def _decode_qr(png: Path) -> str:
    out = subprocess.run(["zbarimg", "--quiet", "--raw", str(png)], capture_output=True,
                         text=True, timeout=30, check=True)
    return out.stdout.strip()


def _create_token(page, points: int, reward: str = "") -> str:
    page.fill("#points", str(points))
    page.fill("#reward", reward)
    page.click("#create")
    page.wait_for_function(
        "() => { const img = document.querySelector('#qr');"
        " return !img.hidden && img.src.startsWith('blob:') && img.complete"
        " && img.naturalWidth > 0 && document.querySelector('#code').textContent; }",
        timeout=WAIT_MS)
    return page.inner_text("#code")


def test_a_sale_from_wallet_to_till_and_back(browser, sites, deps, screenshots):
    site = sites["sale"]
    user, merchant = f"web-{uuid.uuid4().hex[:8]}", f"till-{uuid.uuid4().hex[:8]}"
    credit(deps, user, 50)
    wallet = _open(browser, site, "wallet.html", user, "user")
    _expect_text(wallet, "#balance", r"^50$")

    # The wallet creates a token and shows its QR code, which scans to the code.
    code = _create_token(wallet, 20, "coffee")
    _expect_text(wallet, "#balance", r"^30$")
    _expect_text(wallet, "#countdown", r"\d+ s left")
    wallet.screenshot(path=screenshots / "1-wallet-token.png", full_page=True)
    # A reload (same tab: still signed in) shows the same token again.
    wallet.reload()
    _expect_text(wallet, "#code", f"^{re.escape(code)}$")
    if shutil.which("zbarimg"):
        wallet.locator("#qr").screenshot(path=screenshots / "1-wallet-qr.png")
        assert _decode_qr(screenshots / "1-wallet-qr.png") == code

    # The till previews it: what it is worth and whose; nothing is redeemed yet.
    till = _open(browser, site, "till.html", merchant, "merchant")
    till.fill("#code", code)
    till.click("#preview")
    assert _expect_text(till, "#worth", r"20 points")
    assert user in _expect_text(till, "#customer", user)
    _expect_text(till, "#reward-line", "coffee")
    till.screenshot(path=screenshots / "2-till-preview.png", full_page=True)
    assert wallet.locator("#outcome").is_hidden()

    # Confirmed, but the answer is lost on the way back (the redeem itself was made): the
    # till resends with the same Idempotency-Key and gets its own answer, a receipt.
    lost: list[int] = []

    def lose_the_first_answer(route):
        if route.request.method == "POST" and not lost:
            lost.append(route.fetch().status)  # reaches the API: the token is redeemed
            route.abort("connectionreset")
        else:
            route.continue_()

    till.route(re.compile(r".*/api/exchange-tokens/redeem/$"), lose_the_first_answer)
    till.click("#confirm")
    _expect_text(till, "#receipt-text", r"Redeemed 20 points at")
    assert lost == [200]
    till.screenshot(path=screenshots / "3-till-receipt.png", full_page=True)
    _expect_text(wallet, "#outcome", r"^Redeemed: 20 points spent\.$")
    _expect_text(wallet, "#history", r"20 points redeemed")
    assert wallet.locator("#qr").is_hidden() and wallet.inner_text("#code") == ""
    wallet.screenshot(path=screenshots / "4-wallet-redeemed.png", full_page=True)

    # Refusals in words: the same code again, and a code that never existed.
    till.click("#clear")
    till.fill("#code", code)
    till.click("#preview")
    _expect_text(till, "#refusal", r"^Already redeemed: this code was used before\.$")
    till.fill("#code", "NO-SUCH-CODE")
    till.click("#preview")
    _expect_text(till, "#refusal", r"^Unknown code")
    till.screenshot(path=screenshots / "5-till-refusal.png", full_page=True)

    # The customer cancels another token: the points come back, and the till says so.
    cancelled = _create_token(wallet, 5)
    wallet.click("#cancel")
    _expect_text(wallet, "#outcome", r"^Cancelled: your 5 points are back on your balance\.$")
    _expect_text(wallet, "#balance", r"^30$")
    till.fill("#code", cancelled)
    till.click("#preview")
    _expect_text(till, "#refusal", r"^Cancelled by the customer: the points went back to them\.$")


def test_an_expired_token_gives_the_points_back_in_the_wallet_in_french(
        browser, sites, deps, screenshots):
    site = sites["expiry"]
    user, merchant = f"web-{uuid.uuid4().hex[:8]}", f"till-{uuid.uuid4().hex[:8]}"
    credit(deps, user, 40)
    wallet = _open(browser, site, "wallet.html", user, "user", locale="fr-FR")
    assert wallet.inner_text("h1") == "Portefeuille"
    _expect_text(wallet, "#balance", r"^40$")
    code = _create_token(wallet, 15)
    _expect_text(wallet, "#balance", r"^25$")
    _expect_text(wallet, "#countdown", r"encore \d+ s")
    wallet.screenshot(path=screenshots / "6-portefeuille-jeton.png", full_page=True)

    # Nobody redeems it: once its lifetime is over the wallet says the points are back.
    wallet.wait_for_timeout(SHORT_TTL_SECONDS * 1000)
    _expect_text(wallet, "#outcome", r"^Expiré : vos 15 points sont revenus sur votre solde\.$")
    _expect_text(wallet, "#balance", r"^40$")
    _expect_text(wallet, "#history", r"15 points rendus \(expiré\)")
    wallet.screenshot(path=screenshots / "7-portefeuille-points-rendus.png", full_page=True)

    # A till shown the expired code says so, in its own language.
    for locale, words in (("en-US", r"^Expired: the points went back to the customer\.$"),
                          ("fr-FR", r"^Expiré : les points sont revenus au client\.$")):
        till = _open(browser, site, "till.html", merchant, "merchant", locale=locale)
        till.fill("#code", code)
        till.click("#preview")
        _expect_text(till, "#refusal", words)
        till.screenshot(path=screenshots / f"8-till-expired-{locale}.png", full_page=True)


def test_a_page_from_an_origin_the_api_does_not_allow_is_refused_by_the_browser(
        browser, sites, deps, screenshots):
    site = sites["sale"]
    user = f"web-{uuid.uuid4().hex[:8]}"
    credit(deps, user, 10)
    # The same pages, from another origin (host name), which CORS_ORIGINS does not list.
    other = re.sub(r"^http://127\.0\.0\.1", "http://localhost", site.pages)
    wallet = _open(browser, site, "wallet.html", user, "user", origin=other)
    _expect_text(wallet, "#refusal", r"^Cannot reach the API")
    assert wallet.inner_text("#balance") == "–"
    assert any("CORS policy" in text for text in wallet.console_messages), \
        wallet.console_messages
    wallet.screenshot(path=screenshots / "9-other-origin-refused.png", full_page=True)


def test_a_sign_in_submitted_before_the_configuration_arrives_is_kept(browser, sites, deps):
    """A quick user (or a slow network): the sign-in form is submitted while the page is
    still fetching config.json. The page's own handler takes it, not the browser's submit,
    which would reload the page and lose the sign-in."""
    site = sites["sale"]
    user = f"web-{uuid.uuid4().hex[:8]}"
    credit(deps, user, 7)
    page = browser.new_context().new_page()
    held = []  # config.json requests, answered only after the submit
    page.route("**/config.json", lambda route: held.append(route))
    page.goto(f"{site.pages}/app/wallet.html", wait_until="domcontentloaded")
    page.wait_for_function("() => document.querySelector('#signin-form') !== null")
    while not held:
        page.wait_for_timeout(20)
    page.fill("#bearer", _bearer(user, "user"))
    page.click("#signin-button")
    page.wait_for_timeout(300)  # a native submit would be navigating by now
    for route in held:
        route.continue_()
    page.unroute("**/config.json")  # a request held since goes on as it is
    _expect_text(page, "#balance", r"^7$")
    assert not page.url.endswith("?"), page.url
