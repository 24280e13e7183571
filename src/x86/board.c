/* The x86-64 board: see board.h. */
#include "x86/board.h"

#include <errno.h>
#include <string.h>

#include "devices/serial.h"
#include "vmm/guest_mem.h"
#include "x86/acpi.h"
#include "x86/layout.h"

static int board_write_acpi(struct guest_mem *mem, const struct board_config *cfg)
{
	struct acpi_config acpi = { .nr_cpus = (int)cfg->nr_cpus };
	uint8_t *tables = guest_mem_ptr(mem, LAYOUT_ACPI_TABLES, LAYOUT_ACPI_TABLES_SIZE);
	int used;

	if (!tables)
		return -ENOMEM;
	used = acpi_build(&acpi, LAYOUT_ACPI_TABLES, tables, LAYOUT_ACPI_TABLES_SIZE);
	return used < 0 ? used : 0;
}

static int board_add_serial(struct board *board, const struct board_config *cfg)
{
	struct irq_line irq = cfg->irq_template;

	irq.gsi = LAYOUT_COM1_IRQ;
	board->serial = serial_create(&irq, cfg->serial_out_fd);
	if (!board->serial)
		return -ENOMEM;
	return serial_register(board->serial, &board->pio, LAYOUT_COM1_PORT);
}

int board_create(struct board *board, struct guest_mem *mem, const struct board_config *cfg,
		 const char **why)
{
	int err;

	memset(board, 0, sizeof(*board));
	bus_init(&board->pio);
	bus_init(&board->mmio);
	board->i8042.power = cfg->power;
	board->acpi_pm.power = cfg->power;

	err = board_add_serial(board, cfg);
	if (!err)
		err = i8042_register(&board->i8042, &board->pio);
	if (!err)
		err = acpi_pm_register(&board->acpi_pm, &board->pio);
	if (err) {
		*why = "cannot set up the legacy devices";
		return err;
	}
	err = board_write_acpi(mem, cfg);
	if (err)
		*why = "the ACPI tables do not fit in their reserved area";
	return err;
}

void board_destroy(struct board *board)
{
	if (board->serial)
		serial_destroy(board->serial);
	bus_destroy(&board->pio);
	bus_destroy(&board->mmio);
	board->serial = NULL;
}
