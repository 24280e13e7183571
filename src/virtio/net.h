/*
 * virtio-net (virtio 1.2 §5.1): a guest NIC whose frames go through a
 * struct net_backend (net/net.h): a TAP, or libslirp's user-mode stack.
 * One receiveq (0) and one transmitq (1); no control queue.
 *
 * With vhost (a TAP backend and /dev/vhost-net), the device hands both
 * queues to the kernel after DRIVER_OK and takes them back at reset; the
 * guest's kicks go straight from KVM to vhost, and vhost's interrupts come
 * back through the device (virtio-mmio's interrupt status must be set
 * before the guest is interrupted).
 */
#ifndef VIREO_VIRTIO_NET_H
#define VIREO_VIRTIO_NET_H

#include <stdbool.h>
#include <stdint.h>

#include "virtio/device.h"

struct event_loop;
struct net_backend;

#define VIRTIO_NET_QUEUE_SIZE 256
#define VIRTIO_NET_RX_BUDGET 64 /* frames per wake-up before the loop serves others */
#define VIRTIO_NET_TX_BUDGET 64

/* Counters, for tests and diagnostics. */
struct virtio_net_stats {
	uint64_t rx_frames, rx_bytes; /* delivered to the guest (bytes with header) */
	uint64_t tx_frames, tx_bytes; /* taken by the backend */
	uint64_t rx_dropped;	      /* frames lost: bigger than the buffers, backend errors */
	uint64_t tx_dropped;	      /* frames the backend refused */
	uint64_t tx_malformed;	      /* bad length, or a header asks for what was not agreed */
	uint64_t bad_chains;	      /* chains virtq_pop refused, RX chains with no room */
	uint64_t rx_stalls;	      /* times the device waited for the driver's RX buffers */
};

/*
 * Where the guest's queue notifications arrive, for vhost: kick_fds[q] are
 * the eventfds KVM signals, and watch(opaque, q, on) makes the transport
 * stop or resume reading them itself.
 */
struct virtio_net_kicks {
	int kick_fds[2];
	int (*watch)(void *opaque, unsigned int q, bool on);
	void *opaque;
};

/*
 * A NIC over be (which stays the caller's) with the given MAC. When the
 * backend holds a vhost-net (vhost=on) and virtio_net_set_kicks() was
 * called, the kernel moves the frames; otherwise the device does.
 * name ("net0") prefixes messages. NULL with errno on failure.
 */
struct virtio_net *virtio_net_create(struct net_backend *be, const uint8_t mac[6],
				     const char *name, const struct guest_mem *mem,
				     struct event_loop *loop);
struct virtio_device *virtio_net_device(struct virtio_net *net);
void virtio_net_set_kicks(struct virtio_net *net, const struct virtio_net_kicks *kicks);
const struct virtio_net_stats *virtio_net_stats(const struct virtio_net *net);
bool virtio_net_vhost_active(const struct virtio_net *net);
void virtio_net_destroy(struct virtio_net *net);

#endif
