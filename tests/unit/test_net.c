/*
 * What the network backends share and need no network for: the --net
 * syntax (net_parse_spec, through the command line too), MAC addresses;
 * and user networking frame by frame, with the host's loopback as the
 * only network it reaches.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "net/net.h"
#include "vmm/options.h"

struct parsed {
	int rc;
	struct net_config cfg;
	char err[256];
	char buf[256];
};

/* Strings in p->cfg point into p->buf: p outlives them. */
static struct parsed *parse(struct parsed *p, const char *spec)
{
	memset(p, 0, sizeof(*p));
	snprintf(p->buf, sizeof(p->buf), "%s", spec);
	p->rc = net_parse_spec(p->buf, &p->cfg, p->err, sizeof(p->err));
	return p;
}

static void assert_rejected(const char *spec, const char *needle)
{
	struct parsed p;

	parse(&p, spec);
	assert_int_equal(p.rc, -EINVAL);
	if (!strstr(p.err, needle))
		fail_msg("'%s': message '%s' does not name '%s'", spec, p.err, needle);
}

static void test_net_spec_tap_with_every_key(void **state)
{
	struct parsed p;

	parse(&p, "tap=tap0,mac=52:54:00:12:34:56,mtu=9000,vhost=on");
	const uint8_t mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };

	(void)state;
	assert_int_equal(p.rc, 0);
	assert_int_equal(p.cfg.kind, NET_TAP);
	assert_string_equal(p.cfg.ifname, "tap0");
	assert_true(p.cfg.mac_set);
	assert_memory_equal(p.cfg.mac, mac, 6);
	assert_int_equal(p.cfg.mtu, 9000);
	assert_true(p.cfg.vhost);
}

static void test_net_spec_bridge_and_user_defaults(void **state)
{
	struct parsed p;

	parse(&p, "bridge=br0");

	(void)state;
	assert_int_equal(p.rc, 0);
	assert_int_equal(p.cfg.kind, NET_BRIDGE);
	assert_string_equal(p.cfg.ifname, "br0");
	assert_false(p.cfg.mac_set);
	assert_int_equal(p.cfg.mtu, 0);
	assert_false(p.cfg.vhost);
	parse(&p, "user");
	assert_int_equal(p.rc, 0);
	assert_int_equal(p.cfg.kind, NET_USER);
	assert_int_equal(p.cfg.nr_hostfwd, 0);
	assert_false(p.cfg.restricted);
	assert_false(p.cfg.host_loopback); /* the host's 127.0.0.1 stays the host's own */
	parse(&p, "mac=02:00:00:00:00:01,tap=t1"); /* the backend may come later */
	assert_int_equal(p.rc, 0);
	assert_int_equal(p.cfg.kind, NET_TAP);
}

static void test_net_spec_hostfwd(void **state)
{
	struct parsed p;

	parse(&p, "user,hostfwd=tcp:127.0.0.1:2222-:22,"
				"hostfwd=udp:0.0.0.0:5353-10.0.2.15:53,hostfwd=::8080-:80");
	struct net_hostfwd *f = p.cfg.hostfwd;

	(void)state;
	assert_int_equal(p.rc, 0);
	assert_int_equal(p.cfg.nr_hostfwd, 3);
	assert_false(f[0].udp);
	assert_int_equal(ntohl(f[0].host_addr.s_addr), INADDR_LOOPBACK);
	assert_int_equal(f[0].host_port, 2222);
	assert_int_equal(f[0].guest_addr.s_addr, 0);
	assert_int_equal(f[0].guest_port, 22);
	assert_true(f[1].udp);
	assert_int_equal(f[1].host_addr.s_addr, 0);
	assert_int_equal(ntohl(f[1].guest_addr.s_addr), 0x0a00020f);
	assert_int_equal(f[1].guest_port, 53);
	assert_false(f[2].udp);
	assert_int_equal(ntohl(f[2].host_addr.s_addr), INADDR_LOOPBACK); /* the safe default */
	assert_int_equal(f[2].host_port, 8080);
}

