#!/bin/sh
# Networking: the guest's virtio_net driver over a TAP, first with Vireo moving the frames,
# then with vhost-net; a second NIC on a bridge Vireo attaches a TAP to. In each TAP boot:
# the MTU and MAC as configured, the offloads in `ethtool -k`, ping both ways, and 32 MiB each
# way over TCP with matching SHA-256 (host -> guest by HTTP, guest -> host by nc), and ping
# again after the guest reloads virtio_net (a device reset: vhost hands the queues back and
# takes them again). Then user networking (libslirp), one boot with three NICs. eth0
# (host-loopback=on): DHCP, a name resolved through libslirp's DNS forwarding, a download from
# a server on the host's loopback, a page from a server on another host address, the host
# reaching a server in the guest through hostfwd. eth1 (the defaults): the host's loopback is
# out of reach at 10.0.2.2, while DNS forwarding to the resolver on that loopback still works.
# eth2 (restrict=on): the server on the other host address is out of reach, and hostfwd still
# reaches the guest. The guest picks the NIC by source address and per-test routes.
# Last, the errors for a TAP or bridge that is not there.
#
# Everything happens in a network namespace this scenario creates (unshare -n), never in the
# machine's own: the host end is 198.51.100.1/25 on the TAP and 198.51.100.129/25 on the bridge.
# A private mount namespace too: the resolver libslirp forwards to is ours (dnsmasq on this
# namespace's loopback, answering for vireo.test alone), never the machine's.
# vireo-boots: 3
# vireo-needs: dnsmasq
. "$(dirname "$0")/../lib.sh"

if [ "${VIREO_GUEST_NET:-1}" = 0 ]; then
	skip net "VIREO_GUEST_NET=0 turned the network scenario off"
	exit 0
fi

if [ -z "${VIREO_NET_NS:-}" ]; then
	if [ "$(id -u)" != 0 ] || ! command -v unshare >/dev/null; then
		skip net "needs root and unshare for a TAP in a private network namespace"
		exit 0
	fi
	VIREO_NET_NS=1 exec unshare -n -m "$(command -v dash || echo sh)" "$0" "$@"
fi

HOST=198.51.100.1 GUEST=198.51.100.2 BR_HOST=198.51.100.129 BR_GUEST=198.51.100.130
MAC=52:54:00:12:34:56 MTU=4000
pids=
cleanup() {
	for p in $pids; do kill "$p" 2>/dev/null; done
	ip link del vtap0 2>/dev/null
	ip link del vbr0 2>/dev/null
}
trap cleanup EXIT

ip link set lo up
if ! ip tuntap add dev vtap0 mode tap || ! ip link add vbr0 type bridge; then
	fail net-setup "cannot create a TAP and a bridge in the namespace (tun, bridge modules?)"
	exit 0
fi
ip addr add "$HOST/25" dev vtap0 && ip link set vtap0 up
ip addr add "$BR_HOST/25" dev vbr0 && ip link set vbr0 up

# 32 MiB for the guest to fetch, a server for it, and a listener for what the guest sends.
mkdir -p "$WORK/www"
dd if=/dev/urandom of="$WORK/www/data" bs=1M count=32 2>/dev/null
down_sum=$(sha256sum <"$WORK/www/data" | cut -d' ' -f1)
busybox httpd -f -p "$HOST:8080" -h "$WORK/www" &
pids="$pids $!"

# The guest's side of one TAP boot: facts, then the transfers, then it waits for the host to
# ping it and connect to port 5009 before it powers off. Times come from /proc/uptime.
guest_script='t() { cut -d" " -f1 /proc/uptime; };
ip link set eth0 up; ip addr add 198.51.100.2/25 dev eth0;
ip link set eth1 up; ip addr add 198.51.100.130/25 dev eth1;
echo VIREO-NET mtu=$(cat /sys/class/net/eth0/mtu) mac=$(cat /sys/class/net/eth0/address) mac1=$(cat /sys/class/net/eth1/address);
ethtool -k eth0 | grep -E "^(tx-checksumming|rx-checksumming|tcp-segmentation-offload|rx-gro-hw):" | sed "s/^/VIREO-OFFLOAD /";
ping -c 3 -W 5 198.51.100.1 >/dev/null && echo VIREO-PING-TAP;
ping -c 3 -W 5 198.51.100.129 >/dev/null && echo VIREO-PING-BRIDGE;
a=$(t); wget -q -O /tmp/in http://198.51.100.1:8080/data; b=$(t);
echo VIREO-DOWN $(sha256sum </tmp/in | cut -d" " -f1) $a $b;
dd if=/dev/urandom of=/tmp/out bs=1M count=32 2>/dev/null; echo VIREO-UPSUM $(sha256sum </tmp/out | cut -d" " -f1);
a=$(t); nc 198.51.100.1 5001 </tmp/out; b=$(t); echo VIREO-UP $a $b;
rmmod virtio_net && insmod /lib/modules/$(uname -r)/virtio_net.ko && sleep 1 && ip link set eth0 up && ip addr add 198.51.100.2/25 dev eth0 && ip link set eth1 up && ip addr add 198.51.100.130/25 dev eth1 && ping -c 3 -W 5 198.51.100.1 >/dev/null && echo VIREO-RELOAD-PING;
echo VIREO-WAIT-HOST; nc -l -p 5009 >/dev/null; echo VIREO-HOST-DONE'
guest_script=$(printf '%s' "$guest_script" | tr '\n' ' ')

