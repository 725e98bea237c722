#!/usr/bin/env bash
# Prints the path of a headless-capable Chromium for the portal's browser tests, installing
# Debian's chromium package when it is missing and this runs as root. Exits non-zero, with
# the reason on stderr, when there is none and it cannot install one.
set -euo pipefail
for c in "${ROSTER_CHROMIUM:-}" /usr/bin/chromium /usr/bin/chromium-browser; do
  if [[ -n "$c" && -x "$c" ]]; then echo "$c"; exit 0; fi
done
if [[ "$(id -u)" != 0 ]]; then
  echo "setup-chromium: no chromium found and not root; install Debian's chromium package (apt-get install chromium)" >&2
  exit 1
fi
echo "setup-chromium: installing Debian's chromium package" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq --no-install-recommends chromium >&2
echo /usr/bin/chromium
