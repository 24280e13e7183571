#!/bin/sh
# Power and console: --reboot=restart boots the guest again after it reboots, until a signal
# stops Vireo (exit status 3); --serial off shows nothing and the guest still runs (its
# power-off ends Vireo with 0); a guest that floods --serial file=PATH,max=64K leaves a file
# of exactly 64 KiB ending with Vireo's note, and still powers off.
# vireo-boots: 5
. "$(dirname "$0")/../lib.sh"

# The guest reboots as soon as it is up; with --reboot=restart that repeats until stopped.
vm_start restart run --kernel "$KIT/vmlinux" --initramfs "$KIT/initramfs.cpio.gz" \
	--cmdline "$(guest_cmdline true vireo.action=reboot)" --reboot=restart
if vm_wait_output 'VIREO-INIT-READY' 2 $((2 * BOOT_TIMEOUT)); then
	pass reboot-restart-boots-again
	kill -TERM "$VM_PID"
	vm_wait 20
	expect_exit signal-stops-with-3 3
else
	alive=$(kill -0 "$VM_PID" 2>/dev/null && echo yes || echo no)
	kill -TERM "$VM_PID" 2>/dev/null
	vm_wait 20
	fail reboot-restart-boots-again "saw $(grep -c VIREO-INIT-READY "$WORK/restart.log") boots (vireo still running: $alive; $(vm_why))"
	vm_show
	skip signal-stops-with-3 "the restart test did not get that far"
fi

vm_run silent run --kernel "$KIT/vmlinux" --initramfs "$KIT/initramfs.cpio.gz" \
	--cmdline "$(guest_cmdline 'echo VIREO-SILENT')" --serial off
expect_exit serial-off-guest-runs 0
if [ -s "$WORK/silent.out" ]; then
	fail serial-off-prints-nothing "stdout has $(wc -c <"$WORK/silent.out") bytes: $(head -c 200 "$WORK/silent.log")"
else
	pass serial-off-prints-nothing
fi

# 400 KB of output into a 64 KiB serial file: the file stops at the cap, the guest goes on.
flood="$WORK/flood.console"
vm_run flood run --kernel "$KIT/vmlinux" --initramfs "$KIT/initramfs.cpio.gz" \
	--cmdline "$(guest_cmdline 'yes vireo-serial-flood | head -c 400000; echo VIREO-FLOODED')" \
	--serial "file=$flood,max=64K"
expect_exit serial-flood-guest-powers-off 0
size=$(stat -c %s "$flood" 2>/dev/null || echo 0)
if [ "$size" = 65536 ] && tail -c 200 "$flood" | grep -q 'reached its size limit'; then
	pass serial-file-stops-at-its-cap
else
	fail serial-file-stops-at-its-cap "the file has $size bytes (want 65536, ending with the note)"
fi
