#!/usr/bin/env bash
# Replaces Debian 12's QEMU 7.2 with 10.0 from bookworm-backports (the QEMU newer hosts run), so
# CI can run the migration suites on both. Idempotent; needs root.
set -euo pipefail
source "$(dirname "$0")/backports-source.sh"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends -t bookworm-backports qemu-system-x86 qemu-utils >/dev/null
echo "testbed: $(qemu-system-x86_64 --version | head -1)"
