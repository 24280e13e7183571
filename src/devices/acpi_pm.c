/*
 * The hardware-reduced ACPI registers: see acpi_pm.h.
 *
 * The device keeps no state of its own, so it needs no lock: a write turns
 * straight into a power request, which the VM handles on its own terms.
 * An access wider than a byte reaches each register it covers, byte by
 * byte, as it would on hardware with byte-wide registers.
 */
#include "devices/acpi_pm.h"

#include <stdint.h>
#include <string.h>

_Static_assert(LAYOUT_ACPI_SLEEP_CONTROL_PORT < LAYOUT_ACPI_SLEEP_STATUS_PORT &&
		       LAYOUT_ACPI_SLEEP_STATUS_PORT < LAYOUT_ACPI_RESET_PORT,
	       "acpi_pm claims sleep control .. reset as one range");
_Static_assert((LAYOUT_ACPI_S5_TYPE << ACPI_PM_SLP_TYP_SHIFT) <= ACPI_PM_SLP_TYP_MASK,
	       "SLP_TYP is three bits");

static void acpi_pm_sleep_control(struct acpi_pm *pm, uint8_t value)
{
	unsigned int type = (value & ACPI_PM_SLP_TYP_MASK) >> ACPI_PM_SLP_TYP_SHIFT;

	/* Only soft-off is offered (the DSDT has \_S5 alone); other types are ignored. */
	if ((value & ACPI_PM_SLP_EN) && type == LAYOUT_ACPI_S5_TYPE)
		power_request(&pm->power, POWER_OFF);
}

static void acpi_pm_write_byte(struct acpi_pm *pm, uint64_t port, uint8_t value)
{
	switch (port) {
	case LAYOUT_ACPI_SLEEP_CONTROL_PORT:
		acpi_pm_sleep_control(pm, value);
		break;
	case LAYOUT_ACPI_RESET_PORT:
		if (value == LAYOUT_ACPI_RESET_VALUE)
			power_request(&pm->power, POWER_RESET);
		break;
	default:
		/* Sleep status: WAK_STS is write-1-to-clear and never set. */
		break;
	}
}

static void acpi_pm_read(void *opaque, uint64_t offset, void *data, uint32_t size)
{
	memset(data, 0, size);
}

static void acpi_pm_write(void *opaque, uint64_t offset, const void *data, uint32_t size)
{
	const uint8_t *bytes = data;

	for (uint32_t i = 0; i < size && offset + i < ACPI_PM_PORTS; i++)
		acpi_pm_write_byte(opaque, ACPI_PM_FIRST_PORT + offset + i, bytes[i]);
}

static const struct bus_ops acpi_pm_ops = {
	.read = acpi_pm_read,
	.write = acpi_pm_write,
};

int acpi_pm_register(struct acpi_pm *pm, struct bus *pio)
{
	return bus_register(pio, ACPI_PM_FIRST_PORT, ACPI_PM_PORTS, &acpi_pm_ops, pm);
}
