# bench/lib.sh: shared code of bench/boot and bench/blk (bash; sourced).
# shellcheck shell=bash
#
# A benchmark script defines BENCH_NAME, BENCH_DEFAULT_RUNS, BENCH_L1_DISK (the size of L1's
# scratch disk, 0 for none), bench_l1_limit RUNS (seconds L1 may take), bench_usage (its help text),
# bench_payload DIR HELPERS (host side: put what its guests need into DIR; HELPERS holds the
# programs bench_helpers built), bench_here (the runs:
# prints records) and bench_report FILE (the table from the records), then calls
# bench_main "$@".
#
# Where `vireo check` passes, the runs happen right here. Elsewhere the script boots the nested
# L1 machine (guest/nested.sh: QEMU TCG with AMD SVM, kvm_amd inside) once, with bash, QEMU,
# Vireo, the kit and this folder in its initramfs, and runs itself there with --l1; the lines
# it prints come back over L1's console tagged with BENCH_TAG. Either way the runs print:
#   R key=value ...     one record (what bench_report reads)
#   L NAME text         a guest's console line (kept in the logs, not shown)
#   # text              progress and notes, shown as they come
#
# Times are taken with bash's $EPOCHREALTIME (no process is started to read a clock) and kept
# as integer microseconds. The VMMs' first KVM_RUN comes from bench/firstrun.c, an LD_PRELOAD
# shim. Exit counts come from KVM's own per-VM statistics in debugfs, the same counters for
# every VMM.

bench_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bench_root=$(cd "$bench_dir/.." && pwd)
BENCH_TAG='@@bench@@ '
BENCH_MEM_MB=256
# Every guest gets this command line (plus vireo.run=... for the kit's /init): console on
# COM1, little output, no PCI probe (Vireo and QEMU microvm have no PCI bus).
BENCH_CMDLINE='console=ttyS0 quiet pci=off'

bench_log() { printf '%s\n' "$*" >&2; }
bench_die() {
	bench_log "bench/$BENCH_NAME: $*"
	exit 1
}

# us2s MICROSECONDS: seconds with three decimals, without starting a process.
us2s() {
	local us=$1
	[ -n "$us" ] || { printf 'n/a'; return; }
	printf '%d.%03d' $((us / 1000000)) $((us % 1000000 / 1000))
}

# now_us: sets NOW_US to the wall clock in microseconds.
now_us() {
	NOW_US=${EPOCHREALTIME/[.,]/}
}

# bench_urlenc TEXT: TEXT as the kit's vireo.run= takes it ('+' for a space; '%' and '+'
# escaped). The commands here have no quotes, tabs or newlines.
bench_urlenc() {
	local s=${1//%/%25}
	s=${s//+/%2B}
	printf '%s' "${s// /+}"
}

# --- the virtual machines -------------------------------------------------------------------

# vmm_argv VMM KERNEL INITRAMFS CMDLINE [DISK [FORMAT]]: sets VMM_ARGV to the command line that
# boots KERNEL with INITRAMFS and CMDLINE (less pci=off for qemu-pc), 1 vCPU and BENCH_MEM_MB
# of RAM, under VMM: vireo, vireo-noseccomp (with --seccomp off), qemu-microvm or qemu-pc. DISK (an image in FORMAT, raw or qcow2;
# default raw) becomes the guest's /dev/vda, write-back cached by the host page cache under
# both VMMs (virtio-blk over virtio-mmio).
vmm_argv() {
	local vmm=$1 kernel=$2 initramfs=$3 cmdline=$4 disk=${5:-} format=${6:-raw}
	case $vmm in
	vireo | vireo-noseccomp)
		VMM_ARGV=("$BENCH_VIREO" run --kernel "$kernel" --initramfs "$initramfs"
			--cmdline "$cmdline" --memory "${BENCH_MEM_MB}M" --cpus 1)
		[ "$vmm" = vireo ] || VMM_ARGV+=(--seccomp off)
		[ -z "$disk" ] || VMM_ARGV+=(--disk "path=$disk,format=$format,cache=writeback")
		;;
	qemu-microvm | qemu-pc)
		VMM_ARGV=("$BENCH_QEMU" -accel kvm)
		if [ "$vmm" = qemu-microvm ]; then
			VMM_ARGV+=(-M microvm,acpi=on)
		else
			# pc has a PCI bus, and its ACPI tables reach PCI config space: with pci=off the
			# kernel prints ~50 "ACPI Error: ... [PCI_Config]" lines (seconds of serial output
			# in the nested machine). pc boots with PCI, as it is meant to.
			VMM_ARGV+=(-M pc)
			cmdline=${cmdline/ pci=off/}
		fi
		VMM_ARGV+=(-cpu host -m "${BENCH_MEM_MB}M" -smp 1 -nodefaults -no-user-config
			-nographic -serial stdio -kernel "$kernel" -initrd "$initramfs" -append "$cmdline")
		[ -z "$disk" ] || VMM_ARGV+=(-drive "file=$disk,if=none,id=d0,format=$format,cache=writeback"
			-device virtio-blk-device,drive=d0)
		;;
	*) bench_die "unknown VMM '$vmm'" ;;
	esac
}

