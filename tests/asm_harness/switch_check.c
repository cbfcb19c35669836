/*
 * Checks that greenring_switch (asm/<arch>.S) preserves every callee-saved register of the
 * ABI across a switch pair, that a fresh context enters through greenring_trampoline, and
 * that greenring_probe lets an unwinder walk the frames of a suspended context.
 *
 * check_switch() loads a known pattern into every callee-saved register, switches to a
 * coroutine that loads different garbage into all of them and switches back, then compares.
 * Run by tests/asm_harness/run.sh: natively on x86-64, under qemu-aarch64 for AArch64.
 */
#include <stdint.h>
#include <stdio.h>
#include <unwind.h>

extern void greenring_switch(void **save_sp, void *next_sp);
extern void greenring_probe(void *suspended_sp, void (*f)(void *), void *arg);
extern void greenring_trampoline(void);
/* Returns a bit mask of the registers that did not survive (0: all did). */
extern uint64_t check_switch(void **save_sp, void *next_sp);
/* The coroutine: clobbers every callee-saved register and switches back, forever. */
extern void co_entry(void *arg);

void *main_sp;
void *co_sp;
static _Alignas(16) unsigned char co_stack[64 * 1024];

#if defined(__x86_64__)
/* Fresh frame as src/arch/x86_64.rs lays it out (words counted down from the top). */
static void *init_stack(unsigned char *top, void (*entry)(void *), void *arg) {
    uintptr_t *t = (uintptr_t *)top;
    t[-1] = 0;
    t[-2] = 0;
    t[-3] = (uintptr_t)greenring_trampoline;
    t[-4] = 0;                 /* rbp */
    t[-5] = 0;                 /* rbx */
    t[-6] = (uintptr_t)entry;  /* r12 */
    t[-7] = (uintptr_t)arg;    /* r13 */
    t[-8] = 0;                 /* r14 */
    t[-9] = 0;                 /* r15 */
    t[-10] = 0x1F80 | ((uintptr_t)0x037F << 32);
    return &t[-10];
}

__asm__(
    ".text\n"
    ".globl check_switch\n"
    "check_switch:\n"
    "  push %rbx\n push %rbp\n push %r12\n push %r13\n push %r14\n push %r15\n"
    "  sub $8, %rsp\n"
    "  movl $0x3F80, (%rsp)\n ldmxcsr (%rsp)\n"       /* round toward -inf */
    "  movw $0x027F, 4(%rsp)\n fldcw 4(%rsp)\n"       /* 53-bit precision */
    "  movabs $0x1111111111111111, %rbx\n"
    "  movabs $0x2222222222222222, %rbp\n"
    "  movabs $0x3333333333333333, %r12\n"
    "  movabs $0x4444444444444444, %r13\n"
    "  movabs $0x5555555555555555, %r14\n"
    "  movabs $0x6666666666666666, %r15\n"
    "  call greenring_switch\n"
    "  xor %eax, %eax\n"
    "  movabs $0x1111111111111111, %rcx\n cmp %rcx, %rbx\n je 1f\n or $1, %rax\n1:\n"
    "  movabs $0x2222222222222222, %rcx\n cmp %rcx, %rbp\n je 1f\n or $2, %rax\n1:\n"
    "  movabs $0x3333333333333333, %rcx\n cmp %rcx, %r12\n je 1f\n or $4, %rax\n1:\n"
    "  movabs $0x4444444444444444, %rcx\n cmp %rcx, %r13\n je 1f\n or $8, %rax\n1:\n"
    "  movabs $0x5555555555555555, %rcx\n cmp %rcx, %r14\n je 1f\n or $16, %rax\n1:\n"
    "  movabs $0x6666666666666666, %rcx\n cmp %rcx, %r15\n je 1f\n or $32, %rax\n1:\n"
    "  stmxcsr (%rsp)\n movl (%rsp), %ecx\n and $0xFFC0, %ecx\n cmp $0x3F80, %ecx\n"
    "  je 1f\n or $64, %rax\n1:\n"
    "  fnstcw 4(%rsp)\n movzwl 4(%rsp), %ecx\n cmp $0x027F, %ecx\n je 1f\n or $128, %rax\n1:\n"
    "  movl $0x1F80, (%rsp)\n ldmxcsr (%rsp)\n movw $0x037F, 4(%rsp)\n fldcw 4(%rsp)\n"
    "  add $8, %rsp\n"
    "  pop %r15\n pop %r14\n pop %r13\n pop %r12\n pop %rbp\n pop %rbx\n"
    "  ret\n"
    ".globl co_entry\n"
    "co_entry:\n"
    "  sub $8, %rsp\n"                                /* realign for the calls below */
    "2:\n"
    "  movl $0x5F80, (%rsp)\n ldmxcsr (%rsp)\n"       /* round toward +inf */
    "  movw $0x007F, 4(%rsp)\n fldcw 4(%rsp)\n"       /* 24-bit precision */
    "  movabs $0xDEADBEEFDEADBEEF, %rbx\n mov %rbx, %rbp\n mov %rbx, %r12\n"
    "  mov %rbx, %r13\n mov %rbx, %r14\n mov %rbx, %r15\n"
    "  lea co_sp(%rip), %rdi\n mov main_sp(%rip), %rsi\n"
    "  call greenring_switch\n"
    "  jmp 2b\n");
