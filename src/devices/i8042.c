/*
 * The minimal i8042 PS/2 controller: see i8042.h.
 *
 * Status reads 0: output buffer empty (nothing for the guest to read) and
 * input buffer empty (ready for a command), so a guest polling either bit
 * never spins. Data reads 0. Of the commands, only 0xfe does anything: it
 * asks the VM to reset. Port 0x61 (speaker, NMI status) is not ours.
 */
#include "devices/i8042.h"

#include <stdint.h>
#include <string.h>

static void i8042_read(void *opaque, uint64_t offset, void *data, uint32_t size)
{
	memset(data, 0, size);
}

static void i8042_write_command(void *opaque, uint64_t offset, const void *data, uint32_t size)
{
	struct i8042 *dev = opaque;
	uint8_t command = *(const uint8_t *)data;

	if (command == I8042_CMD_PULSE_RESET)
		power_request(&dev->power, POWER_RESET);
}

static void i8042_write_data(void *opaque, uint64_t offset, const void *data, uint32_t size)
{
	/* Bytes for a keyboard or mouse that is not there. */
}

static const struct bus_ops i8042_data_ops = {
	.read = i8042_read,
	.write = i8042_write_data,
};

static const struct bus_ops i8042_command_ops = {
	.read = i8042_read,
	.write = i8042_write_command,
};

int i8042_register(struct i8042 *dev, struct bus *pio)
{
	int ret = bus_register(pio, I8042_DATA_PORT, 1, &i8042_data_ops, dev);

	if (ret < 0)
		return ret;
	return bus_register(pio, I8042_COMMAND_PORT, 1, &i8042_command_ops, dev);
}
