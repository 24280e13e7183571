#!/bin/sh
# A malicious driver in a real guest: the kit's evil-virtio (guest/evil-virtio.c) takes a
# virtio-blk disk and a virtio-net NIC away from the guest kernel and drives them through
# /dev/mem, with its rings in RAM reserved at the top of guest memory (memmap=). It grows a
# ring of 2 at the very end of RAM to 256 without a reset while work is in flight (a device
# that follows would write past the end of guest RAM, into Vireo), then throws garbage at the
# registers and rings, then resets each device and uses it cleanly. Meanwhile the guest's own
# virtio_blk keeps writing and reading a second disk. Vireo must survive, the guest power
# off, the honest disk hold exactly its bytes, the attacked disk change only in the sector
# written on purpose, Vireo say that a device needs a reset, and both devices work again.
# Last, the NIC runs with no RX queue set up while a frame comes in.
# vireo-boots: 2
# vireo-needs: cmp
. "$(dirname "$0")/../lib.sh"

MIB=1048576
# 512 MiB of RAM, the top 64 MiB reserved from the guest kernel for the evil driver's rings
# and buffers (e820 RAM ends at 0x20000000: one region below the 3 GiB hole).
RESERVED_ADDR=0x1c000000
RESERVED_SIZE=0x4000000
SECTOR=4096 # the one sector of the attacked disk that evil-virtio writes on purpose
PORT=$((20000 + $$ % 20000))
EVIL_MAC=52:54:00:ee:00:01
HONEST_MAC=52:54:00:ee:00:02

yes 'vireo attacked disk 0123456789abcdef' | head -c $((64 * MIB)) >"$WORK/evil.img"
cp "$WORK/evil.img" "$WORK/evil-before.img"
truncate -s $((16 * MIB)) "$WORK/honest.img"
honest_sha=$(yes 'vireo honest disk 0123456789abcdef' | head -c $((16 * MIB)) | sha256sum | cut -c1-64)

# The guest: the honest disk (found by its serial) written and checked in a loop in the
# background; the honest NIC up as 10.0.2.15 (host-loopback=on: its datagrams to
# 10.0.2.2:PORT reach the host's 127.0.0.1 and come back to
# the evil NIC through the host); evil-virtio against the disk, then the NIC.
guest="yes 'vireo honest disk 0123456789abcdef' | head -c $((16 * MIB)) >/tmp/h; H=\$(sha256sum </tmp/h | cut -c1-64); for b in /sys/block/vd*; do [ \"\$(cat \$b/serial)\" = honest ] && D=/dev/\${b##*/}; done; for n in /sys/class/net/eth*; do [ \"\$(cat \$n/address)\" = $HONEST_MAC ] && ip link set \${n##*/} up && ip addr add 10.0.2.15/24 dev \${n##*/}; done; (i=0; bad=0; while [ ! -e /tmp/stop ] || [ \$i = 0 ]; do dd if=/tmp/h of=\$D bs=1M oflag=direct 2>/dev/null; [ \"\$(dd if=\$D bs=1M iflag=direct 2>/dev/null | sha256sum | cut -c1-64)\" = \"\$H\" ] || bad=\$((bad+1)); i=\$((i+1)); done; echo HONEST-DISK passes=\$i bad=\$bad) & evil-virtio blk evil-disk $RESERVED_ADDR $RESERVED_SIZE $SECTOR; evil-virtio net $EVIL_MAC $RESERVED_ADDR $RESERVED_SIZE $PORT; touch /tmp/stop; wait; sync"

run_hostile() {
	vm_start hostile run --kernel "$KIT/vmlinuz" --initramfs "$KIT/initramfs.cpio.gz" \
		--cmdline "$(guest_cmdline "$guest" "memmap=64M\$$RESERVED_ADDR")" --memory 512M \
		--disk "path=$WORK/evil.img,format=raw,serial=evil-disk$1" \
		--disk "path=$WORK/honest.img,format=raw,serial=honest,engine=sync" \
		--net "user,mac=$EVIL_MAC,hostfwd=udp:127.0.0.1:$PORT-:$PORT" \
		--net "user,mac=$HONEST_MAC,host-loopback=on"
	vm_wait $((2 * BOOT_TIMEOUT))
}

