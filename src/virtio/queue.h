/*
 * The split virtqueue (virtio 1.2 §2.7), the only code in Vireo that knows
 * what a descriptor is. A device pops a request (a validated chain turned
 * into device-readable and device-writable iovecs) and pushes it back with
 * the number of bytes it wrote.
 *
 * Everything read from the rings is untrusted: chains are bounded by the
 * queue size (by its length inside an indirect table), nested indirect
 * tables and loops are errors, every buffer must lie whole in guest RAM.
 *
 * A queue is used by one thread at a time (the I/O thread once the driver
 * is running; the vCPU thread that configures or resets it otherwise).
 */
#ifndef VIREO_VIRTIO_QUEUE_H
#define VIREO_VIRTIO_QUEUE_H

#include <linux/virtio_ring.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "vmm/iov.h"

struct guest_mem;

#define VIRTQ_MAX_SIZE 1024 /* largest queue a device offers: also caps a request's iovecs */

struct virtq {
	/* Set by the transport from the driver's configuration. */
	uint16_t size; /* a power of 2, <= VIRTQ_MAX_SIZE */
	bool ready;
	uint64_t desc_gpa, avail_gpa, used_gpa;
	bool event_idx; /* VIRTIO_RING_F_EVENT_IDX negotiated */
	bool indirect;	/* VIRTIO_RING_F_INDIRECT_DESC negotiated */

	/* Derived by virtq_start(), checked whole against guest RAM. */
	const struct guest_mem *mem;
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	uint16_t last_avail_idx; /* next avail entry the device will read */
	uint16_t used_idx;	 /* next used entry the device will write */
	uint16_t signalled_used; /* used_idx when the driver was last interrupted */
	bool signalled_used_valid;
	bool broken; /* the driver broke the ring's rules: device needs reset */
	bool notify_off; /* the device told the driver not to notify (it is popping) */
};

/*
 * A popped chain: device-readable buffers first, then device-writable ones.
 * The caller provides the iovec storage (virtq_req_init); a chain with more
 * buffers than iov_cap is malformed for that device.
 */
struct virtq_req {
	uint16_t head;
	uint16_t nr_readable, nr_writable;
	uint32_t readable_len, writable_len; /* bytes in each direction */
	struct iovec *readable;		     /* points into iov[] */
	struct iovec *writable;
	struct iovec *iov;
	unsigned int iov_cap;
};

static inline void virtq_req_init(struct virtq_req *req, struct iovec *iov, unsigned int cap)
{
	req->iov = iov;
	req->iov_cap = cap;
}

/* Checks the configured rings against guest RAM; -EFAULT if they are not all RAM. */
int virtq_start(struct virtq *vq, const struct guest_mem *mem);

/*
 * A started queue's validated rings and where the device is in them, for
 * a back end that serves the rings itself (vhost-net) instead of popping.
 */
struct virtq_rings {
	uint16_t size;
	uint16_t next_avail; /* the avail entry the back end reads next */
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
};

void virtq_get_rings(const struct virtq *vq, struct virtq_rings *rings);

/* Forgets the configuration (device reset). */
void virtq_reset(struct virtq *vq);

/*
 * Pops the next available request into *req. Returns 1 when one was
 * popped, 0 when the ring is empty, -EINVAL when the ring itself is broken
 * (vq->broken is then set and nothing more is popped), -EBADMSG when this
 * chain was malformed: it was already pushed back with 0 bytes and the
 * caller just moves on.
 */
int virtq_pop(struct virtq *vq, struct virtq_req *req);

/* Returns a request to the driver with the bytes written into its buffers. */
void virtq_push(struct virtq *vq, uint16_t head, uint32_t written);

/*
 * Several requests that the driver must see at once (a mergeable RX frame
 * spread over buffers, §5.1.6.4): virtq_fill() writes the used entry
 * `offset` places past the next one, virtq_flush() publishes n of them
 * with a single used->idx update.
 */
void virtq_fill(struct virtq *vq, unsigned int offset, uint16_t head, uint32_t written);
void virtq_flush(struct virtq *vq, unsigned int n);

/*
 * Gives back the last n popped requests unused, as if they had not been
 * popped: the next virtq_pop() returns them again. Only requests popped
 * after the last one virtq_pop() pushed by itself (-EBADMSG) qualify.
 */
void virtq_unpop(struct virtq *vq, uint16_t n);

/*
 * Pops the next request like virtq_pop(), and manages the driver's
 * notifications around it, so no device writes that loop itself: a pop
 * that finds a request turns notifications off (the device is busy and
 * comes back by itself); one that finds the ring empty turns them on and
 * looks once more, so a buffer that arrived meanwhile is never missed.
 * Returns 0 only when the ring is empty and the driver will notify.
 */
int virtq_pop_or_enable_notify(struct virtq *vq, struct virtq_req *req);

/*
 * After pushing: records that the driver is being told about everything
 * pushed so far (the EVENT_IDX bookkeeping, §2.7.10) and returns whether
 * it wants to be. Call it only when the interrupt will follow.
 */
bool virtq_prepare_interrupt(struct virtq *vq);

#endif
