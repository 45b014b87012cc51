"""nginx configurations: a plain reverse proxy, and the same with ``auth_request``."""

from __future__ import annotations

import shutil
from pathlib import Path

PREAMBLE = """
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {root}/client_body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    keepalive_requests 100000;
    upstream app {{
        server 127.0.0.1:{upstream_port};
        keepalive 64;
    }}
"""
"""Everything up to the app's upstream, shared by every bench nginx (a private
prefix under ``root``, no access log, long keep-alive); ``http {`` stays open."""

TEMPLATE = (
    PREAMBLE
    + """{auth_upstream}
    server {{
        listen 127.0.0.1:{port};
        location / {{
{auth_request}
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_max_temp_file_size 0;
        }}
{auth_location}
    }}
}}
"""
)

AUTH_UPSTREAM = """
    upstream auth {{
        server 127.0.0.1:{auth_port};
        keepalive 64;
    }}
"""

AUTH_LOCATION = """
        location = /_auth {
            internal;
            proxy_pass http://auth/check;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Original-URI $request_uri;
        }
"""


def nginx_binary() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else "")
    if not found:
        raise RuntimeError("nginx is not installed: run `make bench-deps` (or bench/setup.sh)")
    return found


def write_config(root: Path, *, port: int, upstream_port: int, auth_port: int | None) -> Path:
    """Write ``root/nginx.conf``; with ``auth_port`` every request is checked first."""
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o755)  # workers run as an unprivileged user when started by root
    config = TEMPLATE.format(
        root=root,
        port=port,
        upstream_port=upstream_port,
        auth_upstream=AUTH_UPSTREAM.format(auth_port=auth_port) if auth_port else "",
        auth_request="            auth_request /_auth;" if auth_port else "",
        auth_location=AUTH_LOCATION if auth_port else "",
    )
    path = root / "nginx.conf"
    path.write_text(config)
    return path


def nginx_argv(config: Path) -> list[str]:
    root = config.parent
    return [
        nginx_binary(),
        "-p",
        str(root),
        "-e",
        str(root / "error.log"),
        "-c",
        str(config),
        "-g",
        "daemon off;",
    ]
