/*
 * The x86-64 board: the buses, the legacy devices every PC has (COM1, the
 * i8042's reset line, hardware-reduced ACPI registers) and the ACPI tables
 * that describe them to the guest.
 */
#ifndef VIREO_X86_BOARD_H
#define VIREO_X86_BOARD_H

#include "devices/acpi_pm.h"
#include "devices/i8042.h"
#include "vmm/bus.h"
#include "vmm/irq.h"
#include "vmm/power.h"

struct guest_mem;
struct serial;

struct board {
	struct bus pio;
	struct bus mmio;
	struct serial *serial;
	struct i8042 i8042;
	struct acpi_pm acpi_pm;
};

struct board_config {
	unsigned int nr_cpus;
	int serial_out_fd;	       /* -1 drops the console output */
	struct irq_line irq_template;  /* how to raise a GSI; gsi filled in per device */
	struct power_control power;    /* what power-off and reset requests reach */
};

/* Creates the devices and writes the ACPI tables; *why names a failure. */
int board_create(struct board *board, struct guest_mem *mem, const struct board_config *cfg,
		 const char **why);
void board_destroy(struct board *board);

#endif
