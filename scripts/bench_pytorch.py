#!/usr/bin/env python3
"""Runs the steps of `swift run -c release bench` with PyTorch, for a side-by-side comparison on one machine.

The modules are the experiment's original PyTorch C4CNN (lifting convolution over the four rotations, group
convolutions, rotation pooling) and CNN, with the same shapes, batch size and thread count as the Swift benchmark.
Every timing is the median of R runs after a warm-up run. `--json` prints one JSON object whose keys are those of
`bench --json`.

Needs `torch` (CPU): `python3 -m pip install torch`. With `--check DIR` it first verifies that this C4CNN
reproduces the logits of DIR/model_c4cnn.safetensors (needs `safetensors` or `numpy`).
"""

import argparse
import json
import os
import resource
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


# ---------------------------------------------------------------------------------------------------------------
# The original modules


class LiftingConv(nn.Module):
    """Image -> function on C4: the filter is applied in its four rotations (channel index o * 4 + r)."""

    def __init__(self, in_channels, out_channels, kernel_size=3, padding=1):
        super().__init__()
        self.padding = padding
        std = 1 / (in_channels * out_channels) ** 0.5
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size) * std)
        self.bias = nn.Parameter(torch.randn(out_channels))

    def filters(self):
        w = torch.stack([torch.rot90(self.weight, r, dims=(-2, -1)) for r in range(4)], dim=1)
        w = w.reshape(-1, *self.weight.shape[1:])
        return w, self.bias.repeat_interleave(4)

    def forward(self, x):
        w, b = self.filters()
        y = F.conv2d(x, w, b, padding=self.padding)
        return y.view(y.shape[0], -1, 4, y.shape[-2], y.shape[-1])


class GroupConv(nn.Module):
    """Function on C4 -> function on C4: for output rotation r the filter is rotated by r and its input-rotation
    axis rolled by r."""

    def __init__(self, in_channels, out_channels, kernel_size=3, padding=1):
        super().__init__()
        self.padding = padding
        std = 1 / (in_channels * out_channels) ** 0.5
        self.weight = nn.Parameter(
            torch.randn(out_channels, in_channels, 4, kernel_size, kernel_size) * std)
        self.bias = nn.Parameter(torch.randn(out_channels))

    def filters(self):
        w = self.weight
        rotated = [torch.rot90(torch.roll(w, r, dims=2), r, dims=(-2, -1)) for r in range(4)]
        stacked = torch.stack(rotated, dim=1)  # (out, 4, in, 4, k, k)
        o, _, i, g, kh, kw = stacked.shape
        return stacked.reshape(o * 4, i * g, kh, kw), self.bias.repeat_interleave(4)

    def forward(self, x):
        b, c, g, h, w_ = x.shape
        weight, bias = self.filters()
        y = F.conv2d(x.reshape(b, c * g, h, w_), weight, bias, padding=self.padding)
        return y.view(b, -1, 4, y.shape[-2], y.shape[-1])


class RotationPooling(nn.Module):
    def forward(self, x):
        return torch.cat([torch.rot90(x, r, dims=(-2, -1)) for r in range(4)], dim=2).mean(dim=2)


class C4CNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.liftingconv = LiftingConv(1, 8)
        layers = []
        widths = [8, 16, 32, 64, 128]
        for i in range(4):
            layers += [GroupConv(widths[i], widths[i + 1]), nn.ReLU()]
            if i < 3:
                layers.append(nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)))
        self.groupconv_encoder = nn.Sequential(*layers)
        self.pooling = RotationPooling()
        self.head = nn.Sequential(nn.Linear(128 * 5 * 5, 256), nn.ReLU(), nn.Linear(256, 32), nn.ReLU(),
                                  nn.Linear(32, 10))

    def forward(self, x):
        x = self.liftingconv(x)
        x = self.groupconv_encoder(x)
        x = self.pooling(x)
        return self.head(x.flatten(1))


class CNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.first_conv = nn.Conv2d(1, 8, 3)
        layers = []
        widths = [8, 16, 32, 64, 128]
        for i in range(4):
            layers += [nn.Conv2d(widths[i], widths[i + 1], 3), nn.ReLU()]
            if i < 3:
                layers.append(nn.MaxPool2d(3, 2, 1))
        self.convs = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Linear(128, 32), nn.ReLU(), nn.Linear(32, 10))

    def forward(self, x):
        x = self.convs(F.relu(self.first_conv(x)))
        return self.head(x.flatten(1))


# ---------------------------------------------------------------------------------------------------------------
# Measurement


CLOCK = time.perf_counter


