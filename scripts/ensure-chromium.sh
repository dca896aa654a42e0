#!/usr/bin/env bash
# The report test opens the HTML report in a real headless browser: Debian's chromium.
# Install it when it is missing and this user can (root with apt-get, as in CI).
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    exit 0
fi
echo "chromium is missing: install Debian's chromium package (the report test needs it)" >&2
exit 1
