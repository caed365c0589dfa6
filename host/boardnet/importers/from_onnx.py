"""ONNX: a chain of `Gemm` (or `MatMul` then `Add`) layers with `Sigmoid`, `Tanh`, `Relu`
and a final `Softmax`, and the no-ops `Identity`, `Flatten` and `Reshape` to (batch, n): what
`torch.onnx.export` writes for an `nn.Sequential` of `Linear` layers and `tf2onnx` for a Keras
`Sequential` of `Dense` layers. Anything else is refused with the operator's name and node,
never approximated.

The graph is read with the `onnx` package (optional: `pip install 'boardnet[import]'`), and
the parity check runs `onnxruntime` when it is installed. ONNX has no class names: a softmax
or sigmoid output gives classes "0", "1", ... unless --labels names them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelError, UsageError
from .common import Act, Affine, Imported, build, layers_from_steps, provenance, relative_difference

ACTIVATIONS = {"Sigmoid": "sigmoid", "Tanh": "tanh", "Relu": "relu", "Softmax": "softmax"}
NO_OPS = ("Identity", "Flatten", "Reshape")
SUPPORTED = "Gemm, MatMul + Add, Sigmoid, Tanh, Relu, Softmax (last), Identity, Flatten, Reshape"


def _onnx():
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        raise UsageError("reading ONNX files needs the onnx package: "
                         "pip install 'boardnet[import]'") from None
    return onnx, numpy_helper


def read(path: str | Path, *, name: str, features: list[str] | None = None,
         labels: list[str] | None = None, target: str | None = None) -> Imported:
    onnx, numpy_helper = _onnx()
    what = str(path)
    try:
        proto = onnx.load(str(path))
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except Exception as e:  # protobuf's DecodeError and friends
        raise ModelError(f"{path}: not an ONNX model ({type(e).__name__}: {e})") from None
    graph = proto.graph
    const: dict[str, np.ndarray] = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in const]
    if len(inputs) != 1:
        raise ModelError(f"{what}: the graph has {len(inputs)} inputs; "
                         "boardnet imports one (batch, features)")
    dims = inputs[0].type.tensor_type.shape.dim
    if len(dims) != 2:
        shape = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in dims]
        raise ModelError(f"{what}: input {inputs[0].name!r} is {len(dims)}-D {shape}; boardnet imports "
                         "a 2-D input (batch, features)")
    if len(graph.output) != 1:
        raise ModelError(f"{what}: the graph has {len(graph.output)} outputs; boardnet imports one")
    opset = max((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), default=13)

    current = inputs[0].name
    width = dims[1].dim_value if dims[1].HasField("dim_value") else None
    steps: list[Affine | Act] = []
    last_op = None
    for k, node in enumerate(graph.node):
        where = f"node {node.name or '#' + str(k)} ({node.op_type})"
        op = node.op_type
        if node.domain not in ("", "ai.onnx"):
            raise ModelError(f"{what}: {where} from domain {node.domain!r} is not supported; "
                             f"boardnet imports {SUPPORTED}")
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if op == "Constant":
            const[node.output[0]] = numpy_helper.to_array(attrs["value"])
            continue
        if current not in node.input:
            raise ModelError(f"{what}: {where} does not continue the chain of layers "
                             "(boardnet imports a plain sequence of layers, no branches)")
        others = [i for i in node.input if i and i != current]
        if op == "Gemm":
            if attrs.get("transA", 0) or node.input[0] != current:
                raise ModelError(f"{what}: {where} with transA or a constant first input is not supported")
            B = _constant(const, node.input[1], what, where)
            W = B if attrs.get("transB", 0) else B.T  # (n_out, n_in)
            W = np.asarray(W, dtype=np.float64) * float(attrs.get("alpha", 1.0))
            b = np.zeros(W.shape[0])
            if len(node.input) > 2 and node.input[2]:
                C = np.asarray(_constant(const, node.input[2], what, where), dtype=np.float64)
                b = float(attrs.get("beta", 1.0)) * np.broadcast_to(C.reshape(-1), (W.shape[0],))
            steps.append(_affine(W, b, width, what, where))
            width = W.shape[0]
        elif op == "MatMul":
            if node.input[0] != current:
                raise ModelError(f"{what}: {where}: the weights must be the second input")
            B = np.asarray(_constant(const, node.input[1], what, where), dtype=np.float64)
            if B.ndim != 2:
                raise ModelError(f"{what}: {where}: weights of shape {list(B.shape)}, not 2-D")
            steps.append(_affine(B.T, np.zeros(B.shape[1]), width, what, where))
            width = B.shape[1]
        elif op == "Add":
            if last_op not in ("MatMul", "Gemm") or len(others) != 1:
                raise ModelError(f"{what}: {where} is not the bias of a MatMul or Gemm")
            C = np.asarray(_constant(const, others[0], what, where), dtype=np.float64).reshape(-1)
            prev = steps[-1]
            assert isinstance(prev, Affine)
            if C.size not in (1, prev.W.shape[0]):
                raise ModelError(f"{what}: {where}: a bias of {C.size} values for {prev.W.shape[0]} outputs")
            steps[-1] = Affine(prev.W, prev.b + np.broadcast_to(C, prev.b.shape))
        elif op in ACTIVATIONS:
            if op == "Softmax":
                axis = attrs.get("axis", 1 if opset < 13 else -1)
                if axis not in (1, -1):
                    raise ModelError(f"{what}: {where} over axis {axis}; "
                                     "boardnet's softmax is over the features")
            steps.append(Act(ACTIVATIONS[op]))
        elif op in NO_OPS:
            if op == "Flatten" and attrs.get("axis", 1) != 1:
                raise ModelError(f"{what}: {where} with axis {attrs['axis']} is not a no-op")
            if op == "Reshape":
                shape = [int(v) for v in _constant(const, node.input[1], what, where).reshape(-1)]
                if len(shape) != 2 or shape[0] not in (-1, 0) or shape[1] not in (-1, width):
                    raise ModelError(f"{what}: {where} to {shape} is not a no-op on (batch, {width})")
        else:
            raise ModelError(f"{what}: {where} is not supported; boardnet imports {SUPPORTED}")
        last_op = op
        current = node.output[0]
    if current != graph.output[0].name:
        raise ModelError(f"{what}: the chain of layers ends at {current!r}, not at the graph's output")
    if any(isinstance(s, Act) and s.name == "softmax" for s in steps[:-1]):
        raise ModelError(f"{what}: a Softmax before the last layer; boardnet takes it as the output only")

    Ws, bs, acts, notes = layers_from_steps(steps, what)
    output, n_out = acts[-1], Ws[-1].shape[0]
    if output == "softmax" or output == "sigmoid":
        task = "binary" if output == "sigmoid" and n_out == 1 else "multiclass"
        labels = labels or ([str(i) for i in range(n_out)] if task == "multiclass" else ["0", "1"])
    else:
        if labels:
            raise ModelError(f"{what}: --labels names classes, but the graph ends without a Sigmoid or "
                             "Softmax (a regression, or logits)")
        task = "regression"
    dtypes = sorted({str(np.asarray(v).dtype) for v in const.values() if np.asarray(v).dtype.kind == "f"})
    producer = f"{proto.producer_name} {proto.producer_version}".strip()
    model = build(
        Ws, bs, acts, name=name, features=features, labels=labels, task=task, target=target or "y",
        normalization=None, what=what,
        provenance=provenance(path, "onnx", onnx.__version__, producer=producer or "unknown",
                              opset=int(opset), dtype=", ".join(dtypes) or "none"),
    )
    return Imported(model, notes, {"path": str(path), "input": inputs[0].name,
                                   "float64": dtypes == ["float64"]})


def _constant(const: dict[str, np.ndarray], name: str, what: str, where: str) -> np.ndarray:
    if name not in const:
        raise ModelError(f"{what}: {where}: input {name!r} is not a constant (an initializer or a "
                         "Constant node); boardnet imports fixed weights")
    return const[name]


def _affine(W: np.ndarray, b: np.ndarray, width: int | None, what: str, where: str) -> Affine:
    if width is not None and W.shape[1] != width:
        raise ModelError(f"{what}: {where} takes {W.shape[1]} inputs, the tensor before it has {width}")
    return Affine(np.ascontiguousarray(W), np.asarray(b, dtype=np.float64).copy())


def verify(imported: Imported, n: int = 1000, seed: int = 0) -> dict[str, Any] | None:
    """The imported model's float64 outputs against onnxruntime's on random inputs; None when
    onnxruntime is not installed."""
    try:
        import onnxruntime
    except ImportError:
        return None
    model, source = imported.model, imported.source
    dtype = np.float64 if source["float64"] else np.float32
    X = np.random.default_rng(seed).normal(0, 2, (n, model.n_in)).astype(dtype)
    session = onnxruntime.InferenceSession(source["path"], providers=["CPUExecutionProvider"])
    theirs = session.run(None, {source["input"]: X})[0]
    diff, rel = relative_difference(model.predict(X.astype(np.float64)), theirs)
    return {"against": f"onnxruntime {onnxruntime.__version__} ({np.dtype(dtype).name})", "n": n,
            "max_abs_difference": diff, "max_relative_difference": rel}
