/* The x86-64 board: see board.h. */
#include "x86/board.h"

#include <errno.h>
#include <linux/virtio_mmio.h>
#include <string.h>
#include <unistd.h>

#include "devices/serial.h"
#include "kvm/kvm.h"
#include "vmm/guest_mem.h"
#include "x86/acpi.h"

static uint64_t virtio_slot_base(int slot)
{
	return LAYOUT_VIRTIO_MMIO_BASE + (uint64_t)slot * LAYOUT_VIRTIO_MMIO_SIZE;
}

int board_write_acpi(struct board *board, struct guest_mem *mem, unsigned int nr_cpus)
{
	struct acpi_virtio_mmio virtio[BOARD_MAX_VIRTIO];
	struct acpi_config acpi = {
		.nr_cpus = (int)nr_cpus, .virtio = virtio, .nr_virtio = board->nr_virtio,
	};
	uint8_t *tables = guest_mem_ptr(mem, LAYOUT_ACPI_TABLES, LAYOUT_ACPI_TABLES_SIZE);
	int used;

	for (int i = 0; i < board->nr_virtio; i++)
		virtio[i] = (struct acpi_virtio_mmio){
			.base = virtio_slot_base(i),
			.size = VIRTIO_MMIO_WINDOW,
			.irq = LAYOUT_VIRTIO_IRQ_BASE + (uint32_t)i,
		};
	if (!tables)
		return -ENOMEM;
	used = acpi_build(&acpi, LAYOUT_ACPI_TABLES, tables, LAYOUT_ACPI_TABLES_SIZE);
	return used < 0 ? used : 0;
}

static int board_add_serial(struct board *board, const struct board_config *cfg)
{
	struct irq_line irq = {
		.set = kvm_irq_line_set, .opaque = cfg->kvm, .gsi = LAYOUT_COM1_IRQ,
	};

	board->serial = serial_create(&irq, cfg->serial_out_fd, cfg->serial_out_max);
	if (!board->serial)
		return -ENOMEM;
	return serial_register(board->serial, &board->pio, LAYOUT_COM1_PORT);
}

int board_create(struct board *board, const struct board_config *cfg, const char **why)
{
	int err;

	memset(board, 0, sizeof(*board));
	bus_init(&board->pio);
	bus_init(&board->mmio);
	board->kvm = cfg->kvm;
	board->i8042.power = cfg->power;
	board->acpi_pm.power = cfg->power;

	err = board_add_serial(board, cfg);
	if (!err)
		err = i8042_register(&board->i8042, &board->pio);
	if (!err)
		err = acpi_pm_register(&board->acpi_pm, &board->pio);
	if (err)
		*why = "cannot set up the legacy devices";
	return err;
}

/* KVM eventfds for the slot: one per queue on QueueNotify, one for the interrupt. */
static int board_virtio_fds(struct board *board, struct board_virtio_slot *slot, int index,
			    unsigned int nr_queues)
{
	uint64_t notify = virtio_slot_base(index) + VIRTIO_MMIO_QUEUE_NOTIFY;

	for (unsigned int q = 0; q < VIRTIO_MAX_QUEUES; q++)
		slot->notify_fds[q] = -1;
	slot->irq_fd = kvm_irqfd(board->kvm, LAYOUT_VIRTIO_IRQ_BASE + (uint32_t)index);
	if (slot->irq_fd < 0)
		return slot->irq_fd;
	for (unsigned int q = 0; q < nr_queues; q++) {
		slot->notify_fds[q] = kvm_ioeventfd(board->kvm, notify, sizeof(uint32_t), q);
		if (slot->notify_fds[q] < 0)
			return slot->notify_fds[q];
	}
	return 0;
}

int board_add_virtio(struct board *board, struct virtio_device *vdev, struct event_loop *loop,
		     const char **why)
{
	int index = board->nr_virtio;
	struct board_virtio_slot *slot = &board->virtio[index];
	int err;

	if (index == BOARD_MAX_VIRTIO) {
		*why = "too many virtio devices (disks, consoles, ...): a VM has at most 19";
		return -ENOSPC;
	}
	board->nr_virtio++; /* from here on board_destroy() closes the slot's fds */
	err = board_virtio_fds(board, slot, index, vdev->ops->nr_queues);
	if (!err) {
		vdev->irq = (struct irq_line){ .gsi = LAYOUT_VIRTIO_IRQ_BASE + (uint32_t)index,
					       .edge_fd = slot->irq_fd };
		err = virtio_mmio_register(&slot->transport, vdev, &board->mmio,
					   virtio_slot_base(index), slot->notify_fds, loop);
	}
	if (err)
		*why = "cannot wire a virtio device to KVM (ioeventfd/irqfd)";
	return err;
}

static void board_close_virtio(struct board_virtio_slot *slot)
{
	for (unsigned int q = 0; q < VIRTIO_MAX_QUEUES; q++)
		if (slot->notify_fds[q] >= 0)
			close(slot->notify_fds[q]);
	if (slot->irq_fd >= 0)
		close(slot->irq_fd);
}

void board_destroy(struct board *board)
{
	for (int i = 0; i < board->nr_virtio; i++)
		board_close_virtio(&board->virtio[i]);
	board->nr_virtio = 0;
	if (board->serial)
		serial_destroy(board->serial);
	bus_destroy(&board->pio);
	bus_destroy(&board->mmio);
	board->serial = NULL;
}
