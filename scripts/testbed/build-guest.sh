#!/usr/bin/env bash
# Builds the tiny test guest offline from Debian packages: the cloud kernel (apt-get download,
# dpkg-deb -x) and a busybox-static initramfs whose /init is guest-init.sh.
# Output: build/guest/{vmlinuz,initrd.cpio.gz}. Cached: rebuilt only when guest-init.sh or this
# script change. Usage: build-guest.sh [OUT_DIR]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/../../build/guest}
mkdir -p "$out"
out=$(cd "$out" && pwd)
stamp=$(cat "$here/build-guest.sh" "$here/guest-init.sh" | md5sum | cut -d' ' -f1)
if [ -f "$out/vmlinuz" ] && [ -f "$out/initrd.cpio.gz" ] && [ "$(cat "$out/.stamp" 2>/dev/null)" = "$stamp" ]; then
  echo "testbed: guest up to date in $out"
  exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
kernel_pkg() { apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2}' | head -1; }
pkg=$(kernel_pkg)
if [ -z "$pkg" ]; then apt-get update -qq; pkg=$(kernel_pkg); fi
[ -n "$pkg" ] || { echo "testbed: no linux-image-*-cloud-amd64 package found" >&2; exit 1; }
apt-get download -qq "$pkg" 2>/dev/null
dpkg-deb -x ./*.deb kroot
version=$(ls kroot/lib/modules)
mkdir -p initramfs/{bin,sbin,proc,sys,dev,tmp,mods,etc,root}
cp /bin/busybox initramfs/bin/busybox
# In insmod order (the guest has no modprobe): virtio-blk, virtio-net, then virtio-scsi with the
# SCSI disk driver, so a disk on virtio-scsi shows up as /dev/sda; efivarfs last (a UEFI guest's
# variables; the init loads it only when asked to, since it fails on a BIOS guest).
modules="virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_blk
  failover net_failover virtio_net scsi_common scsi_mod sd_mod virtio_scsi efivarfs"
loaded=" "
for m in $modules; do
  module=$(find "kroot/lib/modules/$version" -name "$m.ko*" | head -1)
  [ -n "$module" ] || { echo "testbed: kernel $version has no module $m" >&2; exit 1; }
  case "$module" in
    *.ko.xz) xz -dc "$module" > "initramfs/mods/$m.ko" ;;
    *.ko.zst) zstd -dcq "$module" > "initramfs/mods/$m.ko" ;;
    *) cp "$module" "initramfs/mods/$m.ko" ;;
  esac
  # A newer kernel may split a driver further: fail here, not with an insmod error in the guest.
  for dep in $(modinfo -F depends "initramfs/mods/$m.ko" | tr ',' ' '); do
    case "$loaded" in *" $dep "*) ;; *) echo "testbed: module $m needs $dep, which is not loaded before it" >&2; exit 1 ;; esac
  done
  loaded="$loaded$m "
done
echo $modules > initramfs/mods/order
install -m 0755 "$here/guest-init.sh" initramfs/init
(cd initramfs && find . | cpio -o -H newc 2>/dev/null | gzip -1 > "$out/initrd.cpio.gz")
cp "kroot/boot/vmlinuz-$version" "$out/vmlinuz"
echo "$stamp" > "$out/.stamp"
echo "testbed: built guest (kernel $version) in $out"
