#!/bin/busybox sh
# /init of cowbuf's tiny test guest. Loads the virtio drivers, then once per second:
#  - dirties cowbuf.dirty_rate MiB of RAM (a tmpfs file, rewritten at rotating offsets);
#  - writes cowbuf.disk_rate MiB to /dev/vda in 64 KiB O_DIRECT requests (a single huge request
#    would pass a QEMU throttle bucket at once), cycling over the first cowbuf.disk_span MiB, so
#    the span sets how many clusters are unique; and as much to cowbuf.disk2 (e.g. sda, a disk on
#    virtio-scsi) when given, so each bus is throttled and checked;
#  - prints "HB <n> seq=<writes> ..." on the serial console;
# and, every cowbuf.tick_ms milliseconds (0: never), "TICK <n>" from a loop of its own, so the
# host can time the guest's pauses to a tenth of a second (the guest's clock stops with it).
# Every 64 KiB block starts with a header "COWBUF seq=<S> blk=<B>" and the guest keeps, in RAM,
# the last seq written to each block of each disk (the ledgers, which migrate with the guest).
# Every cowbuf.verify_every iterations it reads the spans back and prints
# "VERIFY n=<n> blocks=<k> lost=<m>" for vda and "VERIFY dev=<disk2> n=..." for the second
# disk: m > 0 means a completed write is not on the disk.
# With cowbuf.efivar=<word> (a UEFI guest) it stores <word> in the NVRAM variable CowbufTest once
# (an earlier boot's value stays) and prints "EFIVAR <value>" read back with every VERIFY round.
# With cowbuf.ip=<addr/prefix> it brings up eth0 (virtio-net) with that address, so a client on
# the host's bridge can ping it across a migration (the kernel answers, whatever the loop does).
/bin/busybox --install -s /bin
export PATH=/bin:/sbin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
mkdir -p /dev/shm /ledger /ledger2; mount -t tmpfs -o size=80% tmpfs /dev/shm
for m in $(cat /mods/order); do
  [ "$m" = efivarfs ] && continue
  insmod /mods/$m.ko || echo "GUEST: insmod $m failed"
