# Run on a MicroPython board by `mpremote exec` (boardnet.link.micropython.remove): removes the
# files named in NAMES that exist, quietly (the board may hold none of them).
import os

for n in NAMES:  # noqa: F821 (set by the host above this file)
    try:
        os.remove(n)
    except OSError:
        pass
