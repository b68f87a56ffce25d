"""Interleaved A/B comparisons that hold on a loaded machine: two variants of one computation, timed
alternately (A then B, then B then A) in one process, each call in *thread CPU time*
(``CLOCK_THREAD_CPUTIME_ID``: the time another process takes the core is not counted), reported as
the median and quartiles of the per-round ratios B/A. They decide the kernel dispatch tables and the
fused optimizers; the suite's wall-clock, PyTorch-relative figures stay the ones that count.

    python -m benchmarks.ab conv [--repeats 80]            # kernels.conv.cpu: each path against per-sample
    python -m benchmarks.ab conv --model diffusion [--repeats 30]   # each conv shape of a model's step, each
                                                           # pass: kernels.conv.cpu against PyTorch's
    python -m benchmarks.ab optim MODEL [--repeats 200]   # a model's optimizer step: per-parameter vs fused
    python -m benchmarks.ab step MODEL [--repeats 30]     # its whole training step, the same two ways
    python -m benchmarks.ab revisions A B --only PATTERN [--rounds 12]   # two git revisions (or WORKTREE)
        [--contender 'scratchgen compiled[cpu]']                          # another contender than eager
    python -m benchmarks.ab elementwise [--repeats 80]     # float32 sigmoid, row scatter-add kernels vs
                                                           # NumPy/SciPy; SiLU, GELU ops vs their compositions
    python -m benchmarks.ab norms [--repeats 80]           # kernels.normalization: cpu vs reference; the
                                                           # fused GroupNorm op vs its former composition
    python -m benchmarks.ab lstm [--repeats 30]            # the LSTM forward and its GEMMs against PyTorch's
    python -m benchmarks.ab attention [--repeats 5]        # the attention forward by phase, T=1024, 4096
"""
import argparse
import collections
import statistics
import sys
import time

import numpy as np

from . import revisions
from .machine import pin_threads

# (x shape, weight shape, stride, padding): the U-Net's 3x3 and 1x1 convolutions on 4x4 and 8x8 maps,
# and DCGAN's stride-2 4x4 ones (their data gradient is the generator's transposed convolution);
# then the U-Net's 8x8 ones, its output and input convolutions, and the DESIGN 16x16 conv2d.
CONV_SHAPES = [((64, 64, 4, 4), (64, 64, 3, 3), 1, 1), ((64, 128, 4, 4), (64, 128, 3, 3), 1, 1),
               ((64, 96, 4, 4), (64, 96, 3, 3), 1, 1), ((64, 64, 4, 4), (192, 64, 1, 1), 1, 0),
               ((64, 96, 8, 8), (32, 96, 1, 1), 1, 0), ((64, 32, 8, 8), (32, 32, 3, 3), 1, 1),
               ((32, 16, 8, 8), (32, 16, 4, 4), 2, 1), ((32, 32, 4, 4), (64, 32, 4, 4), 2, 1),
               ((64, 64, 8, 8), (64, 64, 3, 3), 1, 1), ((64, 96, 8, 8), (32, 96, 3, 3), 1, 1),
               ((64, 32, 8, 8), (1, 32, 3, 3), 1, 1), ((64, 1, 8, 8), (32, 1, 3, 3), 1, 1),
               ((32, 32, 16, 16), (64, 32, 3, 3), 1, 1)]

# (activation, input shape): GELU on the GPT's MLP hidden layer (batch 48, 64 tokens, 4 x 96 features),
# SiLU on the U-Net's 64-channel 8x8 maps (batch 64).
ACTIVATION_SHAPES = [("gelu", (48, 64, 384)), ("gelu_tanh", (48, 64, 384)), ("silu", (64, 64, 8, 8))]


def interleaved_times(a, b, repeats, warmup=3):
    """``(times of a, times of b)``: each call's thread CPU time, in rounds whose order alternates so
    neither side always runs warm."""
    for _ in range(warmup):
        a(), b()
    spent = {a: [], b: []}
    for round_index in range(repeats):
        for variant in ((a, b) if round_index % 2 == 0 else (b, a)):
            start = time.thread_time()
            variant()
            spent[variant].append(time.thread_time() - start)
    return spent[a], spent[b]


