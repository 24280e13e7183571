# shellcheck shell=bash
# guest/nested.sh: the nested L1 machine, for hosts where /dev/kvm is missing or unusable.
# Sourced (bash) by tests/guest/run and guest/demo.
#
# L1 is QEMU's software emulation of x86-64 (TCG, -cpu max, which includes AMD SVM). It boots
# the kit's own kernel with an initramfs made of the kit's initramfs plus an overlay: Vireo
# and its shared libraries, the kit (for the L2 guests), guest/l1-main and, for tests, the
# scenarios. The kit's /init runs /l1/main, which loads kvm_amd so /dev/kvm appears in L1,
# runs the tests or the demo, and powers L1 off.
#
# Environment: VIREO_FORCE_NESTED=1 (use L1 even where /dev/kvm works), VIREO_L1_MEMORY
# (default 7G: the scenarios boot a 5 GiB guest), VIREO_L1_CPUS (default 2), VIREO_L1_DISK
# (size of L1's scratch disk, default 8G; 0 for none).

nested_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=common.sh
. "$nested_dir/common.sh"
L1_MEMORY=${VIREO_L1_MEMORY:-7G}
L1_CPUS=${VIREO_L1_CPUS:-2}
L1_DISK=${VIREO_L1_DISK:-8G}
L1_TAG='@@vireo@@ '

# kvm_direct VIREO: whether guests can run under Vireo right here. `vireo check` is the judge
# (it also refuses a /dev/kvm that emulates rather than virtualizes); the reason goes to stderr.
kvm_direct() {
	if [ "${VIREO_FORCE_NESTED:-0}" = 1 ]; then
		echo "VIREO_FORCE_NESTED=1" >&2
		return 1
	fi
	"$1" check >&2
}

# nested_tools: make sure QEMU (x86-64) and the scratch-disk tools are installed.
nested_tools() {
	command -v qemu-system-x86_64 >/dev/null && command -v mkfs.ext4 >/dev/null && return 0
	if [ "$(id -u)" = 0 ]; then
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
			qemu-system-x86 e2fsprogs >&2 && return 0
	fi
	echo "the nested machine needs QEMU: sudo apt-get install -y --no-install-recommends qemu-system-x86 e2fsprogs" >&2
	return 1
}

# sh_quote WORD...: the words quoted for POSIX sh, separated by spaces.
sh_quote() {
	local w out=
	for w in "$@"; do
		out+="'${w//\'/\'\\\'\'}' "
	done
	printf '%s' "${out% }"
}

# l1_guest_path HOSTPATH: where a host file goes in L1's initramfs (bench/lib.sh uses it).
l1_guest_path() { usr_path "$1"; }

# l1_initramfs OUT KIT VIREO CONFIG [SCENARIO.sh...]: write L1's initramfs to OUT. CONFIG is
# the text of /l1/config. The scenarios (and their runner) go under /tests/guest, with the
# host programs their "# vireo-needs:" lines name.
l1_initramfs() {
	local out=$1 kit=$2 vireo=$3 config=$4 stage f prog
	shift 4
	stage=$(mktemp -d "${TMPDIR:-/tmp}/vireo-l1.XXXXXX") || return 1
	mkdir -p "$stage/l1" "$stage/kit/modules" "$stage/opt/vireo" "$stage/tests/guest/scenarios"
	cp "$nested_dir/l1-main" "$stage/l1/main"
	printf 'L1_TAG=%s\n%s\n' "$(sh_quote "$L1_TAG")" "$config" >"$stage/l1/config"
	for f in vmlinuz vmlinux initramfs.cpio.gz kit.env; do
		ln "$kit/$f" "$stage/kit/$f" 2>/dev/null || cp "$kit/$f" "$stage/kit/$f"
	done
	cp "$kit"/modules/* "$stage/kit/modules/"
	stage_program "$stage" "$vireo" opt/vireo/vireo
	if [ $# -gt 0 ]; then
		cp "$nested_dir/../tests/guest/run-scenarios" "$nested_dir/../tests/guest/lib.sh" "$stage/tests/guest/"
		cp "$@" "$stage/tests/guest/scenarios/"
		# Host programs a scenario runs besides Vireo ("# vireo-needs: qemu-img ...").
		for prog in $(sed -n 's/^# vireo-needs: *//p' "$@" | tr ' ' '\n' | sort -u); do
			f=$(command -v "$prog") || continue # the scenario says it is missing
			stage_program "$stage" "$f" "$(usr_path "$f")"
		done
	fi
	# The kernel unpacks concatenated archives in turn: the overlay (uncompressed, so L1 spends
	# no emulated time on it) adds to the kit's initramfs. An uncompressed archive must start
	# at a multiple of 4 bytes; the zeros before it are skipped.
	local size
	size=$(stat -c %s "$kit/initramfs.cpio.gz")
	(cd "$stage" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) >"$out.overlay" &&
		{ cat "$kit/initramfs.cpio.gz" && head -c $(((512 - size % 512) % 512)) /dev/zero &&
			cat "$out.overlay"; } >"$out"
	local rc=$?
	rm -rf "$stage" "$out.overlay"
	return $rc
}

# l1_scratch_disk PATH: a sparse ext4 image of L1_DISK bytes for L1's /scratch.
l1_scratch_disk() {
	truncate -s "$L1_DISK" "$1" &&
		mkfs.ext4 -q -F -E lazy_itable_init=1,lazy_journal_init=1 -L scratch "$1" >/dev/null
}

# l1_qemu_args KIT INITRAMFS MODE [DISK]: fill the array L1_QEMU with the QEMU command line.
# The serial port is left to the caller (-serial ...).
l1_qemu_args() {
	local kit=$1 initramfs=$2 mode=$3 disk=${4:-}
	L1_QEMU=(qemu-system-x86_64 -nodefaults -no-user-config -no-reboot -display none
		-machine pc -accel tcg,thread=multi -cpu max -smp "$L1_CPUS" -m "$L1_MEMORY"
		-kernel "$kit/vmlinux" -initrd "$initramfs"
		-append "console=ttyS0 quiet loglevel=1 panic=-1 vireo.run=dash+/l1/main+$mode")
	if [ -n "$disk" ]; then
		L1_QEMU+=(-drive "file=$disk,if=virtio,format=raw,cache=unsafe")
	fi
}
