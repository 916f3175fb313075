#!/usr/bin/env bash
# Installs the Debian packages cowbuf's test bed and integration tests need. Idempotent: does
# nothing (not even `apt-get update`) when everything is present. Needs root.
set -euo pipefail
# iputils-ping, not busybox's: its -D stamps replies with the host clock, which times a blackout.
# ovmf: the UEFI firmware of the test's UEFI guest.
packages=(qemu-system-x86 qemu-utils ovmf zfs-fuse iproute2 busybox-static cpio kmod openssl tmux nftables iputils-ping)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "testbed: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
command -v qemu-system-x86_64 >/dev/null && command -v qemu-img >/dev/null
echo "testbed: packages ready ($(qemu-system-x86_64 --version | head -1))"
