"""Flash attention on the CPU: Numba kernels over tiles, memory linear in the sequence length.

Forward, for each (batch, head) and each tile of ``block_q`` queries (online softmax: the
running max ``m``, running sum ``l`` and unnormalised output ``acc`` are rescaled whenever a new
key tile raises the max, so no row ever needs all its scores at once)::

    m, l, acc = -inf, 0, 0
    for each tile of block_k keys (causal: only tiles that start at or before the last query):
        s     = scale * Q_tile K_tile^T + mask        (-inf above the diagonal when causal)
        m_new = max(m, rowmax(s));  c = exp(m - m_new)
        p     = exp(s - m_new)
        l     = c * l + rowsum(p);  acc = c * acc + p V_tile
        m     = m_new
    out = acc / l;  logsumexp = m + log(l)             (0 and -inf when no key is visible)

Backward, for each (batch, head), with delta[i] = dO[i] . out[i] and p recomputed from the
saved logsumexp (no (L, S) matrix is ever stored)::

    for each tile of block_k keys:
        for each tile of block_q queries that can see them (causal: from the tile's first key on):
            p   = exp(scale * Q_tile K_tile^T + mask - logsumexp)
            dV_tile += p^T dO_tile
            ds  = p * (dO_tile V_tile^T - delta)
            dQ_tile += scale * ds K_tile;   dK_tile += scale * ds^T Q_tile

Each tile product is a small GEMM: ``np.dot`` on contiguous 2-D arrays inside Numba calls BLAS,
so the kernels' own loops do only the elementwise work (mask, exp, sums). The float32 exp is a
vectorisable polynomial: Numba's ``np.exp`` is a scalar libm call here, ~10x slower, and exp is
what remains once the GEMMs are in BLAS.

Threads and memory: the (batch * head) units are split over ``numba.get_num_threads()`` Python
threads (the kernels release the GIL), while BLAS is held to one thread (``tile_blas``). Each
thread gets one scratch *workspace* allocated here with NumPy, so ``tracemalloc`` sees every
byte: a few tiles and K^T packed tile by tile (O(S * D)) for the forward, plus O(L * D) for the
backward's scaled queries. The Numba code itself allocates nothing.
"""
import functools
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from .._float32 import exp
from ._shapes import check_attention_gradient_inputs, check_attention_inputs

# (query rows, key rows) per tile, chosen by measurement on the DESIGN workload (causal, B=8,
# H=4, D=32, T=256 and 1024, 1 thread): `python -m benchmarks.attention --sweep-tiles`.
FORWARD_TILES = (64, 128)
BACKWARD_TILES = (128, 64)

# Fast-math without "nnan"/"ninf": masked scores are -inf and must stay exactly that.
FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}


def attention_forward(q, k, v, mask, is_causal, scale, tiles=FORWARD_TILES):
    """``(out, logsumexp)`` of softmax(q k^T * scale + mask) v, one tile at a time.

    ``tiles`` = (query rows, key rows) is there for the tile sweep; the default is measured.
    """
    scores_shape = check_attention_inputs("attention_forward", q, k, v, mask)
    out = np.empty(scores_shape[:3] + (v.shape[3],), dtype=q.dtype)
    logsumexp = np.empty(scores_shape[:3], dtype=q.dtype)
    block_q, block_k = tiles
    workspace_size = block_q * (q.shape[3] + block_k + 2 * v.shape[3] + 3) + k[0, 0].size  # see forward_head
    run_over_heads(forward_heads, q, workspace_size, q, k, v, *mask_view(mask, q.dtype), bool(is_causal),
                   q.dtype.type(scale), out, logsumexp, block_q, block_k)
    return out, logsumexp


def attention_backward(grad_out, q, k, v, out, logsumexp, mask, is_causal, scale, tiles=BACKWARD_TILES):
    """``(grad_q, grad_k, grad_v)``, recomputing each tile's probabilities from ``logsumexp``."""
    check_attention_gradient_inputs("attention_backward", grad_out, q, k, v, out, logsumexp, mask)
    grads = np.zeros_like(q), np.zeros_like(k), np.zeros_like(v)
    block_q, block_k = tiles
    depth, queries = max(q.shape[3], v.shape[3]), q.shape[2]
    workspace_size = queries * (q.shape[3] + 2) + 2 * block_q * block_k + max(block_q, block_k) * depth
    run_over_heads(backward_heads, q, workspace_size, grad_out, q, k, v, out, logsumexp,
                   *mask_view(mask, q.dtype), bool(is_causal), q.dtype.type(scale), *grads, block_q, block_k)
    return grads


