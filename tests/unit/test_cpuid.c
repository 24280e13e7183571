/*
 * CPUID shaping on a synthetic KVM_GET_SUPPORTED_CPUID table: every vCPU
 * reports its own APIC id and one package of nr_cpus cores, the way Linux
 * reads topology (leaf 1, leaf 4, leaves 0xB and 0x1F, AMD 0x80000008 and
 * 0x8000001E), while leaves Vireo does not own (KVM's 0x4000000x) and
 * fields it does not own are left exactly as KVM reported them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kvm/cpuid.h"

#define SIG KVM_CPUID_FLAG_SIGNIFCANT_INDEX

#define FEAT_ECX_HYPERVISOR (1u << 31)
#define FEAT_EDX_HTT (1u << 28)

/* Leaf 4 EAX: cache type in [4:0] (1 data, 2 instruction, 3 unified), level in [7:5]. */
#define CACHE(type, level) ((uint32_t)(type) | ((uint32_t)(level) << 5) | (1u << 8))

/* What a host with 8 threads might report; [31:14] of leaf 4 hold the host's topology. */
static const struct kvm_cpuid_entry2 host_entries[] = {
	{ .function = 0x0, .eax = 0x1f, .ebx = 0x756e6547, .ecx = 0x6c65746e, .edx = 0x49656e69 },
	{ .function = 0x1, .eax = 0x000906ea, .ebx = 0x08100800, .ecx = 0x7ffafbbf,
	  .edx = 0xbfebfbff },
	{ .function = 0x4, .index = 0, .flags = SIG, .eax = 0x1c004000 | CACHE(1, 1), .ebx = 0x01c0003f,
	  .ecx = 0x3f },
	{ .function = 0x4, .index = 1, .flags = SIG, .eax = 0x1c004000 | CACHE(2, 1), .ebx = 0x01c0003f,
	  .ecx = 0x3f },
	{ .function = 0x4, .index = 2, .flags = SIG, .eax = 0x1c004000 | CACHE(3, 2), .ebx = 0x00c0003f,
	  .ecx = 0x3ff },
	{ .function = 0x4, .index = 3, .flags = SIG, .eax = 0x1c03c000 | CACHE(3, 3), .ebx = 0x03c0003f,
	  .ecx = 0x2fff, .edx = 0x6 },
	{ .function = 0x4, .index = 4, .flags = SIG }, /* no more caches */
	{ .function = 0xb, .index = 0, .flags = SIG, .eax = 1, .ebx = 2, .ecx = 0x100, .edx = 7 },
	{ .function = 0xb, .index = 1, .flags = SIG, .eax = 4, .ebx = 8, .ecx = 0x201, .edx = 7 },
	{ .function = 0xb, .index = 2, .flags = SIG, .eax = 0, .ebx = 0, .ecx = 0x2, .edx = 7 },
	{ .function = 0x1f, .index = 0, .flags = SIG, .eax = 1, .ebx = 2, .ecx = 0x100, .edx = 7 },
	{ .function = 0x1f, .index = 1, .flags = SIG, .eax = 4, .ebx = 8, .ecx = 0x201, .edx = 7 },
	{ .function = 0x1f, .index = 2, .flags = SIG, .eax = 0, .ebx = 0, .ecx = 0x2, .edx = 7 },
	{ .function = 0x40000000, .eax = 0x40000001, .ebx = 0x4b4d564b, .ecx = 0x564b4d56,
	  .edx = 0x0000004d },
	{ .function = 0x40000001, .eax = 0x01007afb },
	{ .function = 0x80000000, .eax = 0x80000008 },
	{ .function = 0x80000008, .eax = 0x00003027, .ebx = 0x0100d000, .ecx = 0x00007007 },
	{ .function = 0x8000001e, .eax = 0x13, .ebx = 0x0109, .ecx = 0x0301 },
};

#define NR_HOST_ENTRIES (sizeof(host_entries) / sizeof(host_entries[0]))

static struct kvm_cpuid2 *table(void)
{
	struct kvm_cpuid2 *cpuid =
		calloc(1, sizeof(*cpuid) + NR_HOST_ENTRIES * sizeof(cpuid->entries[0]));

	assert_non_null(cpuid);
	cpuid->nent = NR_HOST_ENTRIES;
	memcpy(cpuid->entries, host_entries, sizeof(host_entries));
	return cpuid;
}

static struct kvm_cpuid2 *shaped(unsigned int apic_id, unsigned int nr_cpus)
{
	struct kvm_cpuid2 *cpuid = table();