static void test_net_spec_user_restrict_and_host_loopback(void **state)
{
	struct parsed p;

	(void)state;
	parse(&p, "user,restrict=on,host-loopback=on");
	assert_int_equal(p.rc, 0);
	assert_true(p.cfg.restricted);
	assert_true(p.cfg.host_loopback);
	parse(&p, "user,restrict=off,host-loopback=off");
	assert_int_equal(p.rc, 0);
	assert_false(p.cfg.restricted);
	assert_false(p.cfg.host_loopback);
	parse(&p, "user,restrict=yes");
	assert_string_equal(p.err, "--net restrict=yes: use on or off");
	parse(&p, "user,host-loopback");
	assert_string_equal(p.err, "--net host-loopback=: use on or off");
	parse(&p, "tap=t0,restrict=on");
	assert_string_equal(p.err, "--net restrict= works with user networking only");
	parse(&p, "host-loopback=on,bridge=br0");
	assert_string_equal(p.err, "--net host-loopback= works with user networking only");
	assert_int_equal(p.rc, -EINVAL);
}

static void test_net_spec_rejects_bad_input_naming_it(void **state)
{
	(void)state;
	assert_rejected("", "backend");
	assert_rejected("mtu=1500", "backend");
	assert_rejected("tap", "interface name");
	assert_rejected("tap=", "interface name");
	assert_rejected("tap=averyveryverylongname", "averyveryverylongname");
	assert_rejected("tap=../x", "../x");
	assert_rejected("tap=t0,user", "user");
	assert_rejected("user=x", "user");
	assert_rejected("tap=t0,mac=52:54:00:12:34", "52:54:00:12:34");
	assert_rejected("tap=t0,mac=52:54:00:12:34:zz", "52:54:00:12:34:zz");
	assert_rejected("tap=t0,mac=52:54:00:12:34:567", "mac");
	assert_rejected("tap=t0,mac=01:00:5e:00:00:01", "multicast");
	assert_rejected("tap=t0,mac=00:00:00:00:00:00", "all-zero");
	assert_rejected("tap=t0,mtu=67", "mtu=67");
	assert_rejected("tap=t0,mtu=65536", "mtu=65536");
	assert_rejected("tap=t0,mtu=big", "mtu=big");
	assert_rejected("tap=t0,vhost=maybe", "vhost=maybe");
	assert_rejected("tap=t0,queues=4", "multiqueue");
	assert_rejected("tap=t0,colour=red", "colour");
	assert_rejected("tap=t0,hostfwd=tcp::1-:2", "user");
	assert_rejected("user,vhost=on", "vhost");
	assert_rejected("user,hostfwd=tcp:127.0.0.1:2222", "hostfwd=tcp:127.0.0.1:2222");
	assert_rejected("user,hostfwd=sctp::1-:2", "hostfwd");
	assert_rejected("user,hostfwd=tcp::0-:22", "hostfwd");
	assert_rejected("user,hostfwd=tcp::70000-:22", "hostfwd");
	assert_rejected("user,hostfwd=tcp:1.2.3:22-:22", "hostfwd");
}

static void test_net_option_repeats_up_to_the_limit(void **state)
{
	char specs[CONFIG_MAX_NICS + 1][32];
	char *argv[4 + 2 * (CONFIG_MAX_NICS + 1)];
	struct vm_config cfg;
	enum options_command cmd;
	char err[256];
	int argc = 0;

	(void)state;
	argv[argc++] = "vireo";
	argv[argc++] = "run";
	argv[argc++] = "-k";
	argv[argc++] = "k";
	for (int i = 0; i < CONFIG_MAX_NICS; i++) {
		snprintf(specs[i], sizeof(specs[i]), "tap=t%d", i);
		argv[argc++] = "--net";
		argv[argc++] = specs[i];
	}
	assert_int_equal(options_parse(argc, argv, &cmd, &cfg, err, sizeof(err)), 0);
	assert_int_equal(cfg.nr_nics, CONFIG_MAX_NICS);
	assert_string_equal(cfg.nics[CONFIG_MAX_NICS - 1].ifname, "t7");
	snprintf(specs[CONFIG_MAX_NICS], sizeof(specs[0]), "user");
	argv[argc++] = "--net";
	argv[argc++] = specs[CONFIG_MAX_NICS];
	for (int i = 0; i < CONFIG_MAX_NICS; i++)
		snprintf(specs[i], sizeof(specs[i]), "tap=t%d", i);
	assert_int_equal(options_parse(argc, argv, &cmd, &cfg, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "--net"));
}

