"""An nginx config for Gatehold in forward-auth mode (``gatehold export nginx``).

The shape, and why:

* One ``map`` on ``"$request_method $request_uri"`` — the RAW target, as Gatehold
  canonicalizes it — names the app upstream of each forward-auth route, most specific
  route first (regular expressions are tried in order). Everything else (full-proxy
  routes, unknown paths) maps to nothing and goes to Gatehold's full proxy.
* ``auth_request`` asks ``/.gatehold/auth`` with ``X-Original-URI: $request_uri`` (never
  ``$uri``, which nginx has normalized) and ``X-Original-Method``; that location is
  ``internal``, so a client cannot ask it for an answer or an assertion itself.
* ``proxy_pass`` to the app has no URI part, so nginx sends the client's raw target,
  the one Gatehold judged, not its re-encoded ``$uri``.
* The identity headers come only from the auth answer (``auth_request_set``); an empty
  value makes nginx drop the header, so a client's value never survives. Other client
  identity headers are removed by name (nginx has no wildcard), and nginx drops header
  names with ``_`` by default (``underscores_in_headers off``). ``Cookie`` and
  ``Authorization`` come from the answer too: the client's, without Gatehold's own
  cookies and credentials.
* ``auth_request`` passes only 2xx, 401 and 403 on (another status becomes a 500), so
  the endpoint's status is kept in ``$gatehold_status`` and answered from there.
"""

from __future__ import annotations

from gateway.export_plan import (
    CLIENT_HEADERS_DROPPED,
    IDENTITY_HEADERS,
    PASSED_ON,
    SET_BY_THE_PROXY,
    ExportPlan,
    RouteExport,
    host_port,
    safe_name,
    target_regex,
)

AUTH_LOCATION = "/.gatehold/auth"
REFUSAL_STATUSES = (400, 403, 404, 405, 409, 413, 414, 429, 431, 503)
"""Endpoint answers the config passes on as they are (anything else: 502)."""


def nginx_config(plan: ExportPlan, *, standalone: bool = False) -> str:
    """The ``http``-level config (upstreams, maps, server); with ``standalone`` a whole
    ``nginx.conf`` whose paths are relative to the prefix (``nginx -p DIR``)."""
    body = "\n".join([_upstreams(plan), _maps(plan), _server(plan)])
    if not standalone:
        return _HEADER + body
    indented = "".join(f"    {line}\n" if line else "\n" for line in body.splitlines())
    return _HEADER + _STANDALONE.format(http=indented)


_HEADER = "# Written by `gatehold export nginx` from the rules: edit the rules, export again.\n"
_STANDALONE = """\
pid logs/nginx.pid;
error_log logs/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log logs/access.log;
    client_body_temp_path tmp/body;
    proxy_temp_path tmp/proxy;
    fastcgi_temp_path tmp/fastcgi;
    uwsgi_temp_path tmp/uwsgi;
    scgi_temp_path tmp/scgi;
{http}}}
"""


def _upstream_name(name: str) -> str:
    return f"gatehold_app_{safe_name(name)}"


def _upstreams(plan: ExportPlan) -> str:
    blocks = [f"upstream gatehold {{ server {host_port(plan.gatehold_url)}; keepalive 32; }}"]
    for name, url in plan.upstreams.items():
        blocks.append(
            f"upstream {_upstream_name(name)} {{ server {host_port(url)}; keepalive 32; }}"
        )
    return "\n".join(blocks) + "\n"


def _method_regex(route: RouteExport) -> str:
    return "[A-Z]+" if route.methods is None else "(?:" + "|".join(route.methods) + ")"


def _maps(plan: ExportPlan) -> str:
    lines = ['map "$request_method $request_uri" $gatehold_app {', '    default "";']
    for route in plan.routes:
        value = _upstream_name(route.upstream) if route.forward_auth else '""'
        why = "forward-auth" if route.forward_auth else "full proxy: " + ", ".join(route.needs)
        key = f"~^{_method_regex(route)} {target_regex(route)[1:]}"
        lines.append(f'    "{_quoted(key)}" {value};  # {route.name}: {why}')
    lines.append("}")
    lines.append("map $gatehold_app $gatehold_app_host {")
    lines.append('    default "";')
    for name, url in plan.upstreams.items():
        lines.append(f"    {_upstream_name(name)} {host_port(url)};")
    lines.append("}")
    lines += [
        "map $http_upgrade $gatehold_connection { default upgrade; '' ''; }",
        "# a browser navigation is sent to the sign-in; API clients get the 401",
        'map "$request_method|$gatehold_login|$http_accept" $gatehold_sign_in_to {',
        '    default "";',
        r'    "~^(?:GET|HEAD)\|(?<gh_login>[^|]+)\|.*text/html" $gh_login;',
        "}",
    ]
    return "\n".join(lines) + "\n"


