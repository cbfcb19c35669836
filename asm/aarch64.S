// greenring context switch for AArch64, AAPCS64 (Linux).
//
// Pulled into the crate by src/arch/aarch64.rs with global_asm!; that module documents the
// contract and draws the stacks. The file also assembles on its own with GNU as
// (tests/asm_harness, run under qemu-aarch64 in CI), so it uses only plain directives.
//
// A suspended context is a stack pointer to one frame holding the callee-saved state, at
// these offsets (must match FRAME_* in src/arch/aarch64.rs):

    .set FRAME_X19, 0
    .set FRAME_X21, 16
    .set FRAME_X23, 32
    .set FRAME_X25, 48
    .set FRAME_X27, 64
    .set FRAME_X29, 80          // frame pointer, then x30 (lr) at 88
    .set FRAME_X30, 88
    .set FRAME_D8, 96
    .set FRAME_D10, 112
    .set FRAME_D12, 128
    .set FRAME_D14, 144
    .set FRAME_SIZE, 160        // a multiple of 16, as sp must stay

    .text

// void greenring_switch(void **save_sp /* x0 */, void *next_sp /* x1 */)
//
// Saves x19-x30 and d8-d15 (the low halves of v8-v15 are all AAPCS64 asks to preserve) in a
// frame on the caller's stack, stores sp in *save_sp, restores the frame at next_sp and
// returns through its x30: into the suspended caller, or greenring_trampoline when fresh.
    .globl greenring_switch
    .type greenring_switch, %function
    .p2align 2
greenring_switch:
    .cfi_startproc
    sub sp, sp, #FRAME_SIZE
    .cfi_adjust_cfa_offset FRAME_SIZE
    stp x19, x20, [sp, #FRAME_X19]
    stp x21, x22, [sp, #FRAME_X21]
    stp x23, x24, [sp, #FRAME_X23]
    stp x25, x26, [sp, #FRAME_X25]
    stp x27, x28, [sp, #FRAME_X27]
    stp x29, x30, [sp, #FRAME_X29]
    .cfi_rel_offset x29, FRAME_X29
    .cfi_rel_offset x30, FRAME_X30
    stp d8, d9, [sp, #FRAME_D8]
    stp d10, d11, [sp, #FRAME_D10]
    stp d12, d13, [sp, #FRAME_D12]
    stp d14, d15, [sp, #FRAME_D14]

    // The swap. The other context's frame has the same layout, so the CFI still holds.
    mov x9, sp
    str x9, [x0]
    mov sp, x1

    ldp x19, x20, [sp, #FRAME_X19]
    ldp x21, x22, [sp, #FRAME_X21]
    ldp x23, x24, [sp, #FRAME_X23]
    ldp x25, x26, [sp, #FRAME_X25]
    ldp x27, x28, [sp, #FRAME_X27]
    ldp x29, x30, [sp, #FRAME_X29]
    ldp d8, d9, [sp, #FRAME_D8]
    ldp d10, d11, [sp, #FRAME_D10]
    ldp d12, d13, [sp, #FRAME_D12]
    ldp d14, d15, [sp, #FRAME_D14]
    add sp, sp, #FRAME_SIZE
    .cfi_adjust_cfa_offset -FRAME_SIZE
    ret
    .cfi_endproc
    .size greenring_switch, . - greenring_switch

// First code a fresh context runs: greenring_switch returns here with x19 = entry function,
// x20 = its argument, x29 = 0 and sp 16-byte aligned at the stack top. It calls entry(arg),
// which never returns. x30 is marked undefined so unwinders stop at the base of the stack.
    .globl greenring_trampoline
    .type greenring_trampoline, %function
    .p2align 2
greenring_trampoline:
    .cfi_startproc
    .cfi_undefined x30
    mov x0, x20
    blr x19
    brk #0                      // entry returned: a bug in greenring, trap
    .cfi_endproc
    .size greenring_trampoline, . - greenring_trampoline

// void greenring_probe(void *suspended_sp /* x0 */, void (*f)(void *) /* x1 */,
//                      void *arg /* x2 */)
//
// Calls f(arg) on the caller's stack, with call-frame information that names the context
// suspended at suspended_sp as f's caller: an unwinder started in f continues from
// greenring_probe into the frames of that context, exactly as it would unwind out of the
// greenring_switch call that suspended it (the frame at suspended_sp holds that context's
// callee-saved registers, its x29 and its return address x30, see FRAME_*). The suspended
// stack is only read, by the unwinder; the context itself never runs. x19 holds
// suspended_sp during the call (callee-saved, so f preserves it), which is what the CFA
// rule refers to.
    .globl greenring_probe
    .type greenring_probe, %function
    .p2align 2
greenring_probe:
    .cfi_startproc
    stp x29, x30, [sp, #-32]!
    .cfi_adjust_cfa_offset 32
    .cfi_rel_offset x29, 0
    .cfi_rel_offset x30, 8
    str x19, [sp, #16]
    .cfi_rel_offset x19, 16
    mov x29, sp
    mov x19, x0
    .cfi_remember_state
    // CFA = suspended_sp + FRAME_SIZE: the suspended caller's sp once its call returned.
    // Its saved registers sit at fixed offsets below.
    .cfi_def_cfa x19, FRAME_SIZE
    .cfi_offset x19, FRAME_X19 - FRAME_SIZE
    .cfi_offset x20, FRAME_X19 + 8 - FRAME_SIZE
    .cfi_offset x21, FRAME_X21 - FRAME_SIZE
    .cfi_offset x22, FRAME_X21 + 8 - FRAME_SIZE
    .cfi_offset x23, FRAME_X23 - FRAME_SIZE
    .cfi_offset x24, FRAME_X23 + 8 - FRAME_SIZE
    .cfi_offset x25, FRAME_X25 - FRAME_SIZE
    .cfi_offset x26, FRAME_X25 + 8 - FRAME_SIZE
    .cfi_offset x27, FRAME_X27 - FRAME_SIZE
    .cfi_offset x28, FRAME_X27 + 8 - FRAME_SIZE
    .cfi_offset x29, FRAME_X29 - FRAME_SIZE
    .cfi_offset x30, FRAME_X30 - FRAME_SIZE
    mov x0, x2
    blr x1
    .cfi_restore_state
    ldr x19, [sp, #16]
    .cfi_restore x19
    ldp x29, x30, [sp], #32
    .cfi_adjust_cfa_offset -32
    .cfi_restore x29
    .cfi_restore x30
    ret
    .cfi_endproc
    .size greenring_probe, . - greenring_probe

    .section .note.GNU-stack,"",%progbits
    .text
