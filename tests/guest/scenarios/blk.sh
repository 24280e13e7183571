#!/bin/sh
# Disks: the guest's own virtio_blk driver reads and writes image files. Known bytes written
# by the guest land in the image (checked on the host) and in an ext4 file that a second VM
# reads back; the guest boots with a disk as its root; a read-only disk refuses writes and
# its file stays the same; fstrim gives space back (the file's allocated blocks shrink); the
# serial arrives; cache=none and the sync engine work; a raw image found by probing refuses
# a qcow2 header; bad --disk options and images get one clear error.
# vireo-boots: 8
. "$(dirname "$0")/../lib.sh"

KIT_ARGS="run --kernel $KIT/vmlinuz --initramfs $KIT/initramfs.cpio.gz"
MIB=1048576

# sha256 of a file's first N MiB.
sha_head() { head -c $(($2 * MIB)) "$1" | sha256sum | cut -d' ' -f1; }
blocks() { stat -c %b "$1"; }

# Known data: 32 MiB of a counting pattern, given to the guest as a second, read-only disk.
yes 'vireo disk pattern 0123456789abcdef' | head -c $((32 * MIB)) >"$WORK/pattern.img"
want=$(sha_head "$WORK/pattern.img" 32)
truncate -s 128M "$WORK/data.img"

# 32 readers at once, 64 direct 4 KiB reads each from their own slice of the pattern: up to 32
# requests in flight, the load under which the device batches interrupts. Each slice's
# sha256 in order, hashed, against the host's.
qd32=$(for i in $(seq 0 31); do
	dd if="$WORK/pattern.img" bs=4k skip=$((i * 64)) count=64 2>/dev/null | sha256sum
done | sha256sum | cut -d' ' -f1)
guest="mkfs.ext4 -q -F /dev/vda && mount /dev/vda /mnt && dd if=/dev/vdb of=/mnt/pattern bs=1M 2>/dev/null && dd if=/dev/vdb of=/dev/vdc bs=1M oflag=direct 2>/dev/null && sync && echo VIREO-SHA \$(sha256sum /mnt/pattern) && echo VIREO-SERIAL \$(cat /sys/block/vda/serial) && echo VIREO-RO \$(cat /sys/block/vdb/ro) && umount /mnt && for i in \$(seq 0 31); do dd if=/dev/vdb bs=4k skip=\$((i*64)) count=64 iflag=direct 2>/dev/null | sha256sum >/tmp/q\$i & done; wait; echo VIREO-QD32 \$(cat /tmp/q? /tmp/q?? | sha256sum); awk 'BEGIN { printf \"QFI%c\", 251 }' >/tmp/qh && dd if=/tmp/qh of=/dev/vdc bs=512 count=1 conv=sync,fsync 2>/dev/null; echo VIREO-QCOW2-HEADER-WRITE \$?"
truncate -s 32M "$WORK/raw.img"
vm_run write $KIT_ARGS --cmdline "$(guest_cmdline "$guest")" \
	--disk "path=$WORK/data.img,serial=vireo-data-01" \
	--disk "path=$WORK/pattern.img,readonly=on" --disk "path=$WORK/raw.img"
expect_exit blk-write-guest-powers-off 0
expect_console blk-guest-reads-known-bytes "^VIREO-SHA $want "
expect_console blk-serial-arrives '^VIREO-SERIAL vireo-data-01$'
expect_console blk-readonly-flag-seen '^VIREO-RO 1$'
expect_console blk-32-readers-at-once-read-known-bytes "^VIREO-QD32 $qd32 "
# raw.img was found raw by probing: a qcow2 magic written to its sector 0 is refused (and
# blk-bytes-reach-the-image below finds the image as the pattern left it).
expect_console blk-probed-raw-refuses-a-qcow2-header '^VIREO-QCOW2-HEADER-WRITE [1-9]'
if grep -q "raw.img': refused a write that would make the image look like qcow2" "$WORK/write.err"; then
	pass blk-probed-raw-refusal-said
else
	fail blk-probed-raw-refusal-said "no line on Vireo's stderr saying the qcow2 header was refused"
fi
if [ "$(sha_head "$WORK/raw.img" 32)" = "$want" ]; then
	pass blk-bytes-reach-the-image
else
	fail blk-bytes-reach-the-image "the image's bytes (read on the host) differ from what the guest wrote"
fi
rm -f "$WORK/raw.img"
# The ext4 file written above is still there for a new VM.
vm_run reread $KIT_ARGS --cmdline "$(guest_cmdline 'mount -o ro /dev/vda /mnt && echo VIREO-SHA $(sha256sum /mnt/pattern)')" \
	--disk "path=$WORK/data.img"
expect_console blk-ext4-file-persists "^VIREO-SHA $want "

# A read-only disk: writes fail in the guest, the file does not change.
before=$(sha_head "$WORK/pattern.img" 32)
guest='dd if=/dev/zero of=/dev/vda bs=4096 count=16 oflag=direct 2>/dev/null && echo VIREO-WROTE || echo VIREO-REFUSED'
vm_run readonly $KIT_ARGS --cmdline "$(guest_cmdline "$guest")" \
	--disk "path=$WORK/pattern.img,readonly=on"
expect_console blk-readonly-refuses-writes '^VIREO-REFUSED$'
if [ "$(sha_head "$WORK/pattern.img" 32)" = "$before" ]; then
	pass blk-readonly-file-unchanged
