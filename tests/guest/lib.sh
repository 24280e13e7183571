# tests/guest/lib.sh: helpers for guest scenarios, sourced by each scenarios/*.sh.
# POSIX sh: scenarios also run inside the nested L1 machine, under dash with busybox tools.
#
# A scenario prints result lines on stdout, one per assertion:
#   PASS name | FAIL name: reason | SKIP name: why
# and writes diagnostics on stderr (the runner keeps them in a log and shows its tail when
# the scenario fails).
#
# Environment (from tests/guest/run-scenarios): VIREO (the binary), KIT (guest/build-kit's
# directory), WORK (this scenario's scratch directory), VIREO_BOOT_TIMEOUT (seconds one guest
# run may take before it is killed and counted as failed).

: "${VIREO:?VIREO is not set}" "${KIT:?KIT is not set}" "${WORK:?WORK is not set}"
BOOT_TIMEOUT=${VIREO_BOOT_TIMEOUT:-60}

# The command line every kit guest gets: console on COM1, little output, no PCI probe (Vireo
# has no PCI bus), and a panic reboots (exit status 2) rather than hanging until the timeout.
GUEST_CMDLINE='console=ttyS0 quiet pci=off panic=-1'

pass() { echo "PASS $1"; }
fail() {
	_n=$1
	shift
	echo "FAIL $_n: $*"
}
skip() {
	_n=$1
	shift
	echo "SKIP $_n: $*"
}
note() { echo "$*" >&2; }

# urlenc TEXT: TEXT in the form guest/init's vireo.run= takes: '+' for a space, %XX for the
# characters the kernel command line or the encoding itself would take ('%', '+', '"', tab).
urlenc() {
	case $1 in
	*'
'*) echo "urlenc: newline in a guest command; use ';'" >&2; return 1 ;;
	esac
	printf '%s' "$1" | sed -e 's/%/%25/g' -e 's/+/%2B/g' -e 's/"/%22/g' -e 's/	/%09/g' -e 's/ /+/g'
}

# guest_cmdline COMMAND [EXTRA...]: the kit command line that runs COMMAND in the guest.
guest_cmdline() {
	_c=$(urlenc "$1") || return 1
	shift
	printf '%s\n' "$GUEST_CMDLINE $* vireo.run=$_c"
}

# vm_start NAME ARGS...: start `vireo ARGS...` in the background (stdin /dev/null,
# stdout $WORK/NAME.out, stderr $WORK/NAME.err). Sets VM_PID and VM_NAME.
vm_start() {
	VM_NAME=$1
	shift
	printf '$ vireo %s\n' "$*" >&2
	VM_STARTED=$(date +%s)
	"$VIREO" "$@" </dev/null >"$WORK/$VM_NAME.out" 2>"$WORK/$VM_NAME.err" &
	VM_PID=$!
}

# vm_wait [LIMIT]: wait for the vireo from vm_start, killing it (TERM, then KILL) if it is
# still running after LIMIT seconds (default BOOT_TIMEOUT) from now. Sets VM_RC, VM_TIMEDOUT
# (0/1), VM_SECONDS (since the start), and writes $WORK/NAME.log: the console output with
# carriage returns removed.
vm_wait() {
	_deadline=$(($(date +%s) + ${1:-$BOOT_TIMEOUT}))
	VM_TIMEDOUT=0
	while kill -0 "$VM_PID" 2>/dev/null; do
		if [ "$(date +%s)" -ge "$_deadline" ]; then
			VM_TIMEDOUT=1
			kill -TERM "$VM_PID" 2>/dev/null
			_i=0
			while kill -0 "$VM_PID" 2>/dev/null && [ $_i -lt 10 ]; do
				sleep 0.5
				_i=$((_i + 1))
			done
			kill -KILL "$VM_PID" 2>/dev/null
			break
		fi
		sleep 0.2
	done
	wait "$VM_PID"
	VM_RC=$?
	VM_SECONDS=$(($(date +%s) - VM_STARTED))
	tr -d '\r' <"$WORK/$VM_NAME.out" >"$WORK/$VM_NAME.log"
	note "  exit status $VM_RC after ${VM_SECONDS}s$([ $VM_TIMEDOUT = 1 ] && echo ' (timed out, killed)')"
}

# vm_run NAME ARGS...: vm_start then vm_wait.
vm_run() {
	vm_start "$@"
	vm_wait
}

