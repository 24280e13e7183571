/*
 * vCPU creation, the per-vCPU CPU state Linux expects at boot, and the run
 * loop. Application processors are created like the BSP but never get boot
 * registers: with the in-kernel irqchip they wait inside KVM for INIT/SIPI.
 */
#include "kvm/vcpu.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kvm/cpuid.h"
#include "kvm/kvm.h"
#include "vmm/bus.h"

#define VCPU_KICK_SIGNAL SIGUSR1

/* MSR numbers: Intel SDM vol. 4; all also exist on AMD. */
#define MSR_IA32_SYSENTER_CS 0x174
#define MSR_IA32_SYSENTER_ESP 0x175
#define MSR_IA32_SYSENTER_EIP 0x176
#define MSR_STAR 0xc0000081
#define MSR_LSTAR 0xc0000082
#define MSR_CSTAR 0xc0000083
#define MSR_SYSCALL_MASK 0xc0000084
#define MSR_KERNEL_GS_BASE 0xc0000102
#define MSR_IA32_TSC 0x10
#define MSR_IA32_MISC_ENABLE 0x1a0
#define MSR_MTRR_DEF_TYPE 0x2ff

#define MISC_ENABLE_FAST_STRING 1ull
#define MTRR_ENABLE (1ull << 11)
#define MTRR_TYPE_WRBACK 6ull

/* Local APIC register offsets and LVT delivery modes (Intel SDM vol. 3A 10.5.1). */
#define APIC_LVT_LINT0 0x350
#define APIC_LVT_LINT1 0x360
#define APIC_MODE_MASK (7u << 8)
#define APIC_MODE_EXTINT (7u << 8)
#define APIC_MODE_NMI (4u << 8)

#define FPU_DEFAULT_FCW 0x37f
#define FPU_DEFAULT_MXCSR 0x1f80

static void vcpu_kick_handler(int sig)
{
	(void)sig;
}

int vcpu_signals_init(void)
{
	struct sigaction sa = { .sa_handler = vcpu_kick_handler };

	sigemptyset(&sa.sa_mask);
	return sigaction(VCPU_KICK_SIGNAL, &sa, NULL) < 0 ? -errno : 0;
}

int vcpu_create(struct vcpu *vcpu, struct kvm *kvm, unsigned int id, const struct bus *pio,
		const struct bus *mmio)
{
	memset(vcpu, 0, sizeof(*vcpu));
	vcpu->id = id;
	vcpu->pio = pio;
	vcpu->mmio = mmio;
	vcpu->fd = ioctl(kvm->vm_fd, KVM_CREATE_VCPU, (unsigned long)id);
	if (vcpu->fd < 0)
		return -errno;
	vcpu->run = mmap(NULL, (size_t)kvm->vcpu_mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED,
			 vcpu->fd, 0);
	if (vcpu->run == MAP_FAILED) {
		int err = -errno;

		close(vcpu->fd);
		vcpu->run = NULL;
		return err;
	}
	return 0;
}

static int vcpu_set_cpuid(struct vcpu *vcpu, struct kvm_cpuid2 *supported, unsigned int nr_cpus)
{
	size_t size = sizeof(*supported) + supported->nent * sizeof(supported->entries[0]);
	struct kvm_cpuid2 *cpuid = malloc(size);
	int err = 0;

	if (!cpuid)
		return -ENOMEM;
	memcpy(cpuid, supported, size);
	cpuid_shape(cpuid, vcpu->id, nr_cpus);
	if (ioctl(vcpu->fd, KVM_SET_CPUID2, cpuid) < 0)
		err = -errno;
	free(cpuid);
	return err;
}

static int vcpu_set_msrs(struct vcpu *vcpu)
{
	static const struct {
		uint32_t index;
		uint64_t value;
	} boot_msrs[] = {
		{ MSR_IA32_SYSENTER_CS, 0 },
		{ MSR_IA32_SYSENTER_ESP, 0 },
		{ MSR_IA32_SYSENTER_EIP, 0 },
		{ MSR_STAR, 0 },
		{ MSR_CSTAR, 0 },
		{ MSR_KERNEL_GS_BASE, 0 },
		{ MSR_SYSCALL_MASK, 0 },
		{ MSR_LSTAR, 0 },
		{ MSR_IA32_TSC, 0 },
		{ MSR_IA32_MISC_ENABLE, MISC_ENABLE_FAST_STRING },
		/* Without MTRRs enabled Linux maps all RAM uncached. */
		{ MSR_MTRR_DEF_TYPE, MTRR_ENABLE | MTRR_TYPE_WRBACK },
	};
	enum { NR_BOOT_MSRS = sizeof(boot_msrs) / sizeof(boot_msrs[0]) };
	struct {
		struct kvm_msrs header;
		struct kvm_msr_entry entries[NR_BOOT_MSRS];
	} msrs = { .header.nmsrs = NR_BOOT_MSRS };
	int set;

	for (int i = 0; i < NR_BOOT_MSRS; i++) {
		msrs.entries[i].index = boot_msrs[i].index;
		msrs.entries[i].data = boot_msrs[i].value;
	}
	set = ioctl(vcpu->fd, KVM_SET_MSRS, &msrs);
	if (set < 0)
		return -errno;
	return set == NR_BOOT_MSRS ? 0 : -EINVAL;
}

