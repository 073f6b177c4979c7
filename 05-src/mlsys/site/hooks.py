"""mkdocs hooks for the course site (listed under `hooks:` in mkdocs.yml).

- `on_config`: the navigation comes from the staged pages, so lessons added later (08, 09, ...)
  appear without editing mkdocs.yml.
- `on_page_content`, notebook pages only: mkdocs-jupyter renders through nbconvert's lab template,
  which loads MathJax 2 and mermaid from cdnjs. Both blocks are removed (the site loads its own
  MathJax 3, see mkdocs.yml). mkdocs checks links in Markdown pages but not in a notebook's
  HTML, so relative links there are mapped to the pages' URLs here, and one that leads nowhere
  is a warning, which `--strict` turns into a failed build.
"""

from __future__ import annotations

import logging
import posixpath
import re
from pathlib import Path
from urllib.parse import unquote

from mkdocs.structure.toc import get_toc
from mkdocs.utils import get_relative_url

from mlsys.site.stage import nav

log = logging.getLogger("mkdocs.hooks.mlsys_site")

MATHJAX_BLOCK = re.compile(r"<!-- Load mathjax -->.*?<!-- End of mathjax configuration -->", re.DOTALL)
MERMAID_BLOCK = re.compile(r"<script type=\"module\">(?:(?!</script>).)*?\.jp-Mermaid.*?</script>", re.DOTALL)
HREF = re.compile(r"(?P<attr>\b(?:href|src)=\")(?P<url>[^\"]*)\"")
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")
HEADING = re.compile(r"<h(?P<level>[1-6])\b[^>]*?\bid=\"(?P<id>[^\"]+)\"[^>]*>(?P<body>.*?)</h(?P=level)>", re.DOTALL)
ANCHOR_LINK = re.compile(r"<a class=\"anchor-link\".*?</a>", re.DOTALL)
TAG = re.compile(r"<[^>]+>")


def on_config(config):
    if not config.get("nav"):
        config["nav"] = nav(Path(config["docs_dir"]))
    return config


def on_page_content(html, page, config, files):
    if not page.file.src_uri.endswith(".ipynb"):
        return html
    if 'class="jp-Mermaid"' in html:
        log.warning("%s has a mermaid diagram: the site ships no mermaid (it would come from a CDN)", page.file.src_uri)
    html = MATHJAX_BLOCK.sub("", html)
    html = MERMAID_BLOCK.sub("", html)
    page.toc = get_toc(heading_toc(html))
    return HREF.sub(lambda m: _map_link(m, page, files), html)


def heading_toc(html: str) -> list[dict]:
    """Table-of-contents tokens (Python-Markdown's shape) from a page's rendered `<hN id=...>` headings.

    Each entry's anchor is the heading's own id and its title the heading's text (still HTML-escaped,
    as Markdown's tokens are), inline code included; deeper headings nest under the one before.
    """
    root: list[dict] = []
    open_headings: list[dict] = []
    for match in HEADING.finditer(html):
        level = int(match["level"])
        name = TAG.sub("", ANCHOR_LINK.sub("", match["body"])).strip()
        token = {"level": level, "id": match["id"], "name": name, "children": []}
        while open_headings and open_headings[-1]["level"] >= level:
            open_headings.pop()
        (open_headings[-1]["children"] if open_headings else root).append(token)
        open_headings.append(token)
    return root


def _map_link(match: re.Match[str], page, files) -> str:
    url = match.group("url")
    if not url or url.startswith(("#", "/")) or _SCHEME.match(url):
        return match.group(0)
    path, sep, anchor = url.partition("#")
    target = posixpath.normpath(posixpath.join(posixpath.dirname(page.file.src_uri), unquote(path)))
    found = files.get_file_from_path(target)
    if found is None:
        log.warning("%s links to '%s', which is not on the site", page.file.src_uri, url)
        return match.group(0)
    new = get_relative_url(found.url, page.url) + (sep + anchor if sep else "")
    return f'{match.group("attr")}{new}"'
