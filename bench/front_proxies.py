"""nginx and Caddy in front, asking Gatehold's ``/.gatehold/auth`` for each request.

The forward-auth rows of the benchmark: the front proxy moves the bytes to the upstream
and Gatehold only decides (and audits). Both configurations copy every identity header
of Gatehold's 2xx answer to the request they forward, so a header the client sent under
one of those names never reaches the app. Caddy 2.6 copies a missing header as the
literal placeholder text; Gatehold sends every one of them on every 2xx answer.

``/files/`` goes to Gatehold's full proxy, as ``gatehold export`` routes it: a download
route's answer headers are set by the gateway, which a decision alone cannot do. So the
streaming column of these rows is the front proxy plus Gatehold's full proxy.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import nginx
from nginx import PREAMBLE

COPIED = {
    "X-Gatehold-User": "X-Gatehold-User",
    "X-Gatehold-Email": "X-Gatehold-Email",
    "X-Gatehold-Tenant": "X-Gatehold-Tenant",
    "X-Gatehold-Roles": "X-Gatehold-Roles",
    "X-Gatehold-Assertion": "X-Gatehold-Assertion",
    "X-Request-Id": "X-Request-Id",
    "X-Gatehold-Cookie": "Cookie",
    "X-Gatehold-Authorization": "Authorization",
}
"""Header of Gatehold's 2xx answer → the header the front proxy sets on the request to
the app: the identity headers, and the client's ``Cookie`` and ``Authorization`` without
the gateway's own credentials (as the full proxy forwards them)."""

AUTH_PATH = "/.gatehold/auth"

NGINX_TEMPLATE = (
    PREAMBLE
    + """    upstream gatehold {{
        server 127.0.0.1:{gatehold_port};
        keepalive 64;
    }}
    server {{
        listen 127.0.0.1:{port};
        location = /_gatehold_auth {{
            internal;
            proxy_pass http://gatehold{auth_path};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header X-Request-Id "";
            proxy_set_header X-Original-Method $request_method;
            proxy_set_header X-Original-URI $request_uri;
        }}
        location /files/ {{
            proxy_pass http://gatehold;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_max_temp_file_size 0;
        }}
        location /.gatehold/ {{
            proxy_pass http://gatehold;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $remote_addr;
        }}
        location / {{
            auth_request /_gatehold_auth;
{copy_headers}
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_max_temp_file_size 0;
        }}
    }}
}}
"""
)

CADDY_TEMPLATE = """{{
\tadmin off
\tauto_https off
}}

http://:{port} {{
\tbind 127.0.0.1
\t@gatehold path /.gatehold/* /files/*
\thandle @gatehold {{
\t\treverse_proxy 127.0.0.1:{gatehold_port}
\t}}
\thandle {{
\t\tforward_auth 127.0.0.1:{gatehold_port} {{
\t\t\turi {auth_path}
\t\t\tcopy_headers {headers}
\t\t}}
\t\treverse_proxy 127.0.0.1:{upstream_port}
\t}}
}}
"""


def _snake(header: str) -> str:
    return header.lower().replace("-", "_")


def write_nginx(root: Path, *, port: int, upstream_port: int, gatehold_port: int) -> Path:
    """``root/nginx.conf``: ``auth_request`` to Gatehold, then ``proxy_pass`` to the app."""
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o755)  # workers run as an unprivileged user when started by root
    copy = "\n".join(
        f"            auth_request_set $auth_{_snake(h)} $upstream_http_{_snake(h)};\n"
        f"            proxy_set_header {to} $auth_{_snake(h)};"
        for h, to in COPIED.items()
    )
    path = root / "nginx.conf"
    path.write_text(
        NGINX_TEMPLATE.format(
            root=root,
            port=port,
            upstream_port=upstream_port,
            gatehold_port=gatehold_port,
            auth_path=AUTH_PATH,
            copy_headers=copy,
        )
    )
    return path


def nginx_argv(config: Path) -> list[str]:
    return nginx.nginx_argv(config)


def caddy_binary() -> str:
    found = shutil.which("caddy")
    if not found:
        raise RuntimeError("caddy is not installed: run `make bench-deps` (or bench/setup.sh)")
    return found


def write_caddy(root: Path, *, port: int, upstream_port: int, gatehold_port: int) -> Path:
    """``root/Caddyfile``: ``forward_auth`` to Gatehold, then ``reverse_proxy`` to the app."""
    root.mkdir(parents=True, exist_ok=True)
    path = root / "Caddyfile"
    path.write_text(
        CADDY_TEMPLATE.format(
            port=port,
            upstream_port=upstream_port,
            gatehold_port=gatehold_port,
            auth_path=AUTH_PATH,
            headers=" ".join(h if h == to else f"{h}>{to}" for h, to in COPIED.items()),
        )
    )
    return path


def caddy_argv(config: Path) -> list[str]:
    return [caddy_binary(), "run", "--config", str(config), "--adapter", "caddyfile"]


def caddy_env(root: Path) -> dict[str, str]:
    """Caddy keeps its state (autosave.json, certificates) under these; keep it in ``root``."""
    return {"XDG_DATA_HOME": str(root / "data"), "XDG_CONFIG_HOME": str(root / "config")}
