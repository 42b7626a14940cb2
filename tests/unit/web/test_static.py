"""The page's assets: served with the right types, CSP-clean, and never building HTML
from strings (captured prompts are attacker-controlled text)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from oisp_sensor.web.app import STATIC
from tests.unit.web.conftest import Served

SCRIPTS = sorted(STATIC.rglob("*.js"))
# Ways to turn a string into markup or code. The page never uses any of them.
FORBIDDEN = re.compile(
    r"\.innerHTML|\.outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function\(|"
    r"createContextualFragment|DOMParser|setAttribute\(\s*[\"']on|\.srcdoc"
)
IMPORT = re.compile(r"""^import\s.*?from\s+["'](\.[^"']+)["'];""", re.M)


def test_there_are_scripts() -> None:
    names = {p.relative_to(STATIC).as_posix() for p in SCRIPTS}
    assert {"app.js", "lib/dom.js", "views/live.js", "views/call.js"} <= names


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.relative_to(STATIC).as_posix())
def test_scripts_never_parse_strings_as_html(path: Path) -> None:
    found = FORBIDDEN.findall(path.read_text())
    assert not found, f"{path.name} uses {found}"


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.relative_to(STATIC).as_posix())
def test_imports_resolve(path: Path) -> None:
    for target in IMPORT.findall(path.read_text()):
        assert (path.parent / target).resolve().is_file(), f"{path.name} imports {target}"


def test_page_has_no_inline_code_or_styles() -> None:
    """The CSP allows only our own files; inline code would be blocked (and is a smell)."""
    html = (STATIC / "index.html").read_text()
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html)
    assert "<style" not in html
    assert not re.search(r"\son[a-z]+\s*=", html)
    assert not re.search(r"\sstyle\s*=", html)
    assert "http://" not in html.replace("http://www.w3.org", "")  # no CDN, works offline
    assert "https://" not in html


def test_no_asset_comes_from_elsewhere() -> None:
    for path in [*SCRIPTS, STATIC / "app.css"]:
        text = path.read_text()
        assert not re.search(r"""(?:from|import|url\()\s*["']?(?:https?:)?//""", text), path.name


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/", "text/html"),
        ("/static/app.js", "text/javascript"),
        ("/static/lib/dom.js", "text/javascript"),
        ("/static/app.css", "text/css"),
        ("/static/favicon.svg", "image/svg+xml"),
        ("/api/openapi.json", "application/json"),
    ],
)
async def test_assets_are_served_with_their_types(
    api: Served, path: str, content_type: str
) -> None:
    response = await api.client.get(path)
    assert response.status == 200
    # Module scripts need a JavaScript type; which spelling depends on the system's tables.
    allowed = (
        {content_type, "application/javascript"} if "javascript" in content_type else {content_type}
    )
    assert response.content_type in allowed
    # The page revalidates (a new version shows on reload); API answers are never stored.
    assert response.headers["Cache-Control"] == (
        "no-store" if path.startswith("/api/") else "no-cache"
    )


async def test_static_cannot_escape_its_folder(api: Served) -> None:
    for path in ("/static/../api.py", "/static/%2e%2e/api.py", "/static/..%2fsettings.py"):
        response = await api.client.get(path)
        assert response.status in (403, 404), path
