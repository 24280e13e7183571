#!/bin/sh
# Bad input: each is refused before a guest runs, with exit status 1 and one line on stderr
# that starts with "vireo: " (and names the thing at fault where a pattern is given).
# vireo-boots: 1
. "$(dirname "$0")/../lib.sh"

kernel="$KIT/vmlinuz"
BOOT_TIMEOUT=20

vm_run missing-kernel run --kernel "$WORK/no-such-kernel"
expect_error bad-missing-kernel 'no-such-kernel'

echo 'not a kernel' >"$WORK/hostname"
vm_run text-kernel run --kernel "$WORK/hostname"
expect_error bad-text-kernel 'hostname'

head -c 65536 /dev/urandom >"$WORK/random.bin"
vm_run random-kernel run --kernel "$WORK/random.bin"
expect_error bad-random-kernel 'random\.bin'

: >"$WORK/empty"
vm_run empty-kernel run --kernel "$WORK/empty"
expect_error bad-empty-kernel 'empty'

vm_run missing-initramfs run --kernel "$kernel" --initramfs "$WORK/no-such-initramfs"
expect_error bad-missing-initramfs 'no-such-initramfs'

truncate -s 200M "$WORK/big.cpio"
vm_run big-initramfs run --kernel "$kernel" --initramfs "$WORK/big.cpio" --memory 128M
expect_error bad-initramfs-too-big 'initramfs|big\.cpio'
rm -f "$WORK/big.cpio"

vm_run memory-0 run --kernel "$kernel" --memory 0
expect_error bad-memory-0 'memory'
vm_run memory-10T run --kernel "$kernel" --memory 10T
expect_error bad-memory-10T 'memory'
vm_run memory-word run --kernel "$kernel" --memory lots
expect_error bad-memory-word 'memory'
vm_run cpus-0 run --kernel "$kernel" --cpus 0
expect_error bad-cpus-0 'cpus'
vm_run cpus-100000 run --kernel "$kernel" --cpus 100000
expect_error bad-cpus-100000 'cpus'
vm_run serial-bad run --kernel "$kernel" --serial telepathy
expect_error bad-serial-mode 'serial'
vm_run reboot-bad run --kernel "$kernel" --reboot sometimes
expect_error bad-reboot-action 'reboot'
vm_run unknown-option run --kernel "$kernel" --frobnicate
expect_error bad-unknown-option 'frobnicate'
vm_run no-kernel run --memory 512M
expect_error bad-no-kernel 'kernel'
vm_run unknown-command frobnicate
expect_error bad-unknown-command 'frobnicate'

vm_run help --help
if [ "$VM_RC" = 0 ] && grep -q 'vireo run' "$WORK/help.out"; then
	pass cli-help
else
	fail cli-help "want exit status 0 and usage on stdout, got $(vm_why)"
fi
vm_run version --version
if [ "$VM_RC" = 0 ] && grep -qE '^vireo [0-9]' "$WORK/version.out"; then
	pass cli-version
else
	fail cli-version "want exit status 0 and 'vireo VERSION' on stdout, got $(vm_why)"
fi
