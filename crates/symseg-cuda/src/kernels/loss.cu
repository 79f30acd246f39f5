// The fused loss pass (SPEC §2–4): every strategy, the penalty, the mask,
// lengths and min_sep in one read of x and y, writing the whole gradient
// (zeros outside the counted set) when `grad` is not null. Each block writes
// its tile pair's two partial sums, already scaled by the sample's reduction
// factors; the host adds them in block order (deterministic).

#define STRAT_PLAIN 0
#define STRAT_DUAL 1
#define STRAT_AVERAGE 2
#define STRAT_UPPER 3
#define STRAT_LOWER 4

extern "C" __global__ void symseg_loss(
    const float* __restrict__ x, const u8* __restrict__ y, const u8* __restrict__ mask,
    float* __restrict__ grad, const long long* __restrict__ lengths, long long n, long long sep,
    int strategy, float w_pos, float w_neg, float gamma, int kind,
    int pen_kind, int pen_probs, float delta,
    const double* __restrict__ r, const double* __restrict__ wp,
    double* __restrict__ partial, u64* __restrict__ bad) {
    __shared__ float sx[TILE][TILE + 1];
    __shared__ float sg[TILE][TILE + 1];
    __shared__ u8 sy[TILE][TILE + 1];
    __shared__ double red[THREADS];

    const Block blk = this_block(n);
    const unsigned ti = blk.ti, tj = blk.tj;
    const long long base = blk.base, i0 = blk.i0, j0 = blk.j0;
    const unsigned tiles = blk.tiles;
    const long long b = blk.b;
    const long long len = lengths[blk.b];
    const unsigned tx = threadIdx.x, ty = threadIdx.y;
    const Elem e = {w_pos, w_neg, gamma, kind};
    const float rb = (float)r[b];
    const float wpb = (float)wp[b];

    // The mirror tile, rows J x columns I, read along its rows (coalesced).
    for (unsigned k = ty; k < TILE; k += ROWS) {
        long long row = j0 + k, col = i0 + tx;
        if (row < n && col < n) {
            sx[k][tx] = x[base + row * n + col];
            sy[k][tx] = y[base + row * n + col];
        }
        sg[k][tx] = 0.0f;
    }
    __syncthreads();

    double acc = 0.0, pacc = 0.0;
    for (unsigned il = ty; il < TILE; il += ROWS) {
        const unsigned jl = tx;
        const long long i = i0 + il, j = j0 + jl;
        if (i >= n || j >= n || (ti == tj && i > j)) {
            continue;
        }
        const long long kij = base + i * n + j;
        const float xij = x[kij];
        const u8 yij = y[kij];
        const u8 mij = mask ? mask[kij] : (u8)1;
        const float xji = sx[jl][il];
        const u8 yji = sy[jl][il];
        float gij = 0.0f, gji = 0.0f;
        if (counted(i, j, len, sep, yij, mij)) {
            if (!isfinite(xij)) {
                atomicMin(bad, (u64)kij);
            }
            if (!isfinite(xji)) {
                atomicMin(bad, (u64)(base + j * n + i));
            }
            const bool pa = yij == 1, pb = yji == 1;
            float l1, d1, l2, d2;
            if (i == j) {
                elem_value_grad(e, xij, pa, &l1, &d1);
                float f = strategy == STRAT_DUAL ? 2.0f : 1.0f;
                acc += (double)(f * l1);
                gij = rb * (f * d1);
            } else {
                if (strategy == STRAT_PLAIN) {
                    elem_value_grad(e, xij, pa, &l1, &d1);
                    elem_value_grad(e, xji, pb, &l2, &d2);
                    acc += (double)l1 + (double)l2;
                    gij = rb * d1;
                    gji = rb * d2;
                } else if (strategy == STRAT_DUAL) {
                    float l3, d3, l4, d4;
                    elem_value_grad(e, xij, pa, &l1, &d1);
                    elem_value_grad(e, xij, pb, &l2, &d2);
                    elem_value_grad(e, xji, pb, &l3, &d3);
                    elem_value_grad(e, xji, pa, &l4, &d4);
                    acc += (double)(l1 + l2) + (double)(l3 + l4);
                    gij = rb * (d1 + d2);
                    gji = rb * (d3 + d4);
                } else if (strategy == STRAT_AVERAGE) {
                    const float z = 0.5f * xij + 0.5f * xji;
                    elem_value_grad(e, z, pa, &l1, &d1);
                    if (pa == pb) {
                        acc += 2.0 * (double)l1;
                        gij = rb * d1;
                    } else {
                        elem_value_grad(e, z, pb, &l2, &d2);
                        acc += (double)l1 + (double)l2;
                        gij = rb * (0.5f * (d1 + d2));
                    }
                    gji = gij;
                } else if (strategy == STRAT_UPPER) {
                    elem_value_grad(e, xij, pa, &l1, &d1);
                    acc += (double)l1;
                    gij = rb * d1;
                } else {
                    elem_value_grad(e, xji, pb, &l2, &d2);
                    acc += (double)l2;
                    gji = rb * d2;
                }
                if (pen_kind != PEN_NONE) {
                    float rho, da, db;
                    penalty_value_grad(pen_kind, pen_probs, delta, xij, xji, &rho, &da, &db);
                    pacc += (double)rho;
                    gij += wpb * da;
                    gji += wpb * db;
                }
            }
        }
        if (grad) {
            grad[kij] = gij;
            if (i != j) {
                sg[jl][il] = gji;
            }
        }
    }
    __syncthreads();
    if (grad) {
        // The mirror gradients, written along rows of J (coalesced). A diagonal
        // tile writes only its lower half here: its upper half and diagonal
        // were written above.
        for (unsigned k = ty; k < TILE; k += ROWS) {
            long long row = j0 + k, col = i0 + tx;
            if (row < n && col < n && (ti != tj || row > col)) {
                grad[base + row * n + col] = sg[k][tx];
            }
        }
    }
    const double s_elem = block_sum(acc, red);
    const double s_pen = block_sum(pacc, red);
    if (tx == 0 && ty == 0) {
        const long long slot = b * (long long)tiles + blockIdx.x;
        partial[2 * slot] = r[b] * s_elem;
        partial[2 * slot + 1] = wp[b] * s_pen;
    }
}