# rate BYTES START END: MB/s from two /proc/uptime readings.
rate() { awk -v n="$1" -v a="$2" -v b="$3" 'BEGIN { if (b > a) printf "%.1f", n / 1e6 / (b - a); else print "?" }'; }

# tap_boot NAME VHOST: one boot with the TAP NIC (vhost=VHOST) and the bridge NIC.
tap_boot() {
	name=$1
	rm -f "$WORK/up.$name" "$WORK/hold"
	# The listener's stdin stays open (fd 7 holds the FIFO) until the guest's EOF comes.
	mkfifo "$WORK/hold"
	nc -l -p 5001 <"$WORK/hold" >"$WORK/up.$name" &
	listener=$!
	pids="$pids $listener"
	exec 7>"$WORK/hold"
	vm_start "$name" run --kernel "$KIT/vmlinuz" --initramfs "$KIT/initramfs.cpio.gz" \
		--memory 512M --name net-test --cmdline "$(guest_cmdline "$guest_script")" \
		--net "tap=vtap0,mac=$MAC,mtu=$MTU,vhost=$2" --net bridge=vbr0
	if vm_wait_output VIREO-WAIT-HOST 1 "$BOOT_TIMEOUT"; then
		ping -c 3 -W 5 "$GUEST" >/dev/null 2>&1 && host_ping=ok || host_ping=failed
		ping -c 3 -W 5 "$BR_GUEST" >/dev/null 2>&1 && host_ping_br=ok || host_ping_br=failed
		vhost_fd=$(ls -l "/proc/$VM_PID/fd" 2>/dev/null | grep -c vhost-net)
		bridge_tap=$(ip -o link show master vbr0 2>/dev/null | grep -c ': vireo')
		nc "$GUEST" 5009 </dev/null >/dev/null 2>&1
	else
		host_ping="not tried (the guest did not get that far)" host_ping_br=$host_ping
		vhost_fd=? bridge_tap=?
	fi
	vm_wait
	exec 7>&-
	kill "$listener" 2>/dev/null
	log="$WORK/$name.log"
	expect_exit "$name-poweroff" 0
	expect_console "$name-mtu-$MTU" "^VIREO-NET mtu=$MTU "
	expect_console "$name-mac" "^VIREO-NET .* mac=$MAC "
	expect_console "$name-default-mac-local-unicast" "^VIREO-NET .* mac1=[0-9a-f][26ae]:"
	for o in tx-checksumming rx-checksumming tcp-segmentation-offload rx-gro-hw; do
		expect_console "$name-offload-$o" "^VIREO-OFFLOAD $o: on"
	done
	expect_console "$name-ping-guest-to-host" '^VIREO-PING-TAP'
	expect_console "$name-ping-after-driver-reload" '^VIREO-RELOAD-PING'
	if [ "$host_ping" = ok ]; then pass "$name-ping-host-to-guest"; else
		fail "$name-ping-host-to-guest" "$host_ping"; fi
	expect_console "$name-bridge-ping-guest-to-host" '^VIREO-PING-BRIDGE'
	if [ "$host_ping_br" = ok ]; then pass "$name-bridge-ping-host-to-guest"; else
		fail "$name-bridge-ping-host-to-guest" "$host_ping_br"; fi
	if [ "$bridge_tap" = 1 ]; then pass "$name-bridge-tap-attached"; else
		fail "$name-bridge-tap-attached" "vbr0 has $bridge_tap vireo* ports"; fi
	set -- $(sed -n 's/^VIREO-DOWN //p' "$log")
	if [ "${1:-}" = "$down_sum" ]; then
		pass "$name-32MiB-host-to-guest"
		note "  host -> guest: $(rate 33554432 "$2" "$3") MB/s"
		echo "# $name: host -> guest 32 MiB at $(rate 33554432 "$2" "$3") MB/s"
	else
		fail "$name-32MiB-host-to-guest" "sha256 ${1:-none} != $down_sum"
	fi
	up_want=$(sed -n 's/^VIREO-UPSUM //p' "$log")
	up_got=$(sha256sum <"$WORK/up.$name" | cut -d' ' -f1)
	if [ -n "$up_want" ] && [ "$up_want" = "$up_got" ]; then
		pass "$name-32MiB-guest-to-host"
		set -- $(sed -n 's/^VIREO-UP //p' "$log")
		echo "# $name: guest -> host 32 MiB at $(rate 33554432 "$1" "$2") MB/s"
	else
		fail "$name-32MiB-guest-to-host" "got $(wc -c <"$WORK/up.$name") bytes, sha256 $up_got != ${up_want:-none}"
	fi
}

