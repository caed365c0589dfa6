"""Firmware builds, in one place: boardnet's C firmware (firmware/ at the top of the
repository) for the emulated boards with the Debian cross compilers (`emulated`), and for
real boards with the pico-sdk and ESP-IDF (`sdk`). They share the warnings, the build cache
and the tool runner (`common`, boardnet.tools)."""
