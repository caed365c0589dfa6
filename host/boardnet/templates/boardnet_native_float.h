#ifndef BOARDNET_NATIVE_FLOAT_H
#define BOARDNET_NATIVE_FLOAT_H

/* Single-precision arithmetic for a MicroPython native module on a Cortex-M0+ (armv6m, no
 * FPU), where every float add, subtract, multiply and divide is a call to __aeabi_fadd,
 * __aeabi_fsub, __aeabi_frsub, __aeabi_fmul or __aeabi_fdiv. This file defines those five
 * and forwards each through a table set once at import (boardnet_float_init):
 *
 * - on an RP2040, to the boot ROM's routines: the ones MicroPython and pico-sdk firmware
 *   (boardnet's C firmware included) use there, hand-written, about twice as fast as
 *   libgcc's; so the module computes what the C header computes in that firmware, bit for
 *   bit, subnormals flushed to zero as the ROM does;
 * - anywhere else (another Cortex-M0+), to libgcc's, which the build copies in under the
 *   names boardnet_libgcc_* (firmware/natmod.py; natmod.mk).
 *
 * Both round to nearest, ties to even, as the host reference does. The module's C includes
 * this file once, so that its float operations call these definitions within the same
 * object (mpy_ld would otherwise also pull libgcc's under the same names). On other
 * architectures it only says where the arithmetic comes from: an FPU (armv7emsp,
 * xtensawin) or libgcc (rv32imc).
 */
#include <stdint.h>

/* Where a native module's float arithmetic comes from; the module's FLOAT attribute names it. */
#define BOARDNET_FLOAT_FPU 0        /* the processor's own single-precision instructions */
#define BOARDNET_FLOAT_LIBGCC 1     /* the compiler's soft float (libgcc) */
#define BOARDNET_FLOAT_RP2040_ROM 2 /* armv6m on an RP2040: the boot ROM's routines */

#if defined(__ARM_ARCH_6M__)

typedef float (*boardnet_float_op_v1)(float, float);

float boardnet_libgcc_fadd(float a, float b);
float boardnet_libgcc_fsub(float a, float b);
float boardnet_libgcc_fmul(float a, float b);
float boardnet_libgcc_fdiv(float a, float b);

/* fadd, fsub, fmul, fdiv. Global: mpy_ld places no static variables (it reaches .bss
 * through the global offset table only). */
boardnet_float_op_v1 boardnet_float_ops_v1[4];

float __aeabi_fadd(float a, float b);
float __aeabi_fsub(float a, float b);
float __aeabi_frsub(float a, float b);
float __aeabi_fmul(float a, float b);
float __aeabi_fdiv(float a, float b);

/* Each a tail jump through boardnet_float_ops_v1[index], in assembly because gcc would wrap
 * an indirect call in a push and a pop (11 cycles more for each of the ~500 float operations
 * of an 8-16-1 network). The table is reached the way gcc reaches a global from
 * position-independent code (mpy_ld fills in both words); r2 and r3 are free in an __aeabi
 * call, r0 and r1 pass through. */
#define BOARDNET_FLOAT_JUMP_V1(name, index, prologue)                                   \
    __attribute__((naked)) float name(__attribute__((unused)) float a,                    \
                                      __attribute__((unused)) float b)                    \
    {                                                                                    \
        __asm__ volatile(prologue                                                        \
                         "ldr r3, 2f\n"                                                  \
                         "ldr r2, 2f+4\n"                                                \
                         "1: add r3, pc\n"                                               \
                         "ldr r3, [r3, r2]\n"                                            \
                         "ldr r3, [r3, #" #index "]\n"                                   \
                         "bx r3\n"                                                       \
                         ".align 2\n"                                                    \
                         "2: .word _GLOBAL_OFFSET_TABLE_-(1b+4)\n"                       \
                         ".word boardnet_float_ops_v1(GOT)\n");                          \
    }

BOARDNET_FLOAT_JUMP_V1(__aeabi_fadd, 0, "")
BOARDNET_FLOAT_JUMP_V1(__aeabi_fsub, 4, "")
BOARDNET_FLOAT_JUMP_V1(__aeabi_frsub, 4, "mov r2, r0\nmov r0, r1\nmov r1, r2\n") /* b - a */
BOARDNET_FLOAT_JUMP_V1(__aeabi_fmul, 8, "")
BOARDNET_FLOAT_JUMP_V1(__aeabi_fdiv, 12, "")

#if !defined(BOARDNET_FLOAT_NO_ROM) /* defined: libgcc's even on an RP2040 (tests compare them) */
/* The RP2040 boot ROM starts with 'M', 'u', 1 and its version at 0x10; 16-bit pointers at
 * 0x16 (the data table) and 0x18 (the lookup function) find its soft-float table, "SF",
 * whose first four entries are fadd, fsub, fmul, fdiv (RP2040 datasheet, 2.8.3). Reading
 * address 0x10 is safe on any Cortex-M: the vector table lives there. */
typedef void *(*boardnet_rom_lookup_v1)(const uint16_t *table, uint32_t code);

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Warray-bounds"
static const boardnet_float_op_v1 *boardnet_rp2040_rom_floats_v1(void)
{
    const volatile uint8_t *magic = (const volatile uint8_t *)(uintptr_t)0x10u;
    const volatile uint16_t *hwords = (const volatile uint16_t *)(uintptr_t)0x16u;
    boardnet_rom_lookup_v1 lookup;
    if (magic[0] != 'M' || magic[1] != 'u' || magic[2] != 1u || magic[3] < 1u) {
        return 0;
    }
    lookup = (boardnet_rom_lookup_v1)(uintptr_t)hwords[1];
    return (const boardnet_float_op_v1 *)lookup((const uint16_t *)(uintptr_t)hwords[0],
                                                (uint32_t)'S' | ((uint32_t)'F' << 8));
}
#pragma GCC diagnostic pop
#else
#define boardnet_rp2040_rom_floats_v1() ((const boardnet_float_op_v1 *)0)
#endif

/* Set the float routines (once, at import); returns one of the values above. */
static int boardnet_float_init(void)
{
    const boardnet_float_op_v1 *rom = boardnet_rp2040_rom_floats_v1();
    int i;
    if (rom != 0) {
        for (i = 0; i < 4; ++i) {
            boardnet_float_ops_v1[i] = rom[i];
        }
        return BOARDNET_FLOAT_RP2040_ROM;
    }
    boardnet_float_ops_v1[0] = boardnet_libgcc_fadd;
    boardnet_float_ops_v1[1] = boardnet_libgcc_fsub;
    boardnet_float_ops_v1[2] = boardnet_libgcc_fmul;
    boardnet_float_ops_v1[3] = boardnet_libgcc_fdiv;
    return BOARDNET_FLOAT_LIBGCC;
}
#elif defined(__ARM_FP) || defined(__riscv_flen) || (defined(__XTENSA__) && !defined(__XTENSA_SOFT_FLOAT__))
#define boardnet_float_init() BOARDNET_FLOAT_FPU
#else
#define boardnet_float_init() BOARDNET_FLOAT_LIBGCC
#endif

#endif /* BOARDNET_NATIVE_FLOAT_H */
