"""An email's HTML as the sandboxed frame on the ticket page shows it.

Intake stored the HTML sanitized (nh3) already; it is cleaned again here, at the edge that shows it,
so whatever wrote `messages.body_html` the page never gets more than this allow-list. The frame's
own CSP forbids scripts, forms, plugins and every fetch but `data:` images, and the page's
`<iframe sandbox>` (no `allow-scripts`) would stop a script even if one got through.

Images: inline ones (`cid:`) become `data:` URLs of the message's own attachments; remote ones stay
held back as `data-remote-src` (intake moved them there) until the agent asks for them, because
loading them tells the sender the mail was opened.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Callable, Mapping
from urllib.parse import unquote

import nh3

STYLE_PROPERTIES = frozenset({
    "color", "background-color", "font-weight", "font-style", "font-size", "font-family", "text-decoration",
    "text-align", "vertical-align", "white-space", "line-height", "width", "height", "margin", "margin-top",
    "margin-bottom", "margin-left", "margin-right", "padding", "padding-top", "padding-bottom",
    "padding-left", "padding-right", "border", "border-top", "border-bottom", "border-left", "border-right",
})
URL_SCHEMES = frozenset({"http", "https", "mailto", "tel", "cid"})
_ATTRIBUTES = {tag: set(attrs) for tag, attrs in nh3.ALLOWED_ATTRIBUTES.items()}
_ATTRIBUTES["*"] = {"style"}
_ATTRIBUTES["img"] = _ATTRIBUTES.get("img", set()) | {"data-remote-src"}
_ATTRIBUTES["a"] = _ATTRIBUTES.get("a", set()) - {"target"}

BASE_POLICY = ("default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'self'; base-uri 'none';"
               " form-action 'none'; sandbox allow-popups allow-popups-to-escape-sandbox")
"""The frame's CSP (plus `img-src`). `sandbox` here too, so the document is sandboxed even when opened
on its own, outside the page's iframe."""

_REMOTE = re.compile(r'\sdata-remote-src="([^"]*)"')
_CID_SRC = re.compile(r'\ssrc="cid:([^"]*)"', re.IGNORECASE)
INLINE_IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})


_ACTIVE_CSS = re.compile(r"expression|url\s*\(|javascript:|behavior|binding|@import|\\", re.IGNORECASE)
"""CSS that fetches or runs something (or hides it behind an escape): such a style is dropped whole."""
_IMG_TAG = re.compile(r"<img((?:\s+[\w:-]+(?:=\"[^\"]*\")?)*)\s*/?>")
_REMOTE_SRC = re.compile(r"(\s)src=\"((?:https?:)?//[^\"]*)\"", re.IGNORECASE)


def _drop_active_css(tag: str, attribute: str, value: str) -> str | None:
    return None if attribute == "style" and _ACTIVE_CSS.search(value) else value


def _hold_remote_image(match: re.Match[str]) -> str:
    """A remote `src` becomes `data-remote-src` (nh3 writes every attribute as `name="value"`)."""
    return "<img" + _REMOTE_SRC.sub(r'\1data-remote-src="\2"', match.group(1)) + ">"


def sanitize(markup: str) -> str:
    """The allow-list: formatting tags, links (opening in a new tab, without referrer), a few style
    properties, images (remote ones held back); no scripts, event handlers, forms, frames, active
    CSS, `javascript:` or `data:` links."""
    clean = nh3.clean(
        markup,
        clean_content_tags={"script", "style", "title", "template"},
        attributes=_ATTRIBUTES,
        attribute_filter=_drop_active_css,
        url_schemes=set(URL_SCHEMES),
        filter_style_properties=set(STYLE_PROPERTIES),
        set_tag_attribute_values={"a": {"target": "_blank"}},
        link_rel="noopener noreferrer",
    )
    return _IMG_TAG.sub(_hold_remote_image, clean)


def content_id(value: str) -> str:
    """`<part1@example.com>` and `cid:part1%40example.com` name the same part."""
    return unquote(value).strip().strip("<>").lower()


def _inline(images: Mapping[str, tuple[str, bytes]]) -> Callable[[re.Match[str]], str]:
    def replace(match: re.Match[str]) -> str:
        found = images.get(content_id(html.unescape(match.group(1))))
        if found is None:
            return ""
        content_type, data = found
        return f' src="data:{content_type};base64,{base64.b64encode(data).decode()}"'
    return replace


def _show_remote(match: re.Match[str]) -> str:
    url = html.unescape(match.group(1))
    if not url.lower().startswith(("https://", "http://")):
        return ""
    return f' src="{html.escape(url, quote=True)}"'


def document(markup: str, *, inline_images: Mapping[str, tuple[str, bytes]], remote_images: bool,
             hidden_notice: str, language: str) -> tuple[str, str]:
    """(the frame's HTML document, its Content-Security-Policy). `inline_images` maps content ids to
    (content type, bytes) of the message's inline image attachments."""
    body = _CID_SRC.sub(_inline(inline_images), sanitize(markup))
    notice = ""
    if remote_images:
        body = _REMOTE.sub(_show_remote, body)
        policy = f"{BASE_POLICY}; img-src data: https: http:"
    else:
        if _REMOTE.search(body):
            notice = (f'<p style="font: 12px sans-serif; color: #5b6475; border-bottom: 1px solid #d9dde5;'
                      f' padding: 4px 0; margin: 0 0 8px">{html.escape(hidden_notice)}</p>')
        policy = f"{BASE_POLICY}; img-src data:"
    page = (f'<!doctype html><html lang="{html.escape(language)}"><head><meta charset="utf-8">'
            f'<meta name="referrer" content="no-referrer"></head><body>{notice}{body}</body></html>')
    return page, policy