else
	fail blk-readonly-file-unchanged "the read-only image changed"
fi

# fstrim punches holes: write 64 MiB, delete it, trim; the image's allocated blocks shrink.
guest='mount /dev/vda /mnt && dd if=/dev/vdb of=/mnt/a bs=1M 2>/dev/null && dd if=/dev/vdb of=/mnt/b bs=1M 2>/dev/null && sync && echo VIREO-FILLED && sleep 1 && rm /mnt/a /mnt/b && sync && fstrim -v /mnt && umount /mnt'
vm_start trim $KIT_ARGS --cmdline "$(guest_cmdline "$guest")" \
	--disk "path=$WORK/data.img" --disk "path=$WORK/pattern.img,readonly=on"
vm_wait_output '^VIREO-FILLED' 1 "$BOOT_TIMEOUT"
full=$(blocks "$WORK/data.img")
vm_wait
trimmed=$(blocks "$WORK/data.img")
if [ "$VM_RC" = 0 ] && [ "$trimmed" -lt $((full - 64 * 2048 / 2)) ]; then
	pass blk-fstrim-punches-holes
else
	fail blk-fstrim-punches-holes "512-byte blocks allocated: $full after writing, $trimmed after fstrim ($(vm_why))"
	vm_show
fi

# The disk as the root filesystem: the kit's own files on ext4, /init switches into it.
mkdir -p "$WORK/rootfs"
(cd "$WORK/rootfs" && gzip -dc "$KIT/initramfs.cpio.gz" | cpio -id 2>/dev/null)
truncate -s 256M "$WORK/root.img"
if mkfs.ext4 -q -F -d "$WORK/rootfs" "$WORK/root.img" 2>"$WORK/mkfs.err"; then
	guest='grep "^/dev/vda / ext4 " /proc/mounts && echo VIREO-ROOT-IS-VDA'
	vm_run root $KIT_ARGS --cmdline "$(guest_cmdline "$guest" vireo.root=/dev/vda)" \
		--disk "path=$WORK/root.img"
	expect_console blk-boots-from-root-disk '^VIREO-ROOT-IS-VDA$'
else
	fail blk-boots-from-root-disk "mkfs.ext4 -d failed: $(head -n 1 "$WORK/mkfs.err")"
fi
rm -rf "$WORK/rootfs" "$WORK/root.img"

# cache=none (O_DIRECT) and the sync engine. Nested, the images live on L1's ext4 scratch
# disk (tmpfs refuses O_DIRECT on this kernel); directly, $WORK is on the host's disk.
guest='mkfs.ext4 -q -F /dev/vda && mount /dev/vda /mnt && dd if=/dev/vdb of=/mnt/p bs=1M 2>/dev/null && umount /mnt && mount /dev/vda /mnt && echo VIREO-SHA $(sha256sum /mnt/p)'
vm_run direct $KIT_ARGS --cmdline "$(guest_cmdline "$guest")" \
	--disk "path=$WORK/data.img,cache=none,engine=sync" \
	--disk "path=$WORK/pattern.img,readonly=on,cache=none"
if grep -q 'cache=none' "$WORK/direct.err"; then
	skip blk-cache-none "this filesystem refuses O_DIRECT: $(head -n 1 "$WORK/direct.err")"
else
	expect_console blk-cache-none-sync-engine "^VIREO-SHA $want "
fi

# Bad input: each is one clear line and status 1, before any guest runs.
vm_run missing $KIT_ARGS --disk "path=$WORK/nonexistent.img"
expect_error blk-missing-image "nonexistent\.img.*No such file"
head -c 1000 /dev/zero >"$WORK/odd.img"
vm_run odd $KIT_ARGS --disk "path=$WORK/odd.img"
expect_error blk-size-not-multiple-of-512 "odd\.img.*multiple of 512"
vm_run dir $KIT_ARGS --disk "path=$WORK"
expect_error blk-directory-refused "not a file"
vm_run maybe $KIT_ARGS --disk "path=$WORK/data.img,readonly=maybe"
expect_error blk-readonly-maybe "readonly"
set -- $KIT_ARGS
for i in $(seq 0 16); do set -- "$@" --disk "path=$WORK/data.img,readonly=on"; done
vm_run many "$@"
expect_error blk-too-many-disks "at most 16"

# An image in use: a running VM holds it; a second VM is refused and says why.
vm_start holder $KIT_ARGS --cmdline "$(guest_cmdline 'echo VIREO-HOLDING; sleep 30')" \
	--disk "path=$WORK/data.img"
if vm_wait_output '^VIREO-HOLDING' 1 "$BOOT_TIMEOUT"; then
	holder_pid=$VM_PID
	"$VIREO" $KIT_ARGS --disk "path=$WORK/data.img" </dev/null >/dev/null 2>"$WORK/second.err"
	rc=$?
	if [ "$rc" = 1 ] && grep -q "data.img.*in use" "$WORK/second.err"; then
		pass blk-image-in-use-refused
	else
		fail blk-image-in-use-refused "status $rc: $(head -n 1 "$WORK/second.err")"
	fi
	VM_PID=$holder_pid
	kill -TERM "$VM_PID" 2>/dev/null
	vm_wait 30
else
	vm_wait 5
	fail blk-image-in-use-refused "the first VM never came up ($(vm_why))"
	vm_show
fi
