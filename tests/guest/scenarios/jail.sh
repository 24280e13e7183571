#!/bin/sh
# --jail, seen from outside while the guest runs: the VM process (the launcher's child, PID 1
# of its namespace) has the given ids, no capabilities, no_new_privs, an empty root, namespaces
# of its own, only the descriptors the VM needs (not the kernel it mapped, nor a directory it
# inherited), and lives in a cgroup with the given limits, removed when it ends. The memory
# limit holds: a guest that touches more is killed. A reboot restarts inside the jail, and a
# signal to the launcher reaches the VM. User networking works from the jail, in the host's
# network namespace, with a copy of /etc/resolv.conf its only file. Without cgroup2, or
# without a controller its limits need, the jail refuses to start.
# vireo-boots: 5
. "$(dirname "$0")/../lib.sh"

if [ "$(id -u)" != 0 ]; then
	skip jail "needs root"
	exit 0
fi
cgroot=/sys/fs/cgroup
# The nested machine mounts no cgroup2: give it one, but never cover a host's other hierarchy.
if [ ! -f $cgroot/cgroup.controllers ] && [ -z "$(ls -A $cgroot 2>/dev/null)" ]; then
	mount -t cgroup2 none $cgroot
fi
if [ ! -f $cgroot/cgroup.controllers ]; then
	skip jail "cgroup v2 is not mounted at $cgroot"
	exit 0
fi
echo "+memory +pids +cpu" >$cgroot/cgroup.subtree_control
kernel=$KIT/vmlinuz
initramfs=$KIT/initramfs.cpio.gz
truncate -s 16M "$WORK/disk.img"

# jailed_pid: the VM process, the launcher's only child.
jailed_pid() {
	cat /proc/"$VM_PID"/task/*/children 2>/dev/null | tr -d ' '
}

# status_field NAME: that line of the jailed process's /proc status, tabs as spaces.
status_field() {
	sed -n "s/^$1:[[:space:]]*//p" "/proc/$vm/status" | tr '\t' ' '
}

# A directory the launcher inherits: the jailed VM must not keep it.
exec 9<"$WORK"
vm_start jail run --kernel "$kernel" --initramfs "$initramfs" --memory 256M --name jailtest \
	--disk "path=$WORK/disk.img,format=raw" \
	--jail uid=1000,gid=1000,memory=512M,cpus=1,pids=64 \
	--cmdline "$(guest_cmdline 'echo VIREO-JAIL-UP; sleep 10')"
