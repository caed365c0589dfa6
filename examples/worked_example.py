"""The tutorial's worked example through boardnet's public API.

All weights 1, all biases 0, and Alice alone (x1 = 133 - 135 = -2, x2 = 65 - 66 = -1, female
= 1). The forward pass gives h1 = h2 = f(-3) = 0.0474 and o1 = f(0.0948) = 0.524, and
backpropagation gives dL/dw1 = 0.0215 (0.02146953...; the tutorial prints 0.0214 because it
rounds its intermediate values).

    python examples/worked_example.py
"""

import numpy as np

from boardnet.model import Model
from boardnet.train import gradients

# 2 inputs -> h1, h2 -> o1; W is (n_out, n_in), row-major: W1 = [[w1, w2], [w3, w4]], W2 = [[w5, w6]]
model = Model.from_arrays(
    [np.ones((2, 2)), np.ones((1, 2))], [np.zeros(2), np.zeros(1)],
    features=["x1", "x2"], labels=["male", "female"], name="tutorial",
)
alice = np.array([-2.0, -1.0])
y_true = 1.0

# the forward pass, every layer: [x, (h1, h2), (o1,)]
x, h, o = model.forward(alice, trace=True)
print(f"h1 = h2 = f(-3)     = {h[0]:.4f}")
print(f"o1 = f(h1 + h2)     = {o[0]:.3f}")

# the chain rule by hand, from the activations (f'(z) = f(z) (1 - f(z)))
w5 = model.layers[1].W[0, 0]
dL_dypred = -2 * (y_true - o[0])  # MSE on one sample
dypred_dh1 = w5 * o[0] * (1 - o[0])
dh1_dw1 = x[0] * h[0] * (1 - h[0])
print(f"dL/dw1 by hand      = {dL_dypred:.3f} * {dypred_dh1:.3f} * {dh1_dw1:.4f} "
      f"= {dL_dypred * dypred_dh1 * dh1_dw1:.4f}")

# the same gradient from the trainer's backpropagation (boardnet.train)
params = [p for layer in model.layers for p in (layer.W, layer.b)]
dW1 = gradients(params, alice, np.array([y_true]), "mse")[0]
print(f"dL/dw1 from train   = {dW1[0, 0]:.10f}")
