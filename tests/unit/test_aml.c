/*
 * Tests for the AML builder (src/x86/aml.c): every encoding is checked byte
 * for byte against ACPI 6.3 §20.2 and §6.4. That the bytes also make sense
 * to a real disassembler is checked in test_acpi.c, which runs iasl.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "x86/aml.h"

#define assert_aml_bytes(aml, ...)                                                      \
	do {                                                                            \
		const uint8_t expect_[] = { __VA_ARGS__ };                              \
		assert_int_equal(aml_error(aml), 0);                                    \
		assert_int_equal((aml)->len, sizeof(expect_));                          \
		assert_memory_equal((aml)->buf, expect_, sizeof(expect_));              \
	} while (0)

static void test_aml_integer_uses_shortest_encoding(void **state)
{
	static const struct {
		uint64_t value;
		size_t len;
		uint8_t bytes[9];
	} cases[] = {
		{ 0, 1, { 0x00 } },
		{ 1, 1, { 0x01 } },
		{ 2, 2, { 0x0a, 0x02 } },
		{ 0xff, 2, { 0x0a, 0xff } },
		{ 0x100, 3, { 0x0b, 0x00, 0x01 } },
		{ 0xffff, 3, { 0x0b, 0xff, 0xff } },
		{ 0x10000, 5, { 0x0c, 0x00, 0x00, 0x01, 0x00 } },
		{ 0xd0000000, 5, { 0x0c, 0x00, 0x00, 0x00, 0xd0 } },
		{ 0x100000000ULL, 9, { 0x0e, 0, 0, 0, 0, 1, 0, 0, 0 } },
		{ UINT64_MAX, 9, { 0x0e, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff } },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct aml aml;

		aml_init(&aml);
		aml_integer(&aml, cases[i].value);
		assert_int_equal(aml_error(&aml), 0);
		assert_int_equal(aml.len, cases[i].len);
		assert_memory_equal(aml.buf, cases[i].bytes, cases[i].len);
		aml_destroy(&aml);
	}
}

/* Builds Package(0) and filler making a body of body_len bytes; returns the PkgLength. */
static size_t package_pkglength(size_t body_len, uint8_t out[4])
{
	struct aml aml;
	struct aml_block pkg;
	uint8_t *filler = calloc(1, body_len);
	size_t n;

	assert_non_null(filler);
	aml_init(&aml);
	pkg = aml_package(&aml, 0);
	aml_bytes(&aml, filler, body_len - 1); /* NumElements is the body's first byte */
	aml_end(&aml, pkg);
	assert_int_equal(aml_error(&aml), 0);
	n = aml.len - 1 - body_len; /* PackageOp, PkgLength, body */
	assert_true(n >= 1 && n <= 4);
	memcpy(out, aml.buf + 1, n);
	aml_destroy(&aml);
	free(filler);
	return n;
}

static void test_aml_pkglength_picks_each_of_the_four_forms(void **state)
{
	uint8_t b[4];

	/* One byte holds up to 63, the PkgLength byte included. */
	assert_int_equal(package_pkglength(62, b), 1);
	assert_int_equal(b[0], 63);
	/* 63 + 2 = 65 = 0x041: count 1 in bits 6-7, low nibble 1, then 0x04. */
	assert_int_equal(package_pkglength(63, b), 2);
	assert_memory_equal(b, ((uint8_t[]){ 0x41, 0x04 }), 2);
	/* Largest two-byte length, 0xfff. */
	assert_int_equal(package_pkglength(0xffd, b), 2);
	assert_memory_equal(b, ((uint8_t[]){ 0x4f, 0xff }), 2);
	/* 0xffe + 3 = 0x1001 needs three bytes. */
	assert_int_equal(package_pkglength(0xffe, b), 3);
	assert_memory_equal(b, ((uint8_t[]){ 0x81, 0x00, 0x01 }), 3);
	/* 0xffffd + 4 = 0x100001 needs four bytes. */
	assert_int_equal(package_pkglength(0xffffd, b), 4);
	assert_memory_equal(b, ((uint8_t[]){ 0xc1, 0x00, 0x00, 0x01 }), 4);
}

static void test_aml_namestring_pads_segments_and_keeps_prefixes(void **state)
{
	struct aml aml;

	aml_init(&aml);
	aml_namestring(&aml, "\\_SB");
	assert_aml_bytes(&aml, '\\', '_', 'S', 'B', '_');
	aml_destroy(&aml);

	aml_namestring(&aml, "\\_SB.COM1");
	assert_aml_bytes(&aml, '\\', 0x2e, '_', 'S', 'B', '_', 'C', 'O', 'M', '1');
	aml_destroy(&aml);

	aml_namestring(&aml, "A.B1.C_");
	assert_aml_bytes(&aml, 0x2f, 3, 'A', '_', '_', '_', 'B', '1', '_', '_', 'C', '_', '_',
			 '_');
	aml_destroy(&aml);

	aml_namestring(&aml, "^^FOO");
	assert_aml_bytes(&aml, '^', '^', 'F', 'O', 'O', '_');
	aml_destroy(&aml);

	aml_namestring(&aml, "\\");
	assert_aml_bytes(&aml, '\\', 0x00);
	aml_destroy(&aml);
}

