"""Gatehold's admin UI: server-rendered pages (Jinja2 + vendored htmx) over the admin
service (``gateway.admin``), mounted by the gateway at ``/.gatehold/admin/``.

The UI depends on ``gateway.admin``, never the other way round, and calls the same
workflows as the JSON API and the command line: it holds no second copy of any.
"""

from admin_ui.app import build_admin_ui, mount_admin_ui
from admin_ui.view import ADMIN_UI_PREFIX

__all__ = ["ADMIN_UI_PREFIX", "build_admin_ui", "mount_admin_ui"]
