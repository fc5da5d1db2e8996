#!/usr/bin/env bash
# Make sure Debian's Chromium is installed for the browser tests (taxi_assets_tests/test_ui_browser.py).
# Idempotent: does nothing when /usr/bin/chromium exists. Playwright drives this binary through
# executable_path; Playwright's own browser download is never used.
set -euo pipefail
CHROMIUM="${TAXI_CHROMIUM:-/usr/bin/chromium}"
if [ -x "$CHROMIUM" ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure_chromium: $CHROMIUM is missing and there is no apt-get; install Chromium and set TAXI_CHROMIUM" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi
echo "ensure_chromium: installing Debian's chromium package"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null
"$CHROMIUM" --version
