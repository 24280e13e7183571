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
