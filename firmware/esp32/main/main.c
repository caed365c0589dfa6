/* main.c - boardnet firmware for ESP32 boards, ESP-IDF 5.x.
 *
 * The board layer of firmware/core/board.h: the serial driver (the console UART, which a dev
 * board's USB-UART bridge carries, or the built-in USB Serial/JTAG of the C3/S3/C6 when the
 * console is configured there), esp_timer for microseconds. The portable core answers the
 * protocol (docs/protocol.md); the model comes from -DBOARDNET_MODEL.
 */
#include <stdint.h>

#include "esp_timer.h"
#include "freertos/FreeRTOS.h"
#include "sdkconfig.h"

#if CONFIG_ESP_CONSOLE_USB_SERIAL_JTAG
#include "driver/usb_serial_jtag.h"
#else
#include "driver/uart.h"
#endif

#include "board.h"
#include "boardnet_serve.h"

#define BOARDNET_UART UART_NUM_0 /* the console UART (U0TXD/U0RXD, wired to the bridge) */
#define BOARDNET_BAUD 115200
#define BOARDNET_TX_PIN UART_PIN_NO_CHANGE /* keep the console pins */
#define BOARDNET_RX_PIN UART_PIN_NO_CHANGE
/* BOARD_RX_BUFFER (main/CMakeLists.txt) sizes the driver's receive ring. */

const char board_platform[] = CONFIG_IDF_TARGET; /* "esp32", "esp32s3", "esp32c3", ... */
const char board_time_unit[] = "us";

/* Replies are collected and written a line at a time: one driver call per line, not per byte. */
static uint8_t out[128];
static size_t out_len;

void board_init(void)
{
#if CONFIG_ESP_CONSOLE_USB_SERIAL_JTAG
    usb_serial_jtag_driver_config_t cfg = USB_SERIAL_JTAG_DRIVER_CONFIG_DEFAULT();
    cfg.rx_buffer_size = BOARD_RX_BUFFER;
    ESP_ERROR_CHECK(usb_serial_jtag_driver_install(&cfg));
#else
    const uart_config_t cfg = {
        .baud_rate = BOARDNET_BAUD,
        .data_bits = UART_DATA_8_BITS,
        .parity = UART_PARITY_DISABLE,
        .stop_bits = UART_STOP_BITS_1,
        .flow_ctrl = UART_HW_FLOWCTRL_DISABLE,
        .source_clk = UART_SCLK_DEFAULT,
    };
    ESP_ERROR_CHECK(uart_driver_install(BOARDNET_UART, BOARD_RX_BUFFER, 0, 0, NULL, 0));
    ESP_ERROR_CHECK(uart_param_config(BOARDNET_UART, &cfg));
    ESP_ERROR_CHECK(uart_set_pin(BOARDNET_UART, BOARDNET_TX_PIN, BOARDNET_RX_PIN,
                                 UART_PIN_NO_CHANGE, UART_PIN_NO_CHANGE));
#endif
}

int board_getc(void)
{
    uint8_t c = 0;
#if CONFIG_ESP_CONSOLE_USB_SERIAL_JTAG
    while (usb_serial_jtag_read_bytes(&c, 1, portMAX_DELAY) != 1) {
    }
#else
    while (uart_read_bytes(BOARDNET_UART, &c, 1, portMAX_DELAY) != 1) {
    }
#endif
    return c;
}

static void flush(void)
{
#if CONFIG_ESP_CONSOLE_USB_SERIAL_JTAG
    usb_serial_jtag_write_bytes(out, out_len, portMAX_DELAY);
#else
    uart_write_bytes(BOARDNET_UART, out, out_len);
#endif
    out_len = 0;
}

void board_putc(int c)
{
    out[out_len++] = (uint8_t)c;
    if (c == '\n' || out_len == sizeof out) {
        flush();
    }
}

uint32_t board_ticks(void)
{
    return (uint32_t)esp_timer_get_time();
}

void app_main(void)
{
    board_init();
    bn_serve_forever(&boardnet_model);
}
