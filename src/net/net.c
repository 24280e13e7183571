/* What every network backend shares: see net.h. */
#include "net/net.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/vhost.h"
#include "vmm/errmsg.h"

static struct net_backend *net_open_backend(const struct net_config *cfg, char *err,
					    size_t err_len)
{
	switch (cfg->kind) {
	case NET_TAP:
	case NET_BRIDGE:
		return tap_open(cfg, err, err_len);
	case NET_USER:
		return user_open(cfg, err, err_len);
	}
	snprintf(err, err_len, "unknown network backend");
	return NULL;
}

/*
 * vhost=on: /dev/vhost-net is opened with the backend, once per process,
 * so a guest's reboot (and the sandbox, which opens no files) reuses it;
 * a missing one is said once, and Vireo moves the frames itself.
 */
static void net_open_vhost(struct net_backend *be)
{
	char why[160];

	if (!be->vhost_capable) {
		fprintf(stderr, "vireo: %s: vhost=on needs a TAP; Vireo moves the frames itself\n",
			be->what);
		return;
	}
	be->vhost = vhost_net_open(why, sizeof(why));
	if (!be->vhost)
		fprintf(stderr, "vireo: %s: vhost=on: %s; Vireo moves the frames itself\n",
			be->what, why);
}

struct net_backend *net_open(const struct net_config *cfg, char *err, size_t err_len)
{
	struct net_backend *be = net_open_backend(cfg, err, err_len);

	if (be && cfg->vhost)
		net_open_vhost(be);
	return be;
}

int net_start(struct net_backend *be, char *err, size_t err_len)
{
	return be->ops->start ? be->ops->start(be, err, err_len) : 0;
}

void net_close(struct net_backend *be)
{
	if (!be)
		return;
	vhost_net_close(be->vhost);
	be->ops->close(be);
}

/* FNV-1a, 64 bits: small, and stable across builds and hosts. */
static uint64_t fnv1a(uint64_t hash, const void *data, size_t len)
{
	const uint8_t *p = data;

	for (size_t i = 0; i < len; i++) {
		hash ^= p[i];
		hash *= 0x100000001b3ULL;
	}
	return hash;
}

