"""Flash attention on the GPU: ``numba.cuda`` kernels over tiles in shared memory, an online softmax.

Each block owns one tile of ``rows`` queries (or keys) of one (batch, head) and one thread per row;
the other side streams through shared memory a tile at a time, so no (L, S) matrix is ever stored.

Forward, thread i (query i), m / l / acc its running max, sum and unnormalised output::

    m, l, acc = -inf, 0, 0
    for each tile of keys (causal: only tiles that start at or before the block's last query):
        load K_tile, V_tile into shared memory (all threads together);  sync
        s_j   = scale * q_i . k_j + mask[i, j]       (-inf where causal hides j > i)
        m_new = max(m, max_j s_j);  c = exp(m - m_new)
        l     = c * l + sum_j exp(s_j - m_new);  acc = c * acc + sum_j exp(s_j - m_new) v_j
        m     = m_new
    out_i = acc / l;  logsumexp_i = m + log(l)       (0 and -inf when no key is visible)

Backward (FlashAttention-2's split, without atomics): with p_ij = exp(s_ij - logsumexp_i) recomputed
from the saved logsumexp and delta_i = dO_i . out_i,

    key kernel, thread j (key j), streaming query tiles:
        dV_j += sum_i p_ij dO_i;       dK_j += scale * sum_i p_ij (dO_i . v_j - delta_i) q_i
    query kernel, thread i (query i), streaming key tiles:
        dQ_i += scale * sum_j p_ij (dO_i . v_j - delta_i) k_j

Every thread writes only its own rows, so results are deterministic. A thread's own rows (its query,
accumulator, gradients) live in shared memory *transposed*, ``own[d * rows + thread]``: consecutive
threads touch consecutive words (no bank conflicts), while the streamed tile is read by all threads
at the same address (a broadcast). All shared arrays are carved from one dynamic allocation sized at
launch, so the head dimension is a run-time value; ``rows`` is the largest tile that fits in 48 KB.
A head dimension too large even for 8-row tiles runs the reference implementation (cuBLAS on the
materialised scores) instead.
"""
import math

from . import reference
from .._checks import array_module
from .._cuda import SHARED_MEMORY_BYTES, cuda, launch
from ._shapes import check_attention_gradient_inputs, check_attention_inputs

TILE_ROWS = (64, 32, 16, 8)  # threads per block, largest first; a warp multiple except the last


# ---- shared-memory layout: how many words each kernel needs per tile row -------------------------
def forward_words(rows, depth, value_depth):
    """Own query and accumulator, streamed K and V tiles, and the tile's scores (rows x rows)."""
    return rows * (2 * depth + 2 * value_depth + rows)


def backward_keys_words(rows, depth, value_depth):
    """Own k, v, dK, dV; streamed scaled-Q and dO tiles with their logsumexp and delta."""
    return rows * (3 * depth + 3 * value_depth + 2)


def backward_queries_words(rows, depth, value_depth):
    """Own scaled q, dO and dQ; streamed K and V tiles."""
    return rows * (3 * depth + 2 * value_depth)


def tile_rows(words, depth, value_depth, itemsize):
    """The largest tile whose shared memory fits in 48 KB, or None (then the reference path runs)."""
    for rows in TILE_ROWS:
        if words(rows, depth, value_depth) * itemsize <= SHARED_MEMORY_BYTES:
            return rows
    return None


