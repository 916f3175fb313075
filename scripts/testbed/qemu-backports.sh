#!/usr/bin/env bash
# Replaces Debian 12's QEMU 7.2 with 10.0 from bookworm-backports (the QEMU newer hosts run), so
# CI can run the migration suites on both. Idempotent; needs root. The source is a copy of the
# main Debian source (same mirror, same keyring) with the backports suite.
set -euo pipefail
source_file=/etc/apt/sources.list.d/bookworm-backports.sources
if [ ! -f "$source_file" ]; then
  uri=$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  cat > "$source_file" <<SOURCE
Types: deb
URIs: ${uri:-http://deb.debian.org/debian}
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCE
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends -t bookworm-backports qemu-system-x86 qemu-utils >/dev/null
echo "testbed: $(qemu-system-x86_64 --version | head -1)"
