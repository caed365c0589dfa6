/* startup.c - vector table and reset handler for the Cortex-M0 of QEMU's -M microbit.
 *
 * The core only needs the reset and SysTick vectors (board.c extends the 24-bit SysTick
 * with its interrupt); every other exception stops in default_handler, where a debugger
 * (qemu -s -S + gdb) shows which one it was in IPSR.
 */
#include <stdint.h>

extern uint32_t _sidata[], _sdata[], _edata[], _sbss[], _ebss[], _estack[];

int main(void);
void reset_handler(void);
void systick_handler(void);   /* board.c */

static void default_handler(void)
{
    for (;;) {
    }
}

/* Entry 0 is the initial stack pointer, the rest are handler addresses; the union keeps
 * both in one table without converting a data pointer to a function pointer. */
typedef union {
    void (*handler)(void);
    uint32_t *stack;
} vector_t;

__attribute__((section(".vectors"), used))
static const vector_t vectors[16 + 32] = {
    [0] = {.stack = _estack},
    [1] = {.handler = reset_handler},
    [2] = {.handler = default_handler},   /* NMI */
    [3] = {.handler = default_handler},   /* HardFault */
    [11] = {.handler = default_handler},  /* SVCall */
    [14] = {.handler = default_handler},  /* PendSV */
    [15] = {.handler = systick_handler},
    /* 16..47: nRF51 peripheral interrupts, all left disabled in the NVIC. */
};

void reset_handler(void)
{
    uint32_t *src = _sidata;
    uint32_t *dst = _sdata;
    while (dst < _edata) {
        *dst++ = *src++;
    }
    for (dst = _sbss; dst < _ebss; dst++) {
        *dst = 0;
    }
    (void)main();
    for (;;) {
    }
}
