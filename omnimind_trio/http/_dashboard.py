"""The dashboard: one page (``/``) and its files (plain ES modules, a style sheet, an icon),
package data in the ``dashboard/`` folder beside this module.

The routes are registered through :class:`~._routing.Routes`, so the Guard covers them like
any route (they are GETs: a viewer may read them), and marked ``documented=False``: the
OpenAPI document describes the API, not its page. The files are read once per process. They
are served under a version, a digest of their content (``/dashboard/<version>/app.js``): the
page names it, so a browser may keep the files for a year and a new release is a new
address; the page itself is revalidated (``ETag``) on every load. Every answer carries a
strict Content-Security-Policy: scripts, styles and connections from the daemon only, no
inline script or style, no frames.
"""

from __future__ import annotations

import functools
import hashlib
import posixpath
import re
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Final

from quart import Response, request
from werkzeug.exceptions import NotFound

from ._routing import Routes

CONTENT_SECURITY_POLICY: Final = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
SECURITY_HEADERS: Final = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
CONTENT_TYPES: Final = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
"""The kinds of file served; any other file in the folder is not."""
PAGE: Final = "index.html"
VERSION_MARK: Final = b"{{version}}"
"""Where ``index.html`` names the files' version."""
PRELOAD_MARK: Final = b"{{modulepreload}}"
"""Where ``index.html`` lists the modules the first page needs, so the browser fetches them
all at once rather than level by level of their imports."""
PAGE_CACHING: Final = "no-cache"
FILE_CACHING: Final = "private, max-age=31536000, immutable"


@dataclass(frozen=True)
class Asset:
    body: bytes
    content_type: str

    @functools.cached_property
    def etag(self) -> str:
        return hashlib.sha256(self.body).hexdigest()[:20]


@dataclass(frozen=True)
class Bundle:
    """The page, with its files' version written in, and the files by path."""

    version: str
    page: Asset
    files: dict[str, Asset]


def _walk(folder: Traversable, prefix: str = "") -> Iterator[tuple[str, Traversable]]:
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.is_dir():
            yield from _walk(entry, f"{prefix}{entry.name}/")
        elif any(entry.name.endswith(suffix) for suffix in CONTENT_TYPES):
            yield f"{prefix}{entry.name}", entry


STATIC_IMPORT: Final = re.compile(rb"^import\s[^;]*?from\s*'([^']+)'", re.MULTILINE)


def static_imports(files: dict[str, Asset], entry: str) -> set[str]:
    """The modules ``entry`` imports, directly or not, with ``import ... from`` (not the
    pages loaded with ``import()`` when first visited)."""
    found: set[str] = set()
    pending = [entry]
    while pending:
        name = pending.pop()
        folder = posixpath.dirname(name)
        for target in STATIC_IMPORT.findall(files[name].body):
            path = posixpath.normpath(posixpath.join(folder, target.decode()))
            if path in files and path not in found:
                found.add(path)
                pending.append(path)
    return found


@functools.cache
def dashboard_bundle() -> Bundle:
    """The dashboard's files, read from the package once."""
    files: dict[str, Asset] = {}
    digest = hashlib.sha256()
    for name, entry in _walk(resources.files(__package__) / "dashboard"):
        body = entry.read_bytes()
        files[name] = Asset(body, CONTENT_TYPES["." + name.rpartition(".")[2]])
        if name != PAGE:
            digest.update(f"{name}\0{len(body)}\0".encode() + body)
    version = digest.hexdigest()[:16]
    page = files.pop(PAGE)
    preload = "\n".join(
        f'<link rel="modulepreload" href="/dashboard/{version}/{name}">'
        for name in sorted(static_imports(files, "app.js"))
    )
    body = page.body.replace(PRELOAD_MARK, preload.encode()).replace(VERSION_MARK, version.encode())
    return Bundle(version, Asset(body, page.content_type), files)


def _answer(asset: Asset, caching: str) -> Response:
    """``asset``, or 304 when the browser has it already."""
    if request.if_none_match.contains_weak(asset.etag):
        response = Response(b"", status=304)
    else:
        response = Response(asset.body, content_type=asset.content_type)
    response.set_etag(asset.etag)
    response.headers["Cache-Control"] = caching
    response.headers.update(SECURITY_HEADERS)
    return response


def add_dashboard_routes(routes: Routes) -> None:
    route = routes.route

    @route("GET", "/", "The dashboard", response=None, content_type="text/html", documented=False)
    async def dashboard_page() -> Response:
        return _answer(dashboard_bundle().page, PAGE_CACHING)

    @route(
        "GET",
        "/dashboard/<version>/<path:name>",
        "A file of the dashboard",
        response=None,
        content_type="application/octet-stream",
        documented=False,
    )
    async def dashboard_file(version: str, name: str) -> Response:
        bundle = dashboard_bundle()
        asset = bundle.files.get(name) if version == bundle.version else None
        if asset is None:
            raise NotFound()
        return _answer(asset, FILE_CACHING)
