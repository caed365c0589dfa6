/* boardnet_model.c - the one file that includes the generated model header: it describes
 * the model to the protocol core (struct bn_model) and owns the buffers sized for it.
 *
 * Build with the header's path and its prefix (the model name as `boardnet export` made it
 * a C identifier, which is also the header's file name), lower and upper case:
 *
 *     -DBOARDNET_MODEL_HEADER='"people.h"' -DBOARDNET_PREFIX=people -DBOARDNET_PREFIX_UPPER=PEOPLE
 *
 * (firmware/pico and firmware/esp32 derive all three from -DBOARDNET_MODEL=path/to/people.h;
 * boardnet.csim passes them itself.) A float32 header gives a float32 model; an integer
 * (q15) header, recognised by its <PREFIX>_X_MAX, gives an integer one.
 */
#include <stddef.h>
#include <stdint.h>

#include "boardnet_serve.h"

#if !defined(BOARDNET_MODEL_HEADER) || !defined(BOARDNET_PREFIX) || !defined(BOARDNET_PREFIX_UPPER)
#error "build with -DBOARDNET_MODEL_HEADER=\"<prefix>.h\" -DBOARDNET_PREFIX=<prefix> -DBOARDNET_PREFIX_UPPER=<PREFIX> (see the top of this file)"
#endif

#include BOARDNET_MODEL_HEADER

#define BN_CAT_(a, b) a##b
#define BN_CAT(a, b) BN_CAT_(a, b)
#define BN_STR_(a) #a
#define BN_STR(a) BN_STR_(a)
#define BN_LOWER(suffix) BN_CAT(BOARDNET_PREFIX, suffix)
#define BN_UPPER(suffix) BN_CAT(BOARDNET_PREFIX_UPPER, suffix)

#define BN_N_IN BN_UPPER(_N_IN)
#define BN_N_OUT BN_UPPER(_N_OUT)

static char bn_line[BN_LINE_MAX(BN_N_IN)];

/* In #if, an identifier left after expansion counts as 0: only a q15 header defines X_MAX. */
#if (BN_UPPER(_X_MAX) + 0) == 32767
static int16_t bn_xq[BN_N_IN];
static int32_t bn_yq[BN_N_OUT];

const struct bn_model boardnet_model = {
    BN_STR(BOARDNET_PREFIX), BN_UPPER(_FINGERPRINT), BN_UPPER(_PRECISION), BN_N_IN, BN_N_OUT,
    NULL, BN_LOWER(_predict_q), BN_LOWER(_parse_input),
    NULL, NULL, bn_xq, bn_yq,
    bn_line, sizeof bn_line,
};
#else
static float bn_x[BN_N_IN];
static float bn_y[BN_N_OUT];

const struct bn_model boardnet_model = {
    BN_STR(BOARDNET_PREFIX), BN_UPPER(_FINGERPRINT), BN_UPPER(_PRECISION), BN_N_IN, BN_N_OUT,
    BN_LOWER(_predict), NULL, NULL,
    bn_x, bn_y, NULL, NULL,
    bn_line, sizeof bn_line,
};
#endif
