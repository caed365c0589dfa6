"""A sensor loop on a board, using a model module exported by boardnet.

    boardnet export model.json --micropython out/
    mpremote cp out/people.py :people.py       # the model module (or the .mpy)
    mpremote cp examples/micropython/main.py :main.py
    mpremote reset                             # main.py runs at boot; Ctrl-C stops it

Change MODEL and read_inputs() for your model and sensors. Everything here is stock
MicroPython (rp2, esp32); only read_inputs() touches hardware.
"""

import time

import people as model  # the exported module; its name is the model's name, sanitised

PERIOD_MS = 1000  # one prediction per second
ADC_PINS = (26, 27)  # rp2: GP26/GP27 (ADC0/ADC1); on an esp32 use e.g. (34, 35)


def make_reader():
    """A function that returns the model's N_IN raw inputs, in the units it was trained on."""
    try:
        from machine import ADC, Pin
    except ImportError:  # not on a board (e.g. a quick try under CPython)
        return lambda: [128.0, 63.0][: model.N_IN]
    adcs = [ADC(Pin(p)) for p in ADC_PINS[: model.N_IN]]

    def read_inputs():
        # read_u16() is 0..65535; scale to the training data's units here
        return [a.read_u16() * (3.3 / 65535) for a in adcs]

    return read_inputs


def main(n=None, period_ms=PERIOD_MS):
    """Predict every period_ms, forever (or n times)."""
    read_inputs = make_reader()
    out = [0.0] * model.N_OUT  # reused: predict() fills it, no list per call
    print("model", model.NAME, "fingerprint", model.FINGERPRINT, "inputs", model.FEATURES)
    while n is None or n > 0:
        n = None if n is None else n - 1
        x = read_inputs()
        y = model.predict(x, out)
        if len(model.LABELS) == 2 and model.N_OUT == 1:  # binary: P(second label)
            label = model.LABELS[1] if y[0] >= 0.5 else model.LABELS[0]
        elif model.LABELS:  # multi-class: the largest output
            label = model.LABELS[y.index(max(y))]
        else:  # regression
            label = ""
        print(x, y, label)
        if hasattr(time, "sleep_ms"):
            time.sleep_ms(period_ms)
        else:
            time.sleep(period_ms / 1000)


if __name__ == "__main__":  # main.py at boot runs as __main__
    main()