static void test_net_default_mac_is_stable_local_and_unicast(void **state)
{
	uint8_t a[6], b[6], c[6], d[6];

	(void)state;
	net_default_mac("vireo", 0, a);
	net_default_mac("vireo", 0, b);
	net_default_mac("vireo", 1, c);
	net_default_mac("web1", 0, d);
	assert_memory_equal(a, b, 6);
	assert_memory_not_equal(a, c, 6);
	assert_memory_not_equal(a, d, 6);
	for (uint8_t *m = a; m; m = m == a ? c : m == c ? d : NULL) {
		assert_int_equal(m[0] & 1, 0); /* unicast */
		assert_int_equal(m[0] & 2, 2); /* locally administered */
	}
}

static void test_net_parse_mac_accepts_both_separators(void **state)
{
	uint8_t mac[6];
	const uint8_t want[6] = { 0x02, 0xab, 0xcd, 0xef, 0x01, 0x23 };

	(void)state;
	assert_int_equal(net_parse_mac("02:AB:cd:ef:01:23", mac), 0);
	assert_memory_equal(mac, want, 6);
	assert_int_equal(net_parse_mac("02-ab-cd-ef-01-23", mac), 0);
	assert_int_equal(net_parse_mac("02:ab-cd:ef:01:23", mac), -EINVAL);
	assert_int_equal(net_parse_mac("02:ab:cd:ef:01:2", mac), -EINVAL);
	assert_int_equal(net_parse_mac("", mac), -EINVAL);
}

/* --- user networking, frame by frame ------------------------------------------------- */

static const uint8_t guest_mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };

/* Sends frame (without header) through the backend, waits for one back (header dropped). */
static ssize_t user_exchange(struct net_backend *be, const uint8_t *frame, size_t len,
			     uint8_t *reply, size_t reply_len, uint16_t want_ethertype)
{
	uint8_t hdr[NET_HDR_LEN] = { 0 }, rhdr[NET_HDR_LEN];
	struct iovec out[2] = { { hdr, sizeof(hdr) }, { (void *)frame, len } };
	struct iovec in[2] = { { rhdr, sizeof(rhdr) }, { reply, reply_len } };

	assert_int_equal(be->ops->send(be, out, 2), (ssize_t)(NET_HDR_LEN + len));
	for (int waited = 0; waited < 50; waited++) {
		struct pollfd p = { .fd = be->fd, .events = POLLIN };
		ssize_t n;

		poll(&p, 1, 100);
		n = be->ops->recv(be, in, 2);
		if (n == -EAGAIN)
			continue;
		assert_true(n > NET_HDR_LEN);
		for (int i = 0; i < NET_HDR_LEN; i++)
			assert_int_equal(rhdr[i], 0); /* no offloads on user networking */
		if (((reply[12] << 8) | reply[13]) == want_ethertype)
			return n - NET_HDR_LEN;
	}
	return -1;
}

static struct net_backend *user_backend_with(const char *spec)
{
	struct parsed p;
	struct net_backend *be;

	parse(&p, spec);
	assert_int_equal(p.rc, 0);
	be = net_open(&p.cfg, p.err, sizeof(p.err));
	if (!be || net_start(be, p.err, sizeof(p.err)) < 0)
		fail_msg("user networking: %s", p.err);
	assert_int_equal(be->features, 0);
	assert_int_equal(be->mtu, NET_DEFAULT_MTU);
	return be;
}

static const uint8_t gateway_ip[4] = { 10, 0, 2, 2 }, guest_ip[4] = { 10, 0, 2, 15 };

/* The guest asks who 10.0.2.2 is; libslirp learns the guest's MAC from it. */
static ssize_t user_arp_for_gateway(struct net_backend *be, uint8_t *reply, size_t len)
{
	uint8_t arp[60] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
	const uint8_t body[] = { 0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0, 1 };

	memcpy(arp + 6, guest_mac, 6);
	memcpy(arp + 12, body, sizeof(body));
	memcpy(arp + 22, guest_mac, 6);
	memcpy(arp + 28, guest_ip, 4);
	memcpy(arp + 38, gateway_ip, 4);
	return user_exchange(be, arp, sizeof(arp), reply, len, 0x0806);
}

static void test_net_user_answers_arp_for_the_gateway(void **state)
{
	struct net_backend *be = user_backend_with("user");
	uint8_t reply[2048];
	ssize_t n;

	(void)state;
	n = user_arp_for_gateway(be, reply, sizeof(reply));
	assert_true(n >= 42);
	assert_memory_equal(reply, guest_mac, 6);	    /* to us */
	assert_int_equal(reply[21], 2);			    /* an ARP reply */
	assert_memory_equal(reply + 28, gateway_ip, 4);	    /* from 10.0.2.2 */
	net_close(be);
}

