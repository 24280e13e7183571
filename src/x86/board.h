/*
 * The x86-64 board: the buses, the legacy devices every PC has (COM1, the
 * i8042's reset line, hardware-reduced ACPI registers), the virtio-mmio
 * slots, and the ACPI tables that describe all of them to the guest.
 */
#ifndef VIREO_X86_BOARD_H
#define VIREO_X86_BOARD_H

#include "devices/acpi_pm.h"
#include "devices/i8042.h"
#include "virtio/mmio.h"
#include "vmm/bus.h"
#include "vmm/irq.h"
#include "vmm/power.h"
#include "x86/layout.h"

struct event_loop;
struct guest_mem;
struct kvm;
struct serial;

/* One IOAPIC pin per virtio device, from LAYOUT_VIRTIO_IRQ_BASE to the last pin. */
#define BOARD_MAX_VIRTIO (LAYOUT_IOAPIC_PINS - LAYOUT_VIRTIO_IRQ_BASE)

struct board_virtio_slot {
	struct virtio_mmio transport;
	int notify_fds[VIRTIO_MAX_QUEUES];
	int irq_fd;
};

struct board {
	struct bus pio;
	struct bus mmio;
	struct kvm *kvm;
	struct serial *serial;
	struct i8042 i8042;
	struct acpi_pm acpi_pm;
	struct board_virtio_slot virtio[BOARD_MAX_VIRTIO];
	int nr_virtio;
};

struct board_config {
	unsigned int nr_cpus;
	int serial_out_fd;	       /* -1 drops the console output */
	uint64_t serial_out_max;       /* the file stops growing there (0: no cap; serial.h) */
	struct kvm *kvm;	       /* interrupts, ioeventfds */
	struct power_control power;    /* what power-off and reset requests reach */
};

/* Creates the legacy devices; *why names a failure. */
int board_create(struct board *board, const struct board_config *cfg, const char **why);

/* Gives vdev the next virtio-mmio slot: window, interrupt, queue notifiers on loop. */
int board_add_virtio(struct board *board, struct virtio_device *vdev, struct event_loop *loop,
		     const char **why);

/* Writes the ACPI tables for everything added; call once, after the last device. */
int board_write_acpi(struct board *board, struct guest_mem *mem, unsigned int nr_cpus);

void board_destroy(struct board *board);

#endif
