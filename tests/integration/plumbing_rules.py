"""Rules for tests of forwarding itself: echo, big downloads, slow answers, redirects."""

PLUMBING_RULES = """
version: 1
upstreams:
  ledger: {url: "${LEDGER_URL}", timeout: 1s}
  nowhere: {url: "http://127.0.0.1:9", timeout: 1s}
roles:
  standard: {can: [read, write]}
routes:
  - name: echo
    match: {path: "/api/echo/{rest:path}"}
    upstream: ledger
    max_body: 1MiB
  - name: echo-root
    match: {path: "/api/echo"}
    upstream: ledger
  - name: big
    match: {path: "/big/{mib:int}", methods: [GET]}
    upstream: ledger
  - name: slow
    match: {path: "/slow", methods: [GET]}
    upstream: ledger
  - name: redirect
    match: {path: "/redirect-home", methods: [GET]}
    upstream: ledger
  - name: down
    match: {path: "/down", methods: [GET]}
    upstream: nowhere
  - name: feed
    match: {path: "/ws/{tenant:slug}/feed", methods: [GET]}
    upstream: ledger
    tenant: path.tenant
    websocket: true
"""
