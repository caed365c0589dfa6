"""`boardnet import`: scikit-learn pickles and ONNX graphs made here (and from PyTorch when it
is installed) round-trip into model files whose float64 outputs are the source library's, to
1e-9 relative for float64 sources and within float32 rounding for float32 ones; what boardnet
cannot compute exactly is refused with one line and exit 2; an imported model runs on a C
board at 0 ulp.

scikit-learn, onnx and onnxruntime are the `import` extra (in `dev` too, so CI has them);
PyTorch is optional: its test skips when torch is not installed (too big for CI), as a plain
skip, not a required tool.
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from conftest import need, need_emulated

from boardnet.cli import main
from boardnet.model import Model

try:  # the import extra, in dev too: CI has them, and under BOARDNET_REQUIRE_TOOLS=1 must
    import joblib
    import onnx
    import onnxruntime as ort
    import sklearn
    from onnx import TensorProto, helper, numpy_helper
    from sklearn.decomposition import PCA
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import MinMaxScaler, StandardScaler

    MISSING = None
except ImportError as e:  # pragma: no cover - a bare install
    MISSING = f"the import extra is not installed ({e}): pip install 'boardnet[import]'"


@pytest.fixture(autouse=True)
def _import_extra():
    need(MISSING is None, MISSING or "")


FLOAT64_RTOL = 1e-9


def dataset(n_classes: int, n: int = 240, n_in: int = 8, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.normal(0, 1, (n, n_in)) * np.arange(1, n_in + 1) + 50  # raw units, not centred
    score = (X[:, 0] - 50) + (X[:, 1] - 50) / 2 - (X[:, 2] - 50) / 3
    if n_classes == 0:
        return X, score + 0.1 * rng.normal(size=n)
    edges = np.quantile(score, np.linspace(0, 1, n_classes + 1)[1:-1])
    return X, np.array(["cat", "dog", "emu", "fox"])[np.searchsorted(edges, score)]


def fitted(estimator, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: a short fit is enough here
        return estimator.fit(X, y)


def run(*argv: str) -> tuple[int, str, str]:
    proc = subprocess.run([sys.executable, "-m", "boardnet.cli", *argv], capture_output=True, text=True,
                          timeout=120)
    return proc.returncode, proc.stdout, proc.stderr


def theirs_of(est, X: np.ndarray, model: Model) -> np.ndarray:
    if model.task == "regression":
        return est.predict(X).reshape(len(X), -1)
    p = est.predict_proba(X)
    return p[:, 1:] if model.task == "binary" else p


def relative(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64).reshape(np.shape(a))
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.where(a == b, 0.0, np.abs(a - b) / np.abs(b)).max())


# ---- scikit-learn ------------------------------------------------------------------------------
KINDS = {"binary": 2, "multiclass": 3, "regression": 0}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("activation", ["logistic", "tanh", "relu", "identity"])
def test_sklearn_round_trip(kind, activation, tmp_path, capsys):
    X, y = dataset(KINDS[kind], seed=len(activation))
    cls = MLPRegressor if kind == "regression" else MLPClassifier
    est = fitted(cls(hidden_layer_sizes=(12, 6), activation=activation, max_iter=200, random_state=1), X, y)
    path = tmp_path / "mlp.pkl"
    path.write_bytes(pickle.dumps(est))
    out = tmp_path / "mlp.json"
    assert main(["import", str(path), "-o", str(out), "--trust-pickle", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    model = Model.load(out)
    hidden = {"logistic": "sigmoid", "identity": None}.get(activation, activation)
    output = {"binary": "sigmoid", "multiclass": "softmax", "regression": "linear"}[kind]
    assert [str(a.activation) for a in model.layers] == ([hidden, hidden] if hidden else []) + [output]
    assert model.task == kind and model.sizes[0] == 8
    if kind != "regression":
        assert list(model.labels) == [str(c) for c in est.classes_]
    Xt = dataset(KINDS[kind], n=500, seed=9)[0]
    assert relative(model.predict(Xt), theirs_of(est, Xt, model)) <= FLOAT64_RTOL
    assert result["parity"]["max_relative_difference"] <= FLOAT64_RTOL
    if activation == "identity":  # three affine maps, one layer: the same function
        assert model.sizes == [8, model.n_out] and "folded" in " ".join(result["notes"])
    p = model.provenance
    assert p["library"] == "scikit-learn" and p["library_version"] == sklearn.__version__
    assert p["source"] == "mlp.pkl" and len(p["sha256"]) == 64 and p["estimator"] == type(est).__name__


@pytest.mark.parametrize("scalers", [[StandardScaler()], [MinMaxScaler((-1, 1))],
                                     [StandardScaler(), MinMaxScaler()]], ids=["standard", "minmax", "both"])
def test_sklearn_pipeline_scalers_fold_into_the_normalisation(scalers, tmp_path):
    X, y = dataset(3, seed=3)
    steps = [(f"scale{i}", s) for i, s in enumerate(scalers)]
    pipe = fitted(Pipeline([*steps, ("mlp", MLPClassifier((16,), activation="relu", max_iter=300,
                                                          random_state=0))]), X, y)
    pipe.steps[0][1].feature_names_in_ = np.array([f"f{j}" for j in range(8)], dtype=object)  # as from a DataFrame
    path = tmp_path / "pipe.joblib"
    joblib.dump(pipe, path)
    out = tmp_path / "pipe.json"
    code, stdout, stderr = run("import", str(path), "-o", str(out), "--trust-pickle", "--target", "animal")
    assert code == 0, stderr
    assert "runs the code" in stderr and "folded into the model's normalisation" in stdout
    model = Model.load(out)
    assert model.features == tuple(f"f{j}" for j in range(8)) and model.target == "animal"
    assert model.labels == ("cat", "dog", "emu") and model.layers[-1].activation == "softmax"
    assert model.normalization.method == ("minmax" if len(scalers) == 1 and "MinMax" in str(scalers[0])
                                          else "standard")
    Xt = dataset(3, n=500, seed=8)[0]
    assert relative(model.predict(Xt), pipe.predict_proba(Xt)) <= FLOAT64_RTOL
    # info shows where it came from
    code, stdout, _ = run("info", str(out))
    assert code == 0 and "imported from pipe.joblib (sha256 " in stdout and "scikit-learn" in stdout
    assert "layers   16 relu, 3 softmax" in stdout


def test_a_pickle_needs_trust_pickle(tmp_path):
    X, y = dataset(2)
    path = tmp_path / "m.pkl"
    path.write_bytes(pickle.dumps(fitted(MLPClassifier((4,), max_iter=50), X, y)))
    code, stdout, stderr = run("import", str(path), "-o", str(tmp_path / "m.json"))
    assert code == 2 and stdout == "" and not (tmp_path / "m.json").exists()
    assert stderr.count("\n") == 1 and "loading a pickle runs code" in stderr and "--trust-pickle" in stderr


def sklearn_refusals(tmp_path):
    X, y = dataset(3)
    pca = fitted(Pipeline([("pca", PCA(4)), ("mlp", MLPClassifier((4,), max_iter=50))]), X, y)
    odd = fitted(MLPClassifier((4,), max_iter=50), X, y)
    odd.activation = "softplus"  # no such activation in boardnet (nor in scikit-learn's fit)
    yield "pca", pca, "pipeline step 'pca' is a PCA, not a scaler"
    yield "softplus", odd, "unknown hidden activation 'softplus'"


# ---- ONNX --------------------------------------------------------------------------------------
def gemm_graph(layers, activations, *, dtype=np.float32, transB=True, input_shape=("batch", 8),
               extra_nodes=(), name="net") -> onnx.ModelProto:
    """A graph as torch.onnx.export writes nn.Sequential(Linear, act, ...): Gemm with transB=1."""
    elem = TensorProto.DOUBLE if dtype == np.float64 else TensorProto.FLOAT
    nodes, inits, current = [], [], "x"
    for k, ((W, b), act) in enumerate(zip(layers, activations)):
        B = W if transB else W.T
        inits += [numpy_helper.from_array(B.astype(dtype), f"W{k}"), numpy_helper.from_array(b.astype(dtype), f"b{k}")]
        nodes.append(helper.make_node("Gemm", [current, f"W{k}", f"b{k}"], [f"z{k}"], name=f"/{k}/Gemm",
                                      transB=int(transB)))
        current = f"z{k}"
        if act:
            nodes.append(helper.make_node(act, [current], [f"a{k}"], name=f"/{k}/{act}",
                                          **({"axis": 1} if act == "Softmax" else {})))
            current = f"a{k}"
    for op, attrs in extra_nodes:
        nodes.append(helper.make_node(op, [current, *attrs.pop("inputs", [])], [f"{op}_out"], name=f"/x/{op}", **attrs))
        current = f"{op}_out"
    nodes.append(helper.make_node("Identity", [current], ["y"], name="/out"))
    graph = helper.make_graph(nodes, name, [helper.make_tensor_value_info("x", elem, list(input_shape))],
                              [helper.make_tensor_value_info("y", elem, ["batch", len(layers[-1][1])])], inits)
    return helper.make_model(graph, producer_name="boardnet-test", opset_imports=[helper.make_opsetid("", 17)])


def matmul_graph(layers, activations, dtype=np.float32) -> onnx.ModelProto:
    """As tf2onnx writes a Keras Sequential of Dense layers: MatMul then Add, weights [in][out],
    Identity and Reshape/Flatten no-ops, a dynamic batch ('unk__')."""
    nodes = [helper.make_node("Flatten", ["x"], ["flat"], name="flatten"),
             helper.make_node("Reshape", ["flat", "shape"], ["x2"], name="reshape")]
    inits = [numpy_helper.from_array(np.array([-1, 8], dtype=np.int64), "shape")]
    current = "x2"
    for k, ((W, b), act) in enumerate(zip(layers, activations)):
        inits += [numpy_helper.from_array(W.T.astype(dtype), f"dense_{k}/kernel"),
                  numpy_helper.from_array(b.astype(dtype), f"dense_{k}/bias")]
        nodes += [helper.make_node("MatMul", [current, f"dense_{k}/kernel"], [f"mm{k}"], name=f"dense_{k}/MatMul"),
                  helper.make_node("Add", [f"mm{k}", f"dense_{k}/bias"], [f"add{k}"], name=f"dense_{k}/BiasAdd")]
        current = f"add{k}"
        if act:
            nodes.append(helper.make_node(act, [current], [f"act{k}"], name=f"dense_{k}/{act}"))
            current = f"act{k}"
    nodes.append(helper.make_node("Identity", [current], ["dense_out"], name="Identity"))
    elem = TensorProto.DOUBLE if dtype == np.float64 else TensorProto.FLOAT
    graph = helper.make_graph(nodes, "keras", [helper.make_tensor_value_info("x", elem, ["unk__6", 8])],
                              [helper.make_tensor_value_info("dense_out", elem, ["unk__7", 3])], inits)
    return helper.make_model(graph, producer_name="tf2onnx", producer_version="1.16.1",
                             opset_imports=[helper.make_opsetid("", 13)])


def random_layers(sizes, seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.normal(0, 1 / np.sqrt(i), (o, i)), rng.normal(0, 0.3, o)) for i, o in zip(sizes[:-1], sizes[1:])]


def ort_outputs(path, X):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: X})[0]


ONNX_CASES = {
    "gemm tanh-softmax": (gemm_graph, ("Tanh", "Softmax"), "softmax"),
    "gemm relu-sigmoid": (gemm_graph, ("Relu", "Sigmoid"), "sigmoid"),
    "gemm sigmoid-linear": (gemm_graph, ("Sigmoid", None), "linear"),
    "matmul relu-tanh-softmax": (matmul_graph, ("Relu", "Tanh", "Softmax"), "softmax"),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("case", ONNX_CASES)
def test_onnx_round_trip(case, dtype, tmp_path, capsys):
    make, acts, output = ONNX_CASES[case]
    sizes = [8, 16, 3] if len(acts) == 2 else [8, 16, 8, 3]
    if output == "sigmoid":
        sizes[-1] = 1
    proto = make(random_layers(sizes, seed=len(case)), acts, dtype=dtype)
    onnx.checker.check_model(proto)
    path = tmp_path / "net.onnx"
    onnx.save(proto, path)
    out = tmp_path / "net.json"
    labels = ["--labels", "a,b,c"] if output == "softmax" else []
    assert main(["import", str(path), "-o", str(out), *labels, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    model = Model.load(out)
    assert str(model.layers[-1].activation) == output and model.sizes == sizes
    assert model.task == {"softmax": "multiclass", "sigmoid": "binary", "linear": "regression"}[output]
    X = np.random.default_rng(3).normal(0, 2, (500, 8)).astype(dtype)
    theirs = ort_outputs(path, X)
    ours = model.predict(X.astype(np.float64))
    if dtype == np.float64:
        assert relative(ours, theirs) <= FLOAT64_RTOL
        assert result["parity"]["max_relative_difference"] <= FLOAT64_RTOL
    else:  # onnxruntime rounds to float32 at every step, as the board does in its own order
        assert np.abs(ours - theirs).max() <= 1e-5 * max(1.0, float(np.abs(theirs).max()))
        assert np.abs(model.predict32(X) - theirs).max() <= 1e-5 * max(1.0, float(np.abs(theirs).max()))
    assert model.provenance["library"] == "onnx" and model.provenance["producer"].startswith(proto.producer_name)
    assert model.provenance["dtype"] == np.dtype(dtype).name


def onnx_refusals():
    layers = random_layers([8, 16, 3])
    conv = gemm_graph(layers, ("Relu", "Softmax"))
    conv.graph.node.insert(0, helper.make_node("Conv", ["x", "W0"], ["c"], name="conv1"))
    conv.graph.node[1].input[0] = "c"
    yield "conv", conv, r"node conv1 \(Conv\) is not supported; boardnet imports Gemm"
    yield "3-D", gemm_graph(layers, ("Relu", "Softmax"), input_shape=("batch", 4, 8)), \
        r"input 'x' is 3-D \['batch', 4, 8\]; boardnet imports a 2-D input"
    yield "leaky", gemm_graph(layers, ("LeakyRelu", "Softmax")), r"node /0/LeakyRelu \(LeakyRelu\) is not supported"


@pytest.mark.parametrize("case", ["conv", "3-D", "leaky", "pca", "softplus"])
def test_refusals_are_one_line_and_exit_2(case, tmp_path):
    if case in ("pca", "softplus"):
        _, obj, message = next(c for c in sklearn_refusals(tmp_path) if c[0] == case)
        path = tmp_path / "m.joblib"
        joblib.dump(obj, path)
        argv = ["--trust-pickle"]
    else:
        _, proto, message = next(c for c in onnx_refusals() if c[0] == case)
        path = tmp_path / "m.onnx"
        onnx.save(proto, path)
        argv = []
    code, stdout, stderr = run("import", str(path), "-o", str(tmp_path / "m.json"), *argv)
    assert code == 2 and stdout == "" and not (tmp_path / "m.json").exists()
    lines = [line for line in stderr.splitlines() if not line.startswith("boardnet: warning:")]
    assert len(lines) == 1 and lines[0].startswith("boardnet: error: "), stderr
    import re

    assert re.search(message, lines[0]), lines[0]


def test_pytorch_sequential_round_trip(tmp_path):
    """torch.onnx.export of nn.Sequential(Linear, Tanh, Linear, ReLU, Linear, Softmax); skips
    without PyTorch (optional: not installed in CI)."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 8), torch.nn.ReLU(),
                              torch.nn.Linear(8, 3), torch.nn.Softmax(dim=1)).eval()
    path = tmp_path / "torch.onnx"
    torch.onnx.export(net, (torch.zeros(1, 8),), str(path), dynamo=False, input_names=["x"],
                      output_names=["y"], dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}})
    code, stdout, stderr = run("import", str(path), "-o", str(tmp_path / "torch.json"), "--labels", "a,b,c")
    assert code == 0, stderr
    model = Model.load(tmp_path / "torch.json")
    assert [str(layer.activation) for layer in model.layers] == ["tanh", "relu", "softmax"]
    assert model.provenance["producer"].startswith("pytorch")
    X = np.random.default_rng(0).normal(0, 2, (500, 8)).astype(np.float32)
    with torch.no_grad():
        theirs = net(torch.from_numpy(X)).numpy()
    assert np.abs(model.predict(X.astype(np.float64)) - theirs).max() <= 1e-5
    assert np.abs(model.predict32(X) - theirs).max() <= 1e-5


