/*
 * CPUID shaping. Topology is described the way Linux reads it: leaf 1's
 * initial APIC id and logical count, leaf 0xB/0x1F levels (SMT, core) on
 * Intel, leaf 4's cores-per-package, AMD's 0x80000008 core count.
 * Leaf numbers and bit positions follow the Intel SDM vol. 2A "CPUID" and
 * AMD APM vol. 3 appendix E.
 */
#include "kvm/cpuid.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/ioctl.h>

#define CPUID_MAX_ENTRIES 256

#define LEAF_FEATURES 0x1
#define LEAF_CACHE_PARAMS 0x4
#define LEAF_TOPOLOGY 0xb
#define LEAF_TOPOLOGY_V2 0x1f
#define LEAF_AMD_SIZES 0x80000008
#define LEAF_AMD_EXT_APIC 0x8000001e

#define FEAT_ECX_HYPERVISOR (1u << 31)
#define FEAT_EDX_HTT (1u << 28)

#define TOPO_LEVEL_SMT 1
#define TOPO_LEVEL_CORE 2

struct kvm_cpuid2 *cpuid_get_supported(int sys_fd, int *err)
{
	struct kvm_cpuid2 *cpuid;

	cpuid = calloc(1, sizeof(*cpuid) + CPUID_MAX_ENTRIES * sizeof(cpuid->entries[0]));
	if (!cpuid) {
		*err = -ENOMEM;
		return NULL;
	}
	cpuid->nent = CPUID_MAX_ENTRIES;
	if (ioctl(sys_fd, KVM_GET_SUPPORTED_CPUID, cpuid) < 0) {
		*err = -errno;
		free(cpuid);
		return NULL;
	}
	return cpuid;
}

struct kvm_cpuid_entry2 *cpuid_find(struct kvm_cpuid2 *cpuid, uint32_t function, uint32_t index)
{
	for (uint32_t i = 0; i < cpuid->nent; i++) {
		struct kvm_cpuid_entry2 *e = &cpuid->entries[i];

		if (e->function == function &&
		    (!(e->flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) || e->index == index))
			return e;
	}
	return NULL;
}

/* Bits of APIC id needed to number n cores: ceil(log2(n)). */
static unsigned int id_bits(unsigned int n)
{
	unsigned int bits = 0;

	while ((1u << bits) < n)
		bits++;
	return bits;
}

static void shape_features(struct kvm_cpuid_entry2 *e, unsigned int apic_id,
			   unsigned int nr_cpus)
{
	/* EBX[31:24] initial APIC id, EBX[23:16] logical processors per package. */
	e->ebx = (e->ebx & 0x0000ffffu) | (apic_id << 24) | ((nr_cpus & 0xff) << 16);
	e->ecx |= FEAT_ECX_HYPERVISOR;
	if (nr_cpus > 1)
		e->edx |= FEAT_EDX_HTT;
	else
		e->edx &= ~FEAT_EDX_HTT;
}

/* Leaf 0xB / 0x1F: level 0 is SMT (one thread per core), level 1 the cores. */
static void shape_topology(struct kvm_cpuid_entry2 *e, unsigned int apic_id,
			   unsigned int nr_cpus)
{
	e->edx = apic_id;
	switch (e->index) {
	case 0:
		e->eax = 0;
		e->ebx = 1;
		e->ecx = (TOPO_LEVEL_SMT << 8) | e->index;
		break;
	case 1:
		e->eax = id_bits(nr_cpus);
		e->ebx = nr_cpus;
		e->ecx = (TOPO_LEVEL_CORE << 8) | e->index;
		break;
	default:
		e->eax = e->ebx = 0;
		e->ecx = e->index;
		break;
	}
}

/* Leaf 4: EAX[31:26] cores per package - 1; EAX[25:14] threads sharing - 1. */
static void shape_cache_params(struct kvm_cpuid_entry2 *e, unsigned int nr_cpus)
{
	unsigned int level = (e->eax >> 5) & 0x7;
	unsigned int sharing = level >= 3 ? nr_cpus - 1 : 0;
	unsigned int cores = nr_cpus < 64 ? nr_cpus : 64; /* a 6-bit field */

	if ((e->eax & 0x1f) == 0)
		return; /* no cache at this index */
	e->eax = (e->eax & 0x3fff) | ((sharing & 0xfff) << 14) | ((cores - 1) << 26);
}

void cpuid_shape(struct kvm_cpuid2 *cpuid, unsigned int apic_id, unsigned int nr_cpus)
{
	for (uint32_t i = 0; i < cpuid->nent; i++) {
		struct kvm_cpuid_entry2 *e = &cpuid->entries[i];

		switch (e->function) {
		case LEAF_FEATURES:
			shape_features(e, apic_id, nr_cpus);
			break;
		case LEAF_CACHE_PARAMS:
			shape_cache_params(e, nr_cpus);
			break;
		case LEAF_TOPOLOGY:
		case LEAF_TOPOLOGY_V2:
			shape_topology(e, apic_id, nr_cpus);
			break;
		case LEAF_AMD_SIZES:
			/* ECX[15:12] APIC id bits for cores, ECX[7:0] cores - 1. */
			e->ecx = (id_bits(nr_cpus) << 12) | ((nr_cpus - 1) & 0xff);
			break;
		case LEAF_AMD_EXT_APIC:
			/* One core per compute unit, one node. */
			e->eax = apic_id;
			e->ebx = apic_id & 0xff;
			e->ecx = 0;
			break;
		}
	}
}
