/*
 * The TAP backend: frames go to and from a Linux TAP device through
 * /dev/net/tun, opened IFF_TAP | IFF_NO_PI | IFF_VNET_HDR with a 12-byte
 * vnet header (TUNSETVNETHDRSZ), so the guest's virtio-net header crosses
 * as it is: partial checksums and TSO segments go through the host stack
 * untouched, and TUNSETOFFLOAD says which of them the guest takes back.
 *
 * --net tap=NAME uses an existing TAP and never creates nor deletes one
 * (a name that does not exist is an error, not a new device). --net
 * bridge=NAME creates a TAP ("vireo%d", not persistent: the kernel deletes
 * it when Vireo closes it), attaches it to the bridge and brings it up.
 *
 * The fd is non-blocking: readv returns -EAGAIN when no frame waits and
 * writev -EAGAIN when the TAP's queue is full; the device polls then.
 */
#include "net/net.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <linux/sockios.h>
#include <linux/virtio_net.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "vmm/errmsg.h"

#define TUN_DEVICE "/dev/net/tun"
#define TAP_FLAGS (IFF_TAP | IFF_NO_PI | IFF_VNET_HDR)
#define BRIDGE_TAP_NAME "vireo%d"

/* What a TAP with a vnet header serves: the device offers these. */
#define TAP_FEATURES                                                                    \
	((1ULL << VIRTIO_NET_F_CSUM) | (1ULL << VIRTIO_NET_F_GUEST_CSUM) |                \
	 (1ULL << VIRTIO_NET_F_HOST_TSO4) | (1ULL << VIRTIO_NET_F_HOST_TSO6) |              \
	 (1ULL << VIRTIO_NET_F_HOST_ECN) | (1ULL << VIRTIO_NET_F_GUEST_TSO4) |              \
	 (1ULL << VIRTIO_NET_F_GUEST_TSO6) | (1ULL << VIRTIO_NET_F_GUEST_ECN))

struct tap {
	struct net_backend be;
	char ifname[IFNAMSIZ];
};

static ssize_t tap_send(struct net_backend *be, const struct iovec *iov, int iovcnt)
{
	ssize_t n;

	do
		n = writev(be->fd, iov, iovcnt);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : n;
}

static ssize_t tap_recv(struct net_backend *be, const struct iovec *iov, int iovcnt)
{
	ssize_t n;

	do
		n = readv(be->fd, iov, iovcnt);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : n;
}

/* TUNSETOFFLOAD governs TAP -> guest: which offloaded frames the TAP may hand us. */
static int tap_set_offload(struct net_backend *be, uint64_t f)
{
	unsigned int flags = 0;

	if (f & (1ULL << VIRTIO_NET_F_GUEST_CSUM)) {
		flags |= TUN_F_CSUM;
		if (f & (1ULL << VIRTIO_NET_F_GUEST_TSO4))
			flags |= TUN_F_TSO4;
		if (f & (1ULL << VIRTIO_NET_F_GUEST_TSO6))
			flags |= TUN_F_TSO6;
		if ((flags & (TUN_F_TSO4 | TUN_F_TSO6)) && (f & (1ULL << VIRTIO_NET_F_GUEST_ECN)))
			flags |= TUN_F_TSO_ECN;
	}
	return ioctl(be->fd, TUNSETOFFLOAD, flags) < 0 ? -errno : 0;
}

static void tap_close(struct net_backend *be)
{
	struct tap *tap = (struct tap *)be;

	if (be->fd >= 0)
		close(be->fd); /* a TAP made for a bridge is deleted here; a named one stays */
	free(tap);
}

static const struct net_ops tap_ops = {
	.send = tap_send,
	.recv = tap_recv,
	.set_offload = tap_set_offload,
	.close = tap_close,
};

static int tunsetiff(int fd, const char *name, unsigned int flags, char *out_name)
{
	struct ifreq ifr = { 0 };

	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	ifr.ifr_flags = (short)flags;
	if (ioctl(fd, TUNSETIFF, &ifr) < 0)
		return -errno;
	if (out_name)
		snprintf(out_name, IFNAMSIZ, "%s", ifr.ifr_name);
	return 0;
}

/*
 * TUNSETIFF said EINVAL for an existing interface: it is not a TAP, or it
 * is one we cannot attach to as we asked. Probing with other flags tells
 * which, so the user reads what to change.
 */