def median(runs, body, warmup=1, prepare=None):
    """Median seconds of `runs` calls of body after a warm-up; with `prepare`, body(prepare()) and only body timed."""
    call = (lambda: body(prepare())) if prepare else body
    for _ in range(warmup):
        call()
    times = []
    for _ in range(runs):
        args = (prepare(),) if prepare else ()
        start = CLOCK()
        body(*args)
        times.append(CLOCK() - start)
    return statistics.median(times)


def current_rss_mib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / (1024 * 1024)


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


CONV_LAYERS = [
    ("lifting", (64, 1, 33, 33), (32, 1, 3, 3)),
    ("group1", (64, 32, 33, 33), (64, 32, 3, 3)),
    ("group2", (64, 64, 17, 17), (128, 64, 3, 3)),
    ("group3", (64, 128, 9, 9), (256, 128, 3, 3)),
    ("group4", (64, 256, 5, 5), (512, 256, 3, 3)),
]


def bench_model(r, name, model, repeats, memory):
    gen = torch.Generator().manual_seed(70)
    images = torch.randn(64, 1, 33, 33, generator=gen)
    labels = torch.randint(0, 10, (64,), generator=gen)
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5, weight_decay=1e-5)
    model.train()
    before = current_rss_mib()

    def step():
        loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    r[f"{name}.train_step.ms"] = median(repeats, step) * 1e3
    if memory:
        peak = peak_rss_mib()
        r[f"memory.{name}.train_peak_rss_mb"] = peak
        r[f"memory.{name}.train_step_growth_mb"] = peak - before
    model.eval()

    def infer():
        with torch.no_grad():
            model(images)

    r[f"{name}.inference.ms"] = median(repeats, infer) * 1e3
    model.train()


def bench_sgemm(r, repeats):
    n = 2048
    a, b = torch.randn(n, n), torch.randn(n, n)
    seconds = median(max(3, repeats // 2), lambda: torch.mm(a, b))
    r["sgemm.gflops"] = 2 * n ** 3 / seconds * 1e-9


def bench_convolutions(r, repeats):
    peak = r.get("sgemm.gflops")
    for name, in_shape, w_shape in CONV_LAYERS:
        x = torch.randn(*in_shape)
        w = torch.randn(*w_shape) * 0.1
        b = torch.randn(w_shape[0])
        g = torch.randn(in_shape[0], w_shape[0], in_shape[2], in_shape[3])
        flops = 2 * in_shape[0] * in_shape[2] * in_shape[3] * w_shape[0] * w_shape[1] * w_shape[2] * w_shape[3]

        def forward():
            with torch.no_grad():
                F.conv2d(x, w, b, padding=1)

        # Each backward is timed alone, after an untimed forward that records what it needs.
        def forward_with_input():
            return F.conv2d(x.clone().requires_grad_(True), w, b, padding=1)

        def forward_with_weight():
            return F.conv2d(x, w.clone().requires_grad_(True), b, padding=1)

        def backward(y):
            y.backward(g)

        t_forward = median(repeats, forward)
        parts = [("forward", t_forward)]
        # The lifting layer reads the image, which needs no gradient in training.
        if name != "lifting":
            parts.append(("backward_input", median(repeats, backward, prepare=forward_with_input)))
        parts.append(("backward_weight", median(repeats, backward, prepare=forward_with_weight)))
        for part, seconds in parts:
            key = f"conv.{name}.{part}"
            r[f"{key}.ms"] = seconds * 1e3
            r[f"{key}.gflops"] = flops / seconds * 1e-9
            if peak:
                r[f"{key}.peak_share"] = flops / seconds * 1e-9 / peak


def bench_pooling(r, repeats):
    pool = nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1))
    shapes = [("pool1", (64, 16, 4, 33, 33)), ("pool2", (64, 32, 4, 17, 17)), ("pool3", (64, 64, 4, 9, 9))]
    for name, shape in shapes:
        x = torch.randn(*shape)

        def forward():
            with torch.no_grad():
                pool(x)

        g = torch.randn(*pool(x).shape)

        def forward_with_input():
            return pool(x.clone().requires_grad_(True))

        def backward(y):
            y.backward(g)

        r[f"maxpool.{name}.forward.ms"] = median(repeats, forward) * 1e3
        r[f"maxpool.{name}.backward.ms"] = median(repeats, backward, prepare=forward_with_input) * 1e3


def bench_filters(r, repeats):
    model = C4CNN()
    layers = [model.liftingconv] + [m for m in model.groupconv_encoder if isinstance(m, GroupConv)]

    def build():
        for layer in layers:
            layer.filters()

    r["filters.expand.ms"] = median(repeats, build) * 1e3


STEP_MAPS = [(64, 64, 33, 33), (64, 128, 17, 17), (64, 256, 9, 9), (64, 512, 5, 5)]


