"""The dashboard over HTTP: its page and files behind the same credentials as the API, with
a strict Content-Security-Policy, the right types and caching; nothing in them comes from
another host or runs inline; the modules' imports resolve; the files ship in the package.

The browser drives it in ``test_dashboard_browser.py``.
"""

from __future__ import annotations

import html.parser
import re
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from omnimind_trio.credentials import Credentials
from omnimind_trio.daemon import Daemon
from omnimind_trio.http import create_app
from omnimind_trio.http._dashboard import CONTENT_SECURITY_POLICY, dashboard_bundle

from .test_access import ADMIN, VIEWER, WRONG
from .test_api import call

ROOT = resources.files("omnimind_trio.http") / "dashboard"
FILES = {
    str(Path(str(path)).relative_to(str(ROOT))): Path(str(path))
    for path in Path(str(ROOT)).rglob("*")
    if Path(str(path)).is_file()
}
TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
POLICY = {
    "default-src": ["'none'"],
    "script-src": ["'self'"],
    "style-src": ["'self'"],
    "img-src": ["'self'", "data:"],
    "connect-src": ["'self'"],
    "base-uri": ["'none'"],
    "form-action": ["'self'"],
    "frame-ancestors": ["'none'"],
}
SVG_NAMESPACE = "http://www.w3.org/2000/svg"
"""An XML namespace name: an identifier, never fetched."""


@pytest.fixture
def client(daemon: Daemon) -> Any:
    credentials = Credentials("tester", "secret-pass", "environment", viewer=("peek", "only-look"))
    return create_app(daemon, credentials).test_client()


def policy(header: str) -> dict[str, list[str]]:
    directives = [part.split() for part in header.split(";") if part.strip()]
    return {name: values for name, *values in directives}


def asset_paths(page: str) -> list[str]:
    """Every local address ``index.html`` loads (src and href, not in-page links)."""
    return [path for path in re.findall(r'(?:src|href)="([^"#]+)"', page) if path != "/"]


def assert_hardened(response: Any) -> None:
    assert policy(response.headers["Content-Security-Policy"]) == POLICY
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"


async def test_the_page_and_its_files_carry_a_strict_policy_types_and_caching(
    client: Any,
) -> None:
    response = await call(client, "GET", "/", headers=ADMIN)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert response.headers["Cache-Control"] == "no-cache"
    assert response.headers["ETag"]
    assert_hardened(response)
    for source in CONTENT_SECURITY_POLICY.split(";"):
        assert "unsafe" not in source
    page = (await response.get_data()).decode()
    version = dashboard_bundle().version
    loaded = asset_paths(page)
    assert {f"/dashboard/{version}/{name}" for name in ("app.js", "style.css")} <= set(loaded)

    names = [name for name in FILES if name != "index.html"]
    for name in names:
        path = f"/dashboard/{version}/{name}"
        answer = await call(client, "GET", path, headers=ADMIN)
        assert answer.status_code == 200, path
        assert answer.headers["Content-Type"] == TYPES[Path(name).suffix], path
        assert answer.headers["Cache-Control"] == "private, max-age=31536000, immutable"
        assert_hardened(answer)
        assert await answer.get_data() == FILES[name].read_bytes()
    assert set(loaded) <= {f"/dashboard/{version}/{name}" for name in names}
    # The first page's modules are preloaded: fetched at once, not one level of imports at
    # a time; the other pages come when first visited.
    first = {"app.js", "pages/tasks.js", "lib/api.js", "lib/dom.js", "lib/live.js"}
    assert {f"/dashboard/{version}/{name}" for name in first} <= set(loaded)
    assert f"/dashboard/{version}/pages/run.js" not in loaded


async def test_an_unchanged_file_answers_304_and_a_stale_version_404(client: Any) -> None:
    version = dashboard_bundle().version
    first = await call(client, "GET", f"/dashboard/{version}/app.js", headers=ADMIN)
    again = await call(
        client,
        "GET",
        f"/dashboard/{version}/app.js",
        headers={**ADMIN, "If-None-Match": first.headers["ETag"]},
    )
    assert again.status_code == 304
    assert await again.get_data() == b""
    page = await call(client, "GET", "/", headers=ADMIN)
    unchanged = {**ADMIN, "If-None-Match": page.headers["ETag"]}
    assert (await call(client, "GET", "/", headers=unchanged)).status_code == 304
    for path in (
        "/dashboard/0000000000000000/app.js",  # another release's files
        f"/dashboard/{version}/nope.js",
        f"/dashboard/{version}/../_dashboard.py",
        f"/dashboard/{version}/index.html",  # the page lives at / only
    ):
        response = await call(client, "GET", path, headers=ADMIN)
        assert response.status_code == 404, path


@pytest.mark.parametrize("headers", [{}, WRONG], ids=["none", "wrong"])
async def test_the_page_and_files_ask_for_credentials_the_browser_way(
    client: Any, headers: dict[str, str]
) -> None:
    version = dashboard_bundle().version
    for path in ("/", f"/dashboard/{version}/app.js", f"/dashboard/{version}/style.css"):
        response = await call(client, "GET", path, headers=headers)
        assert response.status_code == 401, path
        # What makes a browser show its own login dialog.
        assert response.headers["WWW-Authenticate"].startswith("Basic realm=")
        assert b"<" not in await response.get_data()  # no page, not even a bit of it


async def test_a_viewer_gets_the_page_and_files(client: Any) -> None:
    version = dashboard_bundle().version
    for path in ("/", f"/dashboard/{version}/app.js", f"/dashboard/{version}/pages/tasks.js"):
        assert (await call(client, "GET", path, headers=VIEWER)).status_code == 200, path


