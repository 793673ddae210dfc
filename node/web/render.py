"""Jinja2: the environment, filters and the page helper.

Templates autoescape everything; the only HTML that reaches a page unescaped is a
contribution's content, sanitised again here with an allow-list (a remote node's
sanitiser is not trusted), and JSON-LD, escaped for a ``<script>`` element.

The environment is made when the application renders its first page (``Templates``):
importing Jinja2 was ~20-35 ms of every start-up, also of a node that answers
federation requests long before anyone opens its web interface. Compiled templates are
kept in ``<data dir>/cache/templates`` (Jinja2's bytecode cache, checked against each
template's source): compiling the home page's templates took ~50 ms at the first page
after every start, loading them ~2 ms. The cache holds code the node runs, so it lives
beside the node's keys and database, in a directory only the node's user may write.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import nh3
from aiohttp import web
from markupsafe import Markup

from node import appkeys
from node.web.i18n import LANGUAGE_COOKIE, Language, Translator, choose_language
from node.web.session import CSRF_TOKEN, LANGUAGE, SESSION

if TYPE_CHECKING:
    import jinja2

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"
STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
CONTENT_TAGS = {
    "p", "br", "hr", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "code", "em",
    "strong", "a", "ul", "ol", "li", "abbr", "sub", "sup", "del", "table", "thead",
    "tbody", "tr", "th", "td",
}  # fmt: skip
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'none'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'; img-src 'self' https: data:"
)
# Characters that could end a <script> element or an HTML comment inside JSON.
_SCRIPT_ESCAPES = {
    ord("<"): "\\u003c", ord(">"): "\\u003e", ord("&"): "\\u0026",
    ord("\u2028"): "\\u2028", ord("\u2029"): "\\u2029",
}  # fmt: skip


def json_for_script(value: Any) -> Markup:
    """JSON safe inside ``<script type="application/ld+json">`` (no ``</script>`` way out)."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":")).translate(_SCRIPT_ESCAPES)
    return Markup(text)  # noqa: S704 - every character that can end the element is escaped


def sanitised_html(value: object) -> Markup:
    """Contribution HTML through the allow-list (links get rel=noopener nofollow)."""
    if not isinstance(value, str):
        return Markup("")
    cleaned = nh3.clean(
        value,
        tags=CONTENT_TAGS,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
    )
    return Markup(cleaned)  # noqa: S704 - nh3 output is the allow-listed subset


class Templates:
    """An application's page templates; the Jinja2 environment is made on first use."""

    __slots__ = ("_cache_dir", "_environment", "_source_dir")

    def __init__(self, cache_dir: Path, source_dir: Path = TEMPLATES_DIR) -> None:
        self._cache_dir = cache_dir
        self._source_dir = source_dir
        self._environment: jinja2.Environment | None = None

    def get(self, name: str) -> jinja2.Template:
        if self._environment is None:
            self._environment = _environment(self._source_dir, self._cache_dir)
        return self._environment.get_template(name)


def _environment(source_dir: Path, cache_dir: Path) -> jinja2.Environment:
    import jinja2  # why lazy: see the module docstring

    for directory in (cache_dir.parent, cache_dir):  # mkdir(parents=True) ignores mode
        directory.mkdir(exist_ok=True, mode=0o700)
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(source_dir)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        bytecode_cache=jinja2.FileSystemBytecodeCache(str(cache_dir)),
    )
    env.filters["json_for_script"] = json_for_script
    env.filters["sanitised"] = sanitised_html
    return env


TEMPLATES = web.AppKey("web_templates", Templates)
TEMPLATE_CACHE_DIR = Path("cache") / "templates"  # in the node's data directory


def setup_templates(app: web.Application) -> None:
    """Nothing is read yet: the first page makes the environment."""
    app[TEMPLATES] = Templates(app[appkeys.CONFIG].data_dir / TEMPLATE_CACHE_DIR)


def language_of(request: web.Request) -> Language:
    """The middleware's choice, or the same choice for pages outside ``web.*`` routes."""
    if LANGUAGE in request:
        return request[LANGUAGE]
    return choose_language(
        request.query.get("lang"),
        request.cookies.get(LANGUAGE_COOKIE),
        request.headers.get("Accept-Language"),
    )


def page(
    request: web.Request,
    template: str,
    context: Mapping[str, Any],
    *,
    status: int = 200,
) -> web.Response:
    """Render a template with what every page needs (texts, language, user, CSRF token)."""
    language = language_of(request)
    other = Language.EN if language is Language.DE else Language.DE
    config = request.app[appkeys.CONFIG]
    common = {
        "t": Translator(language),
        "lang": language.value,
        "other_lang": other.value,
        "switch_language_url": str(request.rel_url.update_query(lang=other.value)),
        "node_name": config.name,
        "node_handle": f"@{config.slug}@{config.domain}",
        "user": request[SESSION].username if SESSION in request else None,
        "csrf_token": request.get(CSRF_TOKEN, ""),
        "path": request.path,
    }
    text = request.config_dict[TEMPLATES].get(f"web/{template}").render({**common, **context})
    response = web.Response(text=text, status=status, content_type="text/html", charset="utf-8")
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers.setdefault("Vary", "Accept, Accept-Language, Cookie")
    response.headers["Content-Language"] = language.value
    return response
