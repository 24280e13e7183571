/*
 * How a device asks the VM to power off or reset: the board gives devices
 * (ACPI registers, the i8042, port 0xcf9) a power_control; the VM decides
 * what the request means (exit, or restart with --reboot=restart).
 */
#ifndef VIREO_VMM_POWER_H
#define VIREO_VMM_POWER_H

enum power_request {
	POWER_OFF,
	POWER_RESET,
};

struct power_control {
	void (*request)(void *opaque, enum power_request request);
	void *opaque;
};

static inline void power_request(const struct power_control *power, enum power_request request)
{
	if (power->request)
		power->request(power->opaque, request);
}

#endif
