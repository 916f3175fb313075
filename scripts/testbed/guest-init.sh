#!/bin/busybox sh
# /init of cowbuf's tiny test guest. Loads virtio-blk, then once per second:
#  - dirties cowbuf.dirty_rate MiB of RAM (a tmpfs file, rewritten at rotating offsets);
#  - writes cowbuf.disk_rate MiB to /dev/vda in 64 KiB O_DIRECT requests (a single huge request
#    would pass a QEMU throttle bucket at once), cycling over the first cowbuf.disk_span MiB, so
#    the span sets how many clusters are unique;
#  - prints "HB <n> seq=<writes> ..." on the serial console;
# and, every cowbuf.tick_ms milliseconds (0: never), "TICK <n>" from a loop of its own, so the
# host can time the guest's pauses to a tenth of a second (the guest's clock stops with it).
# Every 64 KiB block starts with a header "COWBUF seq=<S> blk=<B>" and the guest keeps, in RAM,
# the last seq written to each block (the ledger, which migrates with the guest). Every
# cowbuf.verify_every iterations it reads the span back and prints
# "VERIFY n=<n> blocks=<k> lost=<m>": m > 0 means a completed write is not on the disk.
/bin/busybox --install -s /bin
export PATH=/bin:/sbin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
mkdir -p /dev/shm /ledger; mount -t tmpfs -o size=80% tmpfs /dev/shm
for m in virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_blk; do
  insmod /mods/$m.ko || echo "GUEST: insmod $m failed"
done
DISK_RATE=1; DISK_SPAN=16; DIRTY_RATE=4; DIRTY_SPAN=32; VERIFY_EVERY=5; TICK_MS=0
for a in $(cat /proc/cmdline); do case $a in
  cowbuf.disk_rate=*) DISK_RATE=${a#*=};; cowbuf.disk_span=*) DISK_SPAN=${a#*=};;
  cowbuf.dirty_rate=*) DIRTY_RATE=${a#*=};; cowbuf.dirty_span=*) DIRTY_SPAN=${a#*=};;
  cowbuf.verify_every=*) VERIFY_EVERY=${a#*=};; cowbuf.tick_ms=*) TICK_MS=${a#*=};;
esac; done
i=0; while [ ! -b /dev/vda ] && [ $i -lt 50 ]; do usleep 100000; i=$((i+1)); done
BLOCKS=$((DISK_SPAN * 16))
# Printable random body, held in a variable so writing a block costs no extra process.
BODY=$(dd if=/dev/urandom bs=1024 count=48 2>/dev/null | base64 -w 0 | head -c 65024)
dd if=/dev/urandom of=/dev/shm/pool bs=1M count=1 2>/dev/null
centis() { awk '{ printf "%d", $1 * 100 }' /proc/uptime; }
verify() {
  grep -H . /ledger/* 2>/dev/null | sed 's#^/ledger/\([0-9]*\):\(.*\)$#COWBUF seq=\2 blk=\1#' > /tmp/expected
  dd if=/dev/vda bs=1M count=$DISK_SPAN iflag=direct 2>/dev/null | grep -o 'COWBUF seq=[0-9]* blk=[0-9]*' > /tmp/actual
  lost=$(grep -vxF -f /tmp/actual /tmp/expected | wc -l)
  echo "VERIFY n=$n blocks=$(wc -l < /tmp/expected) lost=$lost"
}
echo "GUEST: READY disk_rate=$DISK_RATE disk_span=$DISK_SPAN dirty_rate=$DIRTY_RATE verify_every=$VERIFY_EVERY vda=$(cat /sys/block/vda/size 2>/dev/null) uptime=$(cut -d' ' -f1 /proc/uptime)"
if [ "$TICK_MS" -gt 0 ]; then
  ( t=0; while true; do t=$((t + 1)); echo "TICK $t"; usleep $((TICK_MS * 1000)); done ) &
fi
n=0; seq=0; errors=0
while true; do
  n=$((n + 1)); start=$(centis)
  i=0
  while [ $i -lt $DIRTY_RATE ]; do
    dd if=/dev/shm/pool of=/dev/shm/dirty bs=1M count=1 seek=$(( (n * DIRTY_RATE + i) % DIRTY_SPAN )) conv=notrunc 2>/dev/null
    i=$((i + 1))
  done
  c=0
  while [ $c -lt $DISK_RATE ] && [ -b /dev/vda ]; do
    first=$((seq % BLOCKS))
    if ( j=0; while [ $j -lt 16 ]; do printf '%-511s\n%s' "COWBUF seq=$((seq + j)) blk=$((first + j))" "$BODY"; j=$((j + 1)); done ) \
        | dd of=/dev/vda bs=64k seek=$first count=16 iflag=fullblock oflag=direct 2>/tmp/dd.err; then
      j=0; while [ $j -lt 16 ]; do echo $((seq + j)) > /ledger/$((first + j)); j=$((j + 1)); done
    else
      errors=$((errors + 1)); echo "GUEST: IOERROR $(tail -1 /tmp/dd.err)"
    fi
    seq=$((seq + 16)); c=$((c + 1))
  done
  if [ "$VERIFY_EVERY" -gt 0 ] && [ $((n % VERIFY_EVERY)) -eq 0 ]; then verify; fi
  took=$(( $(centis) - start ))
  echo "HB $n seq=$seq errors=$errors took=${took}0ms"
  [ $took -lt 100 ] && usleep $(( (100 - took) * 10000 ))
done