tap_boot net-tap off
if grep -q vhost "$WORK/net-tap.err"; then
	fail net-tap-no-vhost "vhost=off mentioned vhost: $(grep vhost "$WORK/net-tap.err")"
fi

tap_boot net-vhost on
if [ "$vhost_fd" = 1 ] && ! grep -q 'vhost' "$WORK/net-vhost.err"; then
	pass net-vhost-in-use
else
	fail net-vhost-in-use "fds on /dev/vhost-net: $vhost_fd; stderr: $(head -c 300 "$WORK/net-vhost.err")"
fi

# User networking: no TAP, no address of ours; the guest gets 10.0.2.15 by DHCP.
head -c 4194304 "$WORK/www/data" >"$WORK/www/small"
small_sum=$(sha256sum <"$WORK/www/small" | cut -d' ' -f1)
token="vireo-$$-token"
host_token="vireo-$$-host"
echo "$host_token" >"$WORK/www/token"
busybox httpd -f -p 127.0.0.1:8081 -h "$WORK/www" &
pids="$pids $!"
# libslirp sends the guest's queries to 10.0.2.3 on to the first nameserver of
# /etc/resolv.conf (and nowhere without one): in this mount namespace, dnsmasq on 127.0.0.1.
dns=
if command -v dnsmasq >/dev/null; then
	echo "nameserver 127.0.0.1" >"$WORK/resolv.conf"
	if [ -e /etc/resolv.conf ]; then
		mount --bind "$WORK/resolv.conf" /etc/resolv.conf
	else # (the nested machine) an /etc of the namespace's own that has one
		cp -a /etc "$WORK/etc" && rm -f "$WORK/etc/resolv.conf" &&
			cp "$WORK/resolv.conf" "$WORK/etc/" && mount --bind "$WORK/etc" /etc
	fi
	dnsmasq --keep-in-foreground --conf-file=/dev/null --no-resolv --no-hosts --no-poll \
		--listen-address=127.0.0.1 --bind-interfaces --port=53 --user= --group= --pid-file= \
		--address=/vireo.test/198.51.100.77 2>"$WORK/dnsmasq.err" &
	pids="$pids $!"
	dns=1
