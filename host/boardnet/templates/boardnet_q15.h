#ifndef BOARDNET_Q15_V1_DEFINED
#define BOARDNET_Q15_V1_DEFINED

#include <stddef.h>
#include <stdint.h>

/* boardnet's integer sigmoid, dot product and input parser, shared by every q15 header
 * (identical copies; the first one included defines them). They compute what
 * boardnet.quantize computes, bit for bit. This file is copied into every exported q15
 * header; its table is boardnet/quantize.py's SIGMOID_TABLE - 16384 and its constants
 * Z_FRAC = 10 and TABLE_BITS = 8 (tests/test_helpers_c.py holds them together).
 *
 * Sigmoid: z = acc / 2^(shift + 10); t = acc >> shift for acc >= 0, and (-1 - acc) >> shift
 * for acc < 0 (the mirror image of the truncation interval of a negative z), so every shift
 * is of an unsigned value. On t < 8 << 10, a table of sigmoid - 1/2 at steps of 1/4 (Q15,
 * fitted to whole truncation intervals) with linear interpolation; 1/2 above; the result is
 * negated for acc < 0. It returns sigmoid - 1/2 (-16384 .. 16384): hidden activations are kept
 * centred, which makes the negative half a negation, and the next layer's biases carry the
 * + 16384 * sum(W) (exact in integers, and inside the same proved bound). |error| <=
 * 4.80e-04 against the true sigmoid, for every acc. */
static const uint16_t boardnet_sigmoid_q15_v1_table[33] = {
    0, 2041, 4021, 5884, 7587, 9102, 10422, 11544, 12488, 13269, 13906,
    14421, 14835, 15165, 15427, 15634, 15797, 15925, 16025, 16104, 16166, 16214,
    16251, 16280, 16303, 16321, 16335, 16346, 16354, 16361, 16366, 16370, 16373
};

#if defined(__GNUC__) || defined(__clang__)
#define BOARDNET_Q15_V1_NOINLINE __attribute__((noinline, unused)) static
#else
#define BOARDNET_Q15_V1_NOINLINE static inline
#endif

/* sigmoid(acc / 2^(shift + 10)) - 1/2 in Q15. (The shift parameter is reused for t: with
 * a variable of its own gcc -Os spends a register move and an extra saved register.) */
static inline int32_t boardnet_sigmoid_q15_v1(int32_t acc, unsigned shift)
{
    uint32_t m = 0u - ((uint32_t)acc >> 31), y;     /* m: all ones when acc < 0 */
    const uint16_t *p;
    shift = ((uint32_t)acc ^ m) >> shift;           /* t = (|acc| - 1 if acc < 0) >> shift */
    y = 16384u;
    if (!(shift >> 13)) {
        p = boardnet_sigmoid_q15_v1_table + (shift >> 8);
        shift &= 255u;
        y = p[1];
        shift *= y - p[0];
        y = p[0] + (shift >> 8);
    }
    return (int32_t)((y ^ m) - m);                  /* -y when acc < 0 */
}

/* acc + sum_j w[j] x[j], for one neuron of a looped layer: a function of its own so that its
 * loop has the registers to itself (inlined, gcc -Os on a Cortex-M0+ spills the pointers of
 * the surrounding loop into it; bench/bench_q15.py). */
BOARDNET_Q15_V1_NOINLINE int32_t boardnet_dot_q15_v1(int32_t acc, const int16_t *w,
                                                     const int16_t *x, int n)
{
    int j;
    for (j = 0; j < n; ++j) {
        acc += (int32_t)w[j] * x[j];
    }
    return acc;
}

/* s[0 .. n-1] -> *xq = sat(round(|v| * 2^(g-1)) * sign(v) - c), rounding half away from zero:
 * m = floor(|v| * 2^g) exactly, then (m + 1) >> 1. The integer digits build m (with the
 * remainder r when g < 0); the fraction adds floor(f * 2^g), which depends only on f's first
 * g digits, got by doubling them g times (each carry out is the next bit). m is capped at
 * 2^30, which saturates for every |c| < 2^28. g in [-26, 26]. Returns 0, or -1 for bad text. */
static inline int boardnet_parse_q15_v1(const char *s, size_t n, int g, int32_t c, int16_t *xq)
{
    unsigned char frac[26];
    uint32_t m = 0u, r = 0u, u, d, carry, bits = 0u;
    size_t i = 0u, nf = 0u, k;
    int neg = 0, digits = 0, over = 0, b;
    int32_t q;
    if (i < n && (s[i] == '+' || s[i] == '-')) {
        neg = s[i] == '-';
        ++i;
    }
    for (; i < n && s[i] >= '0' && s[i] <= '9'; ++i) {
        d = (uint32_t)(s[i] - '0');
        ++digits;
        if (over) {
            continue;
        }
        if (m >= 107374182u) {             /* 10 m would reach 2^30 */
            over = 1;
            continue;
        }
        if (g >= 0) {
            m = 10u * m + (d << (unsigned)g);
        } else {
            u = 10u * r + d;
            m = 10u * m + (u >> (unsigned)-g);
            r = u & ((1u << (unsigned)-g) - 1u);
        }
        if (m >= 0x40000000u) {
            over = 1;
        }
    }
    if (i < n && s[i] == '.') {
        for (++i; i < n && s[i] >= '0' && s[i] <= '9'; ++i) {
            ++digits;
            if (g > 0 && nf < (size_t)g) {
                frac[nf++] = (unsigned char)(s[i] - '0');
            }
        }
    }
    if (i != n || digits == 0) {
        return -1;
    }
    if (over) {
        m = 0x40000000u;
    } else {
        for (b = 0; b < g; ++b) {
            carry = 0u;
            for (k = nf; k-- > 0u;) {
                d = 2u * frac[k] + carry;
                carry = d >= 10u;
                frac[k] = (unsigned char)(d - 10u * carry);
            }
            bits = (bits << 1) | carry;
        }
        m += bits;
    }
    q = (int32_t)((m + 1u) >> 1);
    q = (neg ? -q : q) - c;
    *xq = (int16_t)(q > 32767 ? 32767 : q < -32767 ? -32767 : q);
    return 0;
}
#endif /* BOARDNET_Q15_V1_DEFINED */
