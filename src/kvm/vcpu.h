/*
 * A vCPU: its KVM fd, the shared kvm_run page, and the loop on KVM_RUN that
 * hands port I/O and MMIO exits to the buses. One thread per vCPU.
 */
#ifndef VIREO_KVM_VCPU_H
#define VIREO_KVM_VCPU_H

#include <linux/kvm.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

struct bus;
struct kvm;

struct vcpu {
	unsigned int id; /* also its APIC id */
	int fd;
	struct kvm_run *run;
	pthread_t thread;
	atomic_bool stop; /* set by vcpu_kick(); the loop returns VCPU_STOPPED */
	const struct bus *pio;
	const struct bus *mmio;
};

/* Why vcpu_run() returned. */
enum vcpu_exit {
	VCPU_STOPPED,  /* vcpu_kick() asked it to */
	VCPU_SHUTDOWN, /* triple fault or a KVM system event asking for reset */
	VCPU_POWEROFF, /* a KVM system event asking for power off */
	VCPU_FAILED,   /* internal error or failed entry; registers were dumped */
};

int vcpu_create(struct vcpu *vcpu, struct kvm *kvm, unsigned int id, const struct bus *pio,
		const struct bus *mmio);

/* CPUID, MSRs, FPU, LAPIC LINT0/LINT1: everything but the boot registers. */
int vcpu_init_cpu_state(struct vcpu *vcpu, struct kvm_cpuid2 *supported, unsigned int nr_cpus);

/* Runs KVM_RUN until one of enum vcpu_exit happens. */
enum vcpu_exit vcpu_run(struct vcpu *vcpu);

/* Makes a running (or about to run) vcpu_run() return VCPU_STOPPED. */
void vcpu_kick(struct vcpu *vcpu);

/* Installs the no-op signal handler vcpu_kick() relies on; once per process. */
int vcpu_signals_init(void);

void vcpu_dump_registers(struct vcpu *vcpu);

void vcpu_destroy(struct vcpu *vcpu, struct kvm *kvm);

#endif