def mask_view(mask, dtype):
    """``(mask, has_mask)``: the additive mask as 4-D, size-1 axes kept (the kernels broadcast them).

    Nothing is copied and the array type stays the same (4-D, C-contiguous for any freshly made
    mask), so one compiled specialisation serves every mask shape; without a mask a single zero
    stands in and ``has_mask`` skips the additions.
    """
    if mask is None:
        return np.zeros((1, 1, 1, 1), dtype=dtype), False
    return mask.reshape((1,) * (4 - mask.ndim) + mask.shape), True


def run_over_heads(kernel, q, workspace_size, *args):
    """Call ``kernel(first, stop, workspace, *args)`` on q's (batch * head) units, over threads.

    The kernels release the GIL (``nogil=True``), so plain Python threads run them in parallel:
    no ``parallel=True`` compilation (which doubles the kernels' compile time), and
    ``numba.set_num_threads`` is honoured. Every head does the same work, so equal chunks
    balance. Each thread gets its own workspace of ``workspace_size`` elements of q's dtype.
    """
    units = q.shape[0] * q.shape[1]
    threads = max(min(numba.get_num_threads(), units), 1)
    workspaces = np.empty((threads, workspace_size), dtype=q.dtype)
    bounds = np.linspace(0, units, threads + 1).astype(int)
    with tile_blas().limit(limits=1):
        if threads == 1:
            kernel(0, units, workspaces[0], *args)
            return
        with ThreadPoolExecutor(threads) as pool:
            jobs = [pool.submit(kernel, bounds[t], bounds[t + 1], workspaces[t], *args) for t in range(threads)]
            for job in jobs:
                job.result()


@functools.cache
def tile_blas():
    """The BLAS libraries (threadpoolctl's handle), held to one thread while the kernels run.

    The tile products are tiny GEMMs: OpenBLAS threads only fight over them. Measured on the
    busy 2-core machine at head_dim 64 (where tiles cross OpenBLAS's threading threshold): 11.6 s
    with 2 BLAS threads against 0.5 s with one. SciPy's OpenBLAS is the one Numba's np.dot calls;
    it is loaded first so the controller finds it.
    """
    import scipy.linalg.cython_blas  # noqa: F401
    from threadpoolctl import ThreadpoolController
    return ThreadpoolController().select(user_api="blas")


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def forward_heads(first, stop, workspace, q, k, v, mask, has_mask, is_causal, scale, out, logsumexp,
                  block_q, block_k):
    heads = q.shape[1]
    for unit in range(first, stop):
        b, h = unit // heads, unit % heads
        forward_head(q[b, h], k[b, h], v[b, h], head_mask(mask, b, h), has_mask, is_causal, scale,
                     out[b, h], logsumexp[b, h], block_q, block_k, workspace)


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def backward_heads(first, stop, workspace, grad_out, q, k, v, out, logsumexp, mask, has_mask, is_causal,
                   scale, grad_q, grad_k, grad_v, block_q, block_k):
    heads = q.shape[1]
    for unit in range(first, stop):
        b, h = unit // heads, unit % heads
        backward_head(grad_out[b, h], q[b, h], k[b, h], v[b, h], out[b, h], logsumexp[b, h],
                      head_mask(mask, b, h), has_mask, is_causal, scale, grad_q[b, h], grad_k[b, h],
                      grad_v[b, h], block_q, block_k, workspace)


