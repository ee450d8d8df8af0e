"""The interactive API docs page (Swagger UI at ``/apidoc/swagger/``), with every script,
style sheet and icon served by the API itself from the installed, pinned ``swagger-ui-py``
package: the page works on a network without internet, and no third party's script runs
next to an admin's bearer token.

spectree's stock pages load their assets from public CDNs (one of them unpinned); only
Swagger UI has a Python package that ships its assets, so ReDoc and spectree's other
viewers are not served (their paths answer 404). The online spec validator badge is off:
it is an image from swagger.io.
"""

from __future__ import annotations

from importlib.resources import files

from flask import Flask, Response, abort, send_from_directory

ASSETS_URL = "/apidoc/swagger/assets"
# The files the page loads; nothing else of the package is reachable.
ASSETS = frozenset({
    "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js", "swagger-ui.css",
    "favicon-32x32.png", "favicon-16x16.png",
})
ASSET_MAX_AGE_SECONDS = 3600

# An f-string that makes a str.format template (spectree fills spec_url): braces doubled twice.
SWAGGER_PAGE = f"""<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="UTF-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Exchange tokens API</title>
  <link rel="stylesheet" href="{ASSETS_URL}/swagger-ui.css">
  <link rel="icon" type="image/png" href="{ASSETS_URL}/favicon-32x32.png" sizes="32x32">
  <link rel="icon" type="image/png" href="{ASSETS_URL}/favicon-16x16.png" sizes="16x16">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="{ASSETS_URL}/swagger-ui-bundle.js"></script>
  <script src="{ASSETS_URL}/swagger-ui-standalone-preset.js"></script>
  <script>
    window.onload = function () {{{{
      window.ui = SwaggerUIBundle({{{{
        url: "{{spec_url}}",
        dom_id: "#swagger-ui",
        presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
        layout: "StandaloneLayout",
        persistAuthorization: false,
        validatorUrl: null,
      }}}});
    }}}};
  </script>
</body>
</html>
"""

PAGE_TEMPLATES = {"swagger": SWAGGER_PAGE}


def _assets_dir() -> str:
    return str(files("swagger_ui") / "static")


def register_docs_assets(app: Flask) -> None:
    """Serve the page's assets from the installed package."""
    directory = _assets_dir()

    @app.get(f"{ASSETS_URL}/<name>")
    def swagger_asset(name: str) -> Response:
        if name not in ASSETS:
            abort(404)
        return send_from_directory(directory, name, max_age=ASSET_MAX_AGE_SECONDS)
