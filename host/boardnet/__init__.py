"""boardnet: train a small sigmoid network on a laptop, run it on a microcontroller,
and check over serial that the board predicts exactly what the laptop predicts."""

__version__ = "0.1.0"
