# greenring context switch for x86-64, System V ABI (Linux).
#
# Pulled into the crate by src/arch/x86_64.rs with global_asm!; that module documents the
# contract and draws the stacks. Intel syntax, global_asm!'s default; GNU as reads it in its Intel
# mode (see tests/asm_harness). Plain directives only, no preprocessor.
#
# A suspended context is a stack pointer. Below the return address of the call to
# greenring_switch lies one frame holding the callee-saved state, at these offsets from the
# saved stack pointer (must match FRAME_* in src/arch/x86_64.rs):

    .set FRAME_MXCSR, 0   # SSE control/status word (4 bytes)
    .set FRAME_X87CW, 4   # x87 control word (2 bytes, 2 bytes padding)
    .set FRAME_R15, 8
    .set FRAME_R14, 16
    .set FRAME_R13, 24
    .set FRAME_R12, 32
    .set FRAME_RBX, 40
    .set FRAME_RBP, 48
    .set FRAME_SIZE, 56   # the return address sits at [sp + FRAME_SIZE]

    .set MXCSR_CONTROL_BITS, 0xFFC0   # bits 6-15: DAZ, masks, rounding, FTZ

    .text

# void greenring_switch(void **save_sp /* rdi */, void *next_sp /* rsi */)
#
# Saves the callee-saved state of the caller in a frame on its own stack, stores the
# resulting stack pointer in *save_sp, then restores the frame found at next_sp and returns
# into whatever context suspended there (or into greenring_trampoline for a fresh stack).
# Caller-saved registers need no saving: the caller already assumes a call clobbers them.
    .globl greenring_switch
    .type greenring_switch, @function
    .p2align 4
greenring_switch:
    .cfi_startproc
    sub rsp, FRAME_SIZE
    .cfi_adjust_cfa_offset FRAME_SIZE
    mov [rsp + FRAME_RBP], rbp
    .cfi_rel_offset rbp, FRAME_RBP
    mov [rsp + FRAME_RBX], rbx
    .cfi_rel_offset rbx, FRAME_RBX
    mov [rsp + FRAME_R12], r12
    .cfi_rel_offset r12, FRAME_R12
    mov [rsp + FRAME_R13], r13
    .cfi_rel_offset r13, FRAME_R13
    mov [rsp + FRAME_R14], r14
    .cfi_rel_offset r14, FRAME_R14
    mov [rsp + FRAME_R15], r15
    .cfi_rel_offset r15, FRAME_R15
    stmxcsr DWORD PTR [rsp + FRAME_MXCSR]
    fnstcw WORD PTR [rsp + FRAME_X87CW]
    # Keep the outgoing control words in caller-saved scratch registers, to compare below.
    mov ecx, DWORD PTR [rsp + FRAME_MXCSR]
    movzx edx, WORD PTR [rsp + FRAME_X87CW]

    # The swap itself. From here on rsp is the other context's, whose frame has the same
    # layout, so the CFI above describes it as well.
    mov [rdi], rsp
    mov rsp, rsi

    # ldmxcsr and fldcw serialise the pipeline and cost more than the rest of the switch
    # together, and Rust code practically never changes these words: load them only when
    # the incoming context's differ. For MXCSR only the control bits are callee-saved (the
    # exception flags are caller-saved), so only they are compared.
    xor ecx, DWORD PTR [rsp + FRAME_MXCSR]
    test ecx, MXCSR_CONTROL_BITS
    jz .Lmxcsr_restored
    ldmxcsr DWORD PTR [rsp + FRAME_MXCSR]
.Lmxcsr_restored:
    cmp dx, WORD PTR [rsp + FRAME_X87CW]
    je .Lx87cw_restored
    fldcw WORD PTR [rsp + FRAME_X87CW]
.Lx87cw_restored:
    mov r15, [rsp + FRAME_R15]
    mov r14, [rsp + FRAME_R14]
    mov r13, [rsp + FRAME_R13]
    mov r12, [rsp + FRAME_R12]
    mov rbx, [rsp + FRAME_RBX]
    mov rbp, [rsp + FRAME_RBP]
    # Leave through an indirect jump rather than `ret`. The return-stack predictor expects
    # this `ret` to go back to our own caller, but it goes to the other context's: a
    # mispredict on every switch. `jmp` is predicted by the indirect-branch predictor, which
    # learns the alternation (measured on AMD EPYC: yield round 33 -> 22 ns, see README).
    add rsp, FRAME_SIZE + 8
    .cfi_def_cfa_offset 0
    jmp QWORD PTR [rsp - 8]
    .cfi_endproc
    .size greenring_switch, . - greenring_switch

# First code a fresh context runs: greenring_switch jumps here with r12 = entry function
# and r13 = its argument (placed in the fresh frame by init_stack), rbp = 0 and rsp 16-byte
# aligned. It calls entry(arg), which never returns. The return address is marked undefined
# so unwinders (panics, backtraces, gdb) stop here: this is the base of the green stack.
    .globl greenring_trampoline
    .type greenring_trampoline, @function
    .p2align 4
greenring_trampoline:
    .cfi_startproc
    .cfi_undefined rip
    mov rdi, r13
    call r12
    ud2   # entry returned: a bug in greenring, trap instead of running on
    .cfi_endproc
    .size greenring_trampoline, . - greenring_trampoline

# void greenring_probe(void *suspended_sp /* rdi */, void (*f)(void *) /* rsi */,
#                      void *arg /* rdx */)
#
# Calls f(arg) on the caller's stack, with call-frame information that names the context
# suspended at suspended_sp as f's caller: an unwinder started in f continues from
# greenring_probe into the frames of that context, exactly as it would unwind out of the
# greenring_switch call that suspended it (the frame at suspended_sp holds the caller's
# callee-saved registers and return address, see FRAME_*). The suspended stack is only
# read, by the unwinder; the context itself never runs. rbx holds suspended_sp during the
# call (callee-saved, so f preserves it), which is what the CFA rule refers to.
    .globl greenring_probe
    .type greenring_probe, @function
    .p2align 4
greenring_probe:
    .cfi_startproc
    push rbx
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset rbx, 0
    mov rbx, rdi
    .cfi_remember_state
    # CFA = suspended_sp + FRAME_SIZE + 8: the suspended caller's rsp after its call
    # returned. Its return address and saved registers sit at fixed offsets below.
    .cfi_def_cfa rbx, 64
    .cfi_offset rip, -8
    .cfi_offset rbp, -16
    .cfi_offset rbx, -24
    .cfi_offset r12, -32
    .cfi_offset r13, -40
    .cfi_offset r14, -48
    .cfi_offset r15, -56
    mov rdi, rdx
    call rsi
    .cfi_restore_state
    pop rbx
    .cfi_adjust_cfa_offset -8
    .cfi_restore rbx
    ret
    .cfi_endproc
    .size greenring_probe, . - greenring_probe

    .section .note.GNU-stack,"",@progbits
    .text