static void test_aml_rejects_malformed_names(void **state)
{
	static const char *const bad[] = { "", "1ABC", "ABCDE", "abc", "A..B", "A.", ".A",
					   "\\\\A", "^\\A", "A B" };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct aml aml;

		aml_init(&aml);
		aml_namestring(&aml, bad[i]);
		assert_int_equal(aml_error(&aml), -EINVAL);
		assert_int_equal(aml.len, 0);
		aml_destroy(&aml);
	}
}

static void test_aml_errors_are_sticky(void **state)
{
	struct aml aml;

	aml_init(&aml);
	aml_integer(&aml, 5);
	aml_name(&aml, "TOOLONG");
	aml_integer(&aml, 7);
	aml_name_string(&aml, "_HID", "LNRO0005");
	assert_int_equal(aml_error(&aml), -EINVAL);
	/* The NameOp before the bad name went out; nothing after it did. */
	assert_int_equal(aml.len, 3);
	aml_destroy(&aml);
}

static void test_aml_eisaid_compresses_letters_and_digits(void **state)
{
	struct aml aml;

	aml_init(&aml);
	aml_eisaid(&aml, "PNP0501");
	assert_aml_bytes(&aml, 0x0c, 0x41, 0xd0, 0x05, 0x01);
	aml_destroy(&aml);

	aml_eisaid(&aml, "PNP0A03");
	assert_aml_bytes(&aml, 0x0c, 0x41, 0xd0, 0x0a, 0x03);
	aml_destroy(&aml);
}

static void test_aml_eisaid_rejects_malformed_ids(void **state)
{
	static const char *const bad[] = { "pnp0501", "PNP050", "PNP05011", "PNP05G1", "P1P0501" };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct aml aml;

		aml_init(&aml);
		aml_eisaid(&aml, bad[i]);
		assert_int_equal(aml_error(&aml), -EINVAL);
		aml_destroy(&aml);
	}
}

static void test_aml_name_string_is_nul_terminated(void **state)
{
	struct aml aml;

	aml_init(&aml);
	aml_name_string(&aml, "_HID", "LNRO0005");
	assert_aml_bytes(&aml, 0x08, '_', 'H', 'I', 'D', 0x0d, 'L', 'N', 'R', 'O', '0', '0', '0',
			 '5', 0x00);
	aml_destroy(&aml);

	aml_string(&aml, "caf\xc3\xa9");
	assert_int_equal(aml_error(&aml), -EINVAL);
	aml_destroy(&aml);
}

static void test_aml_method_returns_an_integer(void **state)
{
	struct aml aml;
	struct aml_block m;

	aml_init(&aml);
	m = aml_method(&aml, "_STA", 0, false);
	aml_return_integer(&aml, 0x0f);
	aml_end(&aml, m);
	assert_aml_bytes(&aml, 0x14, 0x09, '_', 'S', 'T', 'A', 0x00, 0xa4, 0x0a, 0x0f);
	aml_destroy(&aml);

	/* MethodFlags: ArgCount in bits 0-2, SerializeFlag in bit 3. */
	m = aml_method(&aml, "FOO", 2, true);
	aml_return_integer(&aml, 1);
	aml_end(&aml, m);
	assert_aml_bytes(&aml, 0x14, 0x08, 'F', 'O', 'O', '_', 0x0a, 0xa4, 0x01);
	aml_destroy(&aml);

	m = aml_method(&aml, "BAD", 8, false);
	aml_end(&aml, m);
	assert_int_equal(aml_error(&aml), -EINVAL);
	aml_destroy(&aml);
}

static void test_aml_device_in_scope_nests_lengths(void **state)
{
	struct aml aml;
	struct aml_block sb, dev;

	aml_init(&aml);
	sb = aml_scope(&aml, "\\_SB");
	dev = aml_device(&aml, "COM1");
	aml_name_integer(&aml, "_UID", 0);
	aml_end(&aml, dev);
	aml_end(&aml, sb);
	assert_aml_bytes(&aml, 0x10, 0x13, '\\', '_', 'S', 'B', '_', /* Scope (\_SB) */
			 0x5b, 0x82, 0x0b, 'C', 'O', 'M', '1',	     /* Device (COM1) */
			 0x08, '_', 'U', 'I', 'D', 0x00);	     /* Name (_UID, Zero) */
	aml_destroy(&aml);
}

static void test_aml_package_holds_its_element_count(void **state)
{
	struct aml aml;
	struct aml_block pkg;

	aml_init(&aml);
	aml_name(&aml, "\\_S5");
	pkg = aml_package(&aml, 2);
	aml_integer(&aml, 5);
	aml_integer(&aml, 0);
	aml_end(&aml, pkg);
	assert_aml_bytes(&aml, 0x08, '\\', '_', 'S', '5', '_', 0x12, 0x05, 0x02, 0x0a, 0x05,
			 0x00);
	aml_destroy(&aml);

	pkg = aml_package(&aml, 256);
	aml_end(&aml, pkg);
	assert_int_equal(aml_error(&aml), -EINVAL);
	aml_destroy(&aml);
}