static int vcpu_set_fpu(struct vcpu *vcpu)
{
	struct kvm_fpu fpu = { .fcw = FPU_DEFAULT_FCW, .mxcsr = FPU_DEFAULT_MXCSR };

	return ioctl(vcpu->fd, KVM_SET_FPU, &fpu) < 0 ? -errno : 0;
}

static uint32_t *lapic_reg(struct kvm_lapic_state *lapic, unsigned int offset)
{
	return (uint32_t *)(void *)&lapic->regs[offset];
}

/* LINT0 takes the PIC's ExtINT, LINT1 the NMI, as firmware would set them. */
static int vcpu_set_lapic_lints(struct vcpu *vcpu)
{
	struct kvm_lapic_state lapic;
	uint32_t *lint0 = lapic_reg(&lapic, APIC_LVT_LINT0);
	uint32_t *lint1 = lapic_reg(&lapic, APIC_LVT_LINT1);

	if (ioctl(vcpu->fd, KVM_GET_LAPIC, &lapic) < 0)
		return -errno;
	*lint0 = (*lint0 & ~APIC_MODE_MASK) | APIC_MODE_EXTINT;
	*lint1 = (*lint1 & ~APIC_MODE_MASK) | APIC_MODE_NMI;
	return ioctl(vcpu->fd, KVM_SET_LAPIC, &lapic) < 0 ? -errno : 0;
}

int vcpu_init_cpu_state(struct vcpu *vcpu, struct kvm_cpuid2 *supported, unsigned int nr_cpus)
{
	int err;

	err = vcpu_set_cpuid(vcpu, supported, nr_cpus);
	if (!err)
		err = vcpu_set_msrs(vcpu);
	if (!err)
		err = vcpu_set_fpu(vcpu);
	if (!err)
		err = vcpu_set_lapic_lints(vcpu);
	return err;
}

/* Port I/O exit: "count" accesses of "size" bytes each, in the kvm_run page. */
static void vcpu_handle_io(struct vcpu *vcpu)
{
	struct kvm_run *run = vcpu->run;
	uint8_t *data = (uint8_t *)run + run->io.data_offset;

	for (uint32_t i = 0; i < run->io.count; i++, data += run->io.size) {
		if (run->io.direction == KVM_EXIT_IO_OUT) {
			bus_write(vcpu->pio, run->io.port, data, run->io.size);
		} else if (!bus_read(vcpu->pio, run->io.port, data, run->io.size)) {
			/* Nothing there: an ISA bus floats high. */
			memset(data, 0xff, run->io.size);
		}
	}
}

static void vcpu_handle_mmio(struct vcpu *vcpu)
{
	struct kvm_run *run = vcpu->run;
	uint32_t len = run->mmio.len <= sizeof(run->mmio.data) ? run->mmio.len : 8;

	if (run->mmio.is_write)
		bus_write(vcpu->mmio, run->mmio.phys_addr, run->mmio.data, len);
	else if (!bus_read(vcpu->mmio, run->mmio.phys_addr, run->mmio.data, len))
		memset(run->mmio.data, 0xff, len);
}

static enum vcpu_exit vcpu_system_event(struct vcpu *vcpu)
{
	switch (vcpu->run->system_event.type) {
	case KVM_SYSTEM_EVENT_SHUTDOWN:
		return VCPU_POWEROFF;
	case KVM_SYSTEM_EVENT_RESET:
		return VCPU_SHUTDOWN;
	default:
		fprintf(stderr, "vireo: vCPU %u: unexpected system event %u\n", vcpu->id,
			vcpu->run->system_event.type);
		return VCPU_FAILED;
	}
}

/*
 * A triple fault resets an x86 machine, and Linux's reboot=t uses one on
 * purpose, so it is a reset; but it is also how a guest dies of a broken
 * exception path, so say where it happened.
 */
static void vcpu_note_triple_fault(struct vcpu *vcpu)
{
	struct kvm_regs r;

	if (ioctl(vcpu->fd, KVM_GET_REGS, &r) < 0)
		fprintf(stderr, "vireo: vCPU %u: triple fault: the guest resets\n", vcpu->id);
	else
		fprintf(stderr, "vireo: vCPU %u: triple fault at rip 0x%llx: the guest resets\n",
			vcpu->id, (unsigned long long)r.rip);
}