# ---- the tiled algorithm for one head (see the module docstring) ----------------------------------
@njit(cache=True, fastmath=FASTMATH)
def forward_head(q, k, v, mask, has_mask, is_causal, scale, out, logsumexp, block_q, block_k, workspace):
    queries, keys, depth, value_depth = q.shape[0], k.shape[0], q.shape[1], v.shape[1]
    scaled_queries, at = carve(workspace, 0, block_q * depth)
    acc, at = carve(workspace, at, block_q * value_depth)
    scores_buffer, at = carve(workspace, at, block_q * block_k)
    product_buffer, at = carve(workspace, at, block_q * value_depth)
    running_max, at = carve(workspace, at, block_q)
    running_sum, at = carve(workspace, at, block_q)
    shift, at = carve(workspace, at, block_q)
    key_tiles, at = carve(workspace, at, keys * depth)
    pack_key_tiles(k, block_k, key_tiles)
    for q0 in range(0, queries, block_q):
        rows = min(block_q, queries - q0)
        q_tile, acc_tile = tile(scaled_queries, rows, depth), tile(acc, rows, value_depth)
        scale_into(q[q0:q0 + rows], scale, q_tile)
        acc_tile[:] = 0
        running_max[:rows] = -np.inf
        running_sum[:rows] = 0
        key_end = min(keys, q0 + rows) if is_causal else keys  # later tiles are all above the diagonal
        for k0 in range(0, key_end, block_k):
            cols = min(block_k, keys - k0)  # the whole packed tile; past key_end the causal mask hides it
            scores = tile(scores_buffer, rows, cols)
            np.dot(q_tile, tile(key_tiles[k0 * depth:], depth, cols), scores)
            mask_tile(scores, mask, has_mask, is_causal, q0, k0)
            rescale_running(scores, running_max, running_sum, acc_tile, shift)
            exp_shifted_rows(scores, shift[:rows])
            add_row_sums(scores, running_sum)
            add_product(scores, v[k0:k0 + cols], acc_tile, product_buffer)
        normalise_rows(acc_tile, running_max, running_sum, out[q0:q0 + rows], logsumexp[q0:q0 + rows])


@njit(cache=True, fastmath=FASTMATH)
def backward_head(grad_out, q, k, v, out, logsumexp, mask, has_mask, is_causal, scale, grad_q, grad_k, grad_v,
                  block_q, block_k, workspace):
    queries, keys = q.shape[0], k.shape[0]
    scaled_queries, at = carve(workspace, 0, q.size)
    scaled_queries = tile(scaled_queries, queries, q.shape[1])
    scale_into(q, scale, scaled_queries)  # then ds^T Q_scaled is dK, already scaled
    shift, at = carve(workspace, at, queries)
    delta, at = carve(workspace, at, queries)
    for i in range(queries):
        shift[i] = logsumexp[i] if logsumexp[i] > -np.inf else 0  # rows with no visible key: p = 0
        delta[i] = np.dot(grad_out[i], out[i])  # rowsum(dO * O) = rowsum(P * dP)
    probs_buffer, at = carve(workspace, at, block_q * block_k)
    grad_scores_buffer, at = carve(workspace, at, block_q * block_k)
    product_buffer = workspace[at:]
    for k0 in range(0, keys, block_k):
        cols = min(block_k, keys - k0)
        k_tile, v_tile = k[k0:k0 + cols], v[k0:k0 + cols]
        first_query = k0 if is_causal else 0  # earlier queries cannot see these keys
        for q0 in range(first_query, queries, block_q):
            rows = min(block_q, queries - q0)
            q_tile, grad_out_tile = scaled_queries[q0:q0 + rows], grad_out[q0:q0 + rows]
            probs = tile(probs_buffer, rows, cols)
            np.dot(q_tile, k_tile.T, probs)
            mask_tile(probs, mask, has_mask, is_causal, q0, k0)
            if unseen_rows(logsumexp[q0:q0 + rows]):  # scores may be NaN/inf there: IEEE exp
                exp_shifted_rows_ieee(probs, shift[q0:q0 + rows])
            else:
                exp_shifted_rows(probs, shift[q0:q0 + rows])
            add_product(probs.T, grad_out_tile, grad_v[k0:k0 + cols], product_buffer)
            grad_scores = tile(grad_scores_buffer, rows, cols)
            np.dot(grad_out_tile, v_tile.T, grad_scores)
            softmax_backward(probs, grad_scores, delta[q0:q0 + rows])
            add_product(grad_scores, k_tile, grad_q[q0:q0 + rows], product_buffer)
            add_product(grad_scores.T, q_tile, grad_k[k0:k0 + cols], product_buffer)
    scale_into(grad_q, scale, grad_q)


