// Shared by every symseg kernel (prepended to each source before NVRTC
// compiles it): the tiling and the grid-stride loop, wide loads and stores,
// the element loss and penalty of SPEC §2–3 in f32, and the deterministic
// block reduction.
//
// Work: one item is one sample's tile pair (I, J), I <= J, of TILE x TILE
// elements; a grid of a fixed number of blocks (as many as the device keeps
// resident) strides over the batch's items, in order, so each block's sums
// are reduced once at the end and not once per tile. Thread t of a block owns
// the strip of STRIP consecutive columns at row t / STRIPS, columns
// STRIP * (t % STRIPS) .. + STRIP - 1, of both tiles: rows are read and written
// as one 16-byte access per thread where the row layout allows it (`wide`),
// and the mirror tile goes through shared memory, padded by one column against
// bank conflicts (a warp's column reads then hit 32 distinct banks).

#define TILE 32
#define STRIP 4
#define STRIPS (TILE / STRIP)
#define THREADS (TILE * STRIPS)
// Blocks each SM must be able to hold at once (which caps registers per
// thread at 64): with fewer, too few loads are in flight to keep HBM busy.
#define MIN_BLOCKS 4

typedef unsigned char u8;
typedef unsigned long long u64;

#define IGNORE 255

// The block's flat thread index.
__device__ __forceinline__ unsigned thread_id() { return threadIdx.x; }

// A block's walk over the batch's tile pairs: items blockIdx.x, + gridDim.x,
// ... of the `tiles` pairs of each of `batch` samples, item w being pair
// p = w % tiles of sample b = w / tiles. The divisions are done once; a step
// adds the quotient and remainder of gridDim.x, since a 64-bit division per
// tile pair cost more than the pair's own arithmetic. A sample's pairs are
// counted in 32 bits: the host sends n <= 2^20 (a map of 4 TiB), so that
// fewer than 2^31 pairs of 32-wide tiles make a sample.
struct Walk {
    long long batch, b, step_b;
    int nt, tiles, p, step_p;
};

// T is the tile side (the scan walks 64-wide tiles, the other kernels TILE).
template <int T = TILE>
__device__ __forceinline__ Walk walk_start(long long n, long long batch) {
    Walk k;
    k.nt = (int)((n + T - 1) / T);
    k.tiles = (int)((long long)k.nt * (k.nt + 1) / 2);
    k.batch = batch;
    if (k.tiles == 0) {
        k.b = batch;  // an empty map: nothing to walk
        k.p = k.step_p = 0;
        k.step_b = 0;
        return k;
    }
    const long long w = blockIdx.x, step = gridDim.x;
    k.b = w / k.tiles;
    k.p = (int)(w % k.tiles);
    k.step_b = step / k.tiles;
    k.step_p = (int)(step % k.tiles);
    return k;
}

__device__ __forceinline__ bool walk_more(const Walk& k) { return k.b < k.batch; }

__device__ __forceinline__ void walk_next(Walk& k) {
    k.p += k.step_p;
    k.b += k.step_b;
    if (k.p >= k.tiles) {
        k.p -= k.tiles;
        ++k.b;
    }
}

// Whether the current item is the block's last of its sample: per-sample
// sums are flushed there. The same in every thread of the block.
__device__ __forceinline__ bool last_of_sample(const Walk& k) { return k.step_b > 0 || k.p + k.step_p >= k.tiles; }

// Where one work item lies: sample b at flat offset base, tile pair (ti, tj)
// with first row i0 and first column j0.
struct Tile {
    long long b, base;
    int ti, tj, i0, j0;
};

// The first linear index of tile row i among the pairs (i, j >= i), below
// 2^31 for every row of a sample's pairs.
__device__ __forceinline__ int row_start(int i, int nt) { return i * nt - i * (i - 1) / 2; }

template <int T = TILE>
__device__ __forceinline__ Tile tile_of(const Walk& k, long long n) {
    Tile t;
    t.b = k.b;
    const int p = k.p, nt = k.nt;
    // row_start(i) = p solved for i, in f32 (f64 conversions and roots cost
    // more than the whole estimate), then corrected for its rounding.
    const float q = 2.0f * (float)nt + 1.0f;
    int i = (int)((q - sqrtf(fmaxf(q * q - 8.0f * (float)p, 0.0f))) * 0.5f);
    i = i < 0 ? 0 : (i > nt - 1 ? nt - 1 : i);
    while (i > 0 && row_start(i, nt) > p) {
        --i;
    }
    while (i + 1 < nt && row_start(i + 1, nt) <= p) {
        ++i;
    }
    t.ti = i;
    t.tj = i + (p - row_start(i, nt));
    t.base = t.b * n * n;
    t.i0 = t.ti * T;
    t.j0 = t.tj * T;
    return t;
}

