#!/usr/bin/env python3
"""PyTorch float32's gradient accuracy on the random model cases that `gradient-accuracy --write DIR` writes.

For every case file DIR/*.safetensors (param.<name> F32, input F32, target I64, grad.float.<name> F32 from the
framework's Float path, grad.double.<name> F64 from its Double path) this computes the gradient of the mean
cross-entropy with respect to every parameter with PyTorch in float64 (the truth) and in float32, and measures, as
the reference cases do, max |g - g_ref| / max |g_ref| per parameter; a case exceeds when any parameter's error is
above 1e-4. It prints per model:

  - how far the framework's Double gradients are from PyTorch's float64 ones (they must agree to ~1e-10 for the
    Double path to stand in for the truth in the tests),
  - the number of cases exceeding 1e-4 for PyTorch float32 and for the framework's Float path, both against PyTorch
    float64.

PyTorch is not a dependency of the project: run this with any Python that has torch (numpy is not needed), e.g.

  swift build -c release --product gradient-accuracy -Xswiftc -enable-testing
  .build/release/gradient-accuracy --model c4cnn --cases 200 --write /tmp/cases
  .build/release/gradient-accuracy --model cnn --cases 200 --write /tmp/cases
  python scripts/gradient_accuracy.py /tmp/cases

  python scripts/gradient_accuracy.py --check-reference ../shared/reference

`--check-reference DIR` first checks the module definitions below against the reference cases
DIR/model_c4cnn.safetensors and DIR/model_cnn.safetensors (PyTorch's own parameters and float64 gradients).
"""

import argparse
import json
import statistics
import struct
import sys
import warnings
from pathlib import Path

warnings.filterwarnings("ignore", message="Failed to initialize NumPy")
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

TOLERANCE = 1e-4

# MARK: - Safetensors

DTYPES = {"F32": torch.float32, "F64": torch.float64, "I64": torch.int64}


def read_safetensors(path):
    """{name: tensor} and the metadata of a safetensors file (F32, F64 and I64 entries)."""
    data = Path(path).read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + length])
    metadata = header.pop("__metadata__", {})
    body = data[8 + length :]
    tensors = {}
    for name, info in header.items():
        if info["dtype"] not in DTYPES:
            sys.exit(f"error: {path}: {name} has dtype {info['dtype']} (supported: {', '.join(DTYPES)})")
        begin, end = info["data_offsets"]
        flat = torch.frombuffer(bytearray(body[begin:end]), dtype=DTYPES[info["dtype"]])
        tensors[name] = flat.reshape(info["shape"]).clone()
    return tensors, metadata


# MARK: - The models
#
# Written from the README's description of the experiment's models; parameter names are the state-dict names of the
# reference cases (`param.*` of model_c4cnn.safetensors and model_cnn.safetensors).


def rotate_p4(w, k):
    """Acts by rotation k on a function on p4 with group axis -3: each plane rot90 by k, plane i moves to i + k."""
    return torch.roll(torch.rot90(w, k, dims=(-2, -1)), shifts=k, dims=-3)


class LiftingConv(nn.Module):
    """(N, in, H, W) -> (N, out, 4, H, W): output plane g is the convolution with the filters rotated by g."""

    def __init__(self, cin, cout):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(cout, cin, 3, 3))
        self.bias = nn.Parameter(torch.zeros(cout))

    def forward(self, x):
        cout = self.weight.shape[0]
        w = torch.stack([torch.rot90(self.weight, g, dims=(-2, -1)) for g in range(4)], dim=1)
        y = F.conv2d(x, w.reshape(cout * 4, *self.weight.shape[1:]), self.bias.repeat_interleave(4), padding=1)
        return y.reshape(y.shape[0], cout, 4, *y.shape[-2:])


class GroupConv(nn.Module):
    """(N, in, 4, H, W) -> (N, out, 4, H, W): output plane g uses the filter on p4 acted on by rotation g."""

    def __init__(self, cin, cout):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(cout, cin, 4, 3, 3))
        self.bias = nn.Parameter(torch.zeros(cout))

    def forward(self, x):
        cout, cin = self.weight.shape[:2]
        w = torch.stack([rotate_p4(self.weight, g) for g in range(4)], dim=1)
        y = F.conv2d(x.flatten(1, 2), w.reshape(cout * 4, cin * 4, 3, 3), self.bias.repeat_interleave(4), padding=1)
        return y.reshape(y.shape[0], cout, 4, *y.shape[-2:])


class C4CNN(nn.Module):
    """(N, 1, 33, 33) -> (N, 10): lifting conv 1->8, group convs 8->16->32->64->128 with ReLU and max pooling
    (1,3,3)/(1,2,2)/(0,1,1) after the first three, group pooling (mean over the group, then over the four
    rotations of the image), Linear 3200->256->32->10 with ReLUs."""

    def __init__(self):
        super().__init__()
        widths = [8, 16, 32, 64, 128]
        self.liftingconv = LiftingConv(1, 8)
        layers = []
        for i in range(4):
            layers += [GroupConv(widths[i], widths[i + 1]), nn.ReLU()]
            if i < 3:
                layers.append(nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)))
        self.groupconv_encoder = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Linear(3200, 256), nn.ReLU(), nn.Linear(256, 32), nn.ReLU(), nn.Linear(32, 10))

    def forward(self, x):
        y = self.groupconv_encoder(self.liftingconv(x)).mean(dim=2)
        y = sum(torch.rot90(y, k, dims=(-2, -1)) for k in range(4)) / 4
        return self.head(y.flatten(1))