static int explain_einval(const char *name, char *err, size_t err_len)
{
	int fd = open(TUN_DEVICE, O_RDWR | O_CLOEXEC);
	int multiqueue = fd < 0 ? -1 : tunsetiff(fd, name, TAP_FLAGS | IFF_MULTI_QUEUE, NULL);
	int tun = -1;

	if (fd >= 0) {
		close(fd);
		fd = open(TUN_DEVICE, O_RDWR | O_CLOEXEC);
	}
	if (fd >= 0 && multiqueue != 0)
		tun = tunsetiff(fd, name, IFF_TUN | IFF_NO_PI, NULL);
	if (fd >= 0)
		close(fd);
	if (multiqueue == 0)
		return errmsg(
			err, err_len,
			"--net tap=%s: it is a multiqueue TAP (multi_queue); "
			"Vireo drives one queue pair per NIC: recreate it without multi_queue",
			name);
	if (tun == 0)
		return errmsg(err, err_len,
			      "--net tap=%s: it is a TUN (layer 3) device, not a TAP: "
			      "create it with 'ip tuntap add dev %s mode tap'",
			      name, name);
	return errmsg(err, err_len, "--net tap=%s: not a TUN/TAP device", name);
}

/* Attaches to the existing TAP the user named. */
static int attach_named_tap(struct tap *tap, const char *name, char *err, size_t err_len)
{
	int rc;

	if (strlen(name) >= IFNAMSIZ)
		return errmsg(err, err_len,
			      "--net tap=%s: interface names have at most %d characters", name,
			      IFNAMSIZ - 1);
	if (if_nametoindex(name) == 0)
		return errmsg(err, err_len,
			      "--net tap=%s: no such network interface (create it "
			      "first: ip tuntap add dev %s mode tap)",
			      name, name);
	rc = tunsetiff(tap->be.fd, name, TAP_FLAGS, tap->ifname);
	if (rc == -EINVAL)
		return explain_einval(name, err, err_len);
	if (rc == -EBUSY)
		return errmsg(err, err_len,
			      "--net tap=%s: the TAP is already in use by another "
			      "program",
			      name);
	if (rc == -EPERM)
		return errmsg(err, err_len,
			      "--net tap=%s: not allowed to use this TAP (it belongs to "
			      "another user; create it with 'ip tuntap add dev %s mode tap user "
			      "NAME')",
			      name, name);
	if (rc)
		return errmsg(err, err_len, "--net tap=%s: cannot attach: %s", name, strerror(-rc));
	return 0;
}

/* Creates a TAP for the bridge; it lives as long as the fd. */
static int create_bridge_tap(struct tap *tap, const char *bridge, char *err, size_t err_len)
{
	int rc;

	if (strlen(bridge) >= IFNAMSIZ || if_nametoindex(bridge) == 0)
		return errmsg(err, err_len, "--net bridge=%s: no such network interface", bridge);
	rc = tunsetiff(tap->be.fd, BRIDGE_TAP_NAME, TAP_FLAGS, tap->ifname);
	if (rc == -EPERM)
		return errmsg(err, err_len,
			      "--net bridge=%s: creating a TAP needs CAP_NET_ADMIN "
			      "(run as root, or make a TAP yourself and use --net tap=NAME)",
			      bridge);
	if (rc)
		return errmsg(err, err_len, "--net bridge=%s: cannot create a TAP: %s", bridge,
			      strerror(-rc));
	return 0;
}

static int ifreq_ioctl(int sock, unsigned long request, const char *name, struct ifreq *ifr)
{
	snprintf(ifr->ifr_name, sizeof(ifr->ifr_name), "%s", name);
	return ioctl(sock, request, ifr) < 0 ? -errno : 0;
}

static int bridge_add(int sock, const char *bridge, const char *tap_name, char *err,
		      size_t err_len)
{
	struct ifreq ifr = { 0 };
	int rc;

	ifr.ifr_ifindex = (int)if_nametoindex(tap_name);
	rc = ifreq_ioctl(sock, SIOCBRADDIF, bridge, &ifr);
	if (rc == -EOPNOTSUPP || rc == -EINVAL)
		return errmsg(err, err_len, "--net bridge=%s: not a bridge", bridge);
	if (rc)
		return errmsg(err, err_len, "--net bridge=%s: cannot attach TAP '%s': %s", bridge,
			      tap_name, strerror(-rc));
	return 0;
}

/*
 * The MTU (the bridge's when we made the TAP for one, unless mtu= says)
 * and the link up. A TAP the user lent us may already be as we want it;
 * only a change needs CAP_NET_ADMIN.
 */