# seccomp_vmms on|both: the VMMs that a script's --seccomp option adds to its list: none for on
# (Vireo's default), vireo-noseccomp for both (the sandbox's cost, in the same run); fails on
# anything else.
seccomp_vmms() {
	case $1 in
	on) ;;
	both) echo ' vireo-noseccomp' ;;
	*) return 1 ;;
	esac
}

# kvm_counters PID: reads KVM's statistics of the VM that process PID runs, from debugfs
# (/sys/kernel/debug/kvm/PID-FD/; the one with the most exits if it has several). Sets KC to
# "exits io_exits mmio_exits irq_injections halt_exits", or to "" if there are none.
KVM_COUNTERS='exits io_exits mmio_exits irq_injections halt_exits'
kvm_counters() {
	local d c v vals best_exits=-1
	KC=
	for d in /sys/kernel/debug/kvm/"$1"-*; do
		[ -r "$d/exits" ] || continue
		vals=
		for c in $KVM_COUNTERS; do
			v=
			read -r v <"$d/$c" 2>/dev/null
			vals+="${v:-0} "
		done
		v=${vals%% *}
		if [ "$v" -gt "$best_exits" ]; then
			best_exits=$v
			KC=${vals% }
		fi
	done
}

# counters_delta "A" "B": sets KD to B - A, counter by counter ("" if either is empty).
counters_delta() {
	local -a a=($1) b=($2)
	local i
	KD=
	[ ${#a[@]} -gt 0 ] && [ ${#b[@]} -gt 0 ] || return 0
	for i in "${!b[@]}"; do
		KD+="$((b[i] - a[i])) "
	done
	KD=${KD% }
}

# counters_kv "VALUES": the counters as key=value words (key=n/a when VALUES is empty).
counters_kv() {
	local -a v=($1)
	local i=0 c out=
	for c in $KVM_COUNTERS; do
		out+="$c=${v[i]:-n/a} "
		i=$((i + 1))
	done
	printf '%s' "${out% }"
}

# vmm_memory PID [TOPFILE]: the VMM's own memory from /proc/PID/smaps, guest RAM left out.
# Guest RAM is the anonymous mapping of exactly the guest's RAM size, under Vireo and QEMU
# alike. Sets MEM_KB to what the VMM itself allocated and wrote: the
# anonymous pages of every other mapping (heap, stacks, anonymous mmaps, data pages it wrote
# in its binary and libraries, firmware and device state) plus the dirty pages of any other
# memfd; RAM_KB to the resident guest RAM, for reference; DIRTY_KB to Private_Dirty +
# Shared_Dirty of every mapping but guest RAM. All in KiB, or n/a. DIRTY_KB overstates where
# files lie on tmpfs, as in the nested machine, whose root is its initramfs: the pages of a
# tmpfs file count as dirty, so the VMM's binary, its libraries and the kernel and initramfs
# it maps would count as its memory there; MEM_KB leaves clean file pages out everywhere.
# With TOPFILE, writes there the mappings that hold the most of MEM_KB ("KiB name", largest
# first; anonymous ones named by their size).
vmm_memory() {
	local out
	out=$(awk -v ram=$((BENCH_MEM_MB * 1024)) -v top="${2:-}" '
		/^[0-9a-f]+-[0-9a-f]+ / {
			isram = 0
			anon = (NF == 5)
			memfd = index($6, "/memfd:") == 1
			name = anon ? "[anon]" : $6
			next
		}
		$1 == "Size:" {
			if (anon && $2 == ram) isram = 1
			if (anon) name = "[anon " $2 " KiB]"
			next
		}
		$1 == "Rss:" { if (isram) guest += $2; next }
		$1 == "Anonymous:" && !isram && !memfd { own += $2; by[name] += $2; next }
		$1 == "Private_Dirty:" || $1 == "Shared_Dirty:" {
			if (!isram) dirty += $2
			if (memfd) { own += $2; by[name] += $2 }
		}
		END {
			if (!NR) exit
			printf "%d %d %d\n", own, guest, dirty
			if (top == "") exit
			for (n in by) if (by[n] > 0) printf "%d %s\n", by[n], n | ("sort -rn > " top)
		}' "/proc/$1/smaps" 2>/dev/null)
	read -r MEM_KB RAM_KB DIRTY_KB <<<"$out"
	[ -n "$out" ] || MEM_KB=n/a RAM_KB=n/a DIRTY_KB=n/a
}

# vm_run NAME LIMIT: runs VMM_ARGV (stdin /dev/null, stdout a FIFO read here, stderr
# BENCH_WORK/NAME.err) and reads its console line by line, killing it once LIMIT seconds have
# passed. For each line, with LINE and LINE_US (microseconds since the VMM was started, taken
# as the line arrived) set, it calls on_line (the caller's function) while the VMM still runs:
# VM_PID is set for it. Every line goes to BENCH_WORK/NAME.console as "SECONDS line".
# Sets VM_RC (exit status), VM_TIMEDOUT (0/1), VM_EXIT_US (when the VMM had exited) and
# VM_KVMRUN_US (first KVM_RUN, "" where the shim did not report).
vm_run() {
	local name=$1 limit=$2 fifo="$BENCH_WORK/$1.fifo" first="$BENCH_WORK/$1.firstrun"
	local fd part= rc t0 kvmrun
	rm -f "$fifo" "$first"
	mkfifo "$fifo" || bench_die "mkfifo $fifo failed"
	: >"$BENCH_WORK/$name.console"
	VM_TIMEDOUT=0
	now_us
	t0=$NOW_US
	BENCH_FIRSTRUN_FILE=$first LD_PRELOAD=$BENCH_SHIM "${VMM_ARGV[@]}" \
		</dev/null >"$fifo" 2>"$BENCH_WORK/$name.err" &
	VM_PID=$!
	exec {fd}<"$fifo"
	while :; do
		if IFS= read -r -t 1 -u "$fd" LINE; then
			rc=0
		else
			rc=$?
		fi
		now_us
		LINE_US=$((NOW_US - t0))
		if [ "$VM_TIMEDOUT" = 0 ] && [ $LINE_US -ge $((limit * 1000000)) ]; then
			VM_TIMEDOUT=1
			kill -TERM "$VM_PID" 2>/dev/null
			(sleep 5 && kill -KILL "$VM_PID" 2>/dev/null) &
		fi
		if [ "$rc" -gt 128 ]; then
			part+=$LINE # read timed out: keep a partial line
			continue
		fi
		LINE=$part$LINE
		part=
		[ "$rc" = 0 ] || [ -n "$LINE" ] || break
		LINE=${LINE//$'\r'/}
		printf '%s %s\n' "$(us2s $LINE_US)" "$LINE" >>"$BENCH_WORK/$name.console"
		on_line
		[ "$rc" = 0 ] || break
	done
	exec {fd}<&-
	wait "$VM_PID" 2>/dev/null # a VMM killed by a signal: its status says so
	VM_RC=$?
	now_us
	VM_EXIT_US=$((NOW_US - t0))
	rm -f "$fifo"
	# The console, for the log of the nested machine (not shown).
	sed "s/^/L $name /" "$BENCH_WORK/$name.console"
	VM_KVMRUN_US=
	if [ -s "$first" ]; then
		read -r kvmrun <"$first"
		kvmrun=${kvmrun/./}
		VM_KVMRUN_US=$((10#$kvmrun - t0))
	fi
}

# vm_show NAME: the end of a run's console and stderr, as notes.
vm_show() {
	say "#   console of $1 (last lines):"
	tail -n 12 "$BENCH_WORK/$1.console" 2>/dev/null | sed 's/^/#   | /'
	say "#   stderr of $1:"
	tail -n 6 "$BENCH_WORK/$1.err" 2>/dev/null | sed 's/^/#   | /'
}

say() { printf '%s\n' "$*"; }

# --- the report -----------------------------------------------------------------------------

# median_table FILE GROUPKEY COLUMN...: for each value of GROUPKEY in the records of FILE
# ("R key=value ..." lines), in order of first appearance, prints "GROUP OK N V1 V2 ...": N
# records, OK of them without ok=0, and Vi the median of COLUMN i over those (a record where
# it is n/a or missing left out; n/a if none has it).
median_table() {
	local file=$1 group=$2
	shift 2
	awk -v group="$group" -v cols="$*" '
		# The median, with as many decimals as the values have.
		function median(list,   n, a, i, j, t, d, p) {
			n = split(list, a, " ")
			if (n == 0) return "n/a"
			d = 0
			for (i = 1; i <= n; i++) {
				p = index(a[i], ".")
				if (p && length(a[i]) - p > d) d = length(a[i]) - p
			}
			for (i = 2; i <= n; i++) {
				t = a[i] + 0
				for (j = i - 1; j >= 1 && a[j] + 0 > t; j--) a[j + 1] = a[j]
				a[j + 1] = t
			}
			t = n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
			return sprintf("%." d "f", t)
		}
		BEGIN { nc = split(cols, col, " ") }
		$1 == "R" {
			delete kv
			for (i = 2; i <= NF; i++) { p = index($i, "="); kv[substr($i, 1, p - 1)] = substr($i, p + 1) }
			g = kv[group]
			if (!(g in count)) order[++ng] = g
			count[g]++
			if (kv["ok"] == "0") next
			okc[g]++
			for (c = 1; c <= nc; c++) {
				v = kv[col[c]]
				if (v != "" && v != "n/a") vals[g, c] = vals[g, c] " " v
			}
		}
		END {
			for (k = 1; k <= ng; k++) {
				g = order[k]
				line = g " " okc[g] + 0 " " count[g]
				for (c = 1; c <= nc; c++) line = line " " median(vals[g, c])
				print line
			}
		}' "$file"
}

# ratio A B: A/B with two decimals and an "x", or n/a.
ratio() {
	awk -v a="$1" -v b="$2" 'BEGIN {
		if (a == "" || b == "" || a == "n/a" || b == "n/a" || b + 0 == 0) print "n/a"
		else printf "%.2fx\n", a / b }'
}

# --- where the runs happen ------------------------------------------------------------------

# bench_l1_setup: inside the nested machine: load kvm_amd and what it needs (the kit's
# host.order, as guest/l1-main does), mount debugfs for the exit counters, and L1's scratch
# disk (if any) on /scratch for image files.
bench_l1_setup() {
	local m
	while read -r m; do
		insmod "/kit/modules/$m" 2>/dev/null
	done </kit/modules/host.order
	[ -c /dev/kvm ] || bench_die "/dev/kvm is missing in the nested machine (kvm_amd did not load)"
	mountpoint -q /sys/kernel/debug 2>/dev/null || mount -t debugfs none /sys/kernel/debug
	BENCH_DATA=/tmp/bench-data
	if [ -b /dev/vda ]; then
		mkdir -p /scratch
		mount -t ext4 /dev/vda /scratch 2>/dev/null && BENCH_DATA=/scratch/bench-data
	fi
	export BENCH_VIREO=/opt/vireo/vireo BENCH_QEMU=/usr/bin/qemu-system-x86_64 BENCH_KIT=/kit
	export BENCH_SHIM=/bench/bin/firstrun.so BENCH_BIN=/bench/bin BENCH_PAYLOAD=/bench/payload
	export BENCH_WORK=/tmp/bench-work BENCH_DATA BENCH_NESTED=1
	mkdir -p "$BENCH_WORK" "$BENCH_DATA"
	say "# L1: $(uname -r), $(grep -c ^processor /proc/cpuinfo) vCPUs," \
		"$(awk '/MemTotal/ { printf "%d MiB", $2 / 1024 }' /proc/meminfo); kvm_amd loaded;" \
		"data on $BENCH_DATA"
}

# bench_direct_setup: where KVM is usable here: debugfs for the counters if it can be had.
bench_direct_setup() {
	if [ ! -d /sys/kernel/debug/kvm ] && [ "$(id -u)" = 0 ]; then
		mount -t debugfs none /sys/kernel/debug 2>/dev/null
	fi
	[ -r /sys/kernel/debug/kvm ] ||
		say "# no readable /sys/kernel/debug/kvm (run as root): exit counts will be n/a"
}

# bench_helpers DIR: build firstrun.so and the static randread and tcprr into DIR.
bench_helpers() {
	local dir=$1 cc=${CC:-cc}
	mkdir -p "$dir"
	"$cc" -O2 -Wall -shared -fPIC -o "$dir/firstrun.so" "$bench_dir/firstrun.c" -ldl ||
		bench_die "cannot build bench/firstrun.c"
	"$cc" -O2 -Wall -static -pthread -o "$dir/randread" "$bench_dir/randread.c" ||
		bench_die "cannot build bench/randread.c (a static build needs libc6-dev)"
	"$cc" -O2 -Wall -static -pthread -o "$dir/tcprr" "$bench_dir/tcprr.c" ||
		bench_die "cannot build bench/tcprr.c (a static build needs libc6-dev)"
}

# cpio_newc DIR OUT: DIR's content as a newc archive (owned by root).
cpio_newc() {
	(cd "$1" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) >"$2"
}

# bench_overlay OUT HELPERS PAYLOAD: the archive that adds to L1's initramfs what the
# benchmarks need besides Vireo and the kit: bash, QEMU with the firmware it loads for
# microvm and pc, the helpers, the payload and this folder's scripts.
bench_overlay() {
	local out=$1 helpers=$2 payload=$3 stage qemu share f
	stage=$(mktemp -d "$work/overlay.XXXXXX")
	mkdir -p "$stage/bench/bin" "$stage/bench/payload" "$stage/usr/share/qemu" "$stage/usr/share/seabios"
	cp "$bench_dir"/lib.sh "$bench_dir/$BENCH_NAME" "$stage/bench/"
	cp "$helpers"/* "$stage/bench/bin/"
	cp -r "$payload"/. "$stage/bench/payload/"
	stage_program "$stage" "$(command -v bash)" "$(l1_guest_path "$(command -v bash)")"
	qemu=$(command -v qemu-system-x86_64)
	stage_program "$stage" "$qemu" "$(l1_guest_path "$qemu")"
	if command -v qemu-img >/dev/null; then # for qcow2 images (bench/blk --images)
		stage_program "$stage" "$(command -v qemu-img)" "$(l1_guest_path "$(command -v qemu-img)")"
	fi
	# QEMU looks for its firmware beside itself: BINDIR/../share/qemu (and seabios).
	share=$(dirname "$(readlink -f "$qemu")")/../share
	for f in qemu/bios-microvm.bin qemu/qboot.rom qemu/linuxboot_dma.bin qemu/kvmvapic.bin \
		seabios/bios-256k.bin; do
		cp -L "$share/$f" "$stage/usr/share/$f" || bench_die "QEMU firmware $share/$f is missing"
	done
	cpio_newc "$stage" "$out"
	local rc=$?
	rm -rf "$stage"
	return $rc
}

# bench_nested ARGS...: boot the nested machine once and run this script in it with --l1 ARGS;
# the tagged lines it prints come out on stdout.
bench_nested() {
	local initramfs="$work/l1.cpio" size disk= limit=$1 line cmd i
	shift
	nested_tools || bench_die "the nested machine needs qemu-system-x86 and e2fsprogs"
	L1_MEMORY=${VIREO_L1_MEMORY:-2G}
	l1_initramfs "$initramfs" "$KIT" "$VIREO" "" || bench_die "cannot build L1's initramfs"
	bench_overlay "$work/bench.cpio" "$work/bin" "$work/payload" || bench_die "cannot build the overlay"
	size=$(stat -c %s "$initramfs")
	{ head -c $(((512 - size % 512) % 512)) /dev/zero && cat "$work/bench.cpio"; } >>"$initramfs"
	rm -f "$work/bench.cpio"
	if [ "$L1_DISK" != 0 ]; then
		disk="$work/l1-scratch.img"
		l1_scratch_disk "$disk" || bench_die "cannot make L1's scratch disk"
	fi
	l1_qemu_args "$KIT" "$initramfs" bench "$disk"
	# The kit's /init runs vireo.run=...: this script, with bash, instead of guest/l1-main.
	cmd=$(bench_urlenc "bash /bench/$BENCH_NAME --l1 $*")
	for i in "${!L1_QEMU[@]}"; do
		L1_QEMU[i]=${L1_QEMU[i]/vireo.run=dash+\/l1\/main+bench/vireo.run=$cmd}
	done
	[[ " ${L1_QEMU[*]} " == *"vireo.run=$cmd"* ]] ||
		bench_die "guest/nested.sh's L1 command line has no 'vireo.run=dash+/l1/main+MODE' to replace"
	say "# machine: nested L1 (QEMU $(qemu-system-x86_64 --version | sed -n '1s/.*version \([^ ]*\).*/\1/p')" \
		"TCG -cpu max, $L1_CPUS vCPUs, $L1_MEMORY) on $(uname -n): $(bench_cpu), $(nproc) CPUs;" \
		"host /dev/kvm not usable ($(head -n 1 "$work/kvm-check.txt"))"
	say "# L1 console: $work/l1-console.log"
	local up=0 start=$SECONDS
	while IFS= read -r line; do
		line=${line%$'\r'}
		printf '%s\n' "$line" >>"$work/l1-console.log"
		case $line in
		*"$BENCH_TAG"*) line=${line#*"$BENCH_TAG"} ;;
		*) continue ;;
		esac
		if [ "$up" = 0 ]; then
			up=1
			say "# L1 up after $((SECONDS - start)) s"
		fi
		say "$line"
	done < <(timeout -k 10 "$limit" "${L1_QEMU[@]}" -serial stdio </dev/null 2>&1)
	if ! grep -q "^${BENCH_TAG}# done" "$work/l1-console.log"; then
		say "# the nested machine stopped before the runs finished (after $((SECONDS - start)) s); last lines of its console:"
		tail -n 15 "$work/l1-console.log" | sed 's/^/#   | /'
	fi
}

bench_cpu() {
	sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | sed -n 1p
}

# bench_main ARGS...: the command line of every benchmark script.
#   --runs N   runs per VMM (default BENCH_DEFAULT_RUNS)
#   --keep     keep the work directory (logs, L1 console)
#   --l1       (internal) run here, inside the nested machine
# A script may take options of its own, each with a value: it defines bench_option NAME VALUE,
# which returns 0 if it took the option (and sets what it means), else 1.
bench_main() {
	local runs=$BENCH_DEFAULT_RUNS where=host keep=0 rc extra=()
	while [ $# -gt 0 ]; do
		case $1 in
		--runs)
			[ $# -ge 2 ] && [[ $2 =~ ^[1-9][0-9]*$ ]] || { bench_usage >&2; exit 1; }
			runs=$2
			shift
			;;
		--runs=*)
			runs=${1#--runs=}
			[[ $runs =~ ^[1-9][0-9]*$ ]] || { bench_usage >&2; exit 1; }
			;;
		--keep) keep=1 ;;
		--l1) where=l1 ;;
		-h | --help) bench_usage; exit 0 ;;
		*)
			# A script's own options take a value each ("--name=value" or "--name value").
			[[ $1 != --*=* ]] || set -- "${1%%=*}" "${1#*=}" "${@:2}"
			if [ "$(type -t bench_option)" != function ] || [ $# -lt 2 ] ||
				! bench_option "$1" "$2"; then
				bench_usage >&2
				exit 1
			fi
			extra+=("$1" "$2")
			shift
			;;
		esac
		shift
	done
	BENCH_RUNS=$runs
	if [ "$where" = l1 ]; then
		{
			bench_l1_setup && bench_here
			say "# done"
		} 2>&1 | while IFS= read -r line; do printf '%s%s\n' "$BENCH_TAG" "$line"; done
		return
	fi

	# shellcheck source=../guest/nested.sh
	. "$bench_root/guest/nested.sh"
	L1_DISK=${VIREO_L1_DISK:-$BENCH_L1_DISK}
	local start=$SECONDS
	work=$(mktemp -d "${TMPDIR:-/tmp}/vireo-bench.XXXXXX")
	VIREO=${VIREO:-$bench_root/build/vireo}
	case $VIREO in /*) ;; *) VIREO="$PWD/$VIREO" ;; esac
	[ -x "$VIREO" ] || bench_die "no vireo binary at $VIREO (build it first: ninja -C build)"
	if [ -z "${KIT:-}" ]; then
		KIT=$("$bench_root/guest/build-kit") || bench_die "guest/build-kit failed"
	fi
	nested_tools || bench_die "QEMU is needed to compare with"
	bench_helpers "$work/bin"
	mkdir -p "$work/payload"
	bench_payload "$work/payload" "$work/bin"
	say "# bench/$BENCH_NAME: $runs runs per VMM; vireo $("$VIREO" --version 2>/dev/null | sed -n 1p);" \
		"kit $(sed -n 's/^KIT_KERNEL_RELEASE=//p' "$KIT/kit.env")"
	say "# host load average at the start: $(cut -d' ' -f1-3 /proc/loadavg) (other busy programs slow the runs)"
	if kvm_direct "$VIREO" 2>"$work/kvm-check.txt"; then
		say "# machine: direct KVM on $(uname -n): $(bench_cpu), $(nproc) CPUs, $(uname -r)"
		export BENCH_VIREO=$VIREO BENCH_QEMU=$(command -v qemu-system-x86_64) BENCH_KIT=$KIT
		export BENCH_SHIM=$work/bin/firstrun.so BENCH_BIN=$work/bin BENCH_PAYLOAD=$work/payload
		export BENCH_WORK=$work/runs BENCH_DATA=$work/data
		mkdir -p "$BENCH_WORK" "$BENCH_DATA"
		bench_direct_setup
		bench_here
		say "# done"
	else
		bench_nested "$(bench_l1_limit "$runs")" --runs "$runs" "${extra[@]}"
	fi | tee "$work/output" | grep --line-buffered -v '^[RL] '
	grep '^R ' "$work/output" >"$work/records"
	echo
	bench_report "$work/records"
	rc=0
	[ -s "$work/records" ] || rc=1
	say "# bench/$BENCH_NAME: $((SECONDS - start)) s in all; host load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
	if [ "$keep" = 1 ]; then
		say "# work directory kept: $work"
	else
		rm -rf "$work"
	fi
	return $rc
}
