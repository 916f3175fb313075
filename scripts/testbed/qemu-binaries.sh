#!/usr/bin/env bash
# Unpacks the qemu-system-x86_64 binary of Debian 12's QEMU (7.2) and of bookworm-backports' (10.0)
# into build/qemu/<version>/, beside whichever QEMU is installed. A test daemon that binds the
# other version's binary over its own in a mount namespace is a host running another QEMU: that
# is how the test bed refuses a machine type only the source's QEMU knows. Idempotent; needs root.
set -euo pipefail
out="$(cd "$(dirname "$0")/../.." && pwd)/build/qemu"
if [ "$(find "$out" -name qemu-system-x86_64 2>/dev/null | wc -l)" -ge 2 ]; then exit 0; fi
source "$(dirname "$0")/backports-source.sh"
apt-get update -qq
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for suite in bookworm bookworm-backports; do
  (cd "$work" && apt-get download -qq "qemu-system-x86/$suite")
done
for deb in "$work"/*.deb; do
  dpkg-deb -x "$deb" "$work/x"
  version=$("$work/x/usr/bin/qemu-system-x86_64" --version | sed -n '1s/^QEMU emulator version \([0-9.]*\).*/\1/p')
  [ -n "$version" ] || { echo "testbed: cannot read the version of $(basename "$deb")'s QEMU" >&2; exit 1; }
  mkdir -p "$out/$version"
  mv "$work/x/usr/bin/qemu-system-x86_64" "$out/$version/"
  rm -rf "$work/x"
done
echo "testbed: other QEMU binaries in $out: $(ls "$out" | tr '\n' ' ')"
