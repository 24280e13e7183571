# shellcheck shell=bash
# guest/common.sh: what guest/build-kit and guest/nested.sh both need to put host programs
# into an initramfs (sourced; bash).

# usr_path HOSTPATH: where a host file goes in the kit's merged-/usr initramfs
# (/lib/x -> usr/lib/x, /usr/lib/x -> usr/lib/x), without a leading slash.
usr_path() {
	case $1 in
	/usr/*) printf '%s\n' "${1#/}" ;;
	/*) printf 'usr/%s\n' "${1#/}" ;;
	*) printf '%s\n' "$1" ;;
	esac
}

# shared_libs BINARY: the shared objects a dynamic executable needs, the loader included,
# one absolute path a line (nothing for a static one).
shared_libs() {
	ldd "$1" 2>/dev/null | sed -n 's/.*=> \(\/[^ ]*\) .*/\1/p; s/^[[:space:]]*\(\/[^ ]*\) (0x.*/\1/p'
}

# stage_program ROOT PROGRAM DEST: copy PROGRAM (links followed) to ROOT/DEST and the shared
# libraries it needs to their usr_path under ROOT, keeping any already there.
stage_program() {
	local root=$1 src=$2 dest=$3 lib f
	mkdir -p "$root/$(dirname "$dest")"
	rm -f "$root/$dest"
	cp -L "$src" "$root/$dest"
	shared_libs "$src" | while read -r lib; do
		f=$(usr_path "$lib")
		[ -e "$root/$f" ] && continue
		mkdir -p "$root/$(dirname "$f")"
		cp -L "$lib" "$root/$f"
	done
}