	cpuid_shape(cpuid, apic_id, nr_cpus);
	return cpuid;
}

static struct kvm_cpuid_entry2 *leaf(struct kvm_cpuid2 *cpuid, uint32_t function, uint32_t index)
{
	struct kvm_cpuid_entry2 *e = cpuid_find(cpuid, function, index);

	if (!e)
		fail_msg("leaf 0x%x.%u missing", function, index);
	return e;
}

static const struct kvm_cpuid_entry2 *host(uint32_t function, uint32_t index)
{
	for (size_t i = 0; i < NR_HOST_ENTRIES; i++) {
		if (host_entries[i].function == function && host_entries[i].index == index)
			return &host_entries[i];
	}
	fail_msg("no host leaf 0x%x.%u", function, index);
	return NULL;
}

static void test_cpuid_find_honours_significant_index(void **state)
{
	struct kvm_cpuid2 *cpuid = table();

	assert_ptr_equal(cpuid_find(cpuid, 0x4, 2), &cpuid->entries[4]);
	assert_ptr_equal(cpuid_find(cpuid, 0x4, 0), &cpuid->entries[2]);
	assert_ptr_equal(cpuid_find(cpuid, 0xb, 1), &cpuid->entries[8]);
	assert_ptr_equal(cpuid_find(cpuid, 0x1f, 2), &cpuid->entries[12]);
	assert_null(cpuid_find(cpuid, 0xb, 3));
	assert_null(cpuid_find(cpuid, 0x4, 5));
	/* Without the flag the index is ignored. */
	assert_ptr_equal(cpuid_find(cpuid, 0x1, 0), &cpuid->entries[1]);
	assert_ptr_equal(cpuid_find(cpuid, 0x1, 7), &cpuid->entries[1]);
	assert_ptr_equal(cpuid_find(cpuid, 0x40000000, 3), &cpuid->entries[13]);
	assert_null(cpuid_find(cpuid, 0x2, 0));
	assert_null(cpuid_find(cpuid, 0x80000001, 0));
	free(cpuid);
}

static void test_cpuid_leaf1_reports_apic_id_and_logical_count(void **state)
{
	struct kvm_cpuid2 *cpuid = shaped(3, 4);
	struct kvm_cpuid_entry2 *e = leaf(cpuid, 0x1, 0);

	assert_int_equal(e->ebx >> 24, 3);
	assert_int_equal((e->ebx >> 16) & 0xff, 4);
	assert_int_equal(e->ebx & 0xffff, host(0x1, 0)->ebx & 0xffff); /* CLFLUSH size, brand */
	assert_int_equal(e->eax, host(0x1, 0)->eax);
	free(cpuid);

	cpuid = shaped(254, 255);
	e = leaf(cpuid, 0x1, 0);
	assert_int_equal(e->ebx >> 24, 254);
	assert_int_equal((e->ebx >> 16) & 0xff, 255);
	free(cpuid);
}

static void test_cpuid_leaf1_sets_hypervisor_bit_and_keeps_other_features(void **state)
{
	struct kvm_cpuid2 *cpuid = shaped(0, 1);
	struct kvm_cpuid_entry2 *e = leaf(cpuid, 0x1, 0);

	assert_true(e->ecx & FEAT_ECX_HYPERVISOR);
	assert_int_equal(e->ecx & ~FEAT_ECX_HYPERVISOR, host(0x1, 0)->ecx & ~FEAT_ECX_HYPERVISOR);
	assert_int_equal(e->edx & ~FEAT_EDX_HTT, host(0x1, 0)->edx & ~FEAT_EDX_HTT);
	free(cpuid);
}

static void test_cpuid_htt_set_only_for_more_than_one_cpu(void **state)
{
	struct kvm_cpuid2 *cpuid = shaped(0, 1);

	/* The host table has HTT set; one vCPU clears it. */
	assert_true(host(0x1, 0)->edx & FEAT_EDX_HTT);
	assert_false(leaf(cpuid, 0x1, 0)->edx & FEAT_EDX_HTT);
	free(cpuid);

	cpuid = table();
	cpuid->entries[1].edx &= ~FEAT_EDX_HTT;
	cpuid_shape(cpuid, 1, 2);
	assert_true(leaf(cpuid, 0x1, 0)->edx & FEAT_EDX_HTT);
	free(cpuid);
}