void net_default_mac(const char *vm_name, int index, uint8_t mac[6])
{
	uint64_t hash = 0xcbf29ce484222325ULL;
	char suffix[16];

	hash = fnv1a(hash, "vireo-nic:", 10);
	hash = fnv1a(hash, vm_name, strlen(vm_name));
	snprintf(suffix, sizeof(suffix), "/%d", index);
	hash = fnv1a(hash, suffix, strlen(suffix));
	for (int i = 0; i < 6; i++)
		mac[i] = (uint8_t)(hash >> (8 * i));
	mac[0] = (uint8_t)((mac[0] & 0xfc) | 0x02); /* locally administered, unicast */
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (char)tolower((unsigned char)c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

int net_parse_mac(const char *text, uint8_t mac[6])
{
	char sep = text[2];

	if (strlen(text) != 17 || (sep != ':' && sep != '-'))
		return -EINVAL;
	for (int i = 0; i < 6; i++) {
		const char *p = text + 3 * i;
		int hi = hex_digit(p[0]), lo = hex_digit(p[1]);

		if (hi < 0 || lo < 0 || (i < 5 && p[2] != sep))
			return -EINVAL;
		mac[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

static int parse_port(const char *text, uint16_t *port)
{
	char *end;
	unsigned long v;

	if (*text < '0' || *text > '9')
		return -EINVAL;
	v = strtoul(text, &end, 10);
	if (*end || v == 0 || v > 65535)
		return -EINVAL;
	*port = (uint16_t)v;
	return 0;
}

/* "ADDR:PORT" with ADDR optional; *addr keeps its default when ADDR is empty. */
static int parse_endpoint(char *text, struct in_addr *addr, uint16_t *port)
{
	char *colon = strrchr(text, ':');

	if (!colon)
		return -EINVAL;
	*colon = '\0';
	if (*text && inet_pton(AF_INET, text, addr) != 1)
		return -EINVAL;
	return parse_port(colon + 1, port);
}

/* [tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT, as QEMU's -netdev user takes it. */
static int parse_hostfwd(char *text, struct net_hostfwd *fwd)
{
	char *dash;

	*fwd = (struct net_hostfwd){ .host_addr.s_addr = htonl(INADDR_LOOPBACK) };
	if (strncmp(text, "tcp:", 4) == 0) {
		text += 4;
	} else if (strncmp(text, "udp:", 4) == 0) {
		fwd->udp = true;
		text += 4;
	} else if (strncmp(text, ":", 1) == 0) {
		text += 1;
	}
	dash = strchr(text, '-');
	if (!dash)
		return -EINVAL;
	*dash = '\0';
	if (parse_endpoint(text, &fwd->host_addr, &fwd->host_port) < 0)
		return -EINVAL;
	return parse_endpoint(dash + 1, &fwd->guest_addr, &fwd->guest_port);
}

static int parse_mtu(const char *value, unsigned int *mtu)
{
	char *end;
	unsigned long v;

	if (!value || *value < '0' || *value > '9')
		return -EINVAL;
	v = strtoul(value, &end, 10);
	if (*end || v < NET_MIN_MTU || v > NET_MAX_MTU)
		return -EINVAL;
	*mtu = (unsigned int)v;
	return 0;
}

static int parse_net_kind(struct net_config *cfg, const char *key, const char *value,
			  bool *have_kind, char *err, size_t err_len)
{
	if (*have_kind)
		return errmsg(err, err_len,
			      "--net: '%s' after the backend was chosen "
			      "(one of tap=, bridge=, user per --net)",
			      key);
	*have_kind = true;
	if (strcmp(key, "user") == 0) {
		cfg->kind = NET_USER;
		return value ? errmsg(err, err_len, "--net user takes no value ('%s=%s')", key,
				      value)
			     : 0;
	}
	cfg->kind = strcmp(key, "tap") == 0 ? NET_TAP : NET_BRIDGE;
	if (!value || !*value)
		return errmsg(err, err_len, "--net %s= needs an interface name", key);
	if (strlen(value) >= IFNAMSIZ || strchr(value, '/') || strchr(value, ' '))
		return errmsg(err, err_len,
			      "--net %s=%s: not an interface name (at most 15 "
			      "characters, no '/' or spaces)",
			      key, value);
	cfg->ifname = value;
	return 0;
}

static int parse_net_pair(struct net_config *cfg, const char *key, char *value, char *err,
			  size_t err_len)
{
	if (strcmp(key, "mac") == 0) {
		if (!value || net_parse_mac(value, cfg->mac) < 0)
			return errmsg(err, err_len,
				      "--net mac=%s: not a MAC address (six hex "
				      "bytes: 52:54:00:12:34:56)",
				      value ? value : "");
		if (cfg->mac[0] & 1)
			return errmsg(err, err_len,
				      "--net mac=%s: a multicast address cannot be "
				      "a NIC's (the first byte must be even)",
				      value);
		if (!(cfg->mac[0] | cfg->mac[1] | cfg->mac[2] | cfg->mac[3] | cfg->mac[4] |
		      cfg->mac[5]))
			return errmsg(err, err_len,
				      "--net mac=%s: the all-zero address is not "
				      "a NIC's",
				      value);
		cfg->mac_set = true;
	} else if (strcmp(key, "mtu") == 0) {
		if (parse_mtu(value, &cfg->mtu) < 0)
			return errmsg(err, err_len, "--net mtu=%s: not an MTU (68 to 65535)",
				      value ? value : "");
	} else if (strcmp(key, "vhost") == 0) {
		return errmsg_on_off("--net", key, value, &cfg->vhost, err, err_len);
	} else if (strcmp(key, "restrict") == 0) {
		return errmsg_on_off("--net", key, value, &cfg->restricted, err, err_len);
	} else if (strcmp(key, "host-loopback") == 0) {
		return errmsg_on_off("--net", key, value, &cfg->host_loopback, err, err_len);
	} else if (strcmp(key, "hostfwd") == 0) {
		char copy[96];

		snprintf(copy, sizeof(copy), "%s", value ? value : "");
		if (cfg->nr_hostfwd == NET_MAX_HOSTFWD)
			return errmsg(err, err_len, "--net: more than 8 hostfwd=");
		if (!value || parse_hostfwd(value, &cfg->hostfwd[cfg->nr_hostfwd]) < 0)
			return errmsg(err, err_len,
				      "--net hostfwd=%s: use "
				      "[tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT, e.g. "
				      "tcp:127.0.0.1:2222-:22",
				      copy);
		cfg->nr_hostfwd++;
	} else if (strcmp(key, "queues") == 0) {
		if (!value || strcmp(value, "1") != 0)
			return errmsg(err, err_len,
				      "--net queues=%s: multiqueue virtio-net is "
				      "not supported yet (one queue pair per NIC)",
				      value ? value : "");
	} else {
		return errmsg(err, err_len,
			      "--net: unknown key '%s' (tap, bridge, user, mac, "
			      "mtu, vhost, hostfwd, restrict, host-loopback)",
			      key);
	}
	return 0;
}

/* The first key given that only user networking takes, or NULL. */
static const char *user_only_key(const struct net_config *cfg)
{
	if (cfg->nr_hostfwd)
		return "hostfwd";
	if (cfg->restricted)
		return "restrict";
	if (cfg->host_loopback)
		return "host-loopback";
	return NULL;
}

int net_parse_spec(char *spec, struct net_config *cfg, char *err, size_t err_len)
{
	bool have_kind = false;
	char *cursor = spec;

	memset(cfg, 0, sizeof(*cfg));
	while (cursor && *cursor) {
		char *key = cursor, *value;
		int rc;

		cursor = strchr(cursor, ',');
		if (cursor)
			*cursor++ = '\0';
		value = strchr(key, '=');
		if (value)
			*value++ = '\0';
		if (strcmp(key, "tap") == 0 || strcmp(key, "bridge") == 0 || strcmp(key, "user") == 0)
			rc = parse_net_kind(cfg, key, value, &have_kind, err, err_len);
		else
			rc = parse_net_pair(cfg, key, value, err, err_len);
		if (rc)
			return rc;
	}
	if (!have_kind)
		return errmsg(err, err_len,
			      "--net needs a backend: tap=NAME, bridge=NAME or "
			      "user");
	if (cfg->kind != NET_USER && user_only_key(cfg))
		return errmsg(err, err_len, "--net %s= works with user networking only",
			      user_only_key(cfg));
	if (cfg->kind == NET_USER && cfg->vhost)
		return errmsg(err, err_len,
			      "--net user: vhost=on needs a TAP (tap= or "
			      "bridge=)");
	return 0;
}