# ---- device helpers --------------------------------------------------------------------------------
@cuda.jit(device=True, inline="always")
def load_tile(source, first, count, tile, thread, rows):
    """``tile[r * D + d] = source[first + r, d]`` for r < count, loaded by all threads together
    (thread t takes words t, t + rows, ...: consecutive threads read consecutive words)."""
    depth = source.shape[1]
    for word in range(thread, count * depth, rows):
        tile[word] = source[first + word // depth, word % depth]


@cuda.jit(device=True, inline="always")
def load_own_row(source, index, own, thread, rows, factor):
    """``own[d * rows + thread] = factor * source[index, d]``: this thread's row, transposed."""
    for d in range(source.shape[1]):
        own[d * rows + thread] = factor * source[index, d]


@cuda.jit(device=True, inline="always")
def dot_own_tile(own, thread, rows, tile, row):
    """``own_row . tile_row`` for this thread's own (transposed) row and one streamed tile row."""
    depth = own.size // rows
    total = own.dtype.type(0)
    for d in range(depth):
        total += own[d * rows + thread] * tile[row * depth + d]
    return total


@cuda.jit(device=True, inline="always")
def add_scaled_tile_row(own, thread, rows, weight, tile, row):
    """``own_row += weight * tile_row``."""
    depth = own.size // rows
    for d in range(depth):
        own[d * rows + thread] += weight * tile[row * depth + d]


@cuda.jit(device=True, inline="always")
def block_and_thread(q, length):
    """Every kernel's setup: tile height, this thread, its (batch, head), the block's first row
    along the tiled axis (``length`` rows: queries or keys), this thread's row, and whether it is one."""
    rows, thread = cuda.blockDim.x, cuda.threadIdx.x
    b, h = cuda.blockIdx.x // q.shape[1], cuda.blockIdx.x % q.shape[1]
    first = cuda.blockIdx.y * rows
    return rows, thread, b, h, first, first + thread, first + thread < length


@cuda.jit(device=True, inline="always")
def carve(shared, end, size):
    """The next ``size`` words of the dynamic shared array after ``end``, and the new end."""
    return shared[end:end + size], end + size


@cuda.jit(device=True, inline="always")
def masked_score(s, mask, has_mask, is_causal, b, h, query, key):
    """The score after the additive mask, -inf where causal attention hides ``key``."""
    if is_causal and key > query:
        return mask.dtype.type(-math.inf)
    if has_mask:
        return s + mask[b, h, query, key]
    return s


# ---- forward -------------------------------------------------------------------------------------
@cuda.jit
def attention_forward_kernel(q, k, v, mask, has_mask, is_causal, scale, out, logsumexp):
    """Grid (B*H, query tiles), one thread per query: the online softmax of the module docstring."""
    queries, keys, depth, value_depth = q.shape[2], k.shape[2], q.shape[3], v.shape[3]
    rows, thread, b, h, first_query, query, active = block_and_thread(q, queries)
    shared = cuda.shared.array(0, dtype=q.dtype)
    own_q = shared[:depth * rows]
    acc = shared[depth * rows:(depth + value_depth) * rows]
    k_tile = shared[(depth + value_depth) * rows:(2 * depth + value_depth) * rows]
    v_tile = shared[(2 * depth + value_depth) * rows:2 * (depth + value_depth) * rows]
    scores = shared[2 * (depth + value_depth) * rows:(2 * (depth + value_depth) + rows) * rows]
    zero, negative_infinity = q.dtype.type(0), q.dtype.type(-math.inf)
    running_max, running_sum = negative_infinity, zero
    if active:
        load_own_row(q[b, h], query, own_q, thread, rows, scale)
        for d in range(value_depth):
            acc[d * rows + thread] = zero
    key_end = min(keys, first_query + rows) if is_causal else keys  # later keys are all hidden
    for first_key in range(0, key_end, rows):
        count = min(rows, key_end - first_key)
        cuda.syncthreads()  # every thread is done with the previous tile
        load_tile(k[b, h], first_key, count, k_tile, thread, rows)
        load_tile(v[b, h], first_key, count, v_tile, thread, rows)
        cuda.syncthreads()
        if active:
            tile_max = negative_infinity
            for j in range(count):
                s = dot_own_tile(own_q, thread, rows, k_tile, j)
                s = masked_score(s, mask, has_mask, is_causal, b, h, query, first_key + j)
                scores[j * rows + thread] = s
                if s > tile_max or s != s:  # a NaN wins and stays, as in the reference's max
                    tile_max = s
            new_max = tile_max if tile_max > running_max or tile_max != tile_max else running_max
            shift = new_max if new_max > negative_infinity else zero  # no visible key yet: exp(-inf) = 0
            correction = math.exp(running_max - shift)
            running_sum *= correction
            for d in range(value_depth):
                acc[d * rows + thread] *= correction
            for j in range(count):
                p = math.exp(scores[j * rows + thread] - shift)
                running_sum += p
                add_scaled_tile_row(acc, thread, rows, p, v_tile, j)
            running_max = new_max
    if active:
        seen = running_sum > zero
        inverse = q.dtype.type(1) / running_sum if seen else zero
        # a NaN or +inf score: the row is NaN, as in the reference (constants in q's dtype: a Python
        # float would turn a float32 kernel's arithmetic into float64)
        poisoned = not running_max < q.dtype.type(math.inf)
        for d in range(value_depth):
            out[b, h, query, d] = q.dtype.type(math.nan) if poisoned else acc[d * rows + thread] * inverse
        logsumexp[b, h, query] = running_max + math.log(running_sum) if seen and not poisoned \
            else negative_infinity


# ---- backward ------------------------------------------------------------------------------------
@cuda.jit
def attention_backward_keys_kernel(grad_out, q, k, v, shift, delta, mask, has_mask, is_causal, scale,
                                   grad_k, grad_v):
    """Grid (B*H, key tiles), one thread per key j: dK_j and dV_j over every query that sees j."""
    queries, keys, depth, value_depth = q.shape[2], k.shape[2], q.shape[3], v.shape[3]
    rows, thread, b, h, first_key, key, active = block_and_thread(q, keys)
    shared = cuda.shared.array(0, dtype=q.dtype)
    own_k, end = carve(shared, 0, depth * rows)
    own_v, end = carve(shared, end, value_depth * rows)
    own_grad_k, end = carve(shared, end, depth * rows)
    own_grad_v, end = carve(shared, end, value_depth * rows)
    q_tile, end = carve(shared, end, rows * depth)
    grad_out_tile, end = carve(shared, end, rows * value_depth)
    shift_tile, delta_tile = shared[end:end + rows], shared[end + rows:end + 2 * rows]
    zero = q.dtype.type(0)
    if active:
        load_own_row(k[b, h], key, own_k, thread, rows, q.dtype.type(1))
        load_own_row(v[b, h], key, own_v, thread, rows, q.dtype.type(1))
        for d in range(depth):
            own_grad_k[d * rows + thread] = zero
        for d in range(value_depth):
            own_grad_v[d * rows + thread] = zero
    first_query = first_key if is_causal else 0  # earlier queries see none of this block's keys
    for tile_start in range(first_query, queries, rows):
        count = min(rows, queries - tile_start)
        cuda.syncthreads()
        for word in range(thread, count * depth, rows):  # the query tile, pre-scaled
            q_tile[word] = scale * q[b, h, tile_start + word // depth, word % depth]
        load_tile(grad_out[b, h], tile_start, count, grad_out_tile, thread, rows)
        if thread < count:
            shift_tile[thread] = shift[b, h, tile_start + thread]
            delta_tile[thread] = delta[b, h, tile_start + thread]
        cuda.syncthreads()
        if active:
            for i in range(count):
                query = tile_start + i
                if is_causal and key > query:
                    continue
                s = dot_own_tile(own_k, thread, rows, q_tile, i)
                s = masked_score(s, mask, has_mask, False, b, h, query, key)
                p = math.exp(s - shift_tile[i])
                grad_p = dot_own_tile(own_v, thread, rows, grad_out_tile, i)
                add_scaled_tile_row(own_grad_v, thread, rows, p, grad_out_tile, i)
                add_scaled_tile_row(own_grad_k, thread, rows, p * (grad_p - delta_tile[i]), q_tile, i)
    if active:
        for d in range(depth):
            grad_k[b, h, key, d] = own_grad_k[d * rows + thread]
        for d in range(value_depth):
            grad_v[b, h, key, d] = own_grad_v[d * rows + thread]


@cuda.jit
def attention_backward_queries_kernel(grad_out, q, k, v, shift, delta, mask, has_mask, is_causal, scale,
                                      grad_q):
    """Grid (B*H, query tiles), one thread per query i: dQ_i over every key that i sees."""
    queries, keys, depth, value_depth = q.shape[2], k.shape[2], q.shape[3], v.shape[3]
    rows, thread, b, h, first_query, query, active = block_and_thread(q, queries)
    shared = cuda.shared.array(0, dtype=q.dtype)
    own_q, end = carve(shared, 0, depth * rows)
    own_grad_out, end = carve(shared, end, value_depth * rows)
    own_grad_q, end = carve(shared, end, depth * rows)
    k_tile, end = carve(shared, end, rows * depth)
    v_tile = shared[end:end + rows * value_depth]
    zero = q.dtype.type(0)
    row_shift, row_delta = zero, zero
    if active:
        load_own_row(q[b, h], query, own_q, thread, rows, scale)
        load_own_row(grad_out[b, h], query, own_grad_out, thread, rows, q.dtype.type(1))
        for d in range(depth):
            own_grad_q[d * rows + thread] = zero
        row_shift, row_delta = shift[b, h, query], delta[b, h, query]
    key_end = min(keys, first_query + rows) if is_causal else keys
    for first_key in range(0, key_end, rows):
        count = min(rows, key_end - first_key)
        cuda.syncthreads()
        load_tile(k[b, h], first_key, count, k_tile, thread, rows)
        load_tile(v[b, h], first_key, count, v_tile, thread, rows)
        cuda.syncthreads()
        if active:
            for j in range(count):
                s = dot_own_tile(own_q, thread, rows, k_tile, j)
                s = masked_score(s, mask, has_mask, is_causal, b, h, query, first_key + j)
                p = math.exp(s - row_shift)
                grad_p = dot_own_tile(own_grad_out, thread, rows, v_tile, j)
                add_scaled_tile_row(own_grad_q, thread, rows, p * (grad_p - row_delta), k_tile, j)
    if active:
        for d in range(depth):
            grad_q[b, h, query, d] = scale * own_grad_q[d * rows + thread]


# ---- host side: shapes, tiles, launches -----------------------------------------------------------
def attention_forward(q, k, v, mask, is_causal, scale):
    """``(out, logsumexp)`` of softmax(q k^T * scale + mask) v, one key tile at a time."""
    scores_shape = check_attention_inputs("attention_forward", q, k, v, mask)
    rows = tile_rows(forward_words, q.shape[3], v.shape[3], q.dtype.itemsize)
    if rows is None:
        return reference.attention_forward(q, k, v, mask, is_causal, scale)
    xp = array_module(q)
    out = xp.empty(scores_shape[:3] + (v.shape[3],), dtype=q.dtype)
    logsumexp = xp.empty(scores_shape[:3], dtype=q.dtype)
    if out.size or logsumexp.size:
        launch(attention_forward_kernel, grid(scores_shape, 2, rows), rows, q, k, v,
               *mask_view(mask, scores_shape, q), bool(is_causal), q.dtype.type(scale), out, logsumexp,
               shared_bytes=forward_words(rows, q.shape[3], v.shape[3]) * q.dtype.itemsize)
    return out, logsumexp


def attention_backward(grad_out, q, k, v, out, logsumexp, mask, is_causal, scale):
    """``(grad_q, grad_k, grad_v)``: the key kernel, then the query kernel (no atomics)."""
    scores_shape = check_attention_gradient_inputs("attention_backward", grad_out, q, k, v, out, logsumexp,
                                                   mask)
    depth, value_depth, itemsize = q.shape[3], v.shape[3], q.dtype.itemsize
    key_rows = tile_rows(backward_keys_words, depth, value_depth, itemsize)
    query_rows = tile_rows(backward_queries_words, depth, value_depth, itemsize)
    if key_rows is None or query_rows is None:
        return reference.attention_backward(grad_out, q, k, v, out, logsumexp, mask, is_causal, scale)
    xp = array_module(q)
    shift = reference.finite_or_zero(logsumexp)           # rows with no visible key pass no gradient
    delta = (grad_out * out).sum(axis=-1)                  # rowsum(dO * O) = rowsum(P * dP)
    grad_q, grad_k, grad_v = xp.empty_like(q), xp.empty_like(k), xp.empty_like(v)
    common = (grad_out, q, k, v, shift, delta, *mask_view(mask, scores_shape, q), bool(is_causal),
              q.dtype.type(scale))
    if grad_k.size or grad_v.size:
        launch(attention_backward_keys_kernel, grid(scores_shape, 3, key_rows), key_rows, *common, grad_k,
               grad_v, shared_bytes=backward_keys_words(key_rows, depth, value_depth) * itemsize)
    if grad_q.size:
        launch(attention_backward_queries_kernel, grid(scores_shape, 2, query_rows), query_rows, *common,
               grad_q, shared_bytes=backward_queries_words(query_rows, depth, value_depth) * itemsize)
    return grad_q, grad_k, grad_v


def grid(scores_shape, axis, rows):
    """(B*H blocks, tiles of ``rows`` along the query (axis 2) or key (axis 3) length)."""
    batch, heads = scores_shape[:2]
    return (max(1, batch * heads), max(1, -(-scores_shape[axis] // rows)))


def mask_view(mask, scores_shape, like):
    """``(mask, has_mask)``: the mask as a (B, H, L, S) view with zero strides (nothing copied);
    without a mask, a view of one zero, so the kernels see one argument type either way."""
    xp = array_module(like)
    if mask is None:
        return xp.broadcast_to(xp.zeros((), dtype=like.dtype), scores_shape), False
    return xp.broadcast_to(mask, scores_shape), True