# vm_wait_output PATTERN COUNT LIMIT: wait until the running VM's console has COUNT lines
# matching PATTERN (grep -E), the VM exits, or LIMIT seconds pass since it started.
# Returns 0 if the count was reached.
vm_wait_output() {
	while [ "$(tr -d '\r' <"$WORK/$VM_NAME.out" | grep -cE "$1")" -lt "$2" ]; do
		kill -0 "$VM_PID" 2>/dev/null || return 1
		[ $(($(date +%s) - VM_STARTED)) -lt "$3" ] || return 1
		sleep 0.5
	done
}

# Show the end of the last VM's console and stderr in the log.
vm_show() {
	note "  --- console of $VM_NAME (last 25 lines):"
	tail -n 25 "$WORK/$VM_NAME.log" | sed 's/^/    /' >&2
	note "  --- stderr of $VM_NAME:"
	tail -n 10 "$WORK/$VM_NAME.err" | sed 's/^/    /' >&2
}

# Why the last VM did not do what was expected, in a few words.
vm_why() {
	if [ "$VM_TIMEDOUT" = 1 ]; then
		echo "timed out after ${VM_SECONDS}s and was killed"
	else
		_e=$(sed -n 1p "$WORK/$VM_NAME.err")
		echo "exit status $VM_RC${_e:+ ($_e)}"
	fi
}

# expect_exit TEST STATUS: the last VM exited by itself with STATUS.
expect_exit() {
	if [ "$VM_TIMEDOUT" = 0 ] && [ "$VM_RC" = "$2" ]; then
		pass "$1"
	else
		fail "$1" "want exit status $2, got $(vm_why)"
		vm_show
	fi
}

# expect_console TEST PATTERN [FILE]: the console (or FILE) has a line matching PATTERN (grep -E).
expect_console() {
	_f=${3:-$WORK/$VM_NAME.log}
	if grep -qE "$2" "$_f"; then
		pass "$1"
	else
		fail "$1" "no line matching '$2' on the console ($(vm_why))"
		vm_show
	fi
}

# fact NAME [FILE]: the value of NAME=VALUE on the guest's "VIREO-FACTS" line.
fact() {
	sed -n "s/^VIREO-FACTS.* $1=\([^ ]*\).*/\1/p" "${2:-$WORK/$VM_NAME.log}" | sed -n 1p
}

# A guest command that prints one line: VIREO-FACTS nproc=N cpus=N memtotal=KB uptime=SECONDS.
FACTS_CMD='echo VIREO-FACTS nproc=$(nproc) cpus=$(grep -c ^processor /proc/cpuinfo) memtotal=$(sed -n "s/^MemTotal: *\([0-9]*\) kB/\1/p" /proc/meminfo) uptime=$(cut -d" " -f1 /proc/uptime)'

# expect_cpus TEST N [FILE]: the guest saw N CPUs (nproc and /proc/cpuinfo).
expect_cpus() {
	_np=$(fact nproc "$3")
	_ci=$(fact cpus "$3")
	if [ "$_np" = "$2" ] && [ "$_ci" = "$2" ]; then
		pass "$1"
	else
		fail "$1" "want $2 CPUs, guest says nproc=${_np:-?} and /proc/cpuinfo has ${_ci:-?} ($(vm_why))"
		vm_show
	fi
}

# expect_memory TEST MIB [FILE]: the guest's MemTotal lies between 90% and 100% of MIB MiB
# (MemTotal is RAM less what the kernel reserves for itself).
expect_memory() {
	_kb=$(fact memtotal "$3")
	_full=$(($2 * 1024))
	if [ -n "$_kb" ] && [ "$_kb" -le "$_full" ] && [ "$_kb" -ge $((_full * 9 / 10)) ]; then
		pass "$1"
	else
		fail "$1" "want MemTotal within 90-100% of $_full kB, guest says ${_kb:-nothing} ($(vm_why))"
		vm_show
	fi
}

# expect_error TEST [PATTERN]: the last VM failed as a command-line error should: exit status
# 1, and stderr is one line starting with "vireo: " (and matching PATTERN, grep -E).
expect_error() {
	_lines=$(grep -c '' "$WORK/$VM_NAME.err")
	_first=$(sed -n 1p "$WORK/$VM_NAME.err")
	if [ "$VM_TIMEDOUT" = 1 ] || [ "$VM_RC" != 1 ]; then
		fail "$1" "want exit status 1, got $(vm_why)"
		vm_show
	elif [ "$_lines" != 1 ] || [ "${_first#vireo: }" = "$_first" ]; then
		fail "$1" "want one line 'vireo: ...' on stderr, got $_lines lines: $_first"
		vm_show
	elif [ -n "$2" ] && ! printf '%s\n' "$_first" | grep -qE -- "$2"; then
		fail "$1" "the message does not match '$2': $_first"
	else
		pass "$1"
	fi
}
