/*
 * A virtio device as the transport sees it (virtio 1.2 §2-§4): the device
 * supplies a table of callbacks; the transport does status, feature
 * negotiation, queue setup and interrupts, written once for every device.
 *
 * Threads: the transport's registers are accessed on vCPU threads, queue
 * notifications run on the I/O thread. vdev->lock serializes the two for
 * everything but interrupt_status, which the guest reads on every
 * interrupt and which is atomic so it never waits for a device's I/O.
 */
#ifndef VIREO_VIRTIO_DEVICE_H
#define VIREO_VIRTIO_DEVICE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "virtio/queue.h"
#include "vmm/irq.h"

#define VIRTIO_MAX_QUEUES 8

struct guest_mem;
struct virtio_device;

struct virtio_device_ops {
	const char *name; /* for messages: "virtio-blk" */
	uint32_t device_id; /* VIRTIO_ID_* from <linux/virtio_ids.h> */
	unsigned int nr_queues;
	uint16_t queue_size;
	uint32_t config_size;
	/* Reads device config space; offset + size <= config_size. */
	void (*config_read)(struct virtio_device *vdev, uint32_t offset, void *data,
			    uint32_t size);
	/* Optional: most config spaces are read-only. */
	void (*config_write)(struct virtio_device *vdev, uint32_t offset, const void *data,
			     uint32_t size);
	/* New buffers on queue q (I/O thread, vdev->lock held, driver running). */
	void (*queue_notify)(struct virtio_device *vdev, unsigned int q);
	/*
	 * Optional: whether the device can work with the features the driver
	 * accepted (already a subset of the offer); false refuses FEATURES_OK.
	 */
	bool (*features_ok)(const struct virtio_device *vdev);
	/* Optional: the driver set DRIVER_OK; features and queues are final. */
	int (*activate)(struct virtio_device *vdev);
	/*
	 * Optional: the device stopped running before a reset (NEEDS_RESET, or
	 * the driver's FAILED): end work that bypasses the transport (vhost).
	 */
	void (*stop)(struct virtio_device *vdev);
	/* Optional: forget all driver state; in-flight requests are finished or dropped. */
	void (*reset)(struct virtio_device *vdev);
};

struct virtio_device {
	const struct virtio_device_ops *ops;
	void *priv; /* the device's own state */
	const struct guest_mem *mem;
	uint64_t device_features; /* offered: device bits plus the transport's */
	uint64_t driver_features; /* accepted by the driver */
	uint32_t status;
	uint32_t config_generation;
	atomic_uint interrupt_status; /* VIRTIO_MMIO_INT_* bits not yet acknowledged */
	struct irq_line irq;
	struct virtq queues[VIRTIO_MAX_QUEUES];
	pthread_mutex_t lock; /* status, features, queues and the device's state */
};

/* Sets up the common part; device_features are the device's own bits. */
void virtio_device_init(struct virtio_device *vdev, const struct virtio_device_ops *ops,
			void *priv, const struct guest_mem *mem, uint64_t device_features);
void virtio_device_destroy(struct virtio_device *vdev);

static inline bool virtio_has_feature(const struct virtio_device *vdev, unsigned int bit)
{
	return vdev->driver_features & (1ULL << bit);
}

/* After pushing to queue q: interrupts the driver if it wants to be told. */
void virtio_queue_interrupt(struct virtio_device *vdev, unsigned int q);

/*
 * The driver broke the rules: DEVICE_NEEDS_RESET and a config interrupt
 * (§2.1.2), and one line saying what it did ("the guest driver <why>").
 */
void virtio_set_needs_reset(struct virtio_device *vdev, const char *why);

/* After serving a queue: a ring the driver broke (virtq->broken) needs a reset. */
void virtio_check_rings(struct virtio_device *vdev);

/* Device config changed (e.g. disk resized): bump generation, interrupt. */
void virtio_config_changed(struct virtio_device *vdev);

/* Status register semantics (§2.1, §3.1): writes, including 0 for reset. */
void virtio_write_status(struct virtio_device *vdev, uint32_t status);

/*
 * The one predicate every path that touches a ring checks first (notify,
 * engine completion, backend readiness, timers, vhost start): from the
 * driver's DRIVER_OK until a reset, NEEDS_RESET or the driver's FAILED.
 * While it holds, the queues' layout cannot change. vdev->lock held.
 */
bool virtio_running(const struct virtio_device *vdev);

/* The device is running and queue q exists and is ready: it may be served. */
bool virtio_queue_running(const struct virtio_device *vdev, unsigned int q);

/* Queue q has new buffers: runs the device if it is running (takes vdev->lock). */
void virtio_notify(struct virtio_device *vdev, unsigned int q);

#endif
