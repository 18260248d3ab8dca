#!/usr/bin/env bash
# The Debian packages the observability suites run: prometheus (scrapes the stack, evaluates the
# dashboard's queries), chromium and chromium-driver (the web UI in a real headless browser).
# Installs whichever is missing (apt-get, needs root; nothing is pinned: Debian's security
# updates move chromium), then prints the versions in use.
set -euo pipefail
want=(prometheus:prometheus chromium:chromium chromedriver:chromium-driver)
missing=()
for w in "${want[@]}"; do
  command -v "${w%%:*}" >/dev/null 2>&1 || missing+=("${w#*:}")
done
if ((${#missing[@]})); then
  if [ "$(id -u)" != 0 ]; then
    echo "e2e: ${missing[*]} missing; install them as root: apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 1
  fi
  echo "e2e: installing ${missing[*]} from Debian"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
dpkg-query -W -f='e2e: ${Package} ${Version}\n' prometheus chromium chromium-driver