done
DISK_RATE=1; DISK_SPAN=16; DIRTY_RATE=4; DIRTY_SPAN=32; VERIFY_EVERY=5; TICK_MS=0; IP=; DISK2=; EFIVAR=
for a in $(cat /proc/cmdline); do case $a in
  cowbuf.disk_rate=*) DISK_RATE=${a#*=};; cowbuf.disk_span=*) DISK_SPAN=${a#*=};;
  cowbuf.dirty_rate=*) DIRTY_RATE=${a#*=};; cowbuf.dirty_span=*) DIRTY_SPAN=${a#*=};;
  cowbuf.verify_every=*) VERIFY_EVERY=${a#*=};; cowbuf.tick_ms=*) TICK_MS=${a#*=};;
  cowbuf.ip=*) IP=${a#*=};; cowbuf.disk2=*) DISK2=${a#*=};; cowbuf.efivar=*) EFIVAR=${a#*=};;
esac; done
# A vendor GUID of cowbuf's own: firmware restricts what may be written under EFI's global one.
VAR=/sys/firmware/efi/efivars/CowbufTest-3f0ec9b8-6a3c-4d5e-9b1a-2c7d8e9f0a1b
if [ -n "$EFIVAR" ]; then
  { insmod /mods/efivarfs.ko && mount -t efivarfs efivarfs /sys/firmware/efi/efivars; } || echo "GUEST: EFIERROR no efivarfs"
  # Attributes first (non-volatile, boot service and runtime access: 0x7), all in one write(),
  # which efivarfs requires: dd makes it one, where printf would write piece by piece.
  printf '\007\000\000\000%s' "$EFIVAR" > /tmp/efivar
  [ -e $VAR ] || dd if=/tmp/efivar of=$VAR bs=1k 2>/dev/null || echo "GUEST: EFIERROR cannot write CowbufTest"
fi
# SCSI scans asynchronously: a disk on virtio-scsi may appear after the drivers have loaded.
appear() { i=0; while [ ! -e "$1" ] && [ $i -lt 50 ]; do usleep 100000; i=$((i+1)); done; }
appear /dev/vda
[ -n "$DISK2" ] && appear /dev/$DISK2
if [ -n "$IP" ]; then
  appear /sys/class/net/eth0
  ip link set lo up
  { ip addr add "$IP" dev eth0 && ip link set eth0 up; } || echo "GUEST: NETERROR eth0 $IP"
fi
BLOCKS=$((DISK_SPAN * 16))
# Printable random body, held in a variable so writing a block costs no extra process.
BODY=$(dd if=/dev/urandom bs=1024 count=48 2>/dev/null | base64 -w 0 | head -c 65024)
dd if=/dev/urandom of=/dev/shm/pool bs=1M count=1 2>/dev/null
centis() { awk '{ printf "%d", $1 * 100 }' /proc/uptime; }
# write16 <dev> <ledger dir> <seq>: 16 blocks from block seq % BLOCKS, recorded once dd succeeded.
write16() {
  first=$(($3 % BLOCKS))
  if ( j=0; while [ $j -lt 16 ]; do printf '%-511s\n%s' "COWBUF seq=$(($3 + j)) blk=$((first + j))" "$BODY"; j=$((j + 1)); done ) \
      | dd of=$1 bs=64k seek=$first count=16 iflag=fullblock oflag=direct 2>/tmp/dd.err; then
    j=0; while [ $j -lt 16 ]; do echo $(($3 + j)) > $2/$((first + j)); j=$((j + 1)); done
  else
    errors=$((errors + 1)); echo "GUEST: IOERROR ${1#/dev/} $(tail -1 /tmp/dd.err)"
  fi
}
# verify <dev> <ledger dir> <tag>: the tag keeps vda's lines as they always were.
verify() {
  grep -H . $2/* 2>/dev/null | sed 's#^.*/\([0-9]*\):\(.*\)$#COWBUF seq=\2 blk=\1#' > /tmp/expected
  dd if=$1 bs=1M count=$DISK_SPAN iflag=direct 2>/dev/null | grep -o 'COWBUF seq=[0-9]* blk=[0-9]*' > /tmp/actual
  lost=$(grep -vxF -f /tmp/actual /tmp/expected | wc -l)
  echo "VERIFY ${3}n=$n blocks=$(wc -l < /tmp/expected) lost=$lost"
}
echo "GUEST: READY disk_rate=$DISK_RATE disk_span=$DISK_SPAN dirty_rate=$DIRTY_RATE verify_every=$VERIFY_EVERY vda=$(cat /sys/block/vda/size 2>/dev/null)${DISK2:+ $DISK2=$(cat /sys/block/$DISK2/size 2>/dev/null)}${IP:+ ip=$IP} uptime=$(cut -d' ' -f1 /proc/uptime)"
if [ "$TICK_MS" -gt 0 ]; then
  ( t=0; while true; do t=$((t + 1)); echo "TICK $t"; usleep $((TICK_MS * 1000)); done ) &
fi
n=0; seq=0; seq2=0; errors=0
while true; do
  n=$((n + 1)); start=$(centis)
  i=0
  while [ $i -lt $DIRTY_RATE ]; do
    dd if=/dev/shm/pool of=/dev/shm/dirty bs=1M count=1 seek=$(( (n * DIRTY_RATE + i) % DIRTY_SPAN )) conv=notrunc 2>/dev/null
    i=$((i + 1))
  done
  c=0
  while [ $c -lt $DISK_RATE ]; do
    [ -b /dev/vda ] && { write16 /dev/vda /ledger $seq; seq=$((seq + 16)); }
    [ -n "$DISK2" ] && [ -b /dev/$DISK2 ] && { write16 /dev/$DISK2 /ledger2 $seq2; seq2=$((seq2 + 16)); }
    c=$((c + 1))
  done
  if [ "$VERIFY_EVERY" -gt 0 ] && [ $((n % VERIFY_EVERY)) -eq 0 ]; then
    verify /dev/vda /ledger ''
    [ -n "$EFIVAR" ] && echo "EFIVAR $(tail -c +5 $VAR 2>/dev/null)"
    [ -n "$DISK2" ] && verify /dev/$DISK2 /ledger2 "dev=$DISK2 "
  fi
  took=$(( $(centis) - start ))
  echo "HB $n seq=$seq errors=$errors took=${took}0ms${DISK2:+ seq2=$seq2}"
  [ $took -lt 100 ] && usleep $(( (100 - took) * 10000 ))
done
