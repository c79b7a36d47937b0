#!/usr/bin/env bash
# Chromium and its WebDriver, for the console's browser test
# (console/tests/browser.rs drives /usr/bin/chromium through
# /usr/bin/chromedriver). Installs Debian's packages when missing;
# idempotent and quick when they are present.
set -euo pipefail

if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi

echo "chromium: installing chromium and chromium-driver (apt-get)" >&2
$sudo apt-get update
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends chromium chromium-driver