// Whether every element of the off-diagonal tile pair t lies inside a sample
// of length len and at least sep off the diagonal: then an element counts
// exactly when its label is not ignored and its mask is not 0, and the
// kernels skip the bounds, length and separation tests.
template <int T = TILE, typename I>
__device__ __forceinline__ bool interior(const Tile& t, I len, I sep) {
    return t.ti != t.tj && t.i0 + T <= len && t.j0 + T <= len && t.j0 - (t.i0 + T - 1) >= sep;
}

// CUDA's 4-element vector type of T, for one access to a strip.
template <typename T>
struct Quad;
template <>
struct Quad<float> {
    typedef float4 type;
};
template <>
struct Quad<u8> {
    typedef uchar4 type;
};

// STRIP elements p[0..STRIP) of a row, the first at column col of n: one
// 16-byte (floats) or 4-byte (bytes) access when `wide`, which the host sets
// only when n % STRIP == 0 and the buffers are aligned to it, so that a strip
// is then entirely inside the row or entirely outside. Elements outside the
// row are left as they are.
template <typename T, typename I>
__device__ __forceinline__ void load_strip(const T* p, I col, I n, bool wide, T* v) {
    if (wide) {
        if (col < n) {
            const typename Quad<T>::type q = *reinterpret_cast<const typename Quad<T>::type*>(p);
            v[0] = q.x;
            v[1] = q.y;
            v[2] = q.z;
            v[3] = q.w;
        }
    } else {
        for (int c = 0; c < STRIP; ++c) {
            if (col + c < n) {
                v[c] = p[c];
            }
        }
    }
}

// A thread's strip of the own tile: logits, labels, and the mask (1 where
// there is none).
struct Strip {
    float x[STRIP];
    u8 y[STRIP];
    u8 m[STRIP];
};

// The strip at flat offset `at` (column col of n), or zeros when the row is
// outside the sample (`in_row` false). Without `x`, only labels and mask.
template <typename I>
__device__ __forceinline__ Strip load_own(const float* x, const u8* y, const u8* mask, long long at, I col, I n,
                                          bool wide, bool in_row) {
    Strip s = {{}, {}, {1, 1, 1, 1}};
    if (in_row) {
        if (x) {
            load_strip(x + at, col, n, wide, s.x);
        }
        load_strip(y + at, col, n, wide, s.y);
        if (mask) {
            load_strip(mask + at, col, n, wide, s.m);
        }
    }
    return s;
}

template <typename I>
__device__ __forceinline__ void store_strip(float* p, I col, I n, bool wide, const float* v) {
    if (wide) {
        if (col < n) {
            *reinterpret_cast<float4*>(p) = make_float4(v[0], v[1], v[2], v[3]);
        }
    } else {
        for (int c = 0; c < STRIP; ++c) {
            if (col + c < n) {
                p[c] = v[c];
            }
        }
    }
}

// This thread's strip at `p` (column col of a row of n; none where the row
// is outside the map, `in_row` false) into row (t / STRIPS) of the shared
// tile `dst`.
template <typename T, int W, typename I>
__device__ __forceinline__ void stage_strip(const T* p, bool in_row, I col, I n, bool wide, T (*dst)[W]) {
    const unsigned r = thread_id() / STRIPS, c0 = STRIP * (thread_id() % STRIPS);
    if (in_row) {
        T v[STRIP] = {};
        load_strip(p, col, n, wide, v);
        for (int c = 0; c < STRIP; ++c) {
            dst[r][c0 + c] = v[c];
        }
    }
}

// STRIP bytes of a row (labels or mask) from column col of n as one word,
// byte c holding column col + c, 0 beyond the row: one 4-byte load when
// `wide` (n a multiple of 4, aligned buffers), otherwise byte by byte.
template <typename I>
__device__ __forceinline__ unsigned load_word(const u8* p, I col, I n, bool wide) {
    if (wide) {
        return col < n ? *reinterpret_cast<const unsigned*>(p) : 0u;
    }
    unsigned w = 0u;
#pragma unroll
    for (int c = 0; c < STRIP; ++c) {
        if (col + c < n) {
            w |= (unsigned)p[c] << (8 * c);
        }
    }
    return w;
}

