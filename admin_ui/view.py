"""``View``: what one page handler gets, and the ways it answers.

A handler reads ``view.ctx`` (the admin service's context for the signed-in admin),
calls ``gateway.admin`` workflows with it, and answers with ``page`` (a whole page),
``fragment`` (a partial template for htmx), ``refused`` (an ``AdminError`` as a page
with the right status) or ``see_other`` (after a change, so a reload does not send the
form twice).
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, NamedTuple
from urllib.parse import urlencode

import jinja2
from aiohttp import web
from multidict import MultiDict, MultiDictProxy

from gateway.admin.service import Admin, AdminContext, AdminError
from gateway.context import Gateway
from gateway.observe import banner

ADMIN_UI_PREFIX = "/.gatehold/admin"
"""Where the gateway mounts the UI."""
PAGE_HEADERS = {"Cache-Control": "no-store"}
NOTICE_MAX = 200


@dataclass(frozen=True, slots=True)
class View:
    """One admin's request to one page."""

    request: web.Request
    gw: Gateway
    ctx: AdminContext
    admin: Admin
    csrf: str
    """The session's CSRF token: every form carries it as the field ``csrf``."""
    templates: jinja2.Environment
    request_id: str

    @property
    def htmx(self) -> bool:
        """The request came from htmx (answer a fragment, not a whole page)."""
        return self.request.headers.get("HX-Request") == "true"

    def query(self, name: str, default: str = "") -> str:
        return self.request.query.get(name, default)

    async def form(self) -> MultiDictProxy[str]:
        """The posted form's text fields (uploads are not part of any admin form)."""
        posted = await self.request.post()
        return MultiDictProxy(MultiDict(_text_fields(posted)))

    def render(self, template: str, **context: Any) -> str:
        return self.templates.get_template(template).render(
            admin=self.admin,
            csrf=self.csrf,
            path=self.request.path,
            notice=self._notice(),
            observing=banner(self.gw.router.routes, self.gw.clock()),
            **context,
        )

    def _seal(self, notice: str) -> str:
        """A notice travels in the address; only one this session's pages sent is shown
        (a crafted link cannot put words on an admin page)."""
        mac = hmac.new(self.csrf.encode(), notice.encode("utf-8", "surrogatepass"), "sha256")
        return mac.hexdigest()[:32]

    def _notice(self) -> str:
        notice = self.query("notice")[:NOTICE_MAX]
        sent = self.query("seal")
        if notice and sent.isascii() and hmac.compare_digest(self._seal(notice), sent):
            return notice
        return ""

    def page(self, template: str, *, status: int = 200, **context: Any) -> web.Response:
        """A whole page (``template`` extends ``layout.html``)."""
        return web.Response(
            status=status,
            text=self.render(template, **context),
            content_type="text/html",
            headers={**PAGE_HEADERS, "X-Request-Id": self.request_id},
        )

    def fragment(self, template: str, *, status: int = 200, **context: Any) -> web.Response:
        """Part of a page, for htmx to swap in (``template`` extends nothing)."""
        return self.page(template, status=status, **context)

    def refused(self, error: AdminError, *, title: str = "Not done") -> web.Response:
        """An ``AdminError`` as a page with its status (403, 404, 409, 422)."""
        template = "refused_fragment.html" if self.htmx else "refused.html"
        return self.page(template, status=error.status, title=title, error=error)

    def see_other(self, path: str, *, notice: str = "", **query: str) -> web.Response:
        """303 to ``path`` (below the UI's prefix), with a notice to show there."""
        params = dict(query)
        if notice:
            notice = notice[:NOTICE_MAX]
            params.update(notice=notice, seal=self._seal(notice))
        location = ADMIN_UI_PREFIX + path
        if params:
            location += "?" + urlencode(params)
        if self.htmx:  # htmx follows a 303 itself; tell it to load the whole page
            return web.Response(status=204, headers={"HX-Redirect": location})
        return web.Response(status=303, headers={"Location": location})


def _text_fields(posted: MultiDictProxy[Any]) -> list[tuple[str, str]]:
    return [(name, value) for name, value in posted.items() if isinstance(value, str)]


PageHandler = Callable[[View], Awaitable[web.StreamResponse]]


class Page(NamedTuple):
    """One route of the UI: method, path below ``/.gatehold/admin``, handler."""

    method: str
    path: str
    handler: PageHandler
