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

    .section .note.GNU-stack,"",@progbits
    .text