static void check_topology_leaf(struct kvm_cpuid2 *cpuid, uint32_t function,
				unsigned int apic_id, unsigned int nr_cpus,
				unsigned int expected_shift)
{
	struct kvm_cpuid_entry2 *smt = leaf(cpuid, function, 0);
	struct kvm_cpuid_entry2 *core = leaf(cpuid, function, 1);
	struct kvm_cpuid_entry2 *end = leaf(cpuid, function, 2);

	/* Level 0: SMT, one thread per core, nothing to shift. */
	assert_int_equal(smt->eax & 0x1f, 0);
	assert_int_equal(smt->ebx & 0xffff, 1);
	assert_int_equal((smt->ecx >> 8) & 0xff, 1);
	assert_int_equal(smt->ecx & 0xff, 0);
	/* Level 1: cores, the whole package. */
	assert_int_equal(core->eax & 0x1f, expected_shift);
	assert_int_equal(core->ebx & 0xffff, nr_cpus);
	assert_int_equal((core->ecx >> 8) & 0xff, 2);
	assert_int_equal(core->ecx & 0xff, 1);
	/* Level 2: invalid, which ends the enumeration. */
	assert_int_equal(end->eax, 0);
	assert_int_equal(end->ebx, 0);
	assert_int_equal((end->ecx >> 8) & 0xff, 0);
	assert_int_equal(end->ecx & 0xff, 2);
	/* Every subleaf reports the x2APIC id. */
	assert_int_equal(smt->edx, apic_id);
	assert_int_equal(core->edx, apic_id);
	assert_int_equal(end->edx, apic_id);
}

static void test_cpuid_leaf_0xb_describes_cores_and_x2apic_id(void **state)
{
	static const struct {
		unsigned int nr_cpus, shift;
	} cases[] = { { 1, 0 }, { 2, 1 }, { 3, 2 }, { 4, 2 }, { 5, 3 }, { 64, 6 }, { 65, 7 },
		      { 255, 8 } };

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		unsigned int apic_id = cases[i].nr_cpus - 1;
		struct kvm_cpuid2 *cpuid = shaped(apic_id, cases[i].nr_cpus);

		check_topology_leaf(cpuid, 0xb, apic_id, cases[i].nr_cpus, cases[i].shift);
		check_topology_leaf(cpuid, 0x1f, apic_id, cases[i].nr_cpus, cases[i].shift);
		free(cpuid);
	}
}

static void test_cpuid_leaf4_reports_cores_and_l3_sharing(void **state)
{
	struct kvm_cpuid2 *cpuid = shaped(2, 4);

	for (uint32_t index = 0; index < 4; index++) {
		struct kvm_cpuid_entry2 *e = leaf(cpuid, 0x4, index);
		unsigned int level = (e->eax >> 5) & 7;

		/* Cache type, level and the rest of the low bits as the host said. */
		assert_int_equal(e->eax & 0x3fff, host(0x4, index)->eax & 0x3fff);
		assert_int_equal(e->ebx, host(0x4, index)->ebx);
		assert_int_equal(e->ecx, host(0x4, index)->ecx);
		assert_int_equal(e->edx, host(0x4, index)->edx);
		/* [31:26] cores per package - 1. */
		assert_int_equal(e->eax >> 26, 3);
		/* [25:14] threads sharing - 1: L1/L2 per core, L3 by the whole package. */
		assert_int_equal((e->eax >> 14) & 0xfff, level >= 3 ? 3 : 0);
	}
	/* The terminating null subleaf stays null. */
	assert_int_equal(leaf(cpuid, 0x4, 4)->eax, 0);
	free(cpuid);

	cpuid = shaped(0, 1);
	for (uint32_t index = 0; index < 4; index++)
		assert_int_equal(leaf(cpuid, 0x4, index)->eax >> 14, 0);
	free(cpuid);
}

/*
 * Leaf 4 EAX[31:26] has six bits: it cannot say more than 64 cores. With
 * more vCPUs (up to 255 are allowed) it must say 64, not nr_cpus - 1 cut
 * to six bits (65 vCPUs would read as 1 core, 100 as 36).
 */
static void test_cpuid_leaf4_core_count_saturates_above_64_cpus(void **state)
{
	static const unsigned int counts[] = { 64, 65, 100, 128, 255 };

	for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
		struct kvm_cpuid2 *cpuid = shaped(0, counts[i]);
		uint32_t eax = leaf(cpuid, 0x4, 3)->eax;

		free(cpuid);
		if ((eax >> 26) + 1 != 64)
			fail_msg("%u vCPUs: leaf 4 says %u cores per package", counts[i],
				 (eax >> 26) + 1);
		assert_int_equal((eax >> 14) & 0xfff, counts[i] - 1);
	}
}

