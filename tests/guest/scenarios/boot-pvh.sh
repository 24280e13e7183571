#!/bin/sh
# Boot through the PVH entry of the uncompressed vmlinux, with 4 CPUs, RAM in a memfd
# (--memory 1G,shared=on) and the console in a file (--serial file=PATH: nothing on stdout);
# the guest's reboot ends Vireo with status 2 (--reboot exit, the default).
# vireo-boots: 1
. "$(dirname "$0")/../lib.sh"

console="$WORK/pvh.console"
vm_run pvh run --kernel "$KIT/vmlinux" --initramfs "$KIT/initramfs.cpio.gz" \
	--cmdline "$(guest_cmdline "$FACTS_CMD" vireo.action=reboot)" --cpus 4 --memory 1G,shared=on \
	--serial "file=$console"
tr -d '\r' <"$console" >"$console.txt" 2>/dev/null
expect_console boot-pvh-reaches-init '^VIREO-INIT-READY' "$console.txt"
expect_exit boot-reboot-exits-2 2
expect_cpus boot-cpus-4 4 "$console.txt"
expect_memory boot-memory-shared-1G 1024 "$console.txt"
if [ -s "$console.txt" ] && [ ! -s "$WORK/pvh.out" ]; then
	pass serial-file-gets-the-console
else
	fail serial-file-gets-the-console "$(wc -c <"$console.txt") bytes in the file, $(wc -c <"$WORK/pvh.out") on stdout"
	note "  --- the file:"
	tail -n 20 "$console.txt" >&2
fi