def interleaved_ratios(a, b, repeats, warmup=3):
    """B/A thread-CPU-time ratio of each round (see ``interleaved_times``)."""
    return [tb / max(ta, 1e-9) for ta, tb in zip(*interleaved_times(a, b, repeats, warmup))]


def summary(ratios):
    q25, q75 = np.percentile(ratios, [25, 75])
    return f"median {statistics.median(ratios):.3f} (IQR {q25:.3f}-{q75:.3f}, n={len(ratios)})"


def compare_conv_paths(repeats):
    """Each shape's dispatched path (B) against ``path="per-sample"`` (A), forward and both gradients."""
    from scratchgen.kernels.conv import cpu
    rng = np.random.default_rng(0)
    for x_shape, weight_shape, stride, padding in CONV_SHAPES:
        x = rng.standard_normal(x_shape).astype(np.float32)
        weight = rng.standard_normal(weight_shape).astype(np.float32)
        window = ((stride, stride), (padding, padding), (1, 1), 1)
        grad_y = rng.standard_normal(cpu.conv2d_forward(x, weight, None, *window).shape).astype(np.float32)
        path = cpu.conv_path(weight_shape[2:], window[0], window[1], grad_y.shape[2:], weight[0].size)
        pairs = {"forward": (lambda: cpu.conv2d_forward(x, weight, None, *window, path="per-sample"),
                             lambda: cpu.conv2d_forward(x, weight, None, *window)),
                 "backward_data": (lambda: cpu.conv2d_backward_data(grad_y, weight, x_shape[2:], *window,
                                                                    path="per-sample"),
                                   lambda: cpu.conv2d_backward_data(grad_y, weight, x_shape[2:], *window)),
                 "backward_weight": (lambda: cpu.conv2d_backward_weight(grad_y, x, weight_shape[2:], *window,
                                                                        path="per-sample"),
                                     lambda: cpu.conv2d_backward_weight(grad_y, x, weight_shape[2:],
                                                                        *window))}
        for pass_name, (a, b) in pairs.items():
            print(f"x{x_shape} w{weight_shape} stride {stride} [{path}] {pass_name}: {path}/per-sample "
                  f"{summary(interleaved_ratios(a, b, repeats))}", flush=True)


CONV_PASSES = ("conv2d_forward", "conv2d_backward_data", "conv2d_backward_weight")


