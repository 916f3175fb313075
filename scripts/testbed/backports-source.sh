#!/usr/bin/env bash
# Adds Debian's bookworm-backports suite to apt's sources (idempotent; sourced by the scripts
# that need QEMU 10.0): a copy of the main Debian source, same mirror and keyring.
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
