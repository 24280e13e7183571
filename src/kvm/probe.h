/*
 * How fast this host's KVM runs guest code. A /dev/kvm can work yet run
 * guests at emulation speed (seen inside some VMs that expose KVM without
 * hardware virtualization); `vireo check` and the test harness need to know.
 */
#ifndef VIREO_KVM_PROBE_H
#define VIREO_KVM_PROBE_H

struct kvm;

/* Below this, guest code runs too slowly to boot Linux in reasonable time. */
#define KVM_PROBE_MIN_MIPS 10.0

/*
 * Runs a counting loop in a throw-away VM on kvm (already opened) and
 * stores millions of loop iterations per second in *mips. 0 or -errno.
 */
int kvm_probe_speed(struct kvm *kvm, double *mips);

#endif
