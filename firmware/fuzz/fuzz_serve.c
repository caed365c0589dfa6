/* fuzz_serve.c - libFuzzer target for the protocol core (firmware/core).
 *
 *   clang -std=c99 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
 *     -Ifirmware/core firmware/fuzz/fuzz_serve.c firmware/core/boardnet_serve.c \
 *     firmware/core/boardnet_text.c -o fuzz_serve
 *   mkdir -p /tmp/corpus && ./fuzz_serve -max_total_time=60 /tmp/corpus firmware/fuzz/corpus
 *
 * Every input is a byte stream from the host. The first byte picks a model (float32 or
 * integer, 1 to 5 inputs); the rest goes to the server byte by byte. What must hold, beyond
 * the sanitizers' memory and undefined-behaviour checks:
 *   - every output line is printable ASCII ending in \r\n and starts with "READY ", "OK " or
 *     "ERR <one of the protocol's codes> ";
 *   - no more replies than line ends (plus READY); the model only ever sees finite inputs;
 *   - the number formatter and parser agree: any float32 -> '{:.9g}' text -> the same bits.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "board.h"
#include "boardnet_serve.h"
#include "boardnet_text.h"

const char board_platform[] = "fuzz";
const char board_time_unit[] = "us";

static uint32_t fake_ticks;
static char out_line[4096];
static size_t out_len;
static unsigned long replies;

void board_init(void)
{
}

int board_getc(void)
{
    abort(); /* the target feeds bytes itself */
}

uint32_t board_ticks(void)
{
    fake_ticks += 7u; /* wraps during long runs: `time` must still add up */
    return fake_ticks;
}

static int starts(const char *s, size_t n, const char *prefix)
{
    size_t k = strlen(prefix);
    return n >= k && memcmp(s, prefix, k) == 0;
}

static void check_line(const char *s, size_t n)
{
    static const char *const codes[] = {"count ", "value ", "nonfinite ", "long ", "bytes ", "cmd ", "range "};
    size_t i;
    int ok = 0;
    if (n < 2u || s[n - 2u] != '\r') {
        abort();
    }
    for (i = 0; i + 2u < n; ++i) {
        if (s[i] < 32 || s[i] > 126) {
            abort();
        }
    }
    if (starts(s, n, "READY ") || starts(s, n, "OK ")) {
        ok = 1;
    } else if (starts(s, n, "ERR ")) {
        for (i = 0; i < sizeof codes / sizeof codes[0]; ++i) {
            ok |= starts(s + 4, n - 4u, codes[i]);
        }
    }
    if (!ok) {
        abort();
    }
    ++replies;
}

void board_putc(int c)
{
    if (out_len >= sizeof out_line) {
        abort(); /* a reply line longer than any the protocol defines */
    }
    out_line[out_len++] = (char)c;
    if (c == '\n') {
        check_line(out_line, out_len);
        out_len = 0;
    }
}

/* ---- two fake models: float32 and integer ---------------------------------------------- */
#define MAX_IN 5

static void predict_f32(const float *x, float *y)
{
    uint32_t bits;
    memcpy(&bits, &x[0], sizeof bits);
    if ((bits & 0x7F800000u) == 0x7F800000u) {
        abort(); /* nonfinite inputs must be refused before the model */
    }
    y[0] = x[0];
    y[1] = 1.0f / 3.0f;
}

static void predict_q(const int16_t *xq, int32_t *yq)
{
    yq[0] = (int32_t)xq[0] * 3;
    yq[1] = -32768;
}

static int parse_input(int j, const char *s, size_t n, int16_t *xq)
{
    uint32_t v;
    if (j < 0 || j >= MAX_IN || bn_parse_u32(s, n, 4u, &v) != 0) {
        return -1;
    }
    *xq = (int16_t)v;
    return 0;
}

static float x[MAX_IN], y[2];
static int16_t xq[MAX_IN];
static int32_t yq[2];
static char line[BN_LINE_MAX(MAX_IN)];

static void check_numbers(const uint8_t *data, size_t size)
{
    uint32_t bits, back;
    char text[BN_G9_MAX];
    size_t n;
    if (size < 4u) {
        return;
    }
    bits = (uint32_t)data[0] << 24 | (uint32_t)data[1] << 16 | (uint32_t)data[2] << 8 | data[3];
    n = bn_format_g9(bits, text);
    if (n == 0u || n > BN_G9_MAX) {
        abort();
    }
    if ((bits & 0x7F800000u) != 0x7F800000u) {
        if (bn_parse_decimal_f32(text, n, &back) != BN_DEC_OK || back != bits) {
            abort();
        }
    }
    bn_format_hex32(bits, text);
    if (bn_parse_hex32(text, 8u, &back) != 0 || back != bits) {
        abort();
    }
    /* the raw bytes as a decimal: any result must be finite */
    if (bn_parse_decimal_f32((const char *)data, size < 300u ? size : 300u, &back) == BN_DEC_OK &&
        (back & 0x7F800000u) == 0x7F800000u) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct bn_model m;
    struct bn_server s;
    unsigned long ends = 0;
    size_t i;
    if (size == 0u) {
        return 0;
    }
    check_numbers(data + 1, size - 1u);
    memset(&m, 0, sizeof m);
    m.name = "fuzz model";
    m.fingerprint = "0123456789abcdef";
    m.n_in = 1u + data[0] % MAX_IN;
    m.n_out = 2u;
    m.line = line;
    m.line_max = BN_LINE_MAX(m.n_in);
    if (data[0] & 0x80u) {
        m.precision = "q15";
        m.predict_q = predict_q;
        m.parse_input = parse_input;
        m.xq = xq;
        m.yq = yq;
    } else {
        m.precision = "f32";
        m.predict = predict_f32;
        m.x = x;
        m.y = y;
    }
    out_len = 0;
    replies = 0;
    bn_server_init(&s, &m);
    bn_server_ready(&s);
    for (i = 1; i < size; ++i) {
        ends += data[i] == '\n' || data[i] == '\r';
        bn_server_byte(&s, data[i]);
    }
    if (out_len != 0u || replies > ends + 1u) {
        abort(); /* a reply without its line end, or more replies than requests */
    }
    return 0;
}