// Labels: as above (zeros beyond the row), the strip's four bytes stored as
// one word. `dst` must be 4-byte aligned; a row of `W` bytes, W a multiple
// of 4, keeps every strip so.
template <int W, typename I>
__device__ __forceinline__ void stage_strip(const u8* p, bool in_row, I col, I n, bool wide, u8 (*dst)[W]) {
    static_assert(W % 4 == 0, "label rows must keep 4-byte alignment");
    const unsigned r = thread_id() / STRIPS, c0 = STRIP * (thread_id() % STRIPS);
    if (in_row) {
        *reinterpret_cast<unsigned*>(&dst[r][c0]) = load_word(p, col, n, wide);
    }
}

// The inverse: row r, columns c0.. of the shared tile `src` to this thread's strip at `p`.
template <int W, typename I>
__device__ __forceinline__ void unstage_strip(const float (*src)[W], float* p, bool in_row, I col, I n, bool wide,
                                              unsigned r = thread_id() / STRIPS,
                                              unsigned c0 = STRIP * (thread_id() % STRIPS)) {
    if (in_row) {
        float v[STRIP];
        for (int c = 0; c < STRIP; ++c) {
            v[c] = src[r][c0 + c];
        }
        store_strip(p, col, n, wide, v);
    }
}

// This thread's strip of the tile at rows row0.., columns col0.. of an n x n
// sample at `src`, into row (t / STRIPS) of the shared tile `dst`.
template <typename T, int W>
__device__ __forceinline__ void stage_rows(const T* src, long long row0, long long col0, long long n, bool wide,
                                           T (*dst)[W]) {
    const long long row = row0 + thread_id() / STRIPS, col = col0 + STRIP * (thread_id() % STRIPS);
    stage_strip(src + row * n + col, row < n, col, n, wide, dst);
}

// The inverse: row (t / STRIPS) of the shared tile `src` to this thread's
// strip of rows row0.., columns col0.. of the sample at `dst`.
__device__ __forceinline__ void unstage_rows(const float (*src)[TILE + 1], long long row0, long long col0,
                                             long long n, bool wide, float* dst) {
    const long long row = row0 + thread_id() / STRIPS, col = col0 + STRIP * (thread_id() % STRIPS);
    unstage_strip(src, dst + row * n + col, row < n, col, n, wide);
}

// 16 bytes of a row of labels (or a mask) from column col of n into 4 words,
// zero beyond the row (both scans' loads): one 16-byte load when `wide16`,
// 4-byte loads when `wide` (n a multiple of 4, so that a word is all inside
// the row or all outside), otherwise byte by byte.
__device__ __forceinline__ void load_strip16(const u8* p, long long col, long long n, bool wide16, bool wide,
                                             unsigned* w) {
    w[0] = w[1] = w[2] = w[3] = 0u;
    if (wide16) {
        if (col < n) {
            const uint4 q = *reinterpret_cast<const uint4*>(p);
            w[0] = q.x;
            w[1] = q.y;
            w[2] = q.z;
            w[3] = q.w;
        }
    } else if (wide) {
        for (int s = 0; s < 4; ++s) {
            if (col + 4 * s < n) {
                w[s] = *reinterpret_cast<const unsigned*>(p + 4 * s);
            }
        }
    } else {
        for (int c = 0; c < 16; ++c) {
            if (col + c < n) {
                w[c / 4] |= (unsigned)p[c] << (8 * (c % 4));
            }
        }
    }
}

__device__ __forceinline__ u8 byte_of(const unsigned* w, int c) { return (u8)(w[c / 4] >> (8 * (c % 4))); }

// Whether a byte of w is 0 (exact as a yes or no; the classic bit trick).
__device__ __forceinline__ bool has_zero_byte(unsigned w) { return ((w - 0x01010101u) & ~w & 0x80808080u) != 0; }

// The top bit of each non-zero byte of w, the other bits clear (exact: no
// carry crosses a byte).
__device__ __forceinline__ unsigned nonzero_bytes(unsigned w) {
    return (((w & 0x7F7F7F7Fu) + 0x7F7F7F7Fu) | w) & 0x80808080u;
}

// The index of the lowest set bit of m != 0.
__device__ __forceinline__ int lowest_bit(unsigned m) {
#ifdef __CUDA_ARCH__
    return __ffs((int)m) - 1;
#else
    return __builtin_ctz(m);
#endif
}