#define REGISTERS "rbx rbp r12 r13 r14 r15 mxcsr x87cw"

#elif defined(__aarch64__)
/* Fresh frame as src/arch/aarch64.rs lays it out: 160 bytes below the top. */
static void *init_stack(unsigned char *top, void (*entry)(void *), void *arg) {
    uintptr_t *frame = (uintptr_t *)(top - 160);
    for (int i = 0; i < 20; i++) frame[i] = 0;
    frame[0] = (uintptr_t)entry;               /* x19 */
    frame[1] = (uintptr_t)arg;                 /* x20 */
    frame[11] = (uintptr_t)greenring_trampoline; /* x30 */
    return frame;
}

__asm__(
    ".text\n"
    ".macro SETX reg, value\n ldr \\reg, =\\value\n .endm\n"
    ".macro SETD reg, value\n ldr x9, =\\value\n fmov \\reg, x9\n .endm\n"
    ".macro CHECKX reg, value, bit\n ldr x9, =\\value\n cmp \\reg, x9\n b.eq 1f\n"
    "  orr x10, x10, #(1 << \\bit)\n1:\n .endm\n"
    ".macro CHECKD reg, value, bit\n fmov x11, \\reg\n CHECKX x11, \\value, \\bit\n .endm\n"
    ".globl check_switch\n"
    "check_switch:\n"
    "  stp x29, x30, [sp, #-176]!\n mov x29, sp\n"
    "  stp x19, x20, [sp, #16]\n stp x21, x22, [sp, #32]\n stp x23, x24, [sp, #48]\n"
    "  stp x25, x26, [sp, #64]\n stp x27, x28, [sp, #80]\n"
    "  stp d8, d9, [sp, #96]\n stp d10, d11, [sp, #112]\n stp d12, d13, [sp, #128]\n"
    "  stp d14, d15, [sp, #144]\n"
    "  SETX x19, 0x1919191919191919\n SETX x20, 0x2020202020202020\n"
    "  SETX x21, 0x2121212121212121\n SETX x22, 0x2222222222222222\n"
    "  SETX x23, 0x2323232323232323\n SETX x24, 0x2424242424242424\n"
    "  SETX x25, 0x2525252525252525\n SETX x26, 0x2626262626262626\n"
    "  SETX x27, 0x2727272727272727\n SETX x28, 0x2828282828282828\n"
    "  SETD d8, 0x0808080808080808\n SETD d9, 0x0909090909090909\n"
    "  SETD d10, 0x1010101010101010\n SETD d11, 0x1111111111111111\n"
    "  SETD d12, 0x1212121212121212\n SETD d13, 0x1313131313131313\n"
    "  SETD d14, 0x1414141414141414\n SETD d15, 0x1515151515151515\n"
    "  mov x12, sp\n"                             /* sp and x29 must survive too */
    "  bl greenring_switch\n"
    "  mov x10, #0\n"
    "  CHECKX x19, 0x1919191919191919, 0\n CHECKX x20, 0x2020202020202020, 1\n"
    "  CHECKX x21, 0x2121212121212121, 2\n CHECKX x22, 0x2222222222222222, 3\n"
    "  CHECKX x23, 0x2323232323232323, 4\n CHECKX x24, 0x2424242424242424, 5\n"
    "  CHECKX x25, 0x2525252525252525, 6\n CHECKX x26, 0x2626262626262626, 7\n"
    "  CHECKX x27, 0x2727272727272727, 8\n CHECKX x28, 0x2828282828282828, 9\n"
    "  CHECKD d8, 0x0808080808080808, 10\n CHECKD d9, 0x0909090909090909, 11\n"
    "  CHECKD d10, 0x1010101010101010, 12\n CHECKD d11, 0x1111111111111111, 13\n"
    "  CHECKD d12, 0x1212121212121212, 14\n CHECKD d13, 0x1313131313131313, 15\n"
    "  CHECKD d14, 0x1414141414141414, 16\n CHECKD d15, 0x1515151515151515, 17\n"
    "  mov x11, sp\n cmp x11, x29\n b.eq 1f\n orr x10, x10, #(1 << 18)\n1:\n"
    "  mov x0, x10\n"
    "  ldp d14, d15, [sp, #144]\n ldp d12, d13, [sp, #128]\n ldp d10, d11, [sp, #112]\n"
    "  ldp d8, d9, [sp, #96]\n ldp x27, x28, [sp, #80]\n ldp x25, x26, [sp, #64]\n"
    "  ldp x23, x24, [sp, #48]\n ldp x21, x22, [sp, #32]\n ldp x19, x20, [sp, #16]\n"
    "  ldp x29, x30, [sp], #176\n"
    "  ret\n"
    ".ltorg\n"
    ".globl co_entry\n"
    "co_entry:\n"
    "2:\n"
    "  SETX x19, 0xDEADBEEFDEADBEEF\n mov x20, x19\n mov x21, x19\n mov x22, x19\n"
    "  mov x23, x19\n mov x24, x19\n mov x25, x19\n mov x26, x19\n mov x27, x19\n"
    "  mov x28, x19\n mov x29, x19\n"
    "  fmov d8, x19\n fmov d9, x19\n fmov d10, x19\n fmov d11, x19\n"
    "  fmov d12, x19\n fmov d13, x19\n fmov d14, x19\n fmov d15, x19\n"
    "  adrp x0, co_sp\n add x0, x0, :lo12:co_sp\n"
    "  adrp x1, main_sp\n ldr x1, [x1, :lo12:main_sp]\n"
    "  bl greenring_switch\n"
    "  b 2b\n"
    ".ltorg\n");