exec 9<&-
cg=$cgroot/vireo/jailtest-$VM_PID
if vm_wait_output '^VIREO-JAIL-UP' 1 "$BOOT_TIMEOUT" && vm=$(jailed_pid) && [ -n "$vm" ]; then
	note "  jailed VM: pid $vm; launcher $VM_PID"
	grep -E '^(Uid|Gid|Groups|Cap|NoNewPrivs|NSpid)' "/proc/$vm/status" >&2
	if [ "$(status_field Uid)" = "1000 1000 1000 1000" ] &&
		[ "$(status_field Gid)" = "1000 1000 1000 1000" ] && [ -z "$(status_field Groups)" ]; then
		pass jail-runs-as-given-ids
	else
		fail jail-runs-as-given-ids "Uid '$(status_field Uid)', Gid '$(status_field Gid)', Groups '$(status_field Groups)'"
	fi
	zero=0000000000000000
	if [ "$(status_field CapEff)" = $zero ] && [ "$(status_field CapPrm)" = $zero ] &&
		[ "$(status_field CapBnd)" = $zero ] && [ "$(status_field CapInh)" = $zero ] &&
		[ "$(status_field NoNewPrivs)" = 1 ]; then
		pass jail-no-capabilities-no-new-privs
	else
		fail jail-no-capabilities-no-new-privs "CapEff $(status_field CapEff), CapPrm $(status_field CapPrm), CapBnd $(status_field CapBnd), NoNewPrivs $(status_field NoNewPrivs)"
	fi
	case " $(status_field NSpid) " in
	*" 1 ") pass jail-vm-is-pid-1-of-its-namespace ;;
	*) fail jail-vm-is-pid-1-of-its-namespace "NSpid is '$(status_field NSpid)'" ;;
	esac
	shared=
	for ns in mnt pid net ipc uts cgroup; do
		[ "$(readlink "/proc/$vm/ns/$ns")" = "$(readlink "/proc/self/ns/$ns")" ] && shared="$shared $ns"
	done
	if [ -z "$shared" ]; then
		pass jail-namespaces-of-its-own
	else
		fail jail-namespaces-of-its-own "shares the host's:$shared"
	fi
	root=$(ls -A "/proc/$vm/root/")
	if [ -z "$root" ]; then
		pass jail-root-is-empty
	else
		fail jail-root-is-empty "its root holds: $(echo $root)"
	fi
	bad= disk=0
	for fd in /proc/"$vm"/fd/*; do
		target=$(readlink "$fd")
		note "  fd ${fd##*/} -> $target"
		if [ -d "$fd" ] || [ "$target" = "$kernel" ] || [ "$target" = "$initramfs" ]; then
			bad="$bad ${fd##*/}:$target"
		fi
		[ "$target" = "$WORK/disk.img" ] && disk=1
	done
	if [ -z "$bad" ] && [ $disk = 1 ]; then
		pass jail-keeps-only-what-the-vm-needs
	else
		fail jail-keeps-only-what-the-vm-needs "unneeded:${bad:- none}; the disk image open: $disk"
	fi
	member=$(sed -n 's/^0:://p' "/proc/$vm/cgroup")
	limits="$(cat "$cg/memory.max") $(cat "$cg/cpu.max") $(cat "$cg/pids.max")"
	if [ "$member" = /vireo/jailtest-$VM_PID ] && [ "$limits" = "536870912 100000 100000 64" ]; then
		pass jail-cgroup-with-limits
	else
		fail jail-cgroup-with-limits "in '$member'; memory.max, cpu.max, pids.max: '$limits'"
	fi
	note "  memory.peak of the jailed VM: $(cat "$cg/memory.peak" 2>/dev/null)"
else
	fail jail-vm-runs "the guest did not come up jailed ($(vm_why); jailed pid '$(jailed_pid)')"
	vm_show
fi
vm_wait
expect_exit jail-poweroff-exits-0 0
if [ -s "$WORK/jail.err" ]; then
	fail jail-launcher-prints-nothing "stderr: $(head -c 300 "$WORK/jail.err")"
else
	pass jail-launcher-prints-nothing
fi
if [ -e "$cg" ]; then
	fail jail-cgroup-removed "$cg is still there"
else
	pass jail-cgroup-removed
fi

# User networking's thread starts in the jail: the guest gets its address by DHCP. libslirp
# reads the host's resolver as it runs, so the jail's root holds a copy of /etc/resolv.conf
# (the nested machine has none: it gets one for this run).
made_resolv=
if [ ! -e /etc/resolv.conf ]; then
	echo "nameserver 127.0.0.1" >/etc/resolv.conf && made_resolv=1
fi
vm_start user run --kernel "$kernel" --initramfs "$initramfs" --memory 256M --net user \
	--jail uid=1000,gid=1000 --cmdline "$(guest_cmdline 'ip link set eth0 up; udhcpc -i eth0 -n -q -t 5 -s /bin/true && echo VIREO-DHCP-BOUND; echo VIREO-JAIL-UP; sleep 5')"
if vm_wait_output '^VIREO-JAIL-UP' 1 "$BOOT_TIMEOUT" && vm=$(jailed_pid) && [ -n "$vm" ]; then
	if [ "$(readlink "/proc/$vm/ns/net")" = "$(readlink /proc/self/ns/net)" ] &&
		[ "$(ls -A "/proc/$vm/root/")" = etc ] && [ "$(ls -A "/proc/$vm/root/etc")" = resolv.conf ] &&
		cmp -s "/proc/$vm/root/etc/resolv.conf" /etc/resolv.conf; then
		pass jail-user-net-host-netns-and-resolv-conf
	else
		fail jail-user-net-host-netns-and-resolv-conf "net $(readlink "/proc/$vm/ns/net"), root holds: $(ls -AR "/proc/$vm/root/" | tr '\n' ' ')"
	fi
