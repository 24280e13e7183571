/*
 * The virtio-mmio transport, version 2 (virtio 1.2 §4.2): one register
 * window per device on the MMIO bus. Queue notifications normally arrive on
 * eventfds that KVM signals for writes of the queue's index to QueueNotify
 * (ioeventfds); a write that reaches the register itself works too.
 */
#ifndef VIREO_VIRTIO_MMIO_H
#define VIREO_VIRTIO_MMIO_H

#include <stdbool.h>
#include <stdint.h>

#include "virtio/device.h"
#include "vmm/event_loop.h"

struct bus;

#define VIRTIO_MMIO_WINDOW 0x200 /* registers and config space */
#define VIRTIO_MMIO_VENDOR 0x4f524956 /* "VIRO" */

struct virtio_mmio_notifier {
	struct virtio_mmio *transport;
	unsigned int queue;
	int fd;
	struct event_handler handler;
};

struct virtio_mmio {
	struct virtio_device *vdev;
	uint32_t device_features_sel;
	uint32_t driver_features_sel;
	uint32_t queue_sel;
	struct event_loop *loop; /* where the notifiers are watched */
	struct virtio_mmio_notifier notifiers[VIRTIO_MAX_QUEUES];
};

/*
 * Maps vdev's registers at base. notify_fds[q] (or -1) are eventfds KVM
 * signals for queue q; they are watched on loop and stay owned by the caller.
 */
int virtio_mmio_register(struct virtio_mmio *transport, struct virtio_device *vdev,
			 struct bus *mmio, uint64_t base, const int *notify_fds,
			 struct event_loop *loop);

/*
 * Stops (on = false) or resumes watching queue q's notify eventfd, while
 * something else takes the kicks from it (vhost polls it in the kernel).
 */
int virtio_mmio_watch_queue(struct virtio_mmio *transport, unsigned int q, bool on);

#endif
