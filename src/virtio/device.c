/*
 * What every virtio device shares, whatever its transport: the status
 * state machine (§2.1, §3.1.1), feature negotiation (§2.2) and interrupts.
 */
#include "virtio/device.h"

#include <linux/virtio_config.h>
#include <linux/virtio_mmio.h>
#include <linux/virtio_ring.h>
#include <stdio.h>
#include <string.h>

/* What the transport adds to every device's features. */
#define VIRTIO_TRANSPORT_FEATURES                                                      \
	((1ULL << VIRTIO_F_VERSION_1) | (1ULL << VIRTIO_RING_F_EVENT_IDX) |              \
	 (1ULL << VIRTIO_RING_F_INDIRECT_DESC))

void virtio_device_init(struct virtio_device *vdev, const struct virtio_device_ops *ops,
			void *priv, const struct guest_mem *mem, uint64_t device_features)
{
	memset(vdev, 0, sizeof(*vdev));
	vdev->ops = ops;
	vdev->priv = priv;
	vdev->mem = mem;
	vdev->device_features = device_features | VIRTIO_TRANSPORT_FEATURES;
	atomic_init(&vdev->interrupt_status, 0);
	pthread_mutex_init(&vdev->lock, NULL);
}

void virtio_device_destroy(struct virtio_device *vdev)
{
	pthread_mutex_destroy(&vdev->lock);
}

static void virtio_interrupt(struct virtio_device *vdev, uint32_t reason)
{
	/* The status bit is visible before the interrupt can be taken. */
	atomic_fetch_or(&vdev->interrupt_status, reason);
	irq_line_pulse(&vdev->irq);
}

void virtio_queue_interrupt(struct virtio_device *vdev, unsigned int q)
{
	if (virtq_prepare_interrupt(&vdev->queues[q]))
		virtio_interrupt(vdev, VIRTIO_MMIO_INT_VRING);
}

void virtio_set_needs_reset(struct virtio_device *vdev, const char *why)
{
	if (vdev->status & VIRTIO_CONFIG_S_NEEDS_RESET)
		return;
	fprintf(stderr, "vireo: %s: the guest driver %s; the device needs a reset\n",
		vdev->ops->name, why);
	vdev->status |= VIRTIO_CONFIG_S_NEEDS_RESET;
	if (vdev->ops->stop)
		vdev->ops->stop(vdev);
	virtio_config_changed(vdev);
}

void virtio_check_rings(struct virtio_device *vdev)
{
	for (unsigned int q = 0; q < vdev->ops->nr_queues; q++)
		if (vdev->queues[q].broken)
			virtio_set_needs_reset(vdev, "broke the virtqueue rules");
}

void virtio_config_changed(struct virtio_device *vdev)
{
	vdev->config_generation++;
	virtio_interrupt(vdev, VIRTIO_MMIO_INT_CONFIG);
}

static void virtio_reset(struct virtio_device *vdev)
{
	if (vdev->ops->reset)
		vdev->ops->reset(vdev);
	for (unsigned int q = 0; q < VIRTIO_MAX_QUEUES; q++)
		virtq_reset(&vdev->queues[q]);
	vdev->driver_features = 0;
	vdev->status = 0;
	atomic_store(&vdev->interrupt_status, 0);
}

/*
 * FEATURES_OK only for a subset of what was offered, with VERSION_1 (§2.2,
 * §6.1), that the device itself can work with (§3.1.1 step 5).
 */
static bool features_acceptable(const struct virtio_device *vdev)
{
	return !(vdev->driver_features & ~vdev->device_features) &&
	       virtio_has_feature(vdev, VIRTIO_F_VERSION_1) &&
	       (!vdev->ops->features_ok || vdev->ops->features_ok(vdev));
}

static int virtio_start_queues(struct virtio_device *vdev)
{
	for (unsigned int q = 0; q < vdev->ops->nr_queues; q++) {
		struct virtq *vq = &vdev->queues[q];

		if (!vq->ready)
			continue;
		vq->event_idx = virtio_has_feature(vdev, VIRTIO_RING_F_EVENT_IDX);
		vq->indirect = virtio_has_feature(vdev, VIRTIO_RING_F_INDIRECT_DESC);
		if (virtq_start(vq, vdev->mem) < 0)
			return -1;
	}
	return vdev->ops->activate ? vdev->ops->activate(vdev) : 0;
}

/*
 * §2.1.2: a driver only adds status bits; the way back is a reset (a write
 * of 0). A write that clears a bit is refused whole and the device stops
 * serving (NEEDS_RESET): its queues were validated for the layout they
 * have, and a driver that wants another must reset first.
 */
void virtio_write_status(struct virtio_device *vdev, uint32_t status)
{
	uint32_t driver_bits = vdev->status & ~VIRTIO_CONFIG_S_NEEDS_RESET;
	uint32_t added = status & ~driver_bits & ~VIRTIO_CONFIG_S_NEEDS_RESET;

	if (status == 0) {
		virtio_reset(vdev);
		return;
	}
	if (driver_bits & ~status) {
		virtio_set_needs_reset(vdev, "cleared status bits without a reset");
		return;
	}
	if ((added & VIRTIO_CONFIG_S_FEATURES_OK) && !features_acceptable(vdev))
		added &= ~VIRTIO_CONFIG_S_FEATURES_OK;
	/* §3.1.1: no DRIVER_OK without an accepted feature set. */
	if (!((driver_bits | added) & VIRTIO_CONFIG_S_FEATURES_OK))
		added &= ~VIRTIO_CONFIG_S_DRIVER_OK;
	if ((added & VIRTIO_CONFIG_S_FAILED) && virtio_running(vdev) && vdev->ops->stop)
		vdev->ops->stop(vdev);
	vdev->status |= added;
	if ((added & VIRTIO_CONFIG_S_DRIVER_OK) && virtio_running(vdev) &&
	    virtio_start_queues(vdev) < 0)
		virtio_set_needs_reset(vdev, "laid out a virtqueue that is not in guest RAM");
}

bool virtio_running(const struct virtio_device *vdev)
{
	return (vdev->status & VIRTIO_CONFIG_S_DRIVER_OK) &&
	       !(vdev->status & (VIRTIO_CONFIG_S_NEEDS_RESET | VIRTIO_CONFIG_S_FAILED));
}

bool virtio_queue_running(const struct virtio_device *vdev, unsigned int q)
{
	return q < vdev->ops->nr_queues && virtio_running(vdev) && vdev->queues[q].ready;
}

void virtio_notify(struct virtio_device *vdev, unsigned int q)
{
	pthread_mutex_lock(&vdev->lock);
	if (virtio_queue_running(vdev, q)) {
		vdev->ops->queue_notify(vdev, q);
		virtio_check_rings(vdev);
	}
	pthread_mutex_unlock(&vdev->lock);
}