def _quoted(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _variable(header: str) -> str:
    return "$gatehold_" + header.lower().replace("-", "_")


def _server(plan: ExportPlan) -> str:
    return f"""server {{
    listen {plan.listen};
    server_name _;
    underscores_in_headers off;  # client header names with '_' are dropped (I4)

    location = {AUTH_LOCATION} {{
        internal;
        proxy_pass http://gatehold{AUTH_LOCATION};
        proxy_pass_request_body off;
        proxy_set_header Content-Length "";
        proxy_set_header Host $http_host;
        proxy_set_header X-Original-URI $request_uri;
        proxy_set_header X-Original-Method $request_method;
        proxy_set_header X-Forwarded-For $remote_addr;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_set_header X-Forwarded-Host $http_host;
{_auth_request_drops()}        proxy_http_version 1.1;
        proxy_set_header Connection "";
    }}

    location /.gatehold/ {{
{_to_gatehold()}    }}

    location / {{
        error_page 418 = @gatehold_full_proxy;
        if ($gatehold_app = "") {{ return 418; }}
        auth_request {AUTH_LOCATION};
        auth_request_set $gatehold_status $upstream_status;
        auth_request_set $gatehold_login $upstream_http_x_gatehold_login;
{_auth_sets()}        error_page 401 = @gatehold_sign_in;
        error_page 403 500 = @gatehold_refused;
        add_header X-Request-Id $gatehold_x_request_id always;
        proxy_hide_header X-Request-Id;
        proxy_pass http://$gatehold_app;
        proxy_set_header Host $gatehold_app_host;
{_passed_on()}        proxy_set_header X-Forwarded-For $remote_addr;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_set_header X-Forwarded-Host $http_host;
{_identity_headers()}{_dropped_headers()}        proxy_http_version 1.1;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection $gatehold_connection;
    }}

    location @gatehold_full_proxy {{
{_to_gatehold()}    }}

    location @gatehold_sign_in {{
        add_header X-Request-Id $gatehold_x_request_id always;
        if ($gatehold_sign_in_to != "") {{ return 302 $gatehold_sign_in_to; }}
        return 401;
    }}

    location @gatehold_refused {{
        add_header X-Request-Id $gatehold_x_request_id always;
{_refusals()}        return 502;
    }}
}}
"""


def _to_gatehold() -> str:
    """Hand the request as it came (raw target, body) to Gatehold's full proxy."""
    lines = [
        "proxy_pass http://gatehold;",
        "proxy_set_header Host $http_host;",
        "proxy_set_header X-Forwarded-For $remote_addr;",
        "proxy_set_header X-Forwarded-Proto $scheme;",
        "proxy_set_header X-Forwarded-Host $http_host;",
        "proxy_http_version 1.1;",
        "proxy_set_header Upgrade $http_upgrade;",
        "proxy_set_header Connection $gatehold_connection;",
        "proxy_request_buffering off;",
        "proxy_buffering off;",
        "client_max_body_size 0;  # Gatehold enforces each route's limit",
    ]
    return "".join(f"        {line}\n" for line in lines)


def _auth_sets() -> str:
    return "".join(
        f"        auth_request_set {_variable(h)} $upstream_http_{h.lower().replace('-', '_')};\n"
        for h in (*IDENTITY_HEADERS, *PASSED_ON)
    )


def _auth_request_drops() -> str:
    """Client headers the endpoint would read as the front proxy's: set here, or none."""
    names = [
        h
        for h in (*CLIENT_HEADERS_DROPPED, "X-Request-Id")
        if h.lower() not in ("x-original-uri", "x-original-method") and h not in SET_BY_THE_PROXY
    ]
    return "".join(f'        proxy_set_header {h} "";\n' for h in names)


def _passed_on() -> str:
    return "".join(
        f"        proxy_set_header {name} {_variable(answer)};\n"
        for answer, name in PASSED_ON.items()
    )


def _identity_headers() -> str:
    return "".join(f"        proxy_set_header {h} {_variable(h)};\n" for h in IDENTITY_HEADERS)


def _dropped_headers() -> str:
    names = (*CLIENT_HEADERS_DROPPED, *PASSED_ON)
    return "".join(f'        proxy_set_header {h} "";\n' for h in names)


def _refusals() -> str:
    return "".join(
        f"        if ($gatehold_status = {status}) {{ return {status}; }}\n"
        for status in REFUSAL_STATUSES
    )
