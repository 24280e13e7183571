/*
 * The KVM engine: /dev/kvm, one VM, its memory slots and in-kernel irqchip.
 * Knows nothing about devices; the board wires those on top.
 */
#ifndef VIREO_KVM_KVM_H
#define VIREO_KVM_KVM_H

#include <stdint.h>

struct guest_mem;

struct kvm {
	int sys_fd; /* /dev/kvm */
	int vm_fd;
	int vcpu_mmap_size;
	int max_vcpus;
	int nr_slots;
};

/*
 * Opens /dev/kvm and checks the API version and the capabilities Vireo
 * needs. On failure returns -errno and points *why at a sentence for the user.
 */
int kvm_open(struct kvm *kvm, const char **why);

/* Creates the VM with its TSS, identity map, in-kernel irqchip and PIT. */
int kvm_create_vm(struct kvm *kvm, const char **why);

/* Registers every guest RAM region as a memory slot. */
int kvm_map_guest_mem(struct kvm *kvm, const struct guest_mem *mem);

/* Drives an interrupt line of the in-kernel IOAPIC/PIC. */
int kvm_irq_line(struct kvm *kvm, uint32_t gsi, int level);

/* irq_line callback (see vmm/irq.h) whose opaque is a struct kvm. */
void kvm_irq_line_set(void *opaque, uint32_t gsi, int level);

/*
 * An eventfd KVM signals when the guest writes value (len bytes) to the MMIO
 * address addr, instead of exiting to userspace. Returns the fd or -errno.
 */
int kvm_ioeventfd(struct kvm *kvm, uint64_t addr, uint32_t len, uint64_t value);

/* An eventfd whose every write injects one edge on gsi. Returns the fd or -errno. */
int kvm_irqfd(struct kvm *kvm, uint32_t gsi);

/* Closes the VM, keeping /dev/kvm open for the next one (a guest's reboot). */
void kvm_destroy_vm(struct kvm *kvm);

/* Closes the VM, if any, and /dev/kvm. */
void kvm_close(struct kvm *kvm);

#endif
