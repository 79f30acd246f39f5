// Shared by every symseg kernel (prepended to each source before NVRTC
// compiles it): the tiling, the element loss and penalty of SPEC §2–3 in f32,
// and the deterministic block reduction.
//
// Tiling: a block owns one sample's tile pair (I, J), I <= J, of TILE x TILE
// elements, with TILE x ROWS threads; thread (tx, ty) handles pairs
// (I*TILE + ty + k*ROWS, J*TILE + tx) for k < TILE/ROWS. Rows of x are read
// coalesced; the mirror tile goes through shared memory, padded by one column
// against bank conflicts.

#define TILE 32
#define ROWS 8
#define THREADS (TILE * ROWS)

typedef unsigned char u8;
typedef unsigned long long u64;

#define IGNORE 255

// The tile pair (ti, tj), ti <= tj, of linear block index t over nt tiles a side.
__device__ __forceinline__ void tile_pair(unsigned t, unsigned nt, unsigned* ti, unsigned* tj) {
    unsigned i = 0;
    unsigned row = nt;
    while (t >= row) {
        t -= row;
        row -= 1;
        i += 1;
    }
    *ti = i;
    *tj = i + t;
}

// Where this block works: sample b (blockIdx.y) at flat offset base, tile pair
// (ti, tj) (blockIdx.x) with first row i0 and first column j0, and the number
// of tile pairs per sample.
struct Block {
    unsigned ti, tj, tiles;
    long long b, base, i0, j0;
};

__device__ __forceinline__ Block this_block(long long n) {
    Block k;
    const unsigned nt = (unsigned)((n + TILE - 1) / TILE);
    k.tiles = nt * (nt + 1) / 2;
    tile_pair(blockIdx.x, nt, &k.ti, &k.tj);
    k.b = blockIdx.y;
    k.base = k.b * n * n;
    k.i0 = (long long)k.ti * TILE;
    k.j0 = (long long)k.tj * TILE;
    return k;
}

// Whether (i, j) of a sample of length len counts, given its label and mask
// (SPEC §1; the mask pointer may be null).
__device__ __forceinline__ bool counted(long long i, long long j, long long len, long long sep, u8 y, u8 m) {
    long long d = i > j ? i - j : j - i;
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

// l(x, y) and dl/dx (focal / BCE, SPEC §2) with z = x for a negative label and
// -x for a positive one: l = w s^gamma softplus(z), s = sigmoid(z).
__device__ __forceinline__ void elem_value_grad(const Elem& e, float x, bool pos, float* l, float* g) {
    float z = pos ? -x : x;
    float ex = expf(-fabsf(x));
    float inv = 1.0f / (1.0f + ex);
    float lp = log1pf(ex);
    float s = z >= 0.0f ? inv : ex * inv;
    float t = z >= 0.0f ? ex * inv : inv;
    float sp = fmaxf(z, 0.0f) + lp;
    float w = pos ? e.w_pos : e.w_neg;
    float pw;
    if (e.kind == 0) {
        pw = 1.0f;
    } else if (e.kind == 1) {
        pw = s;
    } else if (e.kind == 2) {
        pw = s * s;
    } else {
        pw = expf(-e.gamma * (fmaxf(-z, 0.0f) + lp));
    }
    float wp = w * pw;
    float mag = wp * fmaf(e.gamma * t, sp, s);
    *l = wp * sp;
    *g = pos ? -mag : mag;
}

__device__ __forceinline__ float sigmoidf(float x) {
    float ex = expf(-fabsf(x));
    float inv = 1.0f / (1.0f + ex);
    return x >= 0.0f ? inv : ex * inv;
}

// Penalty kinds (0 = none) and what they compare.
#define PEN_NONE 0
#define PEN_L1 1
#define PEN_L2 2
#define PEN_HUBER 3

// rho(t(xa) - t(xb)) and its derivatives in xa and xb (SPEC §3).
__device__ __forceinline__ void penalty_value_grad(int kind, int probs, float delta, float xa, float xb,
                                                   float* rho, float* da, float* db) {
    float ta = xa, tb = xb, dta = 1.0f, dtb = 1.0f;
    if (probs) {
        ta = sigmoidf(xa);
        tb = sigmoidf(xb);
        dta = ta * (1.0f - ta);
        dtb = tb * (1.0f - tb);
    }
    float d = ta - tb;
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
    unsigned t = threadIdx.y * TILE + threadIdx.x;
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
