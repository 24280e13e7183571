#!/bin/sh
# A 5 GiB guest: RAM reaches above the 32-bit PCI hole and the guest counts all of it.
# vireo-boots: 2
. "$(dirname "$0")/../lib.sh"

vm_run big run --kernel "$KIT/vmlinux" --initramfs "$KIT/initramfs.cpio.gz" \
	--cmdline "$(guest_cmdline "$FACTS_CMD")" --memory 5G
expect_exit boot-5G-guest-powers-off 0
expect_memory boot-memory-5G 5120