/* One exit; returns -1 to keep running, else why the loop must end. */
static int vcpu_handle_exit(struct vcpu *vcpu)
{
	struct kvm_run *run = vcpu->run;

	switch (run->exit_reason) {
	case KVM_EXIT_IO:
		vcpu_handle_io(vcpu);
		return -1;
	case KVM_EXIT_MMIO:
		vcpu_handle_mmio(vcpu);
		return -1;
	case KVM_EXIT_HLT: /* only without an in-kernel LAPIC, but harmless */
	case KVM_EXIT_IRQ_WINDOW_OPEN:
	case KVM_EXIT_INTR:
		return -1;
	case KVM_EXIT_SHUTDOWN:
		vcpu_note_triple_fault(vcpu);
		return VCPU_SHUTDOWN;
	case KVM_EXIT_SYSTEM_EVENT:
		return vcpu_system_event(vcpu);
	case KVM_EXIT_FAIL_ENTRY:
		fprintf(stderr, "vireo: vCPU %u: VM entry failed (hardware reason 0x%llx)\n",
			vcpu->id,
			(unsigned long long)run->fail_entry.hardware_entry_failure_reason);
		break;
	case KVM_EXIT_INTERNAL_ERROR:
		fprintf(stderr, "vireo: vCPU %u: KVM internal error, suberror %u\n", vcpu->id,
			run->internal.suberror);
		break;
	default:
		fprintf(stderr, "vireo: vCPU %u: unhandled KVM exit reason %u\n", vcpu->id,
			run->exit_reason);
		break;
	}
	vcpu_dump_registers(vcpu);
	return VCPU_FAILED;
}

enum vcpu_exit vcpu_run(struct vcpu *vcpu)
{
	for (;;) {
		int why;

		if (atomic_load(&vcpu->stop))
			return VCPU_STOPPED;
		if (ioctl(vcpu->fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN) {
				vcpu->run->immediate_exit = 0;
				continue;
			}
			fprintf(stderr, "vireo: vCPU %u: KVM_RUN failed: %s\n", vcpu->id,
				strerror(errno));
			vcpu_dump_registers(vcpu);
			return VCPU_FAILED;
		}
		why = vcpu_handle_exit(vcpu);
		if (why >= 0)
			return (enum vcpu_exit)why;
	}
}

void vcpu_kick(struct vcpu *vcpu)
{
	atomic_store(&vcpu->stop, true);
	/* immediate_exit covers a signal that lands just before KVM_RUN. */
	vcpu->run->immediate_exit = 1;
	pthread_kill(vcpu->thread, VCPU_KICK_SIGNAL);
}

static void dump_segment(const char *name, const struct kvm_segment *s)
{
	fprintf(stderr, "  %-3s sel=%04x base=%016llx limit=%08x type=%x dpl=%u l=%u db=%u\n",
		name, s->selector, (unsigned long long)s->base, s->limit, s->type, s->dpl, s->l,
		s->db);
}

void vcpu_dump_registers(struct vcpu *vcpu)
{
	struct kvm_regs r;
	struct kvm_sregs s;

	if (ioctl(vcpu->fd, KVM_GET_REGS, &r) < 0 || ioctl(vcpu->fd, KVM_GET_SREGS, &s) < 0) {
		fprintf(stderr, "vireo: vCPU %u: cannot read registers: %s\n", vcpu->id,
			strerror(errno));
		return;
	}
	fprintf(stderr,
		"vireo: vCPU %u registers:\n"
		"  rip=%016llx rsp=%016llx rflags=%016llx\n"
		"  rax=%016llx rbx=%016llx rcx=%016llx rdx=%016llx\n"
		"  rsi=%016llx rdi=%016llx rbp=%016llx\n"
		"  cr0=%016llx cr2=%016llx cr3=%016llx cr4=%016llx efer=%016llx\n",
		vcpu->id, r.rip, r.rsp, r.rflags, r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.rbp,
		s.cr0, s.cr2, s.cr3, s.cr4, s.efer);
	dump_segment("cs", &s.cs);
	dump_segment("ds", &s.ds);
	dump_segment("ss", &s.ss);
}

void vcpu_destroy(struct vcpu *vcpu, struct kvm *kvm)
{
	if (vcpu->run)
		munmap(vcpu->run, (size_t)kvm->vcpu_mmap_size);
	if (vcpu->fd > 0)
		close(vcpu->fd);
	vcpu->run = NULL;
	vcpu->fd = -1;
}