fi
user_script='echo "[ \"\$1\" = bound ] && ifconfig \$interface \$ip netmask \$subnet && route add default gw \$router && echo VIREO-DHCP \$ip \$router \$dns" >/tmp/u; chmod +x /tmp/u;
ip link set eth0 up; udhcpc -i eth0 -n -q -t 5 -s /tmp/u;
nslookup vireo.test 10.0.2.3 2>&1 | grep -q "198\.51\.100\.77" && echo VIREO-DNS-FORWARDED;
wget -q -O /tmp/in http://10.0.2.2:8081/small && echo VIREO-USER-DOWN $(sha256sum </tmp/in | cut -d" " -f1);
t() { r=$(timeout 9 wget -q -O - $1 2>&1) && echo reached $r || echo failed: $r; };
ip link set eth1 up; ip addr add 10.0.2.16/32 dev eth1; ip link set eth2 up; ip addr add 10.0.2.17/32 dev eth2;
ip rule add from 10.0.2.17 table 17; ip route add default via 10.0.2.2 dev eth2 onlink table 17;
echo VIREO-OPEN $(t http://198.51.100.1:8080/token);
ip route add 10.0.2.2/31 dev eth1 src 10.0.2.16; echo VIREO-LOOPBACK-DEFAULT $(t http://10.0.2.2:8081/token);
nslookup vireo.test 10.0.2.3 2>&1 | grep -q "198\.51\.100\.77" && echo VIREO-DNS-DEFAULT; ip route del 10.0.2.2/31 dev eth1;
ip route add 198.51.100.1 via 10.0.2.2 dev eth2 onlink src 10.0.2.17; echo VIREO-RESTRICTED $(t http://198.51.100.1:8080/token);
mkdir -p /tmp/www; echo TOKEN >/tmp/www/token; httpd -p 80 -h /tmp/www;
echo VIREO-WAIT-HOST; nc -l -p 5009 >/dev/null'
user_script=$(printf '%s' "$user_script" | sed "s/TOKEN/$token/" | tr '\n' ' ')
vm_start net-user run --kernel "$KIT/vmlinuz" --initramfs "$KIT/initramfs.cpio.gz" \
	--memory 512M --cmdline "$(guest_cmdline "$user_script")" \
	--net user,host-loopback=on,hostfwd=tcp:127.0.0.1:2280-:80,hostfwd=tcp:127.0.0.1:5009-:5009 \
	--net user --net user,restrict=on,hostfwd=tcp:127.0.0.1:2282-10.0.2.17:80
if vm_wait_output VIREO-WAIT-HOST 1 "$BOOT_TIMEOUT"; then
	fwd=$(busybox wget -q -O - http://127.0.0.1:2280/token 2>/dev/null)
	fwd_restricted=$(busybox wget -q -O - http://127.0.0.1:2282/token 2>/dev/null)
	nc 127.0.0.1 5009 </dev/null >/dev/null 2>&1
else
	fwd="not tried (the guest did not get that far)" fwd_restricted=$fwd
fi
vm_wait
expect_exit net-user-poweroff 0
expect_console net-user-dhcp '^VIREO-DHCP 10\.0\.2\.15 10\.0\.2\.2 10\.0\.2\.3'
if [ -n "$dns" ]; then
	expect_console net-user-dns-forwarded '^VIREO-DNS-FORWARDED'
	expect_console net-user-dns-forwarded-without-host-loopback '^VIREO-DNS-DEFAULT'
else
	skip net-user-dns-forwarded "no dnsmasq (Debian package dnsmasq-base) to answer the queries"
fi
expect_console net-user-download-from-host-loopback "^VIREO-USER-DOWN $small_sum"
if [ "$fwd" = "$token" ]; then
	pass net-user-hostfwd-reaches-guest
else
	fail net-user-hostfwd-reaches-guest "want '$token' from the guest's server, got '$fwd'"
fi
# libslirp answers a blocked connection at once (ICMP unreachable, or a reset with
# restrict=on): wget gets no byte and says it cannot connect. The servers are those that
# eth0 reached: 127.0.0.1:8081 for the download, 198.51.100.1:8080 for VIREO-OPEN.
# (busybox 1.35's wget -T crashes when the connection fails: timeout(1) bounds it instead.)
expect_console net-user-reaches-another-host-address "^VIREO-OPEN reached $host_token"
expect_console net-user-host-loopback-off-by-default \
	"^VIREO-LOOPBACK-DEFAULT failed: wget: can't connect to remote host"
expect_console net-user-restrict-blocks-outbound \
	"^VIREO-RESTRICTED failed: wget: can't connect to remote host"
if [ "$fwd_restricted" = "$token" ]; then
	pass net-user-restrict-hostfwd-reaches-guest
else
	fail net-user-restrict-hostfwd-reaches-guest "want '$token' from the guest's server, got '$fwd_restricted'"
fi

# Errors: refused before a guest runs, one line naming the interface.
vm_run no-tap run --kernel "$KIT/vmlinuz" --net tap=vnosuch0
expect_error net-missing-tap 'vnosuch0'
vm_run no-bridge run --kernel "$KIT/vmlinuz" --net bridge=vnobr0
expect_error net-missing-bridge 'vnobr0'
ip tuntap add dev vtun0 mode tun
vm_run tun-not-tap run --kernel "$KIT/vmlinuz" --net tap=vtun0
expect_error net-tun-is-not-a-tap 'TUN'
ip tuntap add dev vmq0 mode tap multi_queue
vm_run multiqueue run --kernel "$KIT/vmlinuz" --net tap=vmq0
expect_error net-multiqueue-tap 'multiqueue'
vm_run bad-mac run --kernel "$KIT/vmlinuz" --net tap=vtap0,mac=52:54:00:zz:00:01
expect_error net-bad-mac 'mac'
if ip link show vtap0 >/dev/null 2>&1; then
	pass net-named-tap-survives
else
	fail net-named-tap-survives "vtap0 is gone after Vireo exited"
fi
if ip -o link show | grep -q ': vireo'; then
	fail net-bridge-tap-gone "a TAP Vireo made for the bridge is still there: $(ip -o link show | grep ': vireo')"
else
	pass net-bridge-tap-gone
fi