async def test_the_dashboard_is_not_in_the_api_document(client: Any) -> None:
    document = await (await call(client, "GET", "/openapi.json", headers=ADMIN)).get_json()
    assert "/" not in document["paths"]
    assert not any(path.startswith("/dashboard/") for path in document["paths"])
    assert "/daemon/whoami" in document["paths"]


# -- the files themselves --------------------------------------------------------------------


def text_files() -> dict[str, str]:
    return {name: path.read_text(encoding="utf-8") for name, path in FILES.items()}


def test_no_file_names_another_host() -> None:
    """No address of another host: nothing is fetched from elsewhere at run time (the CSP
    would refuse it anyway)."""
    absolute = re.compile(r"\b(?:https?|wss?|ftp)://", re.IGNORECASE)
    # //host.name as a protocol-relative address: in a string or an attribute, not a comment.
    relative = re.compile(r"""["'(=`]\s*//[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+""")
    for name, text in text_files().items():
        cleaned = text.replace(SVG_NAMESPACE, "")
        assert not absolute.findall(cleaned), (name, absolute.findall(cleaned))
        assert not relative.findall(cleaned), (name, relative.findall(cleaned))
        assert "@import" not in cleaned, name
        if name.endswith(".css"):
            assert "url(" not in cleaned, name


class Page(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[dict[str, str | None]] = []
        self.inline: list[str] = []
        self.attributes: list[tuple[str, str]] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.attributes += [(tag, name) for name, _ in attrs]
        if tag == "script":
            self.scripts.append(dict(attrs))
            self._in_script = True

    def handle_endtag(self, tag: str) -> None:
        self._in_script = self._in_script and tag != "script"

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline.append(data)


def test_the_page_has_no_inline_script_style_or_handler() -> None:
    page = Page()
    page.feed(FILES["index.html"].read_text())
    assert page.scripts == [{"type": "module", "src": "/dashboard/{{version}}/app.js"}]
    assert page.inline == []
    assert [(tag, name) for tag, name in page.attributes if name == "style"] == []
    assert [(tag, name) for tag, name in page.attributes if name.startswith("on")] == []
    assert "<style" not in FILES["index.html"].read_text()


def test_the_modules_build_the_page_from_nodes_not_html_strings() -> None:
    """Task names and output are data: no HTML parsing of strings, no code from strings,
    no style attribute (the CSP refuses one; classes and ``element.style`` only)."""
    forbidden = re.compile(
        r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function|"
        r"setAttribute\(\s*['\"]style|\bstyle:\s"
    )
    for name, text in text_files().items():
        if name.endswith(".js"):
            assert not forbidden.findall(text), (name, forbidden.findall(text))


IMPORT = re.compile(r"import\s*(?:\{([^}]*)\}|\*\s+as\s+\w+)\s*from\s*'([^']+)'")
EXPORT = re.compile(r"export\s+(?:async\s+)?(?:function\*?|class|const|let)\s+(\w+)")


def test_every_module_import_resolves_to_a_file_and_an_export() -> None:
    """What a browser would find on loading: each relative import names a file of the
    bundle, and each imported name is exported there (no build step checks it)."""
    modules = {name: text for name, text in text_files().items() if name.endswith(".js")}
    exports = {name: set(EXPORT.findall(text)) for name, text in modules.items()}
    # app.js and the pages it loads with import() when first visited.
    reached = {
        "app.js",
        *(f"pages/{p}" for p in re.findall(r"import\('\./pages/([^']+)'\)", modules["app.js"])),
    }
    for name, text in modules.items():
        for names, target in IMPORT.findall(text):
            assert target.startswith("./") or target.startswith("../"), (name, target)
            resolved = str(Path(name).parent.joinpath(target)).replace("\\", "/")
            resolved = re.sub(r"[^/]+/\.\./", "", resolved).removeprefix("./")
            assert resolved in modules, (name, target)
            reached.add(resolved)
            for imported in filter(None, (n.strip() for n in names.split(","))):
                assert imported.split(" as ")[0] in exports[resolved], (name, imported)
    assert reached == set(modules)  # no module is left unused


def test_every_page_loaded_on_first_visit_is_a_file_with_render() -> None:
    """The pages ``app.js`` loads with ``import()`` when first visited."""
    app = FILES["app.js"].read_text()
    pages = re.findall(r"import\('\./([^']+)'\)", app)
    assert sorted(pages) == ["pages/add.js", "pages/machine.js", "pages/run.js", "pages/task.js"]
    for page in pages:
        assert "export async function render(" in FILES[page].read_text(), page


def test_the_files_are_package_data_in_the_sdist_and_the_wheel() -> None:
    """Found through importlib.resources (as the server finds them), and each one matched
    by pyproject.toml's package-data, which puts it in the sdist and the wheel."""
    for name in ("index.html", "app.js", "style.css", "pages/tasks.js"):
        assert (ROOT / name).is_file(), name
    pyproject = Path(__file__).parent.parent / "pyproject.toml"
    data = tomllib.loads(pyproject.read_text())["tool"]["setuptools"]["package-data"]
    package = Path(str(ROOT)).parent
    shipped = {
        str(path.relative_to(package / "dashboard"))
        for pattern in data["omnimind_trio.http"]
        for path in package.glob(pattern)  # as setuptools expands them
    }
    assert shipped == set(FILES)
    bundle = dashboard_bundle()
    assert set(bundle.files) == set(FILES) - {"index.html"}
    assert b"{{" not in bundle.page.body