# ---- the model file ------------------------------------------------------------------------------
def test_an_old_schema_1_file_loads_unchanged():
    """tests/data/people_schema1.json was written by boardnet before schema 2 (commit da326d4)."""
    from pathlib import Path

    path = Path(__file__).parent / "data" / "people_schema1.json"
    d = json.loads(path.read_text())
    assert d["schema"] == 1
    model = Model.load(path)
    assert model.fingerprint() == d["fingerprint"] and model.provenance == {}
    assert [str(layer.activation) for layer in model.layers] == d["activations"]
    assert Model.from_dict(model.to_dict()).fingerprint() == d["fingerprint"]
    assert model.to_dict()["schema"] == 2


# ---- on a C board --------------------------------------------------------------------------------
@pytest.mark.cross
@pytest.mark.qemu
@pytest.mark.slow
def test_imported_tanh_relu_softmax_models_check_at_0_ulp_on_the_c_boards(tmp_path):
    """The whole pipeline for imported models: scikit-learn Pipelines (tanh and relu hidden
    layers, softmax output) -> import -> check on the emulated Cortex-M0 and RISC-V boards (the
    firmware built with the model's header) at 0 ulp, and the q15 form at identical integers."""
    need_emulated("m0")
    need_emulated("rv32")
    X, y = dataset(3, seed=5)
    models = {}
    for activation in ("tanh", "relu"):
        pipe = fitted(Pipeline([("s", StandardScaler()), ("mlp", MLPClassifier((16,), activation=activation,
                                                                               max_iter=300, random_state=2))]), X, y)
        path = tmp_path / f"{activation}.joblib"
        joblib.dump(pipe, path)
        out = tmp_path / f"{activation}.json"
        code, _, stderr = run("import", str(path), "-o", str(out), "--trust-pickle")
        assert code == 0, stderr
        models[activation] = out
    jobs = [("tanh", "m0", "f32"), ("relu", "rv32", "f32"), ("relu", "m0", "q15")]

    def check(job):
        activation, target, precision = job
        return run("check", str(models[activation]), "--port", f"sim-{target}", "--precision", precision,
                   "--n", "300", "--json")

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(check, jobs))
    for (activation, target, precision), (code, stdout, stderr) in zip(jobs, results):
        assert code == 0, stderr
        report = json.loads(stdout)
        assert report["passed"] and report["n"] == 300, (activation, target, precision)
        assert report["max_ulp"] == 0  # ulps for f32, integer steps for q15
        assert report["board"]["runtime"] == "c" and report["board"]["platform"] == f"qemu-{target}"