# ---- tile pieces ---------------------------------------------------------------------------------
@njit(cache=True, fastmath=FASTMATH)
def carve(workspace, offset, size):
    """The next ``size`` elements of a flat workspace, and the offset after them."""
    return workspace[offset:offset + size], offset + size


@njit(cache=True, fastmath=FASTMATH)
def tile(buffer, rows, cols):
    """A C-contiguous (rows, cols) view of the front of a flat buffer (np.dot writes into it)."""
    return buffer[:rows * cols].reshape((rows, cols))


@njit(cache=True, fastmath=FASTMATH)
def head_mask(mask, b, h):
    """The (L or 1, S or 1) mask of one head; a size-1 axis broadcasts."""
    return mask[b if mask.shape[0] > 1 else 0, h if mask.shape[1] > 1 else 0]


@njit(cache=True, fastmath=FASTMATH)
def mask_tile(scores, mask, has_mask, is_causal, q0, k0):
    """Add the mask's tile at (q0, k0); put -inf where key k0 + j lies after query q0 + i."""
    rows, cols = scores.shape
    if has_mask:
        row_step, col_step = int(mask.shape[0] > 1), int(mask.shape[1] > 1)  # 0 on a broadcast axis
        for i in range(rows):
            for j in range(cols):
                scores[i, j] += mask[(q0 + i) * row_step, (k0 + j) * col_step]
    if is_causal and k0 + cols - 1 > q0:  # only tiles that cross the diagonal
        for i in range(rows):
            for j in range(max(q0 + i + 1 - k0, 0), cols):
                scores[i, j] = -np.inf


@njit(cache=True, fastmath=FASTMATH)
def pack_key_tiles(k, block_k, key_tiles):
    """K^T tile by tile: keys [k0, k0 + cols) as a C-contiguous (depth, cols) block from k0 * depth on.

    OpenBLAS multiplies Q_tile (64 x 32) by a contiguous K^T tile at ~1.5x the rate it gets from
    the transposed view k[k0:k0 + cols].T (`python -m benchmarks.ab attention`: GEMM rates); one
    transposition per head, its cost amortised over every query tile.
    """
    keys, depth = k.shape
    for k0 in range(0, keys, block_k):
        cols = min(block_k, keys - k0)
        block = tile(key_tiles[k0 * depth:], depth, cols)
        for j in range(cols):
            for d in range(depth):
                block[d, j] = k[k0 + j, d]


@njit(cache=True, fastmath=FASTMATH)
def add_product(a, b, target, buffer):
    """``target += a @ b`` through BLAS (np.dot cannot accumulate, so via a scratch tile)."""
    product = tile(buffer, a.shape[0], b.shape[1])
    np.dot(a, b, product)
    for i in range(target.shape[0]):
        for j in range(target.shape[1]):
            target[i, j] += product[i, j]


@njit(cache=True, fastmath=FASTMATH)
def scale_into(source, factor, target):
    for i in range(source.shape[0]):
        for j in range(source.shape[1]):
            target[i, j] = source[i, j] * factor


@intrinsic
def nan_maximum(typingctx, a, b):
    """max(a, b), NaN if either is NaN (NumPy's maximum; Python's max drops a NaN): LLVM's
    ``llvm.maximum``, which the loop vectoriser turns into a vector reduction. Written as compares
    ("x > m or x != x", or a select plus a NaN flag) the row max stays a scalar chain: the phase
    "row max + rescale" took a third of the forward, 6-7x its time now (`python -m benchmarks.ab
    attention`).
    """
    def codegen(context, builder, signature, args):
        value_type = args[0].type
        name = "llvm.maximum.f32" if value_type == ir.FloatType() else "llvm.maximum.f64"
        function_type = ir.FunctionType(value_type, [value_type, value_type])
        return builder.call(cgutils.get_or_insert_function(builder.module, function_type, name), args)
    if a != b or a not in (types.float32, types.float64):
        return None
    return a(a, b), codegen


