/*
 * A struct power_control for tests: counts the power-off and reset
 * requests a device makes, instead of acting on them.
 */
#ifndef VIREO_TESTS_POWER_RECORDER_H
#define VIREO_TESTS_POWER_RECORDER_H

#include "vmm/power.h"

struct power_recorder {
	int offs;
	int resets;
};

static inline void record_power(void *opaque, enum power_request request)
{
	struct power_recorder *rec = opaque;

	if (request == POWER_RESET)
		rec->resets++;
	else
		rec->offs++;
}

#endif