def bench_parts(r, repeats):
    """The parts of a C4CNN step outside the convolutions, as bench's `parts` section times them."""
    maps = [torch.randn(*shape) for shape in STEP_MAPS]
    seeds = [torch.randn(*shape) for shape in STEP_MAPS]

    def relu_forward():
        with torch.no_grad():
            for x in maps:
                F.relu(x)

    r["parts.relu.forward.ms"] = median(repeats, relu_forward) * 1e3

    # One backward per map, as bench times them: the sum of their medians.
    r["parts.relu.backward.ms"] = sum(
        median(repeats, lambda y, g=g: y.backward(g), prepare=lambda x=x: F.relu(x.detach().requires_grad_()))
        for x, g in zip(maps, seeds)) * 1e3

    def add():
        with torch.no_grad():
            maps[0] + seeds[0]

    r["parts.add.ms"] = median(repeats, add) * 1e3

    head = nn.Sequential(nn.Linear(3200, 256), nn.ReLU(), nn.Linear(256, 32), nn.ReLU(), nn.Linear(32, 10))
    head.train()
    features = torch.randn(64, 3200)
    labels = torch.arange(64) % 10

    def head_step():
        loss = F.cross_entropy(head(features), labels)
        head.zero_grad()
        loss.backward()

    r["parts.head.step.ms"] = median(repeats, head_step) * 1e3

    model = C4CNN()
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5, weight_decay=1e-5)
    F.cross_entropy(model(torch.randn(64, 1, 33, 33)), labels).backward()
    r["parts.adamw.step.ms"] = median(repeats, optimizer.step) * 1e3


def check_reference(directory):
    """Loads the reference parameters into this C4CNN and compares its logits with the stored ones."""
    path = os.path.join(directory, "model_c4cnn.safetensors")
    try:
        from safetensors.torch import load_file
        tensors = load_file(path)
    except ImportError:
        tensors = read_safetensors(path)
    model = C4CNN()
    state = {k[len("param."):]: v for k, v in tensors.items() if k.startswith("param.")}
    model.load_state_dict(state)
    model.eval()
    with torch.no_grad():
        logits = model(tensors["input"].float())
    expected = tensors["logits"].float()
    error = ((logits - expected).abs().max() / expected.abs().max()).item()
    print(f"reference check: C4CNN logits relative error {error:.2e}", file=sys.stderr)
    if error > 1e-4:
        sys.exit("reference check failed: this C4CNN does not reproduce the reference logits")


def read_safetensors(path):
    """A minimal safetensors reader (F32 and I64) for when the `safetensors` package is absent."""
    import struct
    with open(path, "rb") as f:
        data = f.read()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + length])
    base = 8 + length
    dtypes = {"F32": torch.float32, "I64": torch.int64, "F64": torch.float64}
    result = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        begin, end = entry["data_offsets"]
        raw = bytearray(data[base + begin:base + end])
        result[name] = torch.frombuffer(raw, dtype=dtypes[entry["dtype"]]).reshape(entry["shape"]).clone()
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--only", default="", help="comma-separated: memory, sgemm, conv, pool, filters, parts, steps")
    parser.add_argument("--check", metavar="DIR", help="verify the C4CNN against DIR/model_c4cnn.safetensors")
    parser.add_argument("--cpu-time", action="store_true",
                        help="time by process CPU time instead of wall time (single-threaded runs on a busy machine)")
    args = parser.parse_args()
    if args.cpu_time:
        global CLOCK
        CLOCK = time.process_time
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    only = set(filter(None, args.only.split(",")))

    def wanted(section):
        return not only or section in only

    if args.check:
        check_reference(args.check)

    r = {}
    if wanted("steps") or wanted("memory"):
        bench_model(r, "c4cnn", C4CNN(), args.repeats, memory=True)
        bench_model(r, "cnn", CNN(), args.repeats, memory=False)
    if wanted("sgemm") or wanted("conv"):
        bench_sgemm(r, args.repeats)
    if wanted("conv"):
        bench_convolutions(r, args.repeats)
    if wanted("pool"):
        bench_pooling(r, args.repeats)
    if wanted("filters"):
        bench_filters(r, args.repeats)
    if wanted("parts"):
        bench_parts(r, args.repeats)

    if args.json:
        out = {"framework": "pytorch", "threads": args.threads, "blas": f"torch {torch.__version__}"}
        out.update({k: float(f"{v:.6g}") for k, v in r.items()})
        print(json.dumps(out))
    else:
        print(f"bench_pytorch: {args.threads} thread(s); torch {torch.__version__}")
        for k, v in r.items():
            print(f"{k:<44} {v:10.2f}")


if __name__ == "__main__":
    main()
