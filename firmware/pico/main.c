/* main.c - boardnet firmware for the Raspberry Pi Pico (RP2040), pico-sdk.
 *
 * The board layer of firmware/core/board.h: start-up, byte I/O over the SDK's stdio (USB
 * CDC by default, see CMakeLists.txt) and the microsecond timer. The portable core answers
 * the protocol (docs/protocol.md); the model comes from -DBOARDNET_MODEL.
 */
#include <stdint.h>
#include <stdio.h>

#include "pico/stdlib.h"

#include "board.h"
#include "boardnet_serve.h"

/* Only with pico_enable_stdio_uart(boardnet 1): UART0's pins and baud rate. USB CDC ignores
 * the baud rate (except 1200, which reboots into BOOTSEL). */
#define BOARDNET_UART_BAUD 115200
#define BOARDNET_UART_TX_PIN 0 /* GP0 */
#define BOARDNET_UART_RX_PIN 1 /* GP1 */

/* On while the board is serving. */
#ifdef PICO_DEFAULT_LED_PIN
#define BOARDNET_LED_PIN PICO_DEFAULT_LED_PIN
#endif

const char board_platform[] = "rp2040";
const char board_time_unit[] = "us";

void board_init(void)
{
#if LIB_PICO_STDIO_UART
    stdio_uart_init_full(uart0, BOARDNET_UART_BAUD, BOARDNET_UART_TX_PIN, BOARDNET_UART_RX_PIN);
#endif
#if LIB_PICO_STDIO_USB
    stdio_usb_init();
    /* The host sees nothing before it opens the port and asserts DTR: wait for that, so the
     * READY line reaches it. */
    while (!stdio_usb_connected()) {
        sleep_ms(10);
    }
#endif
#ifdef BOARDNET_LED_PIN
    gpio_init(BOARDNET_LED_PIN);
    gpio_set_dir(BOARDNET_LED_PIN, GPIO_OUT);
    gpio_put(BOARDNET_LED_PIN, 1);
#endif
}

int board_getc(void)
{
    for (;;) {
        int c = getchar_timeout_us(1000000u); /* PICO_ERROR_TIMEOUT (< 0) after a quiet second */
        if (c >= 0) {
            return c & 0xFF;
        }
    }
}

void board_putc(int c)
{
    putchar_raw(c & 0xFF); /* raw: the core writes its own \r\n */
}

uint32_t board_ticks(void)
{
    return time_us_32();
}

int main(void)
{
    board_init();
    bn_serve_forever(&boardnet_model);
}
