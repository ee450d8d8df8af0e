"""The API docs page loads nothing from another host: its scripts, style sheet and icons
come from the API, out of an installed package; pages whose assets no package ships are
not served."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from werkzeug.serving import make_server

from tests.support.browser import launch_chromium

# Every src= and href= in the page, and any absolute URL anywhere in it.
REFERENCE = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""")
ABSOLUTE = re.compile(r"""(?:https?:)?//[A-Za-z0-9.-]+""")


def test_the_swagger_page_references_no_external_host_and_its_assets_load(client):
    page = client.get("/apidoc/swagger/")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert ABSOLUTE.findall(html) == [], "the page names another host"
    references = REFERENCE.findall(html)
    scripts = [r for r in references if r.endswith(".js")]
    assert len(scripts) == 2 and any(r.endswith(".css") for r in references)
    for ref in references:
        assert ref.startswith("/apidoc/swagger/assets/"), ref
        asset = client.get(ref)
        assert asset.status_code == 200, ref
        assert len(asset.get_data()) > 500, ref
    bundle = client.get("/apidoc/swagger/assets/swagger-ui-bundle.js")
    assert bundle.mimetype in ("text/javascript", "application/javascript")
    assert b"SwaggerUIBundle" in bundle.get_data()


@pytest.mark.parametrize("path", [
    "/apidoc/redoc/", "/apidoc/scalar/", "/apidoc/swagger/assets/LICENSE",
    "/apidoc/swagger/assets/..%2Fcore.py", "/apidoc/swagger/assets/swagger-editor.js",
])
def test_pages_without_packaged_assets_and_other_files_are_not_served(client, path):
    assert client.get(path).status_code == 404


@pytest.fixture
def served(app) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(5)


@pytest.mark.timeout(180)
def test_the_page_renders_in_a_browser_from_the_api_alone(served):
    with launch_chromium() as browser:
        page = browser.new_page()
        page.set_default_timeout(60_000)
        requested: list[str] = []
        page.on("request", lambda request: requested.append(request.url))
        page.goto(f"{served}/apidoc/swagger/")
        # Swagger UI rendered the document: the title and an operation of ours.
        page.wait_for_selector("text=Exchange tokens API", timeout=60_000)
        page.wait_for_selector("text=/api/exchange-tokens/redeem/", timeout=60_000)
        hosts = {urlsplit(url).netloc for url in requested if not url.startswith("data:")}
    assert hosts == {urlsplit(served).netloc}, requested