static int tap_configure_link(struct tap *tap, const struct net_config *cfg, int sock,
			      char *err, size_t err_len)
{
	const char *opt = cfg->kind == NET_TAP ? "tap" : "bridge";
	struct ifreq ifr = { 0 };
	unsigned int mtu = cfg->mtu;
	int rc;

	if (!mtu && cfg->kind == NET_BRIDGE && ifreq_ioctl(sock, SIOCGIFMTU, cfg->ifname, &ifr) == 0)
		mtu = (unsigned int)ifr.ifr_mtu;
	rc = ifreq_ioctl(sock, SIOCGIFMTU, tap->ifname, &ifr);
	if (rc)
		return errmsg(err, err_len, "--net %s=%s: cannot read the MTU of '%s': %s", opt,
			      cfg->ifname, tap->ifname, strerror(-rc));
	if (mtu && (unsigned int)ifr.ifr_mtu != mtu) {
		ifr.ifr_mtu = (int)mtu;
		rc = ifreq_ioctl(sock, SIOCSIFMTU, tap->ifname, &ifr);
		if (rc)
			return errmsg(err, err_len,
				      "--net %s=%s: cannot set the MTU of '%s' to %u: %s", opt,
				      cfg->ifname, tap->ifname, mtu, strerror(-rc));
	}
	tap->be.mtu = mtu ? mtu : (unsigned int)ifr.ifr_mtu;
	rc = ifreq_ioctl(sock, SIOCGIFFLAGS, tap->ifname, &ifr);
	if (!rc && !(ifr.ifr_flags & IFF_UP)) {
		ifr.ifr_flags |= IFF_UP;
		rc = ifreq_ioctl(sock, SIOCSIFFLAGS, tap->ifname, &ifr);
	}
	if (rc)
		return errmsg(err, err_len, "--net %s=%s: cannot bring '%s' up: %s%s", opt,
			      cfg->ifname, tap->ifname, strerror(-rc),
			      rc == -EPERM ? " (run 'ip link set dev NAME up' as root first)" : "");
	return 0;
}

/* The vnet header and a first TUNSETOFFLOAD (none: until a driver says otherwise). */
static int tap_set_vnet(struct tap *tap, const struct net_config *cfg, char *err,
			size_t err_len)
{
	unsigned int features = 0;
	int hdr_len = NET_HDR_LEN;

	if (ioctl(tap->be.fd, TUNGETFEATURES, &features) < 0 || !(features & IFF_VNET_HDR))
		return errmsg(err, err_len, "--net: this kernel's TAP has no vnet header support");
	if (ioctl(tap->be.fd, TUNSETVNETHDRSZ, &hdr_len) < 0)
		return errmsg(err, err_len, "--net %s: TUNSETVNETHDRSZ: %s", cfg->ifname,
			      strerror(errno));
	if (tap_set_offload(&tap->be, 0) < 0)
		return errmsg(err, err_len, "--net %s: TUNSETOFFLOAD: %s", cfg->ifname,
			      strerror(errno));
	return 0;
}

struct net_backend *tap_open(const struct net_config *cfg, char *err, size_t err_len)
{
	struct tap *tap = calloc(1, sizeof(*tap));
	int sock = -1, rc = -1;

	if (!tap) {
		errmsg(err, err_len, "out of memory");
		return NULL;
	}
	tap->be.ops = &tap_ops;
	tap->be.features = TAP_FEATURES;
	tap->be.vhost_capable = true;
	tap->be.fd = open(TUN_DEVICE, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (tap->be.fd < 0) {
		errmsg(err, err_len, "--net %s: cannot open %s: %s", cfg->ifname, TUN_DEVICE,
		       strerror(errno));
		goto out;
	}
	if (cfg->kind == NET_TAP)
		rc = attach_named_tap(tap, cfg->ifname, err, err_len);
	else
		rc = create_bridge_tap(tap, cfg->ifname, err, err_len);
	if (!rc)
		rc = tap_set_vnet(tap, cfg, err, err_len);
	if (!rc && (sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0)
		rc = errmsg(err, err_len, "--net %s: socket: %s", cfg->ifname, strerror(errno));
	if (!rc && cfg->kind == NET_BRIDGE)
		rc = bridge_add(sock, cfg->ifname, tap->ifname, err, err_len);
	if (!rc)
		rc = tap_configure_link(tap, cfg, sock, err, err_len);
	if (sock >= 0)
		close(sock);
	snprintf(tap->be.what, sizeof(tap->be.what), "TAP '%s'", tap->ifname);
out:
	if (rc) {
		tap_close(&tap->be);
		return NULL;
	}
	return &tap->be;
}
