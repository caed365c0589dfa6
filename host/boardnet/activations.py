"""The activations a layer can have, each a value that knows its own arithmetic.

    sigmoid, tanh, relu   hidden layers (and sigmoid an output: binary / one per class)
    linear                output (regression; also logits)
    softmax               output (multi-class: probabilities that sum to 1)

An activation is its name (a `str`, so the model file, fingerprints and messages keep the
plain word) with what varies between activations attached:
- `float64(z)`: the trainer's and the float64 reference's function of a layer's z (batch, n);
- `float32(acc)`: what a board computes, bit for bit (numerics.py);
- `train_(z)` / `backprop_(g, a)`: the numpy trainer's in-place forward and dL/dz = dL/da * f';
- `c_helpers`, `c_function`, `c_layer_function`: the helper C files (templates/) it needs and
  the function the generated C calls per output (`acc` in, value out) or once per layer (in
  place over the layer's outputs); the MicroPython template has one macro per activation name;
- `double_bound(z, dz)`: how far a double-precision evaluation of the same code can be from
  the float32 reference (forms.F32.double_bound).

The integer (q15) arithmetic of each is quantize.py's.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from . import numerics

U = 1.01 * 2.0**-24  # float32 unit roundoff, with room for the float64 arithmetic of the bounds


class Activation(str):
    """One activation; instances are the singletons of ACTIVATIONS, equal to their names."""

    name: ClassVar[str]
    hidden: ClassVar[bool] = False  # may be a hidden layer's activation
    output: ClassVar[bool] = True  # may be the output layer's
    elementwise: ClassVar[bool] = True  # a function of each z alone (softmax: of the whole layer)
    scalar_engine: ClassVar[bool] = True  # templates/sgd_epoch.py.j2 has its code
    c_helpers: ClassVar[tuple[str, ...]] = ()  # helper files under templates/, in include order
    c_function: ClassVar[str | None] = None  # C: y = f(acc) per output; None: y = acc
    c_layer_function: ClassVar[str | None] = None  # C: f(y, n), in place over the layer
    uses_exp: ClassVar[bool] = False  # its code uses the sigmoid's exponential (MicroPython locals)

    def __new__(cls) -> Activation:
        return super().__new__(cls, cls.name)

    def __repr__(self) -> str:
        return repr(str(self))

    def __reduce__(self):  # copies and pickles are the registry's singleton
        return (_registered, (str(self),))

    def float64(self, z: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def float32(self, acc: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def train_(self, z: np.ndarray) -> np.ndarray:
        """The activation in place on z (batch, n), in z's own dtype (the trainer's float32)."""
        z[...] = self.float64(z)
        return z

    def backprop_(self, g: np.ndarray, a: np.ndarray) -> np.ndarray:
        """g = dL/da (batch, n) -> dL/dz, in place, from the layer's outputs a."""
        raise NotImplementedError

    def saturated(self, a: np.ndarray) -> np.ndarray:
        """Where a unit passes (almost) no gradient: train's learned-nothing hint."""
        return np.zeros(np.shape(a), dtype=bool)

    def double_bound(self, z: np.ndarray, dz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(a, d): the layer's float64 outputs for z (batch, n), and a bound on how far a
        double-precision evaluation of the generated code is from the float32 reference
        when its z is within dz of the reference's."""
        raise NotImplementedError


class Sigmoid(Activation):
    name = "sigmoid"
    hidden = True
    uses_exp = True
    c_helpers = ("boardnet_exp.h", "boardnet_sigmoid.h")
    c_function = "boardnet_sigmoid_v1"

    def float64(self, z: np.ndarray) -> np.ndarray:
        """1 / (1 + e) for z >= 0 and e / (1 + e) for z < 0, e = exp(-|z|) <= 1: exact to
        rounding everywhere (also for tiny probabilities), no overflow, no warning."""
        z = np.asarray(z, dtype=np.float64)
        e = np.exp(-np.abs(z))
        s = 1.0 / (1.0 + e)
        return np.where(z < 0, e * s, s)

    def float32(self, acc: np.ndarray) -> np.ndarray:
        return numerics.sigmoid32(acc)

    def train_(self, z: np.ndarray) -> np.ndarray:
        """1 / (1 + exp(-z)) in place: float32 exp is the fastest transcendental numpy has.
        exp(-z) overflows to inf for z < -88 in float32, and 1 / (1 + inf) = 0 is the right
        answer, so the trainer runs under np.errstate(over="ignore")."""
        np.negative(z, out=z)
        np.exp(z, out=z)
        z += 1.0
        np.reciprocal(z, out=z)
        return z

    def backprop_(self, g: np.ndarray, a: np.ndarray) -> np.ndarray:
        g *= a
        np.subtract(g, g * a, out=g)  # g * a * (1 - a)
        return g

    def saturated(self, a: np.ndarray) -> np.ndarray:
        return (a < 0.01) | (a > 0.99)  # f' < 0.01

    def double_bound(self, z, dz):
        # each evaluation within MAX_ABS_ERROR of the true sigmoid, which is 1/4-Lipschitz
        return self.float64(z), dz / 4 + 2 * numerics.MAX_ABS_ERROR


class Tanh(Activation):
    name = "tanh"
    hidden = True
    output = False
    uses_exp = True
    c_helpers = ("boardnet_exp.h", "boardnet_sigmoid.h", "boardnet_activations.h")
    c_function = "boardnet_tanh_v1"

    def float64(self, z: np.ndarray) -> np.ndarray:
        return np.tanh(np.asarray(z, dtype=np.float64))

    def float32(self, acc: np.ndarray) -> np.ndarray:
        return numerics.tanh32(acc)

    def train_(self, z: np.ndarray) -> np.ndarray:
        return np.tanh(z, out=z)

    def backprop_(self, g: np.ndarray, a: np.ndarray) -> np.ndarray:
        np.subtract(g, g * a * a, out=g)  # g * (1 - a^2)
        return g

    def saturated(self, a: np.ndarray) -> np.ndarray:
        return np.abs(a) > 0.995  # f' < 0.01

    def double_bound(self, z, dz):
        # tanh is 1-Lipschitz; each evaluation within TANH_MAX_ABS_ERROR of the true tanh
        return self.float64(z), dz + 2 * numerics.TANH_MAX_ABS_ERROR


class Relu(Activation):
    name = "relu"
    hidden = True
    output = False
    c_helpers = ("boardnet_activations.h",)
    c_function = "boardnet_relu_v1"

    def float64(self, z: np.ndarray) -> np.ndarray:
        return np.maximum(np.asarray(z, dtype=np.float64), 0.0)

    def float32(self, acc: np.ndarray) -> np.ndarray:
        return numerics.relu32(acc)

    def train_(self, z: np.ndarray) -> np.ndarray:
        return np.maximum(z, 0, out=z)

    def backprop_(self, g: np.ndarray, a: np.ndarray) -> np.ndarray:
        g *= a > 0
        return g

    def saturated(self, a: np.ndarray) -> np.ndarray:
        return a <= 0  # a dead unit

    def double_bound(self, z, dz):
        return self.float64(z), dz  # exact, and 1-Lipschitz


class Linear(Activation):
    name = "linear"

    def float64(self, z: np.ndarray) -> np.ndarray:
        return np.asarray(z, dtype=np.float64)

    def float32(self, acc: np.ndarray) -> np.ndarray:
        return np.asarray(acc, dtype=np.float32)

    def train_(self, z: np.ndarray) -> np.ndarray:
        return z

    def backprop_(self, g: np.ndarray, a: np.ndarray) -> np.ndarray:
        return g

    def double_bound(self, z, dz):
        return self.float64(z), dz


class Softmax(Activation):
    name = "softmax"
    elementwise = False
    scalar_engine = False
    c_helpers = ("boardnet_exp.h", "boardnet_softmax.h")
    c_layer_function = "boardnet_softmax_v1"

    def float64(self, z: np.ndarray) -> np.ndarray:
        z = np.asarray(z, dtype=np.float64)
        e = np.exp(z - z.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)

    def float32(self, acc: np.ndarray) -> np.ndarray:
        return numerics.softmax32(acc)

    def train_(self, z: np.ndarray) -> np.ndarray:
        z -= z.max(axis=1, keepdims=True)
        np.exp(z, out=z)
        z /= z.sum(axis=1, keepdims=True)
        return z

    def backprop_(self, g: np.ndarray, a: np.ndarray) -> np.ndarray:
        # dL/dz_i = a_i (g_i - sum_j g_j a_j): the Jacobian of softmax times g
        g -= np.einsum("ij,ij->i", g, a)[:, None]
        g *= a
        return g

    def double_bound(self, z, dz):
        # log y_i = z_i - log sum_j exp(z_j), so a change of at most D in every z moves log y_i
        # by at most 2D; each exponential is within EXP_MAX_REL_ERROR of exp on both sides
        # (4 of them between y_i and y_i'), and float32 rounds 1/s and e * (1/s) (4 U); the
        # exponentials cut to 0 below -86 add at most exp(-86) each
        a = self.float64(z)
        D = np.max(dz, axis=-1, keepdims=True)
        rel = np.expm1(2 * D + 4 * numerics.EXP_MAX_REL_ERROR + 4 * U)
        return a, a * rel * (1 + rel) + z.shape[-1] * math.exp(-86)


ACTIVATIONS: dict[str, Activation] = {a: a for a in (Sigmoid(), Tanh(), Relu(), Linear(), Softmax())}
HIDDEN = tuple(a for a in ACTIVATIONS.values() if a.hidden)
OUTPUTS = tuple(a for a in ACTIVATIONS.values() if a.output)


def _registered(name: str) -> Activation:
    return ACTIVATIONS[name]


def lookup(name: Any) -> Activation | None:
    """The activation called `name`, or None for a name boardnet does not know."""
    return ACTIVATIONS.get(name) if isinstance(name, str) else None


# helper C files in the order a header includes them (each uses what comes before it: the
# sigmoid and the softmax the exponential, tanh the sigmoid); none includes another, so the
# exported header stays one file
C_HELPERS = ("boardnet_exp.h", "boardnet_sigmoid.h", "boardnet_activations.h", "boardnet_softmax.h")


def c_helpers(activations: Any) -> list[str]:
    """The helper C files these activations need, each once, in include order."""
    needed = {name for a in activations for name in a.c_helpers}
    return [name for name in C_HELPERS if name in needed]
