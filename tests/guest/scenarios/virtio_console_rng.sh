#!/bin/sh
# virtio-console and virtio-rng: with --console virtio the guest's hvc0 is Vireo's stdin and
# stdout (the serial port, sent to a file here, keeps /init's output), so a line the guest
# writes on hvc0 arrives on stdout and a line typed on stdin reaches a guest reader of hvc0;
# /dev/hwrng gives random bytes from virtio-rng, which the guest picked as its current rng;
# with --rng rate=1K a 4 KiB read still completes, whole, and takes at least 2 s; with
# --rng off the guest has no hardware rng.
# vireo-boots: 3
. "$(dirname "$0")/../lib.sh"

KIT_ARGS="run --kernel $KIT/vmlinuz --initramfs $KIT/initramfs.cpio.gz"

# Boot 1: the guest holds hvc0 open (a tty forgets unread input at its last close), writes a
# marker there that its command line does not contain literally, and reads one line.
guest='exec 3<>/dev/hvc0; echo VIREO-HVC-$((6*7)) >&3; line=$(timeout 60 head -n 1 <&3); echo "VIREO-GOT:$line" | tr a-z A-Z >&3; echo VIREO-RNG-LINES $(dd if=/dev/hwrng bs=64 count=4 2>/dev/null | od | wc -l); echo VIREO-RNG-CURRENT $(cat /sys/devices/virtual/misc/hw_random/rng_current)'
mkfifo "$WORK/stdin"
trap '' PIPE # if vireo is gone, the write below fails instead of killing the scenario
VM_NAME=console
VM_STARTED=$(date +%s)
printf '$ vireo %s --console virtio (stdin: a fifo)\n' "$KIT_ARGS" >&2
"$VIREO" $KIT_ARGS --cmdline "$(guest_cmdline "$guest" console=hvc0)" --console virtio \
	--serial "file=$WORK/console.serial" <"$WORK/stdin" >"$WORK/console.out" \
	2>"$WORK/console.err" &
VM_PID=$!
exec 4>"$WORK/stdin"
# Type only once the guest is up: input that arrives while its driver is still probing the
# device can be lost (virtio-console without multiport tells the host nothing about that).
vm_wait_output '^VIREO-HVC-42$' 1 "$BOOT_TIMEOUT"
printf 'hello-from-host\n' >&4 || note "  vireo does not read its stdin any more"
exec 4>&-
vm_wait
tr -d '\r' <"$WORK/console.serial" >"$WORK/console.serial.log" 2>/dev/null
if ! grep -q '^VIREO-RUN-EXIT 0$' "$WORK/console.serial.log"; then
	note "  --- serial port of console (last 15 lines):"
	tail -n 15 "$WORK/console.serial.log" | sed 's/^/    /' >&2
fi
expect_exit console-virtio-guest-powers-off 0
expect_console console-virtio-hvc0-output-on-stdout '^VIREO-HVC-42$'
expect_console console-virtio-stdin-reaches-hvc0 '^VIREO-GOT:HELLO-FROM-HOST$'
if grep -q 'VIREO-INIT-READY' "$WORK/console.log"; then
	fail console-virtio-serial-stays-apart "/init's serial output reached stdout too"
else
	expect_console console-virtio-serial-stays-apart '^VIREO-INIT-READY' "$WORK/console.serial.log"
fi
expect_console rng-hwrng-gives-bytes '^VIREO-RNG-LINES 17$' "$WORK/console.serial.log"
expect_console rng-is-current '^VIREO-RNG-CURRENT virtio_rng' "$WORK/console.serial.log"

# Boot 2: 1 KiB/s with a 1 KiB bucket: 4 KiB need at least 3 s (2 s with date's rounding).
guest='s=$(date +%s); echo VIREO-RATE-BYTES $(dd if=/dev/hwrng bs=512 count=8 2>/dev/null | wc -c); echo VIREO-RATE-SECS $(($(date +%s) - s))'
vm_run rate $KIT_ARGS --cmdline "$(guest_cmdline "$guest")" --rng rate=1K
expect_exit rng-rate-guest-powers-off 0
expect_console rng-rate-read-completes '^VIREO-RATE-BYTES 4096$'
secs=$(sed -n 's/^VIREO-RATE-SECS \([0-9]*\)$/\1/p' "$WORK/rate.log")
if [ -n "$secs" ] && [ "$secs" -ge 2 ]; then
	pass rng-rate-is-limited
else
	fail rng-rate-is-limited "4 KiB at 1 KiB/s took ${secs:-?} s, want at least 2 ($(vm_why))"
	vm_show
fi

# Boot 3: no virtio-rng.
guest='echo VIREO-RNG-CURRENT $(cat /sys/devices/virtual/misc/hw_random/rng_current)'
vm_run off $KIT_ARGS --cmdline "$(guest_cmdline "$guest")" --rng off
expect_exit rng-off-guest-powers-off 0
expect_console rng-off-none '^VIREO-RNG-CURRENT none$'
