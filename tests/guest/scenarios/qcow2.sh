#!/bin/sh
# qcow2 disks under a real guest, checked with the real qemu-img: the guest makes an ext4
# filesystem on a fresh qcow2 image (mkfs and fstrim discard, so unallocated and zero clusters
# appear), then works on a thin clone of it and on a compressed version 2 copy. After each run
# `qemu-img check` finds nothing wrong, and `qemu-img compare` says the image holds exactly
# what the guest read from it: before powering off, the guest copies its whole disk onto a raw
# disk, the reference. Writing to the clone leaves its base image's bytes as they were. A
# qcow2 file given with format=raw is not guessed at: the guest sees its header.
# vireo-boots: 3
# vireo-needs: qemu-img
. "$(dirname "$0")/../lib.sh"

if ! command -v qemu-img >/dev/null; then
	skip qcow2 "qemu-img is not installed (Debian package qemu-utils)"
	exit 0
fi

KIT_ARGS="run --kernel $KIT/vmlinuz --initramfs $KIT/initramfs.cpio.gz"
MIB=1048576
cd "$WORK" || exit 1

# 16 MiB of known bytes on a read-only raw disk for the guest to copy in.
yes 'vireo qcow2 pattern 0123456789abcdef' | head -c $((16 * MIB)) >pattern.img
want=$(sha256sum pattern.img | cut -d' ' -f1)

# The guest's last step in every boot: copy the qcow2 disk (vda), as the guest reads it, to
# the raw reference disk (vdc).
copy_disk='umount /mnt && dd if=/dev/vda of=/dev/vdc bs=1M 2>/dev/null && sync && echo VIREO-COPIED'

# expect_qemu_img_agrees TEST IMAGE REFERENCE: qemu-img check finds no errors or leaks in
# IMAGE and reads the same bytes from it as the guest copied to REFERENCE.
expect_qemu_img_agrees() {
	if ! qemu-img check -f qcow2 "$2" >"$1.check" 2>&1; then
		fail "$1-check-clean" "qemu-img check $2 (status $?): $(grep -v '^$' "$1.check" | head -n 3 | tr '\n' ' ')"
	else
		pass "$1-check-clean"
	fi
	if qemu-img compare -f qcow2 -F raw "$2" "$3" >"$1.compare" 2>&1; then
		pass "$1-image-matches-guest"
	else
		fail "$1-image-matches-guest" "qemu-img compare $2 $3: $(head -n 2 "$1.compare" | tr '\n' ' ')"
	fi
}

# qcow2_boot NAME IMAGE SHA_TEST GUEST_CMD [VIREO_ARG...]: boot with IMAGE as vda, the pattern
# as vdb and a fresh raw reference as vdc; GUEST_CMD prints the pattern file's VIREO-SHA line
# (checked as SHA_TEST) and ends with $copy_disk. Then qemu-img must agree with the guest.
qcow2_boot() {
	_name=$1 _image=$2 _sha_test=$3 _guest=$4
	shift 4
	rm -f "ref-$_name.img"
	truncate -s 64M "ref-$_name.img"
	vm_run "$_name" $KIT_ARGS --cmdline "$(guest_cmdline "$_guest")" --disk "path=$_image" \
		--disk path=pattern.img,readonly=on --disk "path=ref-$_name.img" "$@"
	expect_exit "qcow2-$_name-guest-powers-off" 0
	expect_console "$_sha_test" "^VIREO-SHA $want "
	expect_console "qcow2-$_name-guest-copies-disk" '^VIREO-COPIED$'
	expect_qemu_img_agrees "qcow2-$_name" "$_image" "ref-$_name.img"
}

# Boot 1: a fresh image (version 3, 64 KiB clusters); mkfs.ext4 discards the whole disk first.
qemu-img create -q -f qcow2 base.qcow2 64M
qcow2_boot fresh base.qcow2 qcow2-fresh-guest-writes-file "mkfs.ext4 -q -F /dev/vda && mount /dev/vda /mnt && dd if=/dev/vdb of=/mnt/pattern bs=1M 2>/dev/null && dd if=/dev/vdb of=/mnt/scratch bs=1M count=8 2>/dev/null && sync && rm /mnt/scratch && fstrim /mnt && echo VIREO-SHA \$(sha256sum /mnt/pattern) && $copy_disk"
base_sum=$(sha256sum base.qcow2 | cut -d' ' -f1)

# Boot 2: a thin clone (backing file named relative to the clone). The guest reads the file
# through the backing chain, rewrites its first MiB in place and adds a new one.
qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 clone.qcow2
qcow2_boot clone clone.qcow2 qcow2-clone-reads-through-backing "mount /dev/vda /mnt && echo VIREO-SHA \$(sha256sum /mnt/pattern) && dd if=/dev/urandom of=/mnt/pattern bs=1M count=1 conv=notrunc 2>/dev/null && dd if=/dev/vdb of=/mnt/copy bs=1M 2>/dev/null && sync && $copy_disk"
if [ "$(sha256sum base.qcow2 | cut -d' ' -f1)" = "$base_sum" ]; then
	pass qcow2-clone-leaves-base-alone
else
	fail qcow2-clone-leaves-base-alone "base.qcow2 changed while the guest wrote to its clone"
fi

# Boot 3: a compressed version 2 (compat=0.10) copy of the base. Reads inflate clusters;
# writes over them allocate normal ones. The base, given as format=raw, shows its header.
qemu-img convert -q -c -f qcow2 -O qcow2 -o compat=0.10 base.qcow2 packed.qcow2
qcow2_boot packed packed.qcow2 qcow2-packed-reads-compressed "echo VIREO-MAGIC \$(head -c 3 /dev/vdd) && mount /dev/vda /mnt && echo VIREO-SHA \$(sha256sum /mnt/pattern) && dd if=/dev/vdb of=/mnt/pattern bs=1M count=2 conv=notrunc 2>/dev/null && sync && $copy_disk" \
	--disk path=base.qcow2,format=raw,readonly=on
expect_console qcow2-format-raw-not-guessed '^VIREO-MAGIC QFI'