// The number of set bits of m.
__device__ __forceinline__ int count_bits(unsigned m) {
#ifdef __CUDA_ARCH__
    return __popc(m);
#else
    return __builtin_popcount(m);
#endif
}

// What a checked loss pass found in one item of sample b: invalid labels
// (*violation becomes 0), and ignore marks of the counted set (pairs,
// diagonal), added to the sample's two words of `ignored`. Atomics only
// where there is something to say.
__device__ __forceinline__ void report_checks(bool invalid, unsigned ignored_pairs, unsigned ignored_diag,
                                              long long b, u64* ignored, u64* violation) {
    if (invalid) {
        atomicMin(violation, 0ull);
    }
    if (ignored_pairs != 0u) {
        atomicAdd(&ignored[2 * b], (u64)ignored_pairs);
    }
    if (ignored_diag != 0u) {
        atomicAdd(&ignored[2 * b + 1], (u64)ignored_diag);
    }
}

// The row-wise symmetry test's end (`scan_rows.cu`): thread 0 of each block,
// once, adds the block's balance (upper minus lower non-zero labels,
// wrapping) to tally[0] and counts the block done in tally[1]; the last
// block to finish then sees every block's balance and sets *violation to 0
// where it is not 0.
__device__ __forceinline__ void settle_balance(unsigned long long net, u64* tally, u64* violation) {
    if (net) {
        atomicAdd(&tally[0], net);
    }
    // The balance added before this block counts itself done.
    __threadfence();
    if (atomicAdd(&tally[1], 1ull) == gridDim.x - 1ull) {
        __threadfence();
        if (atomicAdd(&tally[0], 0ull) != 0ull) {
            atomicMin(violation, 0ull);
        }
    }
}

// Whether (i, j) of a sample of length len counts, given its label and mask
// (SPEC §1; the mask pointer may be null).
template <typename I>
__device__ __forceinline__ bool counted(I i, I j, I len, I sep, u8 y, u8 m) {
    I d = i > j ? i - j : j - i;
    return i < len && j < len && d >= sep && y != IGNORE && m != 0;
}

// Element loss parameters: weights for positive and negative labels, gamma,
// and how s^gamma is evaluated (0, 1, 2: by multiplication; 3: exp).
struct Elem {
    float w_pos;
    float w_neg;
    float gamma;
    int kind;
};

// 1 / u for u in [1, 3]: the hardware reciprocal alone (within an ulp
// there), without the correctly rounded division's sequence or
// __fdividef's range tests, which such u never needs; SPEC §4 allows 1e-5.
// (The CPU emulation divides.)
__device__ __forceinline__ float recip_unit(float u) {
#ifdef __CUDA_ARCH__
    float r;
    asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(u));
    return r;
#else
    return 1.0f / u;
#endif
}

// e^-a for a >= 0 as 2^(-a log2 e) by the hardware's ex2.approx (2 ulp), in
// three instructions against expf's eight. Its argument is clamped at -126,
// so that beyond a = 87.3 it returns 2^-126 (1.2e-38) rather than a
// subnormal, as the CPU backend's exp does. Rounding -a log2 e to f32 adds a
// relative error of about a * 6e-8 (5e-6 at a = 80, a confident logit's
// loss e^-a): SPEC §4 allows 1e-5. (The CPU emulation calls exp2f on the
// same rounded argument, so its tests see that error too.)
__device__ __forceinline__ float exp_neg(float a) {
    const float t = fmaxf(a * -1.44269504f, -126.0f);
#ifdef __CUDA_ARCH__
    float r;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(t));
    return r;
#else
    return exp2f(t);
#endif
}

// log(1 + e) for e in [0, 1] as e * P(e), P a degree-8 minimax polynomial for
// log(1 + e) / e (relative error 3e-8 in exact arithmetic, 2e-7 in f32; the
// CPU backend's `ln_1p_unit`, coefficient for coefficient): no division, and
// relative accuracy kept for tiny e (a confident logit's loss), in nine
// instructions against the atanh series' thirteen and its reciprocal.
__device__ __forceinline__ float log1p_unit(float e) {
    float p = 5.2326913e-3f;
    p = fmaf(p, e, -2.9505227e-2f);
    p = fmaf(p, e, 7.822593e-2f);
    p = fmaf(p, e, -1.3663244e-1f);
    p = fmaf(p, e, 1.9106007e-1f);
    p = fmaf(p, e, -2.4842982e-1f);
    p = fmaf(p, e, 3.3319098e-1f);
    p = fmaf(p, e, -4.9999493e-1f);
    p = fmaf(p, e, 9.9999994e-1f);
    return e * p;
}

