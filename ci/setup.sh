#!/usr/bin/env bash
# Installs what the tests need on a fresh machine. Idempotent: skips what is already there.
set -euo pipefail
need=()
command -v mosquitto >/dev/null 2>&1 || need+=(mosquitto)
command -v mosquitto_sub >/dev/null 2>&1 || need+=(mosquitto-clients)
# Headless Chromium for the opt-in browser test of the HTML report (harness/tests/report_browser.rs).
command -v chromium >/dev/null 2>&1 || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
rustup component add rustfmt clippy >/dev/null 2>&1 || true
# The official Python client (taos-ws-py) for the stand-in's compatibility suite
# (simulator/tests/python_client.rs), pinned, in a venv at the repository root.
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/.venv-py"
taos_ws_py=0.7.0
if ! "$venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('taos-ws-py') != '$taos_ws_py')" 2>/dev/null; then
  command -v python3 >/dev/null 2>&1 || {
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends python3 python3-venv >/dev/null
  }
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "taos-ws-py==$taos_ws_py"
fi
