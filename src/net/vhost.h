/*
 * vhost-net: the kernel moves a TAP's frames to and from the guest's
 * virtqueues itself, with no trip through Vireo. The device (virtio/net.c)
 * hands the queues over after DRIVER_OK and takes them back at reset; this
 * file only speaks /dev/vhost-net's ioctls and never sees a struct virtq:
 * it is given the rings' host addresses and sizes as plain numbers.
 */
#ifndef VIREO_NET_VHOST_H
#define VIREO_NET_VHOST_H

#include <stddef.h>
#include <stdint.h>

struct guest_mem;
struct vhost_net;

#define VHOST_NET_RINGS 2 /* receiveq, transmitq */

struct vhost_net_ring {
	uint16_t num;		  /* entries */
	uint16_t base;		  /* the next avail index the kernel reads */
	void *desc, *avail, *used; /* host addresses of the three parts */
	int kick_fd;		  /* eventfd KVM signals when the guest notifies */
	int call_fd;		  /* eventfd vhost signals to interrupt the guest */
};

/*
 * Opens /dev/vhost-net and becomes its owner. NULL with one sentence in err
 * (module not loaded, no permission) when the kernel path is unavailable.
 */
struct vhost_net *vhost_net_open(char *err, size_t err_len);

/* The virtio feature bits this kernel's vhost-net handles. */
uint64_t vhost_net_features(const struct vhost_net *vh);

/*
 * Hands the rings to the kernel: features (a subset of vhost_net_features),
 * the guest memory table, each ring, and backend_fd (a TAP) as the data
 * path. Returns 0 or -errno; on failure nothing stays handed over.
 */
int vhost_net_start(struct vhost_net *vh, const struct guest_mem *mem, uint64_t features,
		    const struct vhost_net_ring rings[VHOST_NET_RINGS], int backend_fd);

/* Takes the rings back; the kernel touches them no more when this returns. */
void vhost_net_stop(struct vhost_net *vh);

void vhost_net_close(struct vhost_net *vh);

#endif
