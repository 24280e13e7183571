/*
 * The hardware-reduced ACPI registers the FADT points at (ACPI 6.3
 * §4.8.3.6-4.8.3.8): sleep control, sleep status and reset, one byte each
 * in port I/O. Writing SLP_TYP = S5 with SLP_EN is how the guest powers
 * off; writing the reset value is how it reboots. Both become requests on
 * the board's power_control. There are no sleep states besides soft-off,
 * so nothing ever wakes and the sleep status register reads 0.
 */
#ifndef VIREO_DEVICES_ACPI_PM_H
#define VIREO_DEVICES_ACPI_PM_H

#include "vmm/bus.h"
#include "vmm/power.h"
#include "x86/layout.h"

#define ACPI_PM_FIRST_PORT LAYOUT_ACPI_SLEEP_CONTROL_PORT
#define ACPI_PM_PORTS (LAYOUT_ACPI_RESET_PORT - LAYOUT_ACPI_SLEEP_CONTROL_PORT + 1)

/* §4.8.3.7 sleep control register: SLP_TYP in bits 2-4, SLP_EN in bit 5. */
#define ACPI_PM_SLP_TYP_SHIFT 2
#define ACPI_PM_SLP_TYP_MASK (0x7 << ACPI_PM_SLP_TYP_SHIFT)
#define ACPI_PM_SLP_EN (1 << 5)

struct acpi_pm {
	struct power_control power; /* receives POWER_OFF and POWER_RESET */
};

/* Claims the three register ports; 0 or a negative errno from bus_register. */
int acpi_pm_register(struct acpi_pm *pm, struct bus *pio);

#endif
