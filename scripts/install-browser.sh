#!/usr/bin/env bash
# The browser the MiniWob environments run in: Debian's chromium + chromium-driver (built from
# one source, so their versions always match), plus a CJK font for MiniWoB's unicode buttons.
# Idempotent: does nothing when both are installed. Runs apt-get as root, or through sudo.
# At run time nothing is downloaded: r3v points miniwob at these paths, so Selenium's driver
# manager never runs.
#
#   bash scripts/install-browser.sh          (CI runs it; R3V_SKIP_BROWSER=1 skips it there)
set -euo pipefail
BINARY=/usr/lib/chromium/chromium
DRIVER=/usr/bin/chromedriver
if [ -x "$BINARY" ] && [ -x "$DRIVER" ]; then
  echo "install-browser: chromium and chromedriver present ($("$DRIVER" --version | head -1))"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-browser: no apt-get here; install chromium and its matching chromedriver, then" \
       "set MINIWOB_CHROME_BINARY and MINIWOB_CHROMEDRIVER to their paths" >&2
  exit 1
fi
if [ "$(id -u)" -eq 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  SUDO=(sudo -n)
else
  echo "install-browser: not root and no password-less sudo; run as root:" \
       "apt-get update && apt-get install -y chromium chromium-driver fonts-wqy-microhei" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -q
"${SUDO[@]}" apt-get install -y -q --no-install-recommends chromium chromium-driver fonts-wqy-microhei
echo "install-browser: installed $("$DRIVER" --version | head -1)"
