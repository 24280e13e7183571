#!/bin/sh
# Boot: the kit's bzImage reaches /init with the console on stdout (the default); the guest
# sees the 2 CPUs, the 1 GiB and the command line it was given; its power-off ends Vireo
# with status 0.
# vireo-boots: 1
. "$(dirname "$0")/../lib.sh"

token="vireo.token=t$$"
vm_run bzimage run --kernel "$KIT/vmlinuz" --initramfs "$KIT/initramfs.cpio.gz" \
	--cmdline "$(guest_cmdline "$FACTS_CMD; echo VIREO-CMDLINE \$(cat /proc/cmdline)" "$token")" \
	--cpus 2 --memory 1G
expect_console boot-bzimage-reaches-init '^VIREO-INIT-READY'
expect_exit boot-poweroff-exits-0 0
expect_cpus boot-cpus-2 2
expect_memory boot-memory-1G 1024
expect_console boot-cmdline-arrives "^VIREO-CMDLINE .*$token( |\$)"