#define REGISTERS "x19..x28 d8..d15 sp/x29"
#else
#error "no harness for this architecture"
#endif

/*
 * The probe check: a context that suspends two calls deep (probe_entry -> outer_frame ->
 * inner_frame -> greenring_switch), then a walk from greenring_probe on main's stack must
 * report, one after the other, the return addresses of inner_frame (into outer_frame) and
 * of outer_frame (into probe_entry): it can only find them by unwinding the suspended
 * frames as the probe's call-frame information describes them.
 */
static void *probe_sp;
static _Alignas(16) unsigned char probe_stack[64 * 1024];
static uintptr_t return_into_outer, return_into_entry;

__attribute__((noinline)) void inner_frame(void) {
    return_into_outer = (uintptr_t)__builtin_return_address(0);
    greenring_switch(&probe_sp, main_sp);
    __asm__ volatile("" ::: "memory"); /* not a tail call: the return lands in here */
}

__attribute__((noinline)) void outer_frame(void) {
    return_into_entry = (uintptr_t)__builtin_return_address(0);
    inner_frame();
    __asm__ volatile("" ::: "memory");
}

void probe_entry(void *arg) {
    (void)arg;
    outer_frame();
    for (;;) greenring_switch(&probe_sp, main_sp);
}

struct walk {
    uintptr_t ips[64];
    int len;
};

static _Unwind_Reason_Code each_frame(struct _Unwind_Context *ctx, void *arg) {
    struct walk *walk = arg;
    if (walk->len == 64) return _URC_END_OF_STACK;
    walk->ips[walk->len++] = _Unwind_GetIP(ctx);
    return _URC_NO_REASON;
}

static void walk_here(void *arg) { _Unwind_Backtrace(each_frame, arg); }

static int check_probe(void) {
    probe_sp = init_stack(probe_stack + sizeof probe_stack, probe_entry, 0);
    greenring_switch(&main_sp, probe_sp); /* runs until inner_frame suspends */
    struct walk walk = {.len = 0};
    greenring_probe(probe_sp, walk_here, &walk);
    for (int i = 0; i + 1 < walk.len; i++) {
        if (walk.ips[i] == return_into_outer && walk.ips[i + 1] == return_into_entry) return 0;
    }
    printf("FAIL: the probe's walk (%d frames) does not go through the suspended frames\n",
           walk.len);
    return 1;
}

int main(void) {
    if (check_probe() != 0) return 1;
    co_sp = init_stack(co_stack + sizeof co_stack, co_entry, 0);
    for (int round = 0; round < 1000; round++) {
        uint64_t broken = check_switch(&main_sp, co_sp);
        if (broken != 0) {
            printf("FAIL: round %d: registers not preserved, mask %#llx (bits in order: %s)\n",
                   round, (unsigned long long)broken, REGISTERS);
            return 1;
        }
    }
    printf("ok: %s survive 1000 switch pairs; a probe walks a suspended context\n",
           REGISTERS);
    return 0;
}
