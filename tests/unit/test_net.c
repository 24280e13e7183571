/*
 * What the network backends share and need no network for: the --net
 * syntax (net_parse_spec, through the command line too), MAC addresses.
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

static struct net_backend *user_backend(void)
{
	struct net_config cfg = { .kind = NET_USER };
	char err[256];
	struct net_backend *be = net_open(&cfg, err, sizeof(err));

	if (!be || net_start(be, err, sizeof(err)) < 0)
		fail_msg("user networking: %s", err);
	assert_int_equal(be->features, 0);
	assert_int_equal(be->mtu, NET_DEFAULT_MTU);
	return be;
}

static void test_net_user_answers_arp_for_the_gateway(void **state)
{
	struct net_backend *be = user_backend();
	uint8_t arp[60] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff }, reply[2048];
	const uint8_t body[] = { 0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0, 1 };
	const uint8_t gateway[4] = { 10, 0, 2, 2 }, me[4] = { 10, 0, 2, 15 };
	ssize_t n;

	(void)state;
	memcpy(arp + 6, guest_mac, 6);
	memcpy(arp + 12, body, sizeof(body));
	memcpy(arp + 22, guest_mac, 6);
	memcpy(arp + 28, me, 4);
	memcpy(arp + 38, gateway, 4);
	n = user_exchange(be, arp, sizeof(arp), reply, sizeof(reply), 0x0806);
	assert_true(n >= 42);
	assert_memory_equal(reply, guest_mac, 6);	    /* to us */
	assert_int_equal(reply[21], 2);			    /* an ARP reply */
	assert_memory_equal(reply + 28, gateway, 4);	    /* from 10.0.2.2 */
	net_close(be);
}

/* A DHCPDISCOVER from 0.0.0.0 gets an offer of 10.0.2.15. */
static void test_net_user_offers_an_address_by_dhcp(void **state)
{
	struct net_backend *be = user_backend();
	uint8_t f[342] = { 0 }, reply[2048];
	const uint8_t ip_hdr[] = { 0x45, 0, 0x01, 0x48, 0, 0, 0, 0, 64, 17, 0, 0, 0, 0, 0, 0,
				   255, 255, 255, 255 };
	const uint8_t options[] = { 99, 130, 83, 99, 53, 1, 1, 255 };
	const uint8_t offered[4] = { 10, 0, 2, 15 };
	uint32_t sum = 0;
	ssize_t n;

	(void)state;
	memset(f, 0xff, 6);
	memcpy(f + 6, guest_mac, 6);
	f[12] = 0x08;
	memcpy(f + 14, ip_hdr, sizeof(ip_hdr));
	for (int i = 14; i < 34; i += 2)
		sum += (uint32_t)(f[i] << 8 | f[i + 1]);
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	f[24] = (uint8_t)(~sum >> 8);
	f[25] = (uint8_t)~sum;
	f[34] = 0; f[35] = 68; f[36] = 0; f[37] = 67; /* UDP 68 -> 67, no checksum */
	f[38] = 0x01; f[39] = 0x34;
	f[42] = 1; f[43] = 1; f[44] = 6;		   /* BOOTREQUEST, Ethernet */
	f[46] = 0x12; f[47] = 0x34; f[48] = 0x56; f[49] = 0x78; /* xid */
	memcpy(f + 70, guest_mac, 6);			   /* chaddr */
	memcpy(f + 278, options, sizeof(options));
	n = user_exchange(be, f, sizeof(f), reply, sizeof(reply), 0x0800);
	assert_true(n > 282);
	assert_int_equal(reply[23], 17);		   /* UDP */
	assert_int_equal(reply[42], 2);			   /* BOOTREPLY */
	assert_memory_equal(reply + 58, offered, 4);	   /* yiaddr */
	net_close(be);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_net_spec_tap_with_every_key),
		cmocka_unit_test(test_net_spec_bridge_and_user_defaults),
		cmocka_unit_test(test_net_spec_hostfwd),
		cmocka_unit_test(test_net_spec_rejects_bad_input_naming_it),
		cmocka_unit_test(test_net_option_repeats_up_to_the_limit),
		cmocka_unit_test(test_net_default_mac_is_stable_local_and_unicast),
		cmocka_unit_test(test_net_parse_mac_accepts_both_separators),
		cmocka_unit_test(test_net_user_answers_arp_for_the_gateway),
		cmocka_unit_test(test_net_user_offers_an_address_by_dhcp),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