static void test_cpuid_amd_leaves_report_core_count_and_apic_id(void **state)
{
	struct kvm_cpuid2 *cpuid = shaped(5, 6);
	struct kvm_cpuid_entry2 *sizes = leaf(cpuid, 0x80000008, 0);
	struct kvm_cpuid_entry2 *ext = leaf(cpuid, 0x8000001e, 0);

	/* ECX[7:0] cores - 1, ECX[15:12] APIC id bits for the core number. */
	assert_int_equal(sizes->ecx & 0xff, 5);
	assert_int_equal((sizes->ecx >> 12) & 0xf, 3);
	/* Address sizes in EAX and features in EBX are the host's. */
	assert_int_equal(sizes->eax, host(0x80000008, 0)->eax);
	assert_int_equal(sizes->ebx, host(0x80000008, 0)->ebx);
	/* 0x8000001E: extended APIC id, compute unit = core, one thread, one node. */
	assert_int_equal(ext->eax, 5);
	assert_int_equal(ext->ebx & 0xff, 5);
	assert_int_equal((ext->ebx >> 8) & 0xff, 0);
	assert_int_equal(ext->ecx, 0);
	free(cpuid);

	cpuid = shaped(0, 1);
	sizes = leaf(cpuid, 0x80000008, 0);
	assert_int_equal(sizes->ecx & 0xff, 0);
	assert_int_equal((sizes->ecx >> 12) & 0xf, 0);
	free(cpuid);
}

static void test_cpuid_shape_leaves_kvm_and_other_leaves_unchanged(void **state)
{
	struct kvm_cpuid2 *cpuid = shaped(7, 8);
	static const uint32_t untouched[] = { 0x0, 0x40000000, 0x40000001, 0x80000000 };

	for (size_t i = 0; i < sizeof(untouched) / sizeof(untouched[0]); i++) {
		const struct kvm_cpuid_entry2 *want = host(untouched[i], 0);

		assert_memory_equal(leaf(cpuid, untouched[i], 0), want, sizeof(*want));
	}
	assert_int_equal(cpuid->nent, NR_HOST_ENTRIES);
	/* Shaping never changes which entry is which. */
	for (size_t i = 0; i < NR_HOST_ENTRIES; i++) {
		assert_int_equal(cpuid->entries[i].function, host_entries[i].function);
		assert_int_equal(cpuid->entries[i].index, host_entries[i].index);
		assert_int_equal(cpuid->entries[i].flags, host_entries[i].flags);
	}
	free(cpuid);
}

static void test_cpuid_each_vcpu_sees_its_own_apic_id(void **state)
{
	for (unsigned int id = 0; id < 4; id++) {
		struct kvm_cpuid2 *cpuid = shaped(id, 4);

		assert_int_equal(leaf(cpuid, 0x1, 0)->ebx >> 24, id);
		assert_int_equal(leaf(cpuid, 0xb, 0)->edx, id);
		assert_int_equal(leaf(cpuid, 0xb, 1)->edx, id);
		assert_int_equal(leaf(cpuid, 0x1f, 0)->edx, id);
		assert_int_equal(leaf(cpuid, 0x8000001e, 0)->eax, id);
		/* Package id (x2APIC id >> core shift) is 0 for all of them. */
		assert_int_equal(id >> (leaf(cpuid, 0xb, 1)->eax & 0x1f), 0);
		free(cpuid);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cpuid_find_honours_significant_index),
		cmocka_unit_test(test_cpuid_leaf1_reports_apic_id_and_logical_count),
		cmocka_unit_test(test_cpuid_leaf1_sets_hypervisor_bit_and_keeps_other_features),
		cmocka_unit_test(test_cpuid_htt_set_only_for_more_than_one_cpu),
		cmocka_unit_test(test_cpuid_leaf_0xb_describes_cores_and_x2apic_id),
		cmocka_unit_test(test_cpuid_leaf4_reports_cores_and_l3_sharing),
		cmocka_unit_test(test_cpuid_leaf4_core_count_saturates_above_64_cpus),
		cmocka_unit_test(test_cpuid_amd_leaves_report_core_count_and_apic_id),
		cmocka_unit_test(test_cpuid_shape_leaves_kvm_and_other_leaves_unchanged),
		cmocka_unit_test(test_cpuid_each_vcpu_sees_its_own_apic_id),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