/* The Internet checksum (RFC 1071) of the 16-bit words of p, on top of sum. */
static uint16_t inet_checksum(const uint8_t *p, size_t len, uint32_t sum)
{
	for (size_t i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)(p[i] << 8 | p[i + 1]);
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

/* An IPv4 header at f + 14 with proto and total length; the checksum filled in. */
static void put_ip_header(uint8_t *f, uint8_t proto, uint16_t total, const uint8_t src[4],
			  const uint8_t dst[4])
{
	uint8_t *ip = f + 14;

	f[12] = 0x08;
	f[13] = 0x00;
	ip[0] = 0x45;
	put16(ip + 2, total);
	ip[8] = 64;
	ip[9] = proto;
	memcpy(ip + 12, src, 4);
	memcpy(ip + 16, dst, 4);
	put16(ip + 10, inet_checksum(ip, 20, 0));
}

/* A DHCPDISCOVER from 0.0.0.0 on a backend spec opens; the answer's length, in reply. */
static ssize_t user_dhcp_discover(const char *spec, uint8_t *reply, size_t len)
{
	struct net_backend *be = user_backend_with(spec);
	uint8_t f[342] = { 0 };
	ssize_t n;
	const uint8_t any[4] = { 0 }, all[4] = { 255, 255, 255, 255 };
	const uint8_t options[] = { 99, 130, 83, 99, 53, 1, 1, 255 };

	memset(f, 0xff, 6);
	memcpy(f + 6, guest_mac, 6);
	put_ip_header(f, 17, sizeof(f) - 14, any, all);
	f[34] = 0; f[35] = 68; f[36] = 0; f[37] = 67; /* UDP 68 -> 67, no checksum */
	put16(f + 38, sizeof(f) - 34);
	f[42] = 1; f[43] = 1; f[44] = 6;		   /* BOOTREQUEST, Ethernet */
	f[46] = 0x12; f[47] = 0x34; f[48] = 0x56; f[49] = 0x78; /* xid */
	memcpy(f + 70, guest_mac, 6);			   /* chaddr */
	memcpy(f + 278, options, sizeof(options));
	n = user_exchange(be, f, sizeof(f), reply, len, 0x0800);
	net_close(be);
	return n;
}

/* Whether the DHCP reply of n bytes carries option code. */
static bool dhcp_has_option(const uint8_t *reply, ssize_t n, uint8_t code)
{
	for (ssize_t i = 282; i + 1 < n && reply[i] != 255; i += 2 + reply[i + 1]) {
		if (reply[i] == code)
			return true;
	}
	return false;
}

#define DHCP_ROUTER 3
#define DHCP_DNS_SERVER 6

/* The offer gives 10.0.2.15, with 10.0.2.2 as the router and 10.0.2.3 for DNS. */
static void test_net_user_offers_an_address_by_dhcp(void **state)
{
	uint8_t reply[2048];
	ssize_t n = user_dhcp_discover("user", reply, sizeof(reply));

	(void)state;
	assert_true(n > 282);
	assert_int_equal(reply[23], 17);		   /* UDP */
	assert_int_equal(reply[42], 2);			   /* BOOTREPLY */
	assert_memory_equal(reply + 58, guest_ip, 4);	   /* yiaddr */
	assert_true(dhcp_has_option(reply, n, DHCP_ROUTER));
	assert_true(dhcp_has_option(reply, n, DHCP_DNS_SERVER));
}

/* restrict=on: an address, but no way out to send anything through. */
static void test_net_user_restricted_offers_no_router_and_no_dns(void **state)
{
	uint8_t reply[2048];
	ssize_t n = user_dhcp_discover("user,restrict=on", reply, sizeof(reply));

	(void)state;
	assert_true(n > 282);
	assert_memory_equal(reply + 58, guest_ip, 4);
	assert_false(dhcp_has_option(reply, n, DHCP_ROUTER));
	assert_false(dhcp_has_option(reply, n, DHCP_DNS_SERVER));
}

/*
 * The guest sends a SYN to 10.0.2.2 at the port of a listener on the
 * host's 127.0.0.1; returns libslirp's answer (an IPv4 frame) in reply.
 */
static ssize_t user_connect_to_host_loopback(const char *spec, uint8_t *reply, size_t len)
{
	struct net_backend *be = user_backend_with(spec);
	struct sockaddr_in addr = { .sin_family = AF_INET,
				    .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t addr_len = sizeof(addr);
	int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	uint8_t f[54] = { 0 }, pseudo[12] = { 0 };
	uint8_t *tcp = f + 34;
	ssize_t n;

	assert_true(listener >= 0);
	assert_int_equal(bind(listener, (struct sockaddr *)&addr, sizeof(addr)), 0);
	assert_int_equal(listen(listener, 1), 0);
	assert_int_equal(getsockname(listener, (struct sockaddr *)&addr, &addr_len), 0);
	n = user_arp_for_gateway(be, reply, len);
	assert_true(n >= 42);
	memcpy(f, reply + 22, 6); /* the gateway's MAC, from its ARP reply */
	memcpy(f + 6, guest_mac, 6);
	put_ip_header(f, 6, sizeof(f) - 14, guest_ip, gateway_ip);
	put16(tcp, 40000);
	put16(tcp + 2, ntohs(addr.sin_port));
	tcp[7] = 1;		/* sequence number */
	tcp[12] = 5 << 4;	/* 20-byte header */
	tcp[13] = 0x02;		/* SYN */
	put16(tcp + 14, 0xffff); /* window */
	memcpy(pseudo, guest_ip, 4);
	memcpy(pseudo + 4, gateway_ip, 4);
	pseudo[9] = 6;
	pseudo[11] = 20;
	put16(tcp + 16, inet_checksum(tcp, 20, (uint16_t)~inet_checksum(pseudo, 12, 0)));
	n = user_exchange(be, f, sizeof(f), reply, len, 0x0800);
	net_close(be);
	close(listener);
	return n;
}

#define IPPROTO_OF(frame) ((frame)[23])
#define TCP_FLAGS_OF(frame) ((frame)[47])
#define ICMP_TYPE_OF(frame) ((frame)[34])

/* By default 10.0.2.2 is no way to the host's 127.0.0.1: libslirp says unreachable. */
static void test_net_user_gateway_does_not_reach_host_loopback_by_default(void **state)
{
	uint8_t reply[2048];

	(void)state;
	assert_true(user_connect_to_host_loopback("user", reply, sizeof(reply)) >= 34 + 8);
	assert_int_equal(IPPROTO_OF(reply), IPPROTO_ICMP);
	assert_int_equal(ICMP_TYPE_OF(reply), 3); /* destination unreachable */
}

static void test_net_user_gateway_reaches_host_loopback_when_asked(void **state)
{
	uint8_t reply[2048];

	(void)state;
	assert_true(user_connect_to_host_loopback("user,host-loopback=on", reply,
						  sizeof(reply)) >= 54);
	assert_int_equal(IPPROTO_OF(reply), IPPROTO_TCP);
	assert_int_equal(TCP_FLAGS_OF(reply), 0x12); /* SYN+ACK: the listener took it */
}

/* restrict=on refuses the guest's connections, to 10.0.2.2 as anywhere else. */
static void test_net_user_restricted_refuses_the_guests_connections(void **state)
{
	uint8_t reply[2048];

	(void)state;
	assert_true(user_connect_to_host_loopback("user,restrict=on,host-loopback=on", reply,
						  sizeof(reply)) >= 54);
	assert_int_equal(IPPROTO_OF(reply), IPPROTO_TCP);
	assert_true(TCP_FLAGS_OF(reply) & 0x04); /* RST */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_net_spec_tap_with_every_key),
		cmocka_unit_test(test_net_spec_bridge_and_user_defaults),
		cmocka_unit_test(test_net_spec_hostfwd),
		cmocka_unit_test(test_net_spec_user_restrict_and_host_loopback),
		cmocka_unit_test(test_net_spec_rejects_bad_input_naming_it),
		cmocka_unit_test(test_net_option_repeats_up_to_the_limit),
		cmocka_unit_test(test_net_default_mac_is_stable_local_and_unicast),
		cmocka_unit_test(test_net_parse_mac_accepts_both_separators),
		cmocka_unit_test(test_net_user_answers_arp_for_the_gateway),
		cmocka_unit_test(test_net_user_offers_an_address_by_dhcp),
		cmocka_unit_test(test_net_user_restricted_offers_no_router_and_no_dns),
		cmocka_unit_test(test_net_user_gateway_does_not_reach_host_loopback_by_default),
		cmocka_unit_test(test_net_user_gateway_reaches_host_loopback_when_asked),
		cmocka_unit_test(test_net_user_restricted_refuses_the_guests_connections),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
