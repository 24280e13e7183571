/*
 * The network backend seam (DESIGN.md: backends). virtio-net moves frames
 * through a struct net_backend and never knows what is behind it: a TAP
 * device (tap.c, also for --net bridge=), or libslirp's user-mode stack
 * (user.c). vhost-net (vhost.c) is not a backend but a way to hand a
 * TAP's queues to the kernel.
 *
 * Every frame crosses the seam with its 12-byte struct
 * virtio_net_hdr_mrg_rxbuf in front, the header a VERSION_1 driver uses:
 * the device passes the guest's header through to the backend unchanged
 * (after checking it), and the backend fills the header of what it
 * receives (all but num_buffers, which is the device's). A backend that
 * cannot take offloads never gets a header that asks for one: the device
 * offers only the features in net_backend.features.
 *
 * Threads: the device calls send and recv on the I/O thread; open, start
 * and close happen on the main thread before and after the VM runs. Open
 * starts no thread, so that the process can still fork into its jail.
 */
#ifndef VIREO_NET_NET_H
#define VIREO_NET_NET_H

#include <net/if.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#define NET_HDR_LEN 12		 /* sizeof(struct virtio_net_hdr_mrg_rxbuf) */
#define NET_ETH_HLEN 14		 /* destination, source, ethertype */
#define NET_VLAN_HLEN 4
#define NET_MAX_GSO_LEN 65536	 /* the largest TSO frame Linux builds (GSO_LEGACY_MAX_SIZE) */
/* The largest frame a driver may hand us or a backend may deliver, header included. */
#define NET_MAX_FRAME (NET_HDR_LEN + NET_ETH_HLEN + NET_VLAN_HLEN + NET_MAX_GSO_LEN)
#define NET_MIN_MTU 68		 /* ETH_MIN_MTU; also virtio's floor for VIRTIO_NET_F_MTU */
#define NET_MAX_MTU 65535	 /* what a TAP takes */
#define NET_DEFAULT_MTU 1500
#define NET_MAX_HOSTFWD 8

enum net_kind {
	NET_TAP,    /* an existing TAP the user named: used, never created or deleted */
	NET_BRIDGE, /* a TAP Vireo creates and attaches to a bridge; gone when Vireo exits */
	NET_USER,   /* libslirp: NAT, DHCP and DNS in the process, no privileges */
};

/* One user-mode port forward: connections to host_addr:host_port reach the guest. */
struct net_hostfwd {
	bool udp;
	struct in_addr host_addr; /* 127.0.0.1 unless given */
	uint16_t host_port;
	struct in_addr guest_addr; /* 0.0.0.0: the address the guest got by DHCP */
	uint16_t guest_port;
};

/* One --net option. */
struct net_config {
	enum net_kind kind;
	const char *ifname; /* the TAP (NET_TAP) or the bridge (NET_BRIDGE) */
	uint8_t mac[6];
	bool mac_set;	   /* false: a MAC derived from the VM's name (net_default_mac) */
	unsigned int mtu;  /* 0: the interface's own (TAP, bridge) or 1500 (user) */
	bool vhost;	   /* hand the queues to /dev/vhost-net (TAP and bridge only) */
	/* user only: the guest can open no connection and send no datagram through the host */
	bool restricted;
	bool host_loopback; /* user only: 10.0.2.2 reaches the host's 127.0.0.1 (default off) */
	struct net_hostfwd hostfwd[NET_MAX_HOSTFWD];
	int nr_hostfwd;
};

struct net_backend;

struct net_ops {
	/*
	 * Sends one frame: iov holds the header, then the frame. Returns the
	 * bytes taken; -EAGAIN when the backend is full (poll fd for EPOLLOUT
	 * and send the same frame again); any other -errno drops the frame.
	 */
	ssize_t (*send)(struct net_backend *be, const struct iovec *iov, int iovcnt);
	/*
	 * Receives one frame into iov: the header, then the frame. Returns the
	 * frame's length with its header, which is more than iov holds when
	 * the frame did not fit (its end is lost); -EAGAIN when none waits;
	 * -EBADFD (or -EIO) when the backend is gone for good; any other -errno
	 * lost one frame.
	 */
	ssize_t (*recv)(struct net_backend *be, const struct iovec *iov, int iovcnt);
	/*
	 * The VIRTIO_NET_F_GUEST_* offloads the driver accepted: which the
	 * frames that recv delivers may use (partial checksums, TSO). Optional.
	 */
	int (*set_offload)(struct net_backend *be, uint64_t guest_features);
	/*
	 * Starts what the backend runs beside the device (user networking's
	 * thread), once the process is jailed. Optional. 0, or -1 with one
	 * sentence in err.
	 */
	int (*start)(struct net_backend *be, char *err, size_t err_len);
	void (*close)(struct net_backend *be);
};

struct vhost_net;

struct net_backend {
	const struct net_ops *ops;
	int fd;		   /* poll it: EPOLLIN a frame waits, EPOLLOUT room to send */
	uint64_t features; /* VIRTIO_NET_F_* offloads the backend serves, both directions */
	unsigned int mtu;  /* the link's MTU (bytes after the Ethernet header) */
	bool vhost_capable; /* fd is a TAP that /dev/vhost-net can take as its backend */
	struct vhost_net *vhost; /* vhost=on: opened with the backend, NULL if it could not be */
	char what[48];	   /* for messages: "TAP 'tap0'", "user networking" */
};

/*
 * Opens the backend cfg describes. On failure returns NULL with one
 * sentence in err that names the thing at fault.
 */
struct net_backend *net_open(const struct net_config *cfg, char *err, size_t err_len);
/* Starts its thread, if any: see net_ops.start. 0, or -1 with one sentence in err. */
int net_start(struct net_backend *be, char *err, size_t err_len);
void net_close(struct net_backend *be);

/*
 * The MAC a NIC gets without mac=: a hash of the VM's name and the NIC's
 * index, made locally administered (bit 1 of the first byte set) and
 * unicast (bit 0 clear), so the same VM keeps the same MAC run after run.
 */
void net_default_mac(const char *vm_name, int index, uint8_t mac[6]);

/* Parses "52:54:00:12:34:56" (or with '-'); 0, or -EINVAL for anything else. */
int net_parse_mac(const char *text, uint8_t mac[6]);

/*
 * Parses one --net value in place (strings in cfg point into spec):
 *   tap=NAME | bridge=NAME | user, then any of ,mac=MAC ,mtu=N ,vhost=on|off
 *   and, for user, ,hostfwd=[tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT
 *   ,restrict=on|off ,host-loopback=on|off
 * Returns 0, or -EINVAL with one sentence in err.
 */
int net_parse_spec(char *spec, struct net_config *cfg, char *err, size_t err_len);

/* The backends; net_open() picks one. */
struct net_backend *tap_open(const struct net_config *cfg, char *err, size_t err_len);
struct net_backend *user_open(const struct net_config *cfg, char *err, size_t err_len);

#endif
