/* fuzz_parse_q15.c - libFuzzer on the q15 input parser (host/boardnet/templates/boardnet_q15.h),
 * the helper every integer header copies in.
 *
 * Input: byte 0 picks g in [-26, 26], bytes 1..4 the offset c (|c| < 2^28, the parser's
 * contract), the rest is the text. The parser must accept exactly the grammar
 * [+-]? digits [. digits] with at least one digit, leave *xq alone on refusal, stay in
 * +-32767, and, for texts of up to 18 digits, equal an exact reference in 128-bit integers:
 * sat(round_half_away(v * 2^(g-1)) - c).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "boardnet_q15.h"

__extension__ typedef unsigned __int128 u128;

static int valid(const char *s, size_t n, int *neg, uint64_t *digits_value, int *frac, int *digits)
{
    size_t i = 0;
    *neg = 0;
    *digits_value = 0;
    *frac = 0;
    *digits = 0;
    if (i < n && (s[i] == '+' || s[i] == '-')) {
        *neg = s[i] == '-';
        ++i;
    }
    for (; i < n && s[i] >= '0' && s[i] <= '9'; ++i) {
        if (*digits < 19) {
            *digits_value = 10u * *digits_value + (uint64_t)(s[i] - '0');
        }
        ++*digits;
    }
    if (i < n && s[i] == '.') {
        for (++i; i < n && s[i] >= '0' && s[i] <= '9'; ++i) {
            if (*digits < 19) {
                *digits_value = 10u * *digits_value + (uint64_t)(s[i] - '0');
            }
            ++*digits;
            ++*frac;
        }
    }
    return i == n && *digits > 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int g, neg, frac, digits, ok, k;
    int32_t c;
    uint32_t craw;
    uint64_t value;
    int16_t xq = 12345;
    const char *s;
    size_t n;
    if (size < 5) {
        return 0;
    }
    g = (int)(data[0] % 53u) - 26;
    memcpy(&craw, data + 1, 4);
    c = (int32_t)(craw % (1u << 29)) - (int32_t)(1u << 28) + 1;
    s = (const char *)data + 5;
    n = size - 5;
    ok = valid(s, n, &neg, &value, &frac, &digits);
    if ((boardnet_parse_q15_v1(s, n, g, c, &xq) == 0) != ok) {
        abort();
    }
    if (!ok) {
        if (xq != 12345) {
            abort();
        }
        return 0;
    }
    if (xq < -32767 || xq > 32767) {
        abort();
    }
    if (digits <= 18) {
        /* m = floor(value * 2^g / 10^frac), exactly */
        u128 num = value, den = 1, m;
        int64_t q;
        for (k = 0; k < frac; ++k) {
            den *= 10u;
        }
        if (g >= 0) {
            num <<= g;
        } else {
            den <<= -g;
        }
        m = num / den;
        if (m > (u128)1 << 40) {
            m = (u128)1 << 40; /* saturates either way */
        }
        q = (int64_t)((m + 1u) >> 1);
        q = (neg ? -q : q) - c;
        q = q > 32767 ? 32767 : q < -32767 ? -32767 : q;
        if (q != xq) {
            abort();
        }
    }
    return 0;
}