@njit(cache=True, fastmath=FASTMATH)
def rescale_running(scores, running_max, running_sum, acc, shift):
    """Raise each row's running max by the new tile; rescale its sum and output to match.

    ``shift`` receives the max to subtract before exp: 0 for a row with no visible key yet, so
    that exp(-inf - shift) is 0 rather than NaN.
    """
    for i in range(scores.shape[0]):
        new_max = running_max[i]
        for j in range(scores.shape[1]):
            new_max = nan_maximum(new_max, scores[i, j])
        shift[i] = new_max if new_max > -np.inf else 0
        correction = np.exp(running_max[i] - shift[i])
        running_sum[i] *= correction
        for d in range(acc.shape[1]):
            acc[i, d] *= correction
        running_max[i] = new_max


@njit(cache=True, fastmath=FASTMATH)
def add_row_sums(values, sums):
    for i in range(values.shape[0]):
        total = values.dtype.type(0)
        for j in range(values.shape[1]):
            total += values[i, j]
        sums[i] += total


@njit(cache=True, fastmath=FASTMATH)
def normalise_rows(acc, running_max, running_sum, out, logsumexp):
    """out = acc / l and logsumexp = m + log(l); zero and -inf for rows that saw no key. A row
    whose max score is NaN or +inf is NaN with logsumexp -inf, as in the reference (its
    softmax is NaN: exp(inf - inf))."""
    for i in range(acc.shape[0]):
        if not running_max[i] < np.inf:  # NaN or +inf
            out[i, :] = np.nan
            logsumexp[i] = -np.inf
            continue
        seen = running_sum[i] > 0
        inverse = 1 / running_sum[i] if seen else 0
        for d in range(acc.shape[1]):
            out[i, d] = acc[i, d] * inverse
        logsumexp[i] = running_max[i] + np.log(running_sum[i]) if seen else -np.inf


@njit(cache=True, fastmath=FASTMATH)
def unseen_rows(logsumexp):
    """Whether a row of this tile has logsumexp -inf: no visible key, or a NaN/inf row."""
    for value in logsumexp:
        if value == -np.inf:
            return True
    return False


@njit(cache=True, fastmath=FASTMATH)
def softmax_backward(probs, grad_scores, delta):
    """In place: ``grad_scores = probs * (grad_probs - delta)`` (grad_probs comes in grad_scores)."""
    for i in range(probs.shape[0]):
        for j in range(probs.shape[1]):
            grad_scores[i, j] = probs[i, j] * (grad_scores[i, j] - delta[i])


# ---- exp(scores - shift), the one transcendental ------------------------------------------------
def exp_shifted_rows(scores, shift):
    """In place: ``scores[i, j] = exp(scores[i, j] - shift[i])``, every argument <= 0.

    This body is the meaning (and what runs with Numba's JIT disabled); compiled code uses the
    overload below, which picks a vectorisable polynomial for float32.
    """
    np.exp(scores - shift[:, None], out=scores)


@overload(exp_shifted_rows, jit_options={"fastmath": FASTMATH})
def _exp_shifted_rows_typed(scores, shift):
    return exp_shifted_rows_float32 if scores.dtype == types.float32 else exp_shifted_rows_libm


def exp_shifted_rows_libm(scores, shift):
    """float64: Numba's scalar ``np.exp`` (exact; float64 is for checking, not speed)."""
    for i in range(scores.shape[0]):
        for j in range(scores.shape[1]):
            scores[i, j] = np.exp(scores[i, j] - shift[i])


# libm's exp without fast-math: exp(NaN) is NaN and exp(inf) inf, for rows that may hold them
exp_shifted_rows_ieee = njit(cache=True)(exp_shifted_rows_libm)


def exp_shifted_rows_float32(scores, shift):
    """float32: the shared vectorisable ``exp`` of kernels/_float32.py (2^t exp(r), no libm call).

    Its compares compile to selects, not branches, so LLVM still vectorises this loop; an
    argument below -87 (a masked score, shifted to -inf) gives exactly 0.
    """
    for i in range(scores.shape[0]):
        for j in range(scores.shape[1]):
            scores[i, j] = exp(scores[i, j] - shift[i])
