#!/bin/sh
# Boot: the kit's bzImage reaches /init with the console on stdout (the default); the guest
# sees the 2 CPUs, the 1 GiB and the command line it was given; its power-off ends Vireo
# with status 0. While it runs, every thread of Vireo is under a seccomp filter with
# no_new_privs set (the sandbox is on by default); with --seccomp off none is, and a warning
# says so.
# vireo-boots: 2
. "$(dirname "$0")/../lib.sh"

# thread_status FIELD: the distinct values of FIELD in the status of each thread of the
# running vireo, and how many threads it has, as "N: V1 V2".
thread_status() {
	_n=$(ls "/proc/$VM_PID/task" 2>/dev/null | grep -c .)
	echo "$_n: $(cat "/proc/$VM_PID/task/"*/status 2>/dev/null |
		sed -n "s/^$1:[[:space:]]*//p" | sort -u | tr '\n' ' ')"
}

# expect_threads TEST FIELD VALUE SEEN: SEEN (from thread_status) is VALUE on every thread of
# the three (main, two vCPUs) or more.
expect_threads() {
	if [ "${4%%:*}" -ge 3 ] 2>/dev/null && [ "${4#*: }" = "$3 " ]; then
		pass "$1"
	else
		fail "$1" "want $2 $3 on every thread (3 or more), got threads: values '$4'"
	fi
}

token="vireo.token=t$$"
# The guest holds on a little after its marker, so that Vireo's threads can be looked at.
vm_start bzimage run --kernel "$KIT/vmlinuz" --initramfs "$KIT/initramfs.cpio.gz" \
	--cmdline "$(guest_cmdline "$FACTS_CMD; echo VIREO-CMDLINE \$(cat /proc/cmdline); echo VIREO-HOLD; sleep 5" "$token")" \
	--cpus 2 --memory 1G
vm_wait_output '^VIREO-HOLD' 1 "$BOOT_TIMEOUT"
seccomp=$(thread_status Seccomp)
nnp=$(thread_status NoNewPrivs)
vm_wait
expect_console boot-bzimage-reaches-init '^VIREO-INIT-READY'
expect_exit boot-poweroff-exits-0 0
expect_cpus boot-cpus-2 2
expect_memory boot-memory-1G 1024
expect_console boot-cmdline-arrives "^VIREO-CMDLINE .*$token( |\$)"
expect_threads boot-seccomp-filter-on-every-thread Seccomp 2 "$seccomp"
expect_threads boot-no-new-privs-on-every-thread NoNewPrivs 1 "$nnp"

# --seccomp off: looked at once the guest is up, then stopped.
vm_start seccomp-off run --kernel "$KIT/vmlinuz" --initramfs "$KIT/initramfs.cpio.gz" \
	--cmdline "$(guest_cmdline 'echo VIREO-HOLD; sleep 60')" --cpus 2 --seccomp off
vm_wait_output '^VIREO-HOLD' 1 "$BOOT_TIMEOUT"
seccomp=$(thread_status Seccomp)
kill -TERM "$VM_PID" 2>/dev/null
vm_wait 20
expect_threads boot-seccomp-off-no-filter Seccomp 0 "$seccomp"
if grep -q '^vireo: WARNING: --seccomp off' "$WORK/seccomp-off.err"; then
	pass boot-seccomp-off-warns
else
	fail boot-seccomp-off-warns "no warning on stderr: $(head -c 300 "$WORK/seccomp-off.err")"
fi
