/* Using a boardnet header in your own firmware loop (pico-sdk or ESP-IDF).
 *
 *   boardnet export model.json --c .      # writes <prefix>.h, here "gender.h"
 *
 * pico-sdk (CMakeLists.txt):
 *   add_executable(app main.c)
 *   target_compile_options(app PRIVATE -ffp-contract=off)
 *   target_link_libraries(app pico_stdlib)
 *   pico_enable_stdio_usb(app 1)
 * ESP-IDF (main/CMakeLists.txt):
 *   idf_component_register(SRCS "main.c" INCLUDE_DIRS ".")
 *   target_compile_options(${COMPONENT_LIB} PRIVATE -ffp-contract=off)
 *   and rename main() to app_main().
 *
 * The header has no dependencies; stdio here is only for the demo output.
 */
#include <stdio.h>

#include "gender.h" /* your exported model */

#define SAMPLE_PERIOD_MS 1000 /* how often to predict */

#if defined(PICO_BUILD)
#include "pico/stdlib.h"
#define SLEEP_MS(ms) sleep_ms(ms)
#define BOARD_INIT() stdio_init_all()
#elif defined(ESP_PLATFORM)
#include "freertos/FreeRTOS.h"
#include "freertos/task.h"
#define SLEEP_MS(ms) vTaskDelay(pdMS_TO_TICKS(ms))
#define BOARD_INIT() ((void)0)
#else
#define SLEEP_MS(ms) ((void)0)
#define BOARD_INIT() ((void)0)
#endif

/* Replace with your sensors: fill x in the order of gender_features[]. */
static void read_inputs(float *x, int n)
{
    static const float demo[2] = {128.0f, 63.0f}; /* Emily: 128 lb, 63 in */
    int i;
    for (i = 0; i < n; ++i) {
        x[i] = demo[i % 2];
    }
}

int main(void)
{
    float x[GENDER_N_IN];
    float y[GENDER_N_OUT];
    int n;

    BOARD_INIT();
    printf("model %s, %d inputs, %d outputs\n", GENDER_FINGERPRINT, GENDER_N_IN, GENDER_N_OUT);
    for (n = 0; n < 3; ++n) {
        read_inputs(x, GENDER_N_IN);
        gender_predict(x, y); /* raw units in, normalisation is inside */
        /* printf promotes float to double; the model itself never uses double */
        printf("%s = %.6f -> %s\n", gender_outputs[0], (double)y[0],
               gender_labels[y[0] >= 0.5f ? 1 : 0]);
        SLEEP_MS(SAMPLE_PERIOD_MS);
    }
    return 0;
}
