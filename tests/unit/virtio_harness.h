/*
 * A driver harness: plays the guest's virtio driver against a device, in
 * process, over fake guest RAM. It owns calloc'd "RAM" described by a
 * struct guest_mem, an MMIO bus with the device's virtio-mmio window on it,
 * and an eventfd standing in for the device's interrupt line, and it does
 * what Linux's virtio_mmio and virtio_ring drivers do: reset, negotiate
 * features, lay out split virtqueues, add buffer chains (direct or through
 * an indirect table), kick, and read the used ring back.
 *
 * Kicks are QueueNotify writes that reach the register (no ioeventfd), so
 * the device serves them before harness_kick() returns: tests are
 * synchronous. Everything the harness writes lives in the fake RAM; tests
 * that play a hostile driver write rings and descriptors through the
 * pointers it hands out (harness_desc(), harness_avail(), ...).
 *
 * Aborts (never returns an error) when a test asks for something the
 * harness cannot do, such as running out of fake RAM: that is a bug in the
 * test, not a finding.
 */
#ifndef VIREO_TESTS_VIRTIO_HARNESS_H
#define VIREO_TESTS_VIRTIO_HARNESS_H

#include <linux/virtio_ring.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "virtio/device.h"
#include "virtio/mmio.h"
#include "vmm/bus.h"
#include "vmm/guest_mem.h"

#define HARNESS_RAM_GPA 0x100000ULL	 /* where fake RAM starts: below it is not RAM */
#define HARNESS_RAM_SIZE (4ULL << 20)	 /* default size */
#define HARNESS_MMIO_BASE 0xd0000000ULL /* the device's register window */

/* The driver's view of one virtqueue. */
struct harness_queue {
	uint16_t size; /* 0: not set up */
	uint64_t desc_gpa, avail_gpa, used_gpa;
	uint16_t next_desc;  /* where the next chain's descriptors go (round robin) */
	uint16_t avail_idx;  /* the driver's shadow of avail->idx */
	uint16_t last_used;  /* next used entry the driver will read */
};

struct harness {
	uint8_t *ram; /* HARNESS_RAM_GPA .. + ram_size, ending at a guard page */
	uint64_t ram_size;
	uint8_t *map; /* the mapping that holds ram and the guard page */
	uint64_t map_size;
	uint64_t alloc_next; /* bump allocator for rings and buffers */
	struct guest_mem mem;
	struct bus bus;
	struct virtio_mmio mmio;
	struct virtio_device *vdev;
	int irq_fd; /* eventfd: the device's interrupt line */
	uint64_t features; /* what the driver accepted */
	struct harness_queue queues[VIRTIO_MAX_QUEUES];
};

/* One buffer of a chain, from the driver's side. */
struct harness_buf {
	uint64_t gpa;
	uint32_t len;
	bool writable; /* device-writable (VRING_DESC_F_WRITE) */
};

/* Fake RAM of ram_size bytes (0: HARNESS_RAM_SIZE) before a guard page, a bus, an interrupt eventfd. */
void harness_init(struct harness *h, uint64_t ram_size);

/* Puts vdev's virtio-mmio window on the bus and its interrupt on the eventfd. */
void harness_attach(struct harness *h, struct virtio_device *vdev);

/* Frees what harness_init() made; the device stays the caller's. */
void harness_destroy(struct harness *h);

/* Reserves len bytes of fake RAM (zeroed), aligned to align; returns the gpa. */
uint64_t harness_alloc(struct harness *h, uint64_t len, uint64_t align);

/* Host pointer to fake RAM at gpa (which must be inside it). */
void *harness_ptr(struct harness *h, uint64_t gpa);

/* 32-bit register access at an offset of the virtio-mmio window. */
uint32_t harness_read_reg(struct harness *h, uint64_t offset);
void harness_write_reg(struct harness *h, uint64_t offset, uint32_t value);

/* Device config space at any width (1, 2, 4 or 8), through the bus. */
void harness_config_read(struct harness *h, uint32_t offset, void *data, uint32_t size);

/* The status register: set (ORed into what is there) and read. */
void harness_add_status(struct harness *h, uint32_t bits);
uint32_t harness_status(struct harness *h);

/* All 64 feature bits the device offers (DeviceFeaturesSel 0 and 1). */
uint64_t harness_device_features(struct harness *h);

/* Writes the driver's feature words (DriverFeaturesSel 0 and 1) as given. */
void harness_write_driver_features(struct harness *h, uint64_t features);

/*
 * What Linux does at probe: reset, ACKNOWLEDGE, DRIVER, accept the offered
 * bits among wanted, FEATURES_OK, and read it back. Returns 0 when
 * FEATURES_OK stuck, -1 when the device refused it.
 */
int harness_negotiate(struct harness *h, uint64_t wanted);

/*
 * Lays out queue q with size entries (at most QueueNumMax) in fake RAM:
 * descriptor table, avail ring with used_event after it, used ring with
 * avail_event after it, each at its alignment; programs and enables it.
 */
void harness_setup_queue(struct harness *h, unsigned int q, uint16_t size);

/* Same, with the rings where the caller says (hostile layouts). */
void harness_setup_queue_at(struct harness *h, unsigned int q, uint16_t size, uint64_t desc,
			    uint64_t avail, uint64_t used);

/* Sets DRIVER_OK. */
void harness_driver_ok(struct harness *h);

/* Negotiate, set up queues 0..nr_queues-1 with size entries, DRIVER_OK. Returns negotiate's. */
int harness_start(struct harness *h, uint64_t wanted, unsigned int nr_queues, uint16_t size);

/* Ring parts of queue q, in fake RAM, for tests that write them by hand. */
struct vring_desc *harness_desc(struct harness *h, unsigned int q, uint16_t index);
struct vring_avail *harness_avail(struct harness *h, unsigned int q);
struct vring_used *harness_used(struct harness *h, unsigned int q);
uint16_t *harness_used_event(struct harness *h, unsigned int q);  /* driver writes */
uint16_t *harness_avail_event(struct harness *h, unsigned int q); /* device writes */

/* Writes descriptor index of queue q. */
void harness_set_desc(struct harness *h, unsigned int q, uint16_t index, uint64_t addr,
		      uint32_t len, uint16_t flags, uint16_t next);

/* Puts head in the next avail entry and publishes it (avail->idx + 1). */
void harness_publish(struct harness *h, unsigned int q, uint16_t head);

/* Writes bufs as a chain of descriptors and publishes it; returns its head. */
uint16_t harness_add(struct harness *h, unsigned int q, const struct harness_buf *bufs,
		     unsigned int n);

/* Writes bufs into a fresh indirect table, one descriptor pointing at it; returns the head. */
uint16_t harness_add_indirect(struct harness *h, unsigned int q, const struct harness_buf *bufs,
			      unsigned int n);

/* Writes the QueueNotify register: the device serves queue q before this returns. */
void harness_kick(struct harness *h, unsigned int q);

/* Takes the next used entry of queue q; false when the device has not used another. */
bool harness_get_used(struct harness *h, unsigned int q, uint32_t *id, uint32_t *len);

/* Used entries the device published on queue q that the driver has not taken. */
uint16_t harness_pending_used(struct harness *h, unsigned int q);

/* Interrupts raised since the last call (edges on the eventfd). */
unsigned int harness_interrupts(struct harness *h);

/* Reads InterruptStatus and acknowledges what it held, as the driver's handler does. */
uint32_t harness_ack_interrupt(struct harness *h);

#endif
