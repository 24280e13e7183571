/*
 * The part of the PS/2 controller (i8042) a Linux guest needs: a status
 * register that never makes it wait, and the reset line (command 0xfe),
 * which "reboot=kbd" and the kernel's reboot fallbacks pulse.
 * There is no keyboard or mouse behind it.
 */
#ifndef VIREO_DEVICES_I8042_H
#define VIREO_DEVICES_I8042_H

#include "vmm/bus.h"
#include "vmm/power.h"
#include "x86/layout.h"

#define I8042_DATA_PORT LAYOUT_I8042_PORT
#define I8042_COMMAND_PORT (LAYOUT_I8042_PORT + 4) /* status register when read */
#define I8042_CMD_PULSE_RESET 0xfe /* pulse output line 0: the CPU reset */

struct i8042 {
	struct power_control power; /* receives POWER_RESET */
};

/* Claims ports 0x60 and 0x64 only; 0 or a negative errno from bus_register. */
int i8042_register(struct i8042 *dev, struct bus *pio);

#endif