else
	fail jail-user-net-host-netns-and-resolv-conf "the guest did not come up jailed ($(vm_why))"
fi
vm_wait
[ -n "$made_resolv" ] && rm -f /etc/resolv.conf
expect_console jail-user-net-dhcp '^VIREO-DHCP-BOUND'
expect_exit jail-user-net-poweroff-exits-0 0

# The guest touches 600 MiB of its 1 GiB; its cgroup allows 256 MiB.
vm_run oom run --kernel "$kernel" --initramfs "$initramfs" --memory 1G --name jailoom \
	--jail uid=1000,gid=1000,memory=256M \
	--cmdline "$(guest_cmdline 'echo VIREO-FILL; dd if=/dev/zero of=/dev/null bs=600M count=1; echo VIREO-FILLED')"
if [ "$VM_RC" = 1 ] && grep -q 'memory.max' "$WORK/oom.err" && grep -q '^VIREO-FILL$' "$WORK/oom.log" &&
	! grep -q '^VIREO-FILLED' "$WORK/oom.log"; then
	pass jail-memory-limit-holds
else
	fail jail-memory-limit-holds "want the VM killed while the guest fills its memory, got $(vm_why)"
	vm_show
fi
if ls -d "$cgroot"/vireo/jailoom-* >/dev/null 2>&1; then
	fail jail-cgroup-removed-after-a-kill "$(ls -d "$cgroot"/vireo/jailoom-*) is still there"
	for f in "$cgroot"/vireo/jailoom-*/cgroup.threads "$cgroot"/vireo/jailoom-*/cgroup.events; do
		note "  $f: $(tr '\n' ' ' <"$f")"
	done
	for t in $(cat "$cgroot"/vireo/jailoom-*/cgroup.threads); do
		note "  thread $t: $(cat "/proc/$t/comm") (process $(sed -n 's/^Tgid:\t*//p' "/proc/$t/status"))"
	done
	note "  stderr: $(cat "$WORK/oom.err")"
else
	pass jail-cgroup-removed-after-a-kill
fi

# The guest reboots as soon as it is up: the jailed VM boots it again, until SIGTERM.
vm_start restart run --kernel "$kernel" --initramfs "$initramfs" --memory 256M --reboot restart \
	--jail uid=1000,gid=1000 --cmdline "$(guest_cmdline true vireo.action=reboot)"
if vm_wait_output 'VIREO-INIT-READY' 2 $((2 * BOOT_TIMEOUT)); then
	pass jail-reboot-restarts
	kill -TERM "$VM_PID"
	vm_wait 20
	expect_exit jail-signal-reaches-the-vm 3
else
	kill -TERM "$VM_PID" 2>/dev/null
	vm_wait 20
	fail jail-reboot-restarts "saw $(grep -c VIREO-INIT-READY "$WORK/restart.log") boots ($(vm_why))"
	vm_show
	skip jail-signal-reaches-the-vm "the restart test did not get that far"
fi

vm_run nocgroup run --kernel "$kernel" --initramfs "$initramfs" \
	--jail "uid=1000,gid=1000,cgroup=$WORK/cg"
expect_error jail-needs-cgroup2 "'$WORK' is not in a cgroup2 file system"

# A parent cgroup whose own parent offers it no controller: memory= cannot be had there.
mkdir -p "$cgroot/jailtest-bare"
vm_run nomemory run --kernel "$kernel" --initramfs "$initramfs" \
	--jail "uid=1000,gid=1000,memory=1G,cgroup=$cgroot/jailtest-bare/vms"
expect_error jail-needs-the-memory-controller "cgroup '$cgroot/jailtest-bare/vms' has no memory controller"
rmdir "$cgroot/jailtest-bare/vms" "$cgroot/jailtest-bare"
