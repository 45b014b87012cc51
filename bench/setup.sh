#!/bin/sh
# Install what bench/run.py drives: wrk, nginx-light (falling back to nginx) and caddy
# (the forward-auth rows) from Debian, and py-spy into the virtualenv for `run.py --profile`; matplotlib for the
# plot of bench/soak.py. Idempotent.
set -eu
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
VENV_BIN="${VENV_BIN:-.venv/bin}"

missing=""
dpkg -s wrk >/dev/null 2>&1 || missing="$missing wrk"
dpkg -s caddy >/dev/null 2>&1 || missing="$missing caddy"
if ! dpkg -s nginx-light >/dev/null 2>&1 && ! dpkg -s nginx >/dev/null 2>&1; then
  missing="$missing nginx"
fi
if [ -n "$missing" ]; then
  echo "installing Debian packages:$missing"
  $SUDO apt-get update -qq
  for p in $missing; do
    if [ "$p" = nginx ]; then
      DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends nginx-light \
        || DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends nginx
    else
      DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$p"
    fi
  done
fi
if [ -x "$VENV_BIN/pip" ] && [ ! -x "$VENV_BIN/py-spy" ]; then
  "$VENV_BIN/pip" install -q py-spy
fi
if [ -x "$VENV_BIN/python" ] && ! "$VENV_BIN/python" -c "import matplotlib" 2>/dev/null; then
  "$VENV_BIN/pip" install -q matplotlib
fi
