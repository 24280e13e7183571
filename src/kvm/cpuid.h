/*
 * CPUID for each vCPU: what KVM supports, shaped so every vCPU reports its
 * own APIC id and a topology of --cpus cores in one package, with the
 * hypervisor bit and KVM's paravirtual leaves (kvm-clock, ...) kept.
 */
#ifndef VIREO_KVM_CPUID_H
#define VIREO_KVM_CPUID_H

#include <linux/kvm.h>
#include <stdint.h>

/* KVM_GET_SUPPORTED_CPUID, allocated; NULL and *err set on failure. */
struct kvm_cpuid2 *cpuid_get_supported(int sys_fd, int *err);

/* Rewrites a copy of the supported table for vCPU apic_id of nr_cpus (pure). */
void cpuid_shape(struct kvm_cpuid2 *cpuid, unsigned int apic_id, unsigned int nr_cpus);

struct kvm_cpuid_entry2 *cpuid_find(struct kvm_cpuid2 *cpuid, uint32_t function,
				    uint32_t index);

#endif