static void test_aml_buffer_inserts_its_size(void **state)
{
	struct aml aml;
	struct aml_block buf;

	aml_init(&aml);
	buf = aml_buffer(&aml);
	aml_bytes(&aml, "\x01\x02\x03", 3);
	aml_end(&aml, buf);
	assert_aml_bytes(&aml, 0x11, 0x06, 0x0a, 0x03, 0x01, 0x02, 0x03);
	aml_destroy(&aml);
}

static void test_aml_resource_template_ends_with_end_tag(void **state)
{
	struct aml aml;
	struct aml_block crs;

	aml_init(&aml);
	aml_name(&aml, "_CRS");
	crs = aml_resource_template(&aml);
	aml_memory32_fixed(&aml, true, 0xd0000000, 0x1000);
	aml_interrupt(&aml, AML_IRQ_CONSUMER | AML_IRQ_LEVEL | AML_IRQ_ACTIVE_HIGH, 5);
	aml_end(&aml, crs);
	assert_aml_bytes(&aml, 0x08, '_', 'C', 'R', 'S',
			 0x11, 0x1a, 0x0a, 0x17, /* Buffer, PkgLength, BufferSize 23 */
			 0x86, 0x09, 0x00, 0x01, 0x00, 0x00, 0x00, 0xd0, 0x00, 0x10, 0x00, 0x00,
			 0x89, 0x06, 0x00, 0x01, 0x01, 0x05, 0x00, 0x00, 0x00,
			 0x79, 0x00);
	aml_destroy(&aml);
}

static void test_aml_io_and_interrupt_flags_encode_per_spec(void **state)
{
	struct aml aml;

	aml_init(&aml);
	aml_io(&aml, 0x3f8, 0x3f8, 1, 8);
	assert_aml_bytes(&aml, 0x47, 0x01, 0xf8, 0x03, 0xf8, 0x03, 0x01, 0x08);
	aml_destroy(&aml);

	aml_interrupt(&aml, AML_IRQ_CONSUMER | AML_IRQ_EDGE | AML_IRQ_ACTIVE_LOW | AML_IRQ_SHARED,
		      0x12345678);
	assert_aml_bytes(&aml, 0x89, 0x06, 0x00, 0x0f, 0x01, 0x78, 0x56, 0x34, 0x12);
	aml_destroy(&aml);

	aml_memory32_fixed(&aml, false, 0x1000, 0x200);
	assert_aml_bytes(&aml, 0x86, 0x09, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x02, 0x00,
			 0x00);
	aml_destroy(&aml);
}

static void test_aml_rejects_blocks_ended_out_of_order(void **state)
{
	struct aml aml;
	struct aml_block sb, dev;

	aml_init(&aml);
	sb = aml_scope(&aml, "\\_SB");
	dev = aml_device(&aml, "DEV0");
	aml_end(&aml, sb);
	assert_int_equal(aml_error(&aml), -EINVAL);
	aml_end(&aml, dev);
	assert_int_equal(aml_error(&aml), -EINVAL);
	aml_destroy(&aml);

	sb = aml_scope(&aml, "\\_SB");
	aml_end(&aml, sb);
	aml_end(&aml, sb);
	assert_int_equal(aml_error(&aml), -EINVAL);
	aml_destroy(&aml);
}

static void test_aml_reports_a_block_left_open(void **state)
{
	struct aml aml;

	aml_init(&aml);
	aml_scope(&aml, "\\_SB");
	assert_int_equal(aml_error(&aml), -EINVAL);
	aml_destroy(&aml);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_aml_integer_uses_shortest_encoding),
		cmocka_unit_test(test_aml_pkglength_picks_each_of_the_four_forms),
		cmocka_unit_test(test_aml_namestring_pads_segments_and_keeps_prefixes),
		cmocka_unit_test(test_aml_rejects_malformed_names),
		cmocka_unit_test(test_aml_errors_are_sticky),
		cmocka_unit_test(test_aml_eisaid_compresses_letters_and_digits),
		cmocka_unit_test(test_aml_eisaid_rejects_malformed_ids),
		cmocka_unit_test(test_aml_name_string_is_nul_terminated),
		cmocka_unit_test(test_aml_method_returns_an_integer),
		cmocka_unit_test(test_aml_device_in_scope_nests_lengths),
		cmocka_unit_test(test_aml_package_holds_its_element_count),
		cmocka_unit_test(test_aml_buffer_inserts_its_size),
		cmocka_unit_test(test_aml_resource_template_ends_with_end_tag),
		cmocka_unit_test(test_aml_io_and_interrupt_flags_encode_per_spec),
		cmocka_unit_test(test_aml_rejects_blocks_ended_out_of_order),
		cmocka_unit_test(test_aml_reports_a_block_left_open),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