# cache=none makes the driver's 40 MiB read slow enough to still be in flight when its ring
# grows; a filesystem that refuses O_DIRECT gets the page cache (the race is then tighter).
# The honest disk's sync engine holds Vireo's I/O thread for each of its requests, so the
# read's completion often waits behind them, as it would behind any busy device.
run_hostile ,cache=none
if [ "$VM_RC" = 1 ] && grep -q 'cache=none' "$WORK/hostile.err"; then
	note "  O_DIRECT refused here: $(head -n 1 "$WORK/hostile.err")"
	run_hostile ""
fi

expect_exit hostile-vireo-survives-guest-powers-off 0
expect_console hostile-blk-ring-grown-under-device-contained '^EVIL-BLK-DEFECT1 contained'
expect_console hostile-net-ring-grown-under-device-contained '^EVIL-NET-DEFECT1 contained'
expect_console hostile-blk-garbage-survived '^EVIL-BLK-GARBAGE done'
expect_console hostile-net-garbage-survived '^EVIL-NET-GARBAGE done'
expect_console hostile-blk-works-after-reset '^EVIL-BLK-REINIT ok'
expect_console hostile-net-works-after-reset '^EVIL-NET-REINIT ok'
expect_console hostile-net-frame-without-rx-queue-survived '^EVIL-NET-RXQ-UNREADY survived'
expect_console hostile-honest-disk-guest-reads-its-writes '^HONEST-DISK passes=[1-9][0-9]* bad=0$'

if [ "$(sha256sum <"$WORK/honest.img" | cut -c1-64)" = "$honest_sha" ]; then
	pass hostile-honest-disk-bytes-exact
else
	fail hostile-honest-disk-bytes-exact "the honest disk's image (read on the host) is not the pattern the guest wrote"
fi

# The attacked disk: every byte that differs lies in the sector written on purpose, and that
# sector holds what evil-virtio wrote (16 times "vireo-evil-sector-NNNNNNN", NUL-padded to 32).
first=$((SECTOR * 512 + 1))
last=$((SECTOR * 512 + 512))
cmp -l "$WORK/evil-before.img" "$WORK/evil.img" >"$WORK/evil.cmp" 2>"$WORK/evil.cmp.err"
if [ $? -le 1 ]; then
	outside=$(awk -v a="$first" -v b="$last" '$1 < a || $1 > b { n++ } END { print n + 0 }' "$WORK/evil.cmp")
else
	outside="? (cmp: $(head -n 1 "$WORK/evil.cmp.err"))"
fi
want_sector=$(for i in $(seq 0 15); do
	printf 'vireo-evil-sector-%07d' "$i"
	head -c 7 /dev/zero
done | sha256sum | cut -c1-64)
got_sector=$(dd if="$WORK/evil.img" bs=512 skip="$SECTOR" count=1 2>/dev/null | sha256sum | cut -c1-64)
if [ "$(stat -c %s "$WORK/evil.img")" = $((64 * MIB)) ] && [ "$outside" = 0 ]; then
	pass hostile-attacked-disk-unchanged-elsewhere
else
	fail hostile-attacked-disk-unchanged-elsewhere "$outside bytes differ outside sector $SECTOR (size $(stat -c %s "$WORK/evil.img"))"
fi
if [ "$got_sector" = "$want_sector" ]; then
	pass hostile-attacked-disk-sector-written
else
	fail hostile-attacked-disk-sector-written "sector $SECTOR does not hold what the driver wrote"
fi

# Vireo said so when the driver broke the rules (on stderr, one line per device).
for dev in blk net; do
	if grep -q "virtio-$dev: .*needs a reset" "$WORK/hostile.err"; then
		pass "hostile-$dev-needs-reset-said"
	else
		fail "hostile-$dev-needs-reset-said" "no 'virtio-$dev: ... needs a reset' line on Vireo's stderr"
		vm_show
	fi
done
note "  --- evil-virtio's lines:"
grep -E '^(EVIL|HONEST)' "$WORK/hostile.log" | sed 's/^/    /' >&2