def model_conv_calls(model):
    """``{(x shape, weight shape, stride, padding, dilation, groups): Counter(pass: calls)}`` over one
    training step of ``model`` (its default config), recorded at ``kernels.conv.cpu``'s three entry points."""
    from scratchgen.kernels.conv import cpu
    from .models import prepared
    from .workload import Options
    recipe, batch, clock = prepared(model, Options())
    calls = collections.defaultdict(collections.Counter)
    originals = {name: getattr(cpu, name) for name in CONV_PASSES}

    def geometry(name, args):
        """The convolution a kernel call computes, whichever pass: its x and weight shapes, window."""
        if name == "conv2d_forward":
            x_shape, weight_shape, window = args[0].shape, args[1].shape, args[3:7]
        elif name == "conv2d_backward_data":
            (grad_y, weight, input_hw), window = args[:3], args[3:7]
            x_shape, weight_shape = (grad_y.shape[0], weight.shape[1] * window[3]) + tuple(input_hw), \
                weight.shape
        else:
            (grad_y, x, kernel_hw), window = args[:3], args[3:7]
            x_shape, weight_shape = x.shape, (grad_y.shape[1], x.shape[1] // window[3]) + tuple(kernel_hw)
        return tuple(x_shape), tuple(weight_shape), *(tuple(part) for part in window[:3]), window[3]

    depth = [0]

    def recording(name):
        def call(*args, **kwargs):  # only the op's own calls: not a pass that one pass makes of another
            if depth[0] == 0:
                calls[geometry(name, args)][name] += 1
            depth[0] += 1
            try:
                return originals[name](*args, **kwargs)
            finally:
                depth[0] -= 1
        return call
    recipe.train_step(batch, clock)                      # compile and warm up outside the recording
    try:
        for name in CONV_PASSES:
            setattr(cpu, name, recording(name))
        recipe.train_step(batch, clock)
    finally:
        for name, function in originals.items():
            setattr(cpu, name, function)
    return calls


def conv_pass_pair(name, x, weight, grad_y, window):
    """``(ours, PyTorch's)`` callables of one pass of one convolution (float32 NumPy arrays)."""
    import torch
    from scratchgen.kernels.conv import cpu
    stride, padding, dilation, groups = window
    tx, tw, tg = (torch.from_numpy(a) for a in (x, weight, grad_y))

    def torch_backward(mask):  # what torch's autograd calls for a conv2d's gradients
        return lambda: torch.ops.aten.convolution_backward(tg, tx, tw, None, stride, padding, dilation, False,
                                                           [0, 0], groups, mask)
    ours = {"conv2d_forward": lambda: cpu.conv2d_forward(x, weight, None, *window),
            "conv2d_backward_data": lambda: cpu.conv2d_backward_data(grad_y, weight, x.shape[2:], *window),
            "conv2d_backward_weight": lambda: cpu.conv2d_backward_weight(grad_y, x, weight.shape[2:],
                                                                         *window)}
    theirs = {"conv2d_forward": lambda: torch.nn.functional.conv2d(tx, tw, None, *window),
              "conv2d_backward_data": torch_backward([True, False, False]),
              "conv2d_backward_weight": torch_backward([False, True, False])}
    return ours[name], theirs[name]


def compare_model_convs(model, repeats):
    """Each distinct convolution of ``model``'s training step, each pass it takes there:
    ``kernels.conv.cpu`` against PyTorch (float32, interleaved, thread CPU time, medians), with
    the calls per step and the time per step the difference makes (``calls x (ours - torch)``)."""
    from scratchgen.kernels.conv import cpu
    rng = np.random.default_rng(0)
    short = {"conv2d_forward": "forward", "conv2d_backward_data": "data", "conv2d_backward_weight": "weight"}
    print(f"{model}: each convolution of one training step, ours (kernels.conv.cpu) against torch, "
          f"thread CPU ms (medians of {repeats} interleaved rounds)")
    print(f"{'x':>18} {'weight':>18} s p {'path':>13} {'pass':>7} calls {'ours':>7} {'torch':>7} "
          f"{'ratio':>6} {'GFLOP/s':>7} {'lost/step':>9}")
    totals = collections.Counter()
    for (x_shape, weight_shape, stride, padding, dilation, groups), passes in model_conv_calls(model).items():
        x, weight = (rng.standard_normal(shape).astype(np.float32) for shape in (x_shape, weight_shape))
        window = (stride, padding, dilation, groups)
        y_shape = cpu.conv2d_forward(x, weight, None, *window).shape
        grad_y = rng.standard_normal(y_shape).astype(np.float32)
        paths = dict.fromkeys(CONV_PASSES, cpu.conv_path(weight_shape[2:], stride, padding, y_shape[2:],
                                                         weight[0].size))
        paths["conv2d_backward_data"] = cpu.data_gradient_path(weight_shape, groups, stride, padding,
                                                               dilation, y_shape[2:])
        flops = 2 * np.prod(y_shape) * weight[0].size
        for name, count in sorted(passes.items(), key=lambda item: CONV_PASSES.index(item[0])):
            ours, theirs = conv_pass_pair(name, x, weight, grad_y, window)
            times = interleaved_times(ours, theirs, repeats)
            ours_ms, torch_ms = (1e3 * statistics.median(t) for t in times)
            ratio = statistics.median(a / max(b, 1e-9) for a, b in zip(*times))
            totals["ours"] += count * ours_ms
            totals["torch"] += count * torch_ms
            print(f"{str(x_shape):>18} {str(weight_shape):>18} {stride[0]} {padding[0]} {paths[name]:>13} "
                  f"{short[name]:>7} {count:5d} {ours_ms:7.3f} {torch_ms:7.3f} {ratio:6.2f} "
                  f"{flops / ours_ms / 1e6:7.1f} {count * (ours_ms - torch_ms):9.3f}", flush=True)
    print(f"per step: ours {totals['ours']:.1f} ms, torch {totals['torch']:.1f} ms, "
          f"ratio {totals['ours'] / totals['torch']:.2f}")


def compare_elementwise_kernels(repeats):
    """``kernels.special.sigmoid_float32`` (B) against SciPy's ``expit`` (A) on the RBM's hidden layer
    (20, 256), and ``kernels.scatter.add_rows`` (B) against ``np.add.at`` (A) on the GPT's token
    embedding gradient (48 x 64 ids into a 65 x 96 table)."""
    import scipy.special
    from scratchgen.kernels.scatter import add_rows
    from scratchgen.kernels.special import sigmoid_float32
    rng = np.random.default_rng(0)
    x = rng.standard_normal((20, 256)).astype(np.float32)
    ids, rows = rng.integers(0, 65, (48, 64)), rng.standard_normal((48, 64, 96)).astype(np.float32)

    def scatter(add):
        return lambda: add(np.zeros((65, 96), np.float32), ids, rows)
    print(f"sigmoid (20, 256) float32: sigmoid_float32/expit "
          f"{summary(interleaved_ratios(lambda: scipy.special.expit(x), lambda: sigmoid_float32(x), repeats))}")
    print(f"embedding gradient 48x64 ids into 65x96: add_rows/np.add.at "
          f"{summary(interleaved_ratios(scatter(np.add.at), scatter(add_rows), repeats))}")
    compare_activations(repeats)


def compare_activations(repeats):
    """Each of ``ACTIVATION_SHAPES``, float32, forward then backward through the engine: the op
    (``F.silu``, ``F.gelu``: one op each way, B) against the composition of ops it was written as
    before (A), for the forward alone and for both."""
    import math

    import scratchgen as sg
    import scratchgen.functional as F

    def former_gelu_tanh(x):
        return 0.5 * x * (1 + (math.sqrt(2 / math.pi) * (x + 0.044715 * x * x * x)).tanh())
    former = {"silu": lambda x: x * x.sigmoid(), "gelu": lambda x: 0.5 * x * (1 + sg.erf(x / math.sqrt(2))),
              "gelu_tanh": former_gelu_tanh}
    fused = {"silu": F.silu, "gelu": F.gelu, "gelu_tanh": lambda x: F.gelu(x, approximate="tanh")}
    rng = np.random.default_rng(0)
    for name, shape in ACTIVATION_SHAPES:
        x = sg.tensor(rng.standard_normal(shape).astype(np.float32), requires_grad=True)
        seed = sg.tensor(rng.standard_normal(shape).astype(np.float32))

        def forward(function):
            return lambda: function(x)

        def both(function):
            return lambda: function(x).backward(seed)
        for what, variant in (("forward", forward), ("forward+backward", both)):
            ratios = interleaved_ratios(variant(former[name]), variant(fused[name]), repeats)
            print(f"{name} {shape} float32 {what}: op/composition {summary(ratios)}")


# The (A, C, B) layouts the models' norms hand to kernels.normalization (float32): the U-Net's
# GroupNorm(8) on 64 images of 8x8 and 4x4 maps, the GPT's LayerNorm on 48 x 64 tokens, VAE-GAN's BatchNorm2d.
NORM_SHAPES = [(1, 512, 128), (1, 512, 256), (1, 512, 768), (1, 3072, 96), (32, 64, 4), (32, 32, 16)]


def compare_norm_kernels(repeats):
    """``kernels.normalization``: ``cpu`` (B) against ``reference`` (A), the forward (moments and
    normalize) and the backward, on each of ``NORM_SHAPES``."""
    from scratchgen.kernels.normalization import cpu, reference
    rng = np.random.default_rng(0)
    for shape in NORM_SHAPES:
        x, grad_y = (rng.standard_normal(shape).astype(np.float32) for _ in range(2))
        mean, _, inverse_std = cpu.moments(x, 1e-5)
        y = cpu.normalize(x, mean, inverse_std)
        passes = {"forward": lambda kernels: lambda: kernels.normalize(x, *kernels.moments(x, 1e-5)[::2]),
                  "backward": lambda kernels: lambda: kernels.normalize_backward(grad_y, y, inverse_std)}
        for pass_name, bind in passes.items():
            print(f"norm {shape} float32 {pass_name}: cpu/reference "
                  f"{summary(interleaved_ratios(bind(reference), bind(cpu), repeats))}", flush=True)


# The U-Net's GroupNorm(8) inputs (float32): 64 images, 32 and 64 channels on 8x8 maps, 64 and 128 on 4x4.
GROUP_NORM_SHAPES = [(64, 32, 8, 8), (64, 64, 8, 8), (64, 64, 4, 4), (64, 128, 4, 4)]


def compare_group_norm(repeats):
    """``F.group_norm`` with weight and bias (one ``GroupNormAffine`` op each way, B) against the
    composition it was before (A: Reshape, Moments + Normalize, Reshape, ChannelAffine), the forward
    alone and forward+backward (with the weight's and bias's gradients), on ``GROUP_NORM_SHAPES``."""
    import scratchgen as sg
    import scratchgen.functional as F
    from scratchgen.ops.reduction import standardize

    def composed(x, weight, bias):
        out = standardize(F.reshape(x, (x.shape[0], 8, -1)), (2,))[0]
        return F.channel_affine(F.reshape(out, x.shape), weight, bias)

    def fused(x, weight, bias):
        return F.group_norm(x, 8, weight, bias)
    rng = np.random.default_rng(0)
    for shape in GROUP_NORM_SHAPES:
        x = sg.tensor(rng.standard_normal(shape).astype(np.float32), requires_grad=True)
        seed = sg.tensor(rng.standard_normal(shape).astype(np.float32))
        weight, bias = (sg.tensor(rng.standard_normal(shape[1]).astype(np.float32), requires_grad=True)
                        for _ in range(2))
        passes = {"forward": lambda norm: lambda: norm(x, weight, bias),
                  "forward+backward": lambda norm: lambda: norm(x, weight, bias).backward(seed)}
        for pass_name, bind in passes.items():
            print(f"group_norm {shape} float32 {pass_name}: op/composition "
                  f"{summary(interleaved_ratios(bind(composed), bind(fused), repeats))}", flush=True)


def compare_optimizer_step(model, repeats):
    """``model``'s first optimizer over its parameters, per-parameter (A) against fused (B), each
    step on fresh gradient arrays as the engine leaves them."""
    import scratchgen as sg
    from scratchgen import study

    def build(fused):
        recipe, _ = study.prepare(model, {}, "cpu")
        optimizer = next(iter(recipe.optimizers.values()))
        optimizer = type(optimizer)([dict(group) for group in optimizer.param_groups], fused=fused)
        params = optimizer._all_params()
        grads = [np.random.default_rng(i).standard_normal(p.shape).astype(p.dtype)
                 for i, p in enumerate(params)]

        def step():
            for param, grad in zip(params, grads):
                param.grad = sg.tensor(grad)
            optimizer.step()
        return step, params

    (a, params), (b, _) = build(False), build(True)
    size = sum(int(p.data.size) for p in params)
    print(f"{model} ({len(params)} tensors, {size} values): fused/per-parameter optimizer step "
          f"{summary(interleaved_ratios(a, b, repeats))}")


def compare_training_step(model, repeats):
    """``model``'s training step with its optimizers rebuilt per-parameter (A) against the recipe's
    own fused ones (B). A's parameters stay where the recipe left them: in flat buffers only where a
    fused EMA laid them out at build time (diffusion, GAN, VAE-GAN)."""
    from .models import prepared
    from .workload import Options

    def build(fused):
        recipe, batch, clock = prepared(model, Options())
        if not fused:
            recipe.optimizers = {name: type(optimizer)([dict(group) for group in optimizer.param_groups])
                                 for name, optimizer in recipe.optimizers.items()}
        return lambda: recipe.train_step(batch, clock)

    print(f"{model}: fused/per-parameter training step "
          f"{summary(interleaved_ratios(build(False), build(True), repeats))}")


def compare_lstm_forward(repeats):
    """The DESIGN LSTM's forward: ``kernel[cpu]`` (B) against PyTorch's ``nn.LSTM`` (A); our GEMMs
    alone (the input projection and the recurrent products, B) against PyTorch's whole forward and
    against the same products through ``torch.mm`` (A): how much of the gap is the GEMMs."""
    import torch
    from . import recurrence
    from scratchgen.kernels.recurrence import cpu
    torch.set_num_threads(1)
    a = recurrence.make_inputs(recurrence.WORKLOAD)
    ours, _ = recurrence.kernel_calls(cpu, a)
    theirs, _ = recurrence.torch_calls(a)
    arrays = (a["weight_ih"], a["x"].transpose(0, 2, 1), a["weight_hh"], a["h0"].T.copy(),
              np.empty((a["weight_hh"].shape[0], a["h0"].shape[0]), np.float32))
    gemms = recurrence.forward_gemms(*arrays, np.matmul)
    torch_gemms = recurrence.forward_gemms(*map(torch.from_numpy, arrays), torch.matmul)
    for label, (base, variant) in {"kernel[cpu] forward / torch forward": (theirs, ours),
                                   "our forward GEMMs / torch forward": (theirs, gemms),
                                   "our forward GEMMs / the same through torch.matmul": (torch_gemms, gemms)}.items():
        print(f"lstm {recurrence.WORKLOAD.describe()}: {label} {summary(interleaved_ratios(base, variant, repeats))}",
              flush=True)


# The attention forward's phases, in the order forward_head runs them on each (query tile, key tile).
ATTENTION_PHASES = ("Q K^T tile products", "causal mask", "row max + rescale of l and acc", "exp",
                    "row sums", "P V tile products (+ add into acc)", "final normalisation")


def attention_stages():
    """A compiled copy of ``cpu.forward_heads`` whose first argument ``last_phase`` stops each tile
    after that phase.

    Intended near-copy of ``cpu.forward_head`` (a profiling probe: the kernel itself stays
    branch-free); timing stage n and stage n - 1 on the same data gives phase n's cost in place,
    with the caches as warm as in the real kernel. One compilation serves every stage (the
    branches cost a compare per tile).
    """
    from numba import njit
    from scratchgen.kernels.attention import cpu

    no_mask = np.zeros((1, 1), np.float32)

    @njit(nogil=True, fastmath=cpu.FASTMATH)
    def stages(last_phase, q, k, v, scale, out, logsumexp, block_q, block_k, workspace):
        depth, value_depth = q.shape[3], v.shape[3]
        for b in range(q.shape[0]):
            for h in range(q.shape[1]):
                queries = q.shape[2]
                scaled_queries, at = cpu.carve(workspace, 0, block_q * depth)
                acc, at = cpu.carve(workspace, at, block_q * value_depth)
                scores_buffer, at = cpu.carve(workspace, at, block_q * block_k)
                product_buffer, at = cpu.carve(workspace, at, block_q * value_depth)
                running_max, at = cpu.carve(workspace, at, block_q)
                running_sum, at = cpu.carve(workspace, at, block_q)
                shift, at = cpu.carve(workspace, at, block_q)
                key_tiles, at = cpu.carve(workspace, at, k.shape[2] * depth)
                cpu.pack_key_tiles(k[b, h], block_k, key_tiles)
                for q0 in range(0, queries, block_q):
                    rows = min(block_q, queries - q0)
                    q_tile, acc_tile = cpu.tile(scaled_queries, rows, depth), cpu.tile(acc, rows, value_depth)
                    cpu.scale_into(q[b, h, q0:q0 + rows], scale, q_tile)
                    acc_tile[:] = 0
                    running_max[:rows] = -np.inf
                    running_sum[:rows] = 0
                    for k0 in range(0, q0 + rows, block_k):
                        cols = min(block_k, k.shape[2] - k0)
                        scores = cpu.tile(scores_buffer, rows, cols)
                        np.dot(q_tile, cpu.tile(key_tiles[k0 * depth:], depth, cols), scores)
                        if last_phase >= 1:
                            cpu.mask_tile(scores, no_mask, False, True, q0, k0)
                        if last_phase >= 2:
                            cpu.rescale_running(scores, running_max, running_sum, acc_tile, shift)
                        if last_phase >= 3:
                            cpu.exp_shifted_rows(scores, shift[:rows])
                        if last_phase >= 4:
                            cpu.add_row_sums(scores, running_sum)
                        if last_phase >= 5:
                            cpu.add_product(scores, v[b, h, k0:k0 + cols], acc_tile, product_buffer)
                    if last_phase >= 6:
                        cpu.normalise_rows(acc_tile, running_max, running_sum, out[b, h, q0:q0 + rows],
                                           logsumexp[b, h, q0:q0 + rows])
    return stages


def gemm_rate(shape_a, shape_b, b_transposed=False, torch=None):
    """GFLOP/s of float32 ``a @ b`` (one thread) at one shape: NumPy's (OpenBLAS), or ``torch.mm``'s
    (MKL) when ``torch`` is given; ``b_transposed``: b is the transposed view of a C-contiguous
    array (BLAS's "T" operand)."""
    a, b = (np.random.default_rng(0).standard_normal(s).astype(np.float32) for s in (shape_a, shape_b[::-1]))
    b = b.T if b_transposed else b.reshape(shape_b)
    out = np.empty((shape_a[0], shape_b[1]), np.float32)
    flops = 2.0 * shape_a[0] * shape_a[1] * shape_b[1]
    if torch is None:
        return flops * calls_per_second(lambda: np.dot(a, b, out)) / 1e9
    a, b, out = (torch.from_numpy(x) for x in (a, b, out))
    return flops * calls_per_second(lambda: torch.mm(a, b, out=out)) / 1e9


def exp_rate(exp, torch=None, size=1 << 16):
    """G values/s of ``exp(x, out)`` on float32 x in [-20, 0] (softmax's shifted scores), one thread;
    x and out are torch tensors when ``torch`` is given."""
    x = np.random.default_rng(0).uniform(-20, 0, size).astype(np.float32)
    out = np.empty_like(x)
    if torch is not None:
        x, out = torch.from_numpy(x), torch.from_numpy(out)
    return size * calls_per_second(lambda: exp(x, out)) / 1e9


def calls_per_second(call, seconds=0.3):
    """How often ``call()`` runs per second of thread CPU time, over ``seconds``."""
    calls, start = 0, time.thread_time()
    while time.thread_time() - start < seconds:
        call()
        calls += 1
    return calls / (time.thread_time() - start)


def profile_attention_forward(repeats, lengths=(1024, 4096)):
    """The DESIGN attention forward (causal, B=8, heads=4, head_dim=32, float32, one thread) split
    into its phases: each phase's thread CPU time (stage n minus stage n - 1, medians over
    ``repeats`` rounds), its FLOPs or elements, and the tile GEMMs' rate against NumPy's GEMM at the
    same tile shape and at a large shape; then the whole kernel against PyTorch's forward."""
    import torch
    from . import attention
    from scratchgen.kernels.attention import cpu
    torch.set_num_threads(1)
    workload, (block_q, block_k) = attention.WORKLOAD, cpu.FORWARD_TILES
    depth = workload.head_dim
    stages = attention_stages()
    gemms = {"Q K^T tile": ((block_q, depth), (depth, block_k), False),
             "the same, K^T a transposed view": ((block_q, depth), (depth, block_k), True),
             "P V tile": ((block_q, block_k), (block_k, depth), False),
             "square": ((1024, 1024), (1024, 1024), False)}
    rates = ", ".join(f"{name} {a[0]}x{a[1]} @ {b[0]}x{b[1]} {gemm_rate(a, b, t):.1f} "
                      f"({gemm_rate(a, b, t, torch):.1f})" for name, (a, b, t) in gemms.items())
    exp_rates = (f"NumPy {exp_rate(lambda x, out: np.exp(x, out=out)):.2f}, "
                 f"torch {exp_rate(lambda x, out: torch.exp(x, out=out), torch):.2f}")
    print(f"attention forward {workload.describe('T')}, tiles {cpu.FORWARD_TILES}; "
          f"GEMM rates (GFLOP/s, float32, 1 thread: NumPy's OpenBLAS (torch.mm's MKL)): {rates}; "
          f"float32 exp rates (G/s, 1 thread): {exp_rates}", flush=True)
    for length in lengths:
        q, k, v, _ = attention.make_inputs(workload, length)
        out, logsumexp = np.empty_like(q), np.empty(q.shape[:3], np.float32)
        workspace = np.empty(block_q * (depth + block_k + 2 * depth + 3) + length * depth, np.float32)
        scale = np.float32(depth ** -0.5)
        calls = [lambda last=last: stages(last, q, k, v, scale, out, logsumexp, block_q, block_k, workspace)
                 for last in range(len(ATTENTION_PHASES))]
        kernel, _ = attention.kernel_calls(cpu, workload, (q, k, v, None))
        torch_forward, _ = attention.torch_calls(workload, (q, k, v, q))
        calls += [kernel, torch_forward]
        seconds = [[] for _ in calls]
        for round_index in range(repeats + 1):  # round 0 compiles and warms up
            order = range(len(calls)) if round_index % 2 == 0 else reversed(range(len(calls)))
            for index in order:
                start = time.thread_time()
                calls[index]()
                if round_index:
                    seconds[index].append(time.thread_time() - start)
        median = [statistics.median(s) for s in seconds]
        report_attention_phases(workload, length, block_q, block_k, median)


def report_attention_phases(workload, length, block_q, block_k, median):
    """Print one length's phase table from the stage medians (seconds; then kernel, torch)."""
    heads, depth = workload.batch * workload.heads, workload.head_dim
    # (query, key) pairs the kernel computes: whole key tiles up to each query tile's diagonal
    pairs = heads * sum(block_q * min(-(-(q0 + block_q) // block_k) * block_k, length)
                        for q0 in range(0, length, block_q))
    work = {0: f"{2 * pairs * depth / 1e9:.2f} GFLOP", 5: f"{2 * pairs * depth / 1e9:.2f} GFLOP",
            3: f"{pairs / 1e6:.0f} M exps", 6: f"{heads * length * depth / 1e6:.1f} M values"}
    kernel, torch_forward = median[-2:]
    flops = workload.forward_flops(length) / 1e9  # the causal half's two products, either side's work
    print(f"T={length}: kernel[cpu] {kernel * 1e3:.0f} ms, torch {torch_forward * 1e3:.0f} ms "
          f"(kernel/torch {kernel / torch_forward:.2f}); the stages' sum {median[-3] * 1e3:.0f} ms; "
          f"{flops:.2f} GFLOP: kernel {flops / kernel:.1f} GFLOP/s, torch {flops / torch_forward:.1f}")
    previous = 0.0
    for index, name in enumerate(ATTENTION_PHASES):
        spent = median[index] - previous
        previous = median[index]
        rate = (f", {2 * pairs * depth / spent / 1e9:.1f} GFLOP/s" if index in (0, 5) else
                f", {pairs / spent / 1e9:.2f} G/s" if index == 3 else "")
        print(f"  {name:38s} {spent * 1e3:7.1f} ms  {spent / median[-3]:5.1%}  {work.get(index, '')}{rate}")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ab", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.split("\n")[1:]))
    parser.add_argument("what", choices=("conv", "optim", "step", "revisions", "elementwise", "norms",
                                         "lstm", "attention"))
    parser.add_argument("names", nargs="*", metavar="MODEL | A B",
                        help="optim, step: the model (e.g. diffusion); "
                             f"revisions: two git revisions ({revisions.WORKTREE}: the checkout as it is)")
    parser.add_argument("--repeats", type=int, default=80)
    parser.add_argument("--model", help="conv: time each convolution of this model's training step against "
                                        "PyTorch instead (e.g. diffusion)")
    parser.add_argument("--only", help="revisions: the workloads to time (a regular expression, as the suite's)")
    parser.add_argument("--rounds", type=int, default=12, help="revisions: interleaved rounds")
    parser.add_argument("--contender", help="revisions: the contender to time (default scratchgen[cpu]; "
                                            "e.g. 'scratchgen compiled[cpu]')")
    args = parser.parse_args(argv)
    if args.what in ("optim", "step") and len(args.names) != 1:
        parser.error(f"{args.what}: expected a MODEL, e.g. python -m benchmarks.ab {args.what} diffusion")
    if args.what == "revisions" and (len(args.names) != 2 or not args.only):
        parser.error("revisions: expected two revisions and --only, e.g. "
                     "python -m benchmarks.ab revisions HEAD WORKTREE --only engine/")
    if args.what == "revisions":
        revisions.compare_revisions(*args.names, args.only, args.rounds, contender=args.contender)
        return 0
    with pin_threads(1):  # the figure that counts is one thread's
        if args.what == "conv" and args.model:
            compare_model_convs(args.model, args.repeats)
        elif args.what == "conv":
            compare_conv_paths(args.repeats)
        elif args.what == "elementwise":
            compare_elementwise_kernels(args.repeats)
        elif args.what == "norms":
            compare_norm_kernels(args.repeats)
            compare_group_norm(args.repeats)
        elif args.what == "lstm":
            compare_lstm_forward(args.repeats)
        elif args.what == "attention":
            profile_attention_forward(args.repeats)
        elif args.what == "optim":
            compare_optimizer_step(args.names[0], args.repeats)
        else:
            compare_training_step(args.names[0], args.repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
