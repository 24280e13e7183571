/*
 * The minimal i8042 through the port-I/O bus: the reset command reaches the
 * power control, nothing else does, and status never makes the guest wait.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "devices/i8042.h"
#include "power_recorder.h"

struct harness {
	struct power_recorder rec;
	struct i8042 dev;
	struct bus pio;
};

static int setup(void **state)
{
	struct harness *h = test_calloc(1, sizeof(*h));

	h->dev.power = (struct power_control){ .request = record_power, .opaque = &h->rec };
	bus_init(&h->pio);
	assert_int_equal(i8042_register(&h->dev, &h->pio), 0);
	*state = h;
	return 0;
}

static int teardown(void **state)
{
	struct harness *h = *state;

	bus_destroy(&h->pio);
	test_free(h);
	return 0;
}

static void outb(struct harness *h, uint16_t port, uint8_t val)
{
	assert_true(bus_write(&h->pio, port, &val, 1));
}

static uint8_t inb(struct harness *h, uint16_t port)
{
	uint8_t val = 0xff;

	assert_true(bus_read(&h->pio, port, &val, 1));
	return val;
}

static void test_i8042_reset_command_requests_reset(void **state)
{
	struct harness *h = *state;

	outb(h, 0x64, 0xfe);
	assert_int_equal(h->rec.resets, 1);
	assert_int_equal(h->rec.offs, 0);
}

static void test_i8042_status_says_both_buffers_empty(void **state)
{
	struct harness *h = *state;
	uint32_t wide = 0xffffffff;

	assert_int_equal(inb(h, 0x64), 0);
	assert_int_equal(inb(h, 0x60), 0);
	assert_true(bus_read(&h->pio, 0x64, &wide, 4));
	assert_int_equal(wide, 0);
}

static void test_i8042_other_commands_and_data_do_nothing(void **state)
{
	struct harness *h = *state;

	outb(h, 0x64, 0xaa); /* self test */
	outb(h, 0x64, 0xd1); /* write output port... */
	outb(h, 0x60, 0xfe); /* ...with the reset bit clear: still not a reset command */
	outb(h, 0x60, 0xff);
	assert_int_equal(h->rec.resets, 0);
	assert_int_equal(h->rec.offs, 0);
}

static void test_i8042_claims_only_data_and_command_ports(void **state)
{
	struct harness *h = *state;
	uint8_t val;

	for (uint16_t port = 0x61; port < 0x64; port++)
		assert_false(bus_read(&h->pio, port, &val, 1));
	assert_false(bus_read(&h->pio, 0x65, &val, 1));
	assert_false(bus_read(&h->pio, 0x5f, &val, 1));
}

static void test_i8042_reset_without_power_handler_is_ignored(void **state)
{
	struct i8042 dev = { .power = { .request = NULL } };
	struct bus pio;
	uint8_t cmd = 0xfe;

	(void)state;
	bus_init(&pio);
	assert_int_equal(i8042_register(&dev, &pio), 0);
	assert_true(bus_write(&pio, 0x64, &cmd, 1));
	bus_destroy(&pio);
}

#define I8042_TEST(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		I8042_TEST(test_i8042_reset_command_requests_reset),
		I8042_TEST(test_i8042_status_says_both_buffers_empty),
		I8042_TEST(test_i8042_other_commands_and_data_do_nothing),
		I8042_TEST(test_i8042_claims_only_data_and_command_ports),
		cmocka_unit_test(test_i8042_reset_without_power_handler_is_ignored),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
