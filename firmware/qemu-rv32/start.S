/* start.S - reset code for qemu-system-riscv32 -M virt -bios none.
 *
 * QEMU's reset vector jumps to 0x80000000 in machine mode with a0 = hart id. Hart 0 sets
 * up the C run-time (gp, sp, .data, .bss) and calls main; any trap parks the hart in
 * trap_loop, where gdb (qemu -s -S) reads mcause and mepc.
 */
    .section .text.start, "ax"
    .globl _start
_start:
    .option push
    .option norelax
    la      gp, __global_pointer$
    .option pop
    la      sp, _estack
    la      t0, trap_loop
    csrw    mtvec, t0
    bnez    a0, park            /* -smp 1 is the default; any other hart waits forever */

    la      t0, _sidata         /* copy .data from its load address in "flash" */
    la      t1, _sdata
    la      t2, _edata
1:  bgeu    t1, t2, 2f
    lw      t3, 0(t0)
    sw      t3, 0(t1)
    addi    t0, t0, 4
    addi    t1, t1, 4
    j       1b
2:  la      t1, _sbss           /* zero .bss */
    la      t2, _ebss
3:  bgeu    t1, t2, 4f
    sw      zero, 0(t1)
    addi    t1, t1, 4
    j       3b
4:  call    main
park:
    wfi
    j       park

    .align  2
trap_loop:
    j       trap_loop
