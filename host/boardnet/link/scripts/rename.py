# Run on a MicroPython board by `mpremote exec` (boardnet.link.micropython.rename): renames
# the files deploy copied under temporary names (RENAMES, pairs of names) and removes the
# stale ones (REMOVE), then prints DONE so the host knows it all ran.
import os


def _mv(a, b):
    # FAT (older ESP32 builds) will not rename onto an existing file; littlefs replaces it
    try:
        os.rename(a, b)
    except OSError:
        os.remove(b)
        os.rename(a, b)


for a, b in RENAMES:  # noqa: F821 (set by the host above this file)
    _mv(a, b)
for n in REMOVE:  # noqa: F821
    try:
        os.remove(n)
    except OSError:
        pass
print(DONE)  # noqa: F821
