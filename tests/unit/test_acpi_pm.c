/*
 * The hardware-reduced ACPI registers through the port-I/O bus, written the
 * way Linux's ACPICA writes them (acpi_hw_extended_sleep, acpi_reset): only
 * S5 with SLP_EN powers off, only the reset value resets, reads are 0.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "devices/acpi_pm.h"
#include "power_recorder.h"

/* §4.8.3.8 sleep status register: WAK_STS in bit 7. */
#define WAK_STS 0x80

struct harness {
	struct power_recorder rec;
	struct acpi_pm pm;
	struct bus pio;
};

static int setup(void **state)
{
	struct harness *h = test_calloc(1, sizeof(*h));

	h->pm.power = (struct power_control){ .request = record_power, .opaque = &h->rec };
	bus_init(&h->pio);
	assert_int_equal(acpi_pm_register(&h->pm, &h->pio), 0);
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

static uint8_t slp(unsigned int type, bool enable)
{
	return (uint8_t)((type << ACPI_PM_SLP_TYP_SHIFT) | (enable ? ACPI_PM_SLP_EN : 0));
}

static void test_s5_with_slp_en_requests_power_off(void **state)
{
	struct harness *h = *state;

	/* ACPICA first clears WAK_STS, then writes SLP_TYP | SLP_EN. */
	outb(h, LAYOUT_ACPI_SLEEP_STATUS_PORT, WAK_STS);
	assert_int_equal(h->rec.offs, 0);
	outb(h, LAYOUT_ACPI_SLEEP_CONTROL_PORT, slp(LAYOUT_ACPI_S5_TYPE, true));
	assert_int_equal(h->rec.offs, 1);
	assert_int_equal(h->rec.resets, 0);
}

static void test_sleep_without_slp_en_or_other_types_does_nothing(void **state)
{
	struct harness *h = *state;

	outb(h, LAYOUT_ACPI_SLEEP_CONTROL_PORT, slp(LAYOUT_ACPI_S5_TYPE, false));
	for (unsigned int type = 0; type < 8; type++)
		if (type != LAYOUT_ACPI_S5_TYPE)
			outb(h, LAYOUT_ACPI_SLEEP_CONTROL_PORT, slp(type, true));
	assert_int_equal(h->rec.offs, 0);
	assert_int_equal(h->rec.resets, 0);
}

static void test_reset_value_requests_reset(void **state)
{
	struct harness *h = *state;

	outb(h, LAYOUT_ACPI_RESET_PORT, LAYOUT_ACPI_RESET_VALUE);
	assert_int_equal(h->rec.resets, 1);
	assert_int_equal(h->rec.offs, 0);
}

static void test_other_reset_values_are_ignored(void **state)
{
	struct harness *h = *state;

	for (unsigned int v = 0; v < 256; v++)
		if (v != LAYOUT_ACPI_RESET_VALUE)
			outb(h, LAYOUT_ACPI_RESET_PORT, (uint8_t)v);
	assert_int_equal(h->rec.resets, 0);
	assert_int_equal(h->rec.offs, 0);
}

static void test_registers_read_zero(void **state)
{
	struct harness *h = *state;
	static const uint16_t ports[] = { LAYOUT_ACPI_SLEEP_CONTROL_PORT,
					  LAYOUT_ACPI_SLEEP_STATUS_PORT, LAYOUT_ACPI_RESET_PORT };

	for (size_t i = 0; i < sizeof(ports) / sizeof(ports[0]); i++) {
		uint32_t val = 0xffffffff;

		assert_true(bus_read(&h->pio, ports[i], &val, 1));
		assert_int_equal(val, 0xffffff00);
		assert_true(bus_read(&h->pio, ports[i], &val, 2));
		assert_int_equal(val, 0xffff0000);
	}
}

static void test_wide_write_reaches_each_register_it_covers(void **state)
{
	struct harness *h = *state;
	/* One 32-bit write at sleep control: control, status, reset, then past the range. */
	uint8_t bytes[4] = { slp(LAYOUT_ACPI_S5_TYPE, true), WAK_STS, LAYOUT_ACPI_RESET_VALUE,
			     LAYOUT_ACPI_RESET_VALUE };

	assert_true(bus_write(&h->pio, LAYOUT_ACPI_SLEEP_CONTROL_PORT, bytes, sizeof(bytes)));
	assert_int_equal(h->rec.offs, 1);
	assert_int_equal(h->rec.resets, 1);
}

static void test_register_claims_only_the_three_ports(void **state)
{
	struct harness *h = *state;
	uint8_t val = 0;

	assert_false(bus_read(&h->pio, LAYOUT_ACPI_SLEEP_CONTROL_PORT - 1, &val, 1));
	assert_false(bus_read(&h->pio, LAYOUT_ACPI_RESET_PORT + 1, &val, 1));
	assert_int_equal(acpi_pm_register(&h->pm, &h->pio), -EEXIST);
}

static void test_missing_power_handler_is_harmless(void **state)
{
	struct harness *h = *state;

	h->pm.power.request = NULL;
	outb(h, LAYOUT_ACPI_SLEEP_CONTROL_PORT, slp(LAYOUT_ACPI_S5_TYPE, true));
	outb(h, LAYOUT_ACPI_RESET_PORT, LAYOUT_ACPI_RESET_VALUE);
	assert_int_equal(h->rec.offs + h->rec.resets, 0);
}

/* Each test gets a fresh device on a fresh bus. */
#define TEST(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		TEST(test_s5_with_slp_en_requests_power_off),
		TEST(test_sleep_without_slp_en_or_other_types_does_nothing),
		TEST(test_reset_value_requests_reset),
		TEST(test_other_reset_values_are_ignored),
		TEST(test_registers_read_zero),
		TEST(test_wide_write_reaches_each_register_it_covers),
		TEST(test_register_claims_only_the_three_ports),
		TEST(test_missing_power_handler_is_harmless),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