# The CNN is the benchmark's twin, the same layers under the same state-dict names.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_pytorch import CNN  # noqa: E402


MODELS = {"c4cnn": C4CNN, "cnn": CNN}


def gradients(model_name, params, image, target, dtype):
    """The logits and {name: gradient} of the mean cross-entropy, in `dtype` (returned in float64), for the
    parameters `params` (by state-dict name)."""
    model = MODELS[model_name]().to(dtype)
    names = {name for name, _ in model.named_parameters()}
    if names != set(params):
        sys.exit(f"error: the case's parameters {sorted(set(params) ^ names)} do not match the {model_name}'s")
    model.load_state_dict({name: value.to(dtype) for name, value in params.items()})
    logits = model(image.to(dtype))
    F.cross_entropy(logits, target).backward()
    grads = {name: p.grad.detach().to(torch.float64) for name, p in model.named_parameters()}
    return logits.detach().to(torch.float64), grads


def relative_error(g, truth):
    """max |g - truth| / max |truth| (max |g - truth| when truth is all zeros)."""
    worst = (g.to(torch.float64) - truth).abs().max().item()
    scale = truth.abs().max().item()
    return worst / scale if scale > 0 else worst


def worst_error(grads, truth):
    """(error, parameter) of the worst parameter."""
    return max((relative_error(grads[name], truth[name]), name) for name in truth)


# MARK: - Checks


def check_reference(directory):
    """The modules above against PyTorch's reference model cases: float64 gradients within float32 storage."""
    ok = True
    for model_name in MODELS:
        tensors, _ = read_safetensors(Path(directory) / f"model_{model_name}.safetensors")
        params = {k[len("param.") :]: v for k, v in tensors.items() if k.startswith("param.")}
        _, truth = gradients(model_name, params, tensors["input"], tensors["target"], torch.float64)
        stored = {name: tensors[f"grad.{name}"].to(torch.float64) for name in truth}
        error, name = worst_error(stored, truth)
        ok = ok and error < 1e-6
        print(f"reference {model_name}: stored float32 gradients vs this script's float64: worst {error:.2e} ({name})")
    if not ok:
        sys.exit("error: the modules here do not reproduce the reference cases")


def survey(directory):
    """Counts the exceeding cases of PyTorch float32 and of the framework's Float path, per model."""
    files = sorted(Path(directory).glob("*.safetensors"))
    if not files:
        sys.exit(f"error: no *.safetensors cases in {directory}")
    results = {}
    for path in files:
        tensors, metadata = read_safetensors(path)
        model_name = metadata.get("model")
        if model_name not in MODELS:
            sys.exit(f"error: {path}: metadata model {model_name!r} is not one of {', '.join(MODELS)}")
        params = {k[len("param.") :]: v for k, v in tensors.items() if k.startswith("param.")}
        logits64, truth = gradients(model_name, params, tensors["input"], tensors["target"], torch.float64)
        logits32, torch32 = gradients(model_name, params, tensors["input"], tensors["target"], torch.float32)
        ours32 = {name: tensors[f"grad.float.{name}"] for name in truth}
        ours64 = {name: tensors[f"grad.double.{name}"] for name in truth}
        row = results.setdefault(model_name, {"cases": 0, "torch": 0, "ours": 0, "double": 0.0, "both": 0,
                                              "torch_logits": [], "ours_logits": []})
        torch_error, _ = worst_error(torch32, truth)
        ours_error, _ = worst_error(ours32, truth)
        double_error, _ = worst_error(ours64, truth)
        double_error = max(double_error, relative_error(tensors["logits.double"], logits64))
        row["torch_logits"].append(relative_error(logits32, logits64))
        row["ours_logits"].append(relative_error(tensors["logits.float"], logits64))
        row["cases"] += 1
        row["torch"] += torch_error > TOLERANCE
        row["ours"] += ours_error > TOLERANCE
        row["both"] += torch_error > TOLERANCE and ours_error > TOLERANCE
        row["double"] = max(row["double"], double_error)
        print(f"{path.stem}: worst error torch float32 {torch_error:.2e}, ours Float {ours_error:.2e}, "
              f"ours Double {double_error:.1e}", flush=True)
    for model_name, row in results.items():
        print(f"{model_name}: {row['cases']} cases; exceeding {TOLERANCE:g}: PyTorch float32 {row['torch']}, "
              f"ours (Float) {row['ours']}, both {row['both']}; ours (Double) vs PyTorch float64: worst "
              f"{row['double']:.1e}; median logits error: PyTorch float32 "
              f"{statistics.median(row['torch_logits']):.2e}, ours {statistics.median(row['ours_logits']):.2e}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("cases", nargs="?", help="folder of cases written by gradient-accuracy --write")
    parser.add_argument("--check-reference", metavar="DIR", help="check the modules against DIR/model_*.safetensors")
    args = parser.parse_args()
    if not args.cases and not args.check_reference:
        parser.error("give a folder of cases, --check-reference DIR, or both")
    torch.set_num_threads(1)
    if args.check_reference:
        check_reference(args.check_reference)
    if args.cases:
        survey(args.cases)


if __name__ == "__main__":
    main()
