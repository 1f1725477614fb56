"""The OpenAPI document and interactive docs, served from this process.

Swagger UI's files come from the ``swagger-ui-bundle`` package, so the docs
work on a machine with no internet access.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml
from flask import Blueprint, Response, jsonify, send_from_directory
from swagger_ui_bundle import swagger_ui_path

blueprint = Blueprint("docs", __name__)

SPEC_FILE = Path(__file__).with_name("openapi.yaml")

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>alga-acronis-sync API</title>
<link rel="stylesheet" href="/docs/assets/swagger-ui.css">
</head>
<body>
<div id="docs"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/docs/assets/swagger-ui-standalone-preset.js"></script>
<script src="/docs/start.js"></script>
</body>
</html>
"""

# Kept out of the page so that a strict Content-Security-Policy can forbid
# inline scripts.
_START = """window.onload = function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#docs",
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
    layout: "StandaloneLayout"
  });
};
"""


@cache
def openapi_document() -> dict[str, Any]:
    """The API description, read once from ``openapi.yaml``."""
    loaded: dict[str, Any] = yaml.safe_load(SPEC_FILE.read_text(encoding="utf-8"))
    return loaded


@blueprint.get("/openapi.json")
def openapi() -> Response:
    return jsonify(openapi_document())


@blueprint.get("/docs")
def docs() -> Response:
    return Response(_PAGE, mimetype="text/html")


@blueprint.get("/docs/start.js")
def start_script() -> Response:
    return Response(_START, mimetype="text/javascript")


@blueprint.get("/docs/assets/<path:name>")
def assets(name: str) -> Response:
    return send_from_directory(str(swagger_ui_path), name, max_age=86400)