// The loss kernels are compiled for one element-loss kind at a time
// (SYMSEG_ELEM_KIND, an NVRTC -D option; `kernels::compile_for_kind`), so
// that s^gamma's selects fold away; without it, `Elem::kind` decides.
#ifdef SYMSEG_ELEM_KIND
#define ELEM_KIND(k) SYMSEG_ELEM_KIND
#else
#define ELEM_KIND(k) (k)
#endif

// l(x, y) and dl/dx (focal / BCE, SPEC §2) with z = x for a negative label and
// -x for a positive one: l = w s^gamma softplus(z), s = sigmoid(z).
__device__ __forceinline__ void elem_value_grad(const Elem& e, float x, bool pos, float* l, float* g) {
    const int kind = ELEM_KIND(e.kind);
    float z = pos ? -x : x;
    float ex = exp_neg(fabsf(x));
    float inv = recip_unit(1.0f + ex);
    float lp = log1p_unit(ex);
    float s = z >= 0.0f ? inv : ex * inv;
    float t = z >= 0.0f ? ex * inv : inv;
    float sp = fmaxf(z, 0.0f) + lp;
    float w = pos ? e.w_pos : e.w_neg;
    // s^gamma: selects for gamma 0, 1, 2 (one branch, not three), exp otherwise.
    float pw = kind == 0 ? 1.0f : (kind == 1 ? s : s * s);
    if (kind == 3) {
        pw = expf(-e.gamma * (fmaxf(-z, 0.0f) + lp));
    }
    float wp = w * pw;
    // gamma t sp + s; for gamma = 0 (BCE, the kind-0 build) only s.
    float mag = kind == 0 ? wp * s : wp * fmaf(e.gamma * t, sp, s);
    *l = wp * sp;
    *g = pos ? -mag : mag;
}

// Penalty kinds (0 = none) and what they compare.
#define PEN_NONE 0
#define PEN_L1 1
#define PEN_L2 2
#define PEN_HUBER 3

// rho(t(xa) - t(xb)) and its derivatives in xa and xb (SPEC §3).
__device__ __forceinline__ void penalty_value_grad(int kind, int probs, float delta, float xa, float xb,
                                                   float* rho, float* da, float* db) {
    float d = xa - xb, dta = 1.0f, dtb = 1.0f;
    if (probs) {
        // sigmoid(xa) - sigmoid(xb) and the slopes p q over the common
        // denominator (1 + ea)(1 + eb), e = exp(-|x|): subtracting rounded
        // probabilities near 1, or forming 1 - p there, would lose every digit.
        float ea = expf(-fabsf(xa)), eb = expf(-fabsf(xb));
        float ia = recip_unit(1.0f + ea), ib = recip_unit(1.0f + eb);
        bool pa = xa >= 0.0f, pb = xb >= 0.0f;
        float num = pa == pb ? (pa ? eb - ea : ea - eb) : (pa ? fmaf(-ea, eb, 1.0f) : fmaf(ea, eb, -1.0f));
        d = num * (ia * ib);
        dta = ea * ia * ia;
        dtb = eb * ib * ib;
    }
    float ad = fabsf(d);
    // t is increasing: sign(d) = sign(xa - xb) even where rounded probabilities tie.
    float sign = xa > xb ? 1.0f : (xa < xb ? -1.0f : 0.0f);
    float r, dr;
    if (kind == PEN_L1) {
        r = ad;
        dr = sign;
    } else if (kind == PEN_L2) {
        r = d * d;
        dr = 2.0f * d;
    } else {
        bool inner = ad <= delta;
        r = inner ? 0.5f * d * d : delta * (ad - 0.5f * delta);
        dr = inner ? d : delta * sign;
    }
    *rho = r;
    *da = dr * dta;
    *db = -(dr * dtb);
}

// The sum of v over the block, in a fixed order (a shared-memory tree), so the
// result is the same run to run. Valid in every thread; every thread must call it.
template <typename T>
__device__ T block_sum(T v, T* sh) {
    const unsigned t = thread_id();
    sh[t] = v;
    __syncthreads();
    for (unsigned s = THREADS / 2; s > 0; s >>= 1) {
        if (t < s) {
            sh[t] += sh[t + s];
        }
        __syncthreads();
    }
    T r = sh[0];
    __syncthreads();
    return r;
}
