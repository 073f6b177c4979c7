"""Find what a built site would load from another host (a CDN, web fonts, a script).

Every HTML file's resource attributes (`src`, `srcset`, `<link href>`, `poster`, `data`, SVG `href`)
and every stylesheet's `url(...)` and `@import` are read; a reference with a scheme and a host
other than the loopback one is reported. Plain links in text (`<a href>`) are not loads and are
allowed. Strings inside JavaScript bundles are not judged here: the browser check
(tests/site/test_browser.py) records what the pages actually request.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
# attributes that make the browser fetch something, per tag ("*": any tag)
_LOAD_ATTRS = {"*": ("src", "srcset", "poster", "data", "background"), "link": ("href",), "use": ("href", "xlink:href"), "image": ("href", "xlink:href")}
_CSS_URL = re.compile(r"""url\(\s*['"]?(?P<url>[a-zA-Z][a-zA-Z0-9+.-]*://[^'")\s]+)""")
_CSS_IMPORT = re.compile(r"""@import\s+['"](?P<url>[a-zA-Z][a-zA-Z0-9+.-]*://[^'"]+)['"]""")


@dataclass(frozen=True)
class ExternalReference:
    """One thing a page would fetch from another host."""

    file: str
    what: str
    url: str

    def __str__(self) -> str:
        return f"{self.file}: {self.what} -> {self.url}"


def is_external(url: str) -> bool:
    """True for a URL that names a host other than the loopback (http, https, protocol-relative)."""
    url = url.strip()
    if url.startswith("//"):
        url = "http:" + url
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https", "ws", "wss", "ftp"):
        return False
    return (parts.hostname or "") not in LOCAL_HOSTS


def css_references(css: str) -> list[str]:
    """The absolute URLs a stylesheet loads (url(...) and @import)."""
    return [m.group("url") for m in _CSS_URL.finditer(css)] + [m.group("url") for m in _CSS_IMPORT.finditer(css)]


class _Loads(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[str, str]] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = _LOAD_ATTRS["*"] + _LOAD_ATTRS.get(tag, ())
        for name, value in attrs:
            if value is None:
                continue
            if name in names:
                urls = [u.strip().split(" ")[0] for u in value.split(",")] if name == "srcset" else [value]
                self.found += [(f"<{tag} {name}>", u) for u in urls]
            elif name == "style":
                self.found += [(f"<{tag} style>", u) for u in css_references(value)]
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.found += [("<style>", u) for u in css_references(data)]


def html_references(html: str) -> list[tuple[str, str]]:
    """(where, url) for everything an HTML page loads by itself (not its links)."""
    parser = _Loads()
    parser.feed(html)
    parser.close()
    return parser.found


def external_references(site: Path) -> list[ExternalReference]:
    """Every load from another host in the built site's HTML and CSS files."""
    found: list[ExternalReference] = []
    for path in sorted(site.rglob("*")):
        if path.suffix not in (".html", ".css") or not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        pairs = html_references(text) if path.suffix == ".html" else [("url()", u) for u in css_references(text)]
        rel = path.relative_to(site).as_posix()
        found += [ExternalReference(rel, what, url) for what, url in pairs if is_external(url)]
    return found
