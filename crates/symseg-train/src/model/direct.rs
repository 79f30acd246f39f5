//! Direct 2D convolution on channels-last maps, vectorised over output channels.
//!
//! im2col + GEMM copies every input pixel nine times into a matrix that no
//! longer fits in cache, and the GEMM then packs that matrix again; for the
//! narrow layers of this model (16-32 channels) the copies cost more than the
//! multiply. Here a pixel's channels lie in blocks of [`LANES`] floats, so one
//! output block is one vector register: each kernel tap adds
//! `input channel x weight vector` straight into the output row, which stays in
//! L1. The weight gradient walks the same rows and keeps its accumulators in
//! registers. The bodies are written once as lane loops and compiled for
//! AVX-512, AVX2+FMA and portable code, chosen at run time (as the CPU loss
//! kernels do).

use symseg::SimdLevel;

pub use super::map::{Block, LANES, Map};

/// Pixels handled together in the portable convolution (accumulators in registers).
const PIXELS: usize = 4;

/// Pixels handled together in the AVX-512 convolution.
#[cfg(target_arch = "x86_64")]
const PIXELS_512: usize = 8;

/// Pixels handled together in the portable weight-gradient kernel.
const PIXELS_W: usize = 8;

/// Input channels handled together in the AVX-512 weight-gradient kernel.
#[cfg(target_arch = "x86_64")]
const CHANS: usize = 8;

/// Input channels handled together in the AVX2 weight-gradient kernel.
#[cfg(target_arch = "x86_64")]
const CHANS_256: usize = 4;

/// One convolution's weights for the kernels: per tap, the pixel offset and, for
/// each input channel, the output channels as blocks.
#[derive(Debug, Clone)]
pub struct Packed {
    /// Offset `(rows, columns)` of each tap.
    taps: Vec<(isize, isize)>,
    /// Input channels.
    cin: usize,
    /// Output channels.
    cout: usize,
    /// Output blocks.
    blocks: usize,
    /// `taps x blocks x cin`: for one tap and output block, the input channels in a row.
    w: Vec<Block>,
    /// `blocks`.
    b: Vec<Block>,
}

/// Tap offsets of a `k x k` kernel with `dilation`, row-major.
fn tap_offsets(k: usize, dilation: usize) -> Vec<(isize, isize)> {
    let off = |t: usize| (t as isize - (k / 2) as isize) * dilation as isize;
    (0..k * k).map(|t| (off(t / k), off(t % k))).collect()
}

impl Packed {
    /// Packs weights stored as `cout x cin x k x k` and `cout` biases.
    pub fn new(s: &super::ConvShape, w: &[f32], b: &[f32]) -> Packed {
        let taps = tap_offsets(s.k, s.dilation);
        let blocks = s.cout.div_ceil(LANES);
        let kk = s.k * s.k;
        let mut p = Packed {
            taps,
            cin: s.cin,
            cout: s.cout,
            blocks,
            w: vec![[0.0; LANES]; kk * s.cin * blocks],
            b: vec![[0.0; LANES]; blocks],
        };
        for co in 0..s.cout {
            for ci in 0..s.cin {
                for t in 0..kk {
                    p.w[(t * blocks + co / LANES) * s.cin + ci][co % LANES] = w[(co * s.cin + ci) * kk + t];
                }
            }
            p.b[co / LANES][co % LANES] = b[co];
        }
        p
    }

    /// The weights of the input gradient: the adjoint convolution, from the
    /// output channels back to the input channels, with every tap reflected.
    pub fn adjoint(s: &super::ConvShape, w: &[f32]) -> Packed {
        let taps: Vec<_> = tap_offsets(s.k, s.dilation).into_iter().map(|(a, b)| (-a, -b)).collect();
        let blocks = s.cin.div_ceil(LANES);
        let kk = s.k * s.k;
        let mut p = Packed {
            taps,
            cin: s.cout,
            cout: s.cin,
            blocks,
            w: vec![[0.0; LANES]; kk * s.cout * blocks],
            b: vec![[0.0; LANES]; blocks],
        };
        for co in 0..s.cout {
            for ci in 0..s.cin {
                for t in 0..kk {
                    p.w[(t * blocks + ci / LANES) * s.cout + co][ci % LANES] = w[(co * s.cin + ci) * kk + t];
                }
            }
        }
        p
    }

    /// `y = conv(x) + b` ("same" padding): a map of `cout` channels; with `relu`,
    /// `max(y, 0)` (applied row by row while the row is in cache).
    ///
    /// # Panics
    /// If `x` does not have `cin` channels: a programmer error.
    pub fn apply(&self, x: &Map, relu: bool, level: SimdLevel) -> Map {
        // Every block is written: first the bias, then the taps add to it.
        let mut y = Map::scratch(x.n, self.cout);
        self.run(x, &mut y, Epilogue { bias: true, relu }, level);
        y
    }

    /// `y += conv(x)` (no bias): how the input gradient joins the gradient that
    /// reaches the same map through a residual connection.
    ///
    /// # Panics
    /// If `x` does not have `cin` channels or `y` is not an `n x n` map of `cout`: a programmer error.
    pub fn apply_add(&self, x: &Map, y: &mut Map, level: SimdLevel) {
        assert!(y.n == x.n && y.channels == self.cout, "output map of a packed convolution");
        self.run(x, y, Epilogue { bias: false, relu: false }, level);
    }

    fn run(&self, x: &Map, y: &mut Map, e: Epilogue, level: SimdLevel) {
        assert_eq!(x.channels, self.cin, "input channels of a packed convolution");
        debug_assert_eq!(y.blocks, self.blocks);
        match level {
            // SAFETY: the level comes from `SimdLevel::detect`, so the CPU has these features.
            #[cfg(target_arch = "x86_64")]
            SimdLevel::Avx512 => unsafe { conv_avx512(self, x, y, e) },
            // SAFETY: as above.
            #[cfg(target_arch = "x86_64")]
            SimdLevel::Avx2 => unsafe { conv_avx2(self, x, y, e) },
            _ => conv_body::<false>(self, x, y, e),
        }
    }
}

/// What a convolution does besides the taps.
#[derive(Debug, Clone, Copy)]
struct Epilogue {
    /// Start from the bias (else add to what `y` holds).
    bias: bool,
    /// Clamp at zero.
    relu: bool,
}

#[inline(always)]
fn fma<const F: bool>(a: f32, b: f32, c: f32) -> f32 {
    if F { a.mul_add(b, c) } else { a * b + c }
}

#[inline(always)]
fn axpy<const F: bool>(acc: &mut Block, x: f32, w: &Block) {
    for l in 0..LANES {
        acc[l] = fma::<F>(x, w[l], acc[l]);
    }
}

/// Columns `j` with `0 <= j + dx < n`.
#[inline(always)]
fn valid_columns(n: usize, dx: isize) -> (usize, usize) {
    let j0 = (-dx).max(0) as usize;
    let j1 = (n as isize - dx).clamp(0, n as isize) as usize;
    (j0, j1.max(j0))
}

#[inline(always)]
fn conv_body<const F: bool>(p: &Packed, x: &Map, y: &mut Map, e: Epilogue) {
    let n = x.n;
    let (nb, xs) = (p.blocks, x.blocks * LANES);
    let xf = x.flat();
    if e.bias {
        for px in y.data.chunks_exact_mut(nb) {
            px.copy_from_slice(&p.b);
        }
    }
    for i in 0..n {
        let yrow = &mut y.data[i * n * nb..(i + 1) * n * nb];
        for (t, &(dy, dx)) in p.taps.iter().enumerate() {
            let si = i as isize + dy;
            if si < 0 || si >= n as isize {
                continue;
            }
            let xrow = &xf[si as usize * n * xs..(si as usize + 1) * n * xs];
            let (j0, j1) = valid_columns(n, dx);
            for cb in 0..nb {
                let wr = &p.w[(t * nb + cb) * p.cin..(t * nb + cb + 1) * p.cin];
                let mut j = j0;
                while j + PIXELS <= j1 {
                    let mut acc: [Block; PIXELS] = std::array::from_fn(|q| yrow[(j + q) * nb + cb]);
                    // One slice of exactly `cin` floats per pixel, so the loop over
                    // channels needs no bounds checks.
                    let xq: [&[f32]; PIXELS] = std::array::from_fn(|q| {
                        let src = (j as isize + q as isize + dx) as usize * xs;
                        &xrow[src..src + p.cin]
                    });
                    for (ci, w) in wr.iter().enumerate() {
                        for (a, x) in acc.iter_mut().zip(&xq) {
                            axpy::<F>(a, x[ci], w);
                        }
                    }
                    for (q, a) in acc.iter().enumerate() {
                        yrow[(j + q) * nb + cb] = *a;
                    }
                    j += PIXELS;
                }
                for j in j..j1 {
                    let mut a = yrow[j * nb + cb];
                    let src = (j as isize + dx) as usize * xs;
                    for (w, &v) in wr.iter().zip(&xrow[src..src + p.cin]) {
                        axpy::<F>(&mut a, v, w);
                    }
                    yrow[j * nb + cb] = a;
                }
            }
        }
        if e.relu {
            for b in yrow.iter_mut() {
                for v in b.iter_mut() {
                    *v = v.max(0.0);
                }
            }
        }
    }
}

/// The convolution with AVX-512 intrinsics: [`PIXELS_512`] output blocks in
/// registers, enough independent accumulators to cover the FMA latency (the
/// lane-loop version spills them).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")]
fn conv_avx512(p: &Packed, x: &Map, y: &mut Map, e: Epilogue) {
    use std::arch::x86_64::{__m512, _mm512_fmadd_ps, _mm512_max_ps, _mm512_set1_ps, _mm512_setzero_ps};
    // SAFETY: `Block` and `__m512` are both 64 bytes of f32 lanes; every bit pattern is valid in both.
    let load = |b: &Block| unsafe { std::mem::transmute::<Block, __m512>(*b) };
    // SAFETY: as above.
    let store = |v: __m512| unsafe { std::mem::transmute::<__m512, Block>(v) };
    let n = x.n;
    let (nb, xs, cin) = (p.blocks, x.blocks * LANES, p.cin);
    let xf = x.flat();
    if e.bias {
        for px in y.data.chunks_exact_mut(nb) {
            px.copy_from_slice(&p.b);
        }
    }
    for i in 0..n {
        let yrow = &mut y.data[i * n * nb..(i + 1) * n * nb];
        for (t, &(dy, dx)) in p.taps.iter().enumerate() {
            let si = i as isize + dy;
            if si < 0 || si >= n as isize {
                continue;
            }
            let xrow = &xf[si as usize * n * xs..(si as usize + 1) * n * xs];
            let (j0, j1) = valid_columns(n, dx);
            for cb in 0..nb {
                let wr = &p.w[(t * nb + cb) * cin..(t * nb + cb + 1) * cin];
                let mut j = j0;
                while j + PIXELS_512 <= j1 {
                    let mut acc: [__m512; PIXELS_512] =
                        std::array::from_fn(|q| load(&yrow[(j + q) * nb + cb]));
                    let src = (j as isize + dx) as usize * xs;
                    // The pixels' channels: `src + q * xs + ci` for q < PIXELS_512, ci < cin.
                    let xb = &xrow[src..src + (PIXELS_512 - 1) * xs + cin];
                    let base = xb.as_ptr();
                    for (ci, w) in wr.iter().enumerate() {
                        let w = load(w);
                        for (q, a) in acc.iter_mut().enumerate() {
                            // SAFETY: q * xs + ci < (PIXELS_512 - 1) * xs + cin = xb.len().
                            let v = unsafe { *base.add(q * xs + ci) };
                            *a = _mm512_fmadd_ps(_mm512_set1_ps(v), w, *a);
                        }
                    }
                    for (q, a) in acc.into_iter().enumerate() {
                        yrow[(j + q) * nb + cb] = store(a);
                    }
                    j += PIXELS_512;
                }
                for j in j..j1 {
                    let mut a = load(&yrow[j * nb + cb]);
                    let src = (j as isize + dx) as usize * xs;
                    for (w, &v) in wr.iter().zip(&xrow[src..src + cin]) {
                        a = _mm512_fmadd_ps(_mm512_set1_ps(v), load(w), a);
                    }
                    yrow[j * nb + cb] = store(a);
                }
            }
        }
        if e.relu {
            for b in yrow.iter_mut() {
                *b = store(_mm512_max_ps(load(b), _mm512_setzero_ps()));
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn conv_avx2(p: &Packed, x: &Map, y: &mut Map, e: Epilogue) {
    conv_body::<true>(p, x, y, e)
}

/// Gradients of one convolution's weights, in the packed layout.
#[derive(Debug, Clone)]
pub struct PackedGrad {
    /// `taps x blocks x cin`, as [`Packed`].
    w: Vec<Block>,
    /// `blocks`.
    b: Vec<Block>,
}

impl PackedGrad {
    /// `dW = sum_p x[p + tap] (x) dy[p]`, `db = sum_p dy[p]` for the convolution `s`
    /// whose input was `x` and whose output gradient is `dy`.
    ///
    /// # Panics
    /// If the maps do not match `s`: a programmer error.
    pub fn compute(s: &super::ConvShape, x: &Map, dy: &Map, level: SimdLevel) -> PackedGrad {
        assert!(x.channels == s.cin && dy.channels == s.cout && x.n == dy.n, "maps of a convolution");
        let taps = tap_offsets(s.k, s.dilation);
        let mut g = PackedGrad {
            w: vec![[0.0; LANES]; taps.len() * s.cin * dy.blocks],
            b: vec![[0.0; LANES]; dy.blocks],
        };
        for px in dy.data.chunks_exact(dy.blocks) {
            for (b, d) in g.b.iter_mut().zip(px) {
                for l in 0..LANES {
                    b[l] += d[l];
                }
            }
        }
        match level {
            // SAFETY: the level comes from `SimdLevel::detect`, so the CPU has these features.
            #[cfg(target_arch = "x86_64")]
            SimdLevel::Avx512 => unsafe { wgrad_avx512(&taps, x, dy, &mut g.w) },
            // SAFETY: as above.
            #[cfg(target_arch = "x86_64")]
            SimdLevel::Avx2 => unsafe { wgrad_avx2(&taps, x, dy, &mut g.w) },
            _ => wgrad_body::<false>(&taps, x, dy, &mut g.w),
        }
        g
    }

    /// Adds these gradients to `grad` (`cout x cin x k x k` weights, then `cout` biases).
    pub fn add_to(&self, s: &super::ConvShape, grad: &mut [f32]) {
        let kk = s.k * s.k;
        let blocks = s.cout.div_ceil(LANES);
        for co in 0..s.cout {
            for ci in 0..s.cin {
                for t in 0..kk {
                    grad[(co * s.cin + ci) * kk + t] +=
                        self.w[(t * blocks + co / LANES) * s.cin + ci][co % LANES];
                }
            }
            grad[s.cout * s.cin * kk + co] += self.b[co / LANES][co % LANES];
        }
    }
}

#[inline(always)]
fn wgrad_body<const F: bool>(taps: &[(isize, isize)], x: &Map, dy: &Map, gw: &mut [Block]) {
    let n = x.n;
    let (cin, nb, xs) = (x.channels, dy.blocks, x.blocks * LANES);
    let xf = x.flat();
    for i in 0..n {
        let drow = &dy.data[i * n * nb..(i + 1) * n * nb];
        for (t, &(ty, tx)) in taps.iter().enumerate() {
            let si = i as isize + ty;
            if si < 0 || si >= n as isize {
                continue;
            }
            let xrow = &xf[si as usize * n * xs..(si as usize + 1) * n * xs];
            let (j0, j1) = valid_columns(n, tx);
            if j0 >= j1 {
                continue;
            }
            for cb in 0..nb {
                // PIXELS_W output-gradient blocks stay in registers while every input
                // channel adds its products to its (L1-resident) gradient block: the
                // loop over channels has a run-time length, so the compiler vectorises
                // across lanes rather than across pixels.
                let gr = &mut gw[(t * nb + cb) * cin..(t * nb + cb + 1) * cin];
                let mut j = j0;
                while j + PIXELS_W <= j1 {
                    let d: [Block; PIXELS_W] = std::array::from_fn(|q| drow[(j + q) * nb + cb]);
                    let xq: [&[f32]; PIXELS_W] = std::array::from_fn(|q| {
                        let src = (j as isize + q as isize + tx) as usize * xs;
                        &xrow[src..src + cin]
                    });
                    for (ci, g) in gr.iter_mut().enumerate() {
                        let mut a = *g;
                        for (dq, x) in d.iter().zip(&xq) {
                            axpy::<F>(&mut a, x[ci], dq);
                        }
                        *g = a;
                    }
                    j += PIXELS_W;
                }
                for j in j..j1 {
                    let d = drow[j * nb + cb];
                    let src = (j as isize + tx) as usize * xs;
                    for (g, &v) in gr.iter_mut().zip(&xrow[src..src + cin]) {
                        axpy::<F>(g, v, &d);
                    }
                }
            }
        }
    }
}

/// The weight gradient with AVX-512 intrinsics: a block of output-gradient
/// lanes times [`CHANS`] input channels, accumulated in registers over a row.
/// (Written as a lane loop, the compiler vectorises this loop order across
/// pixels with gathers instead.)
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")]
fn wgrad_avx512(taps: &[(isize, isize)], x: &Map, dy: &Map, gw: &mut [Block]) {
    use std::arch::x86_64::{__m512, _mm512_add_ps, _mm512_fmadd_ps, _mm512_set1_ps, _mm512_setzero_ps};
    // SAFETY: `Block` and `__m512` are both 64 bytes of f32 lanes; every bit pattern is valid in both.
    let load = |b: &Block| unsafe { std::mem::transmute::<Block, __m512>(*b) };
    // SAFETY: as above.
    let store = |v: __m512| unsafe { std::mem::transmute::<__m512, Block>(v) };
    let n = x.n;
    let (cin, nb, xs) = (x.channels, dy.blocks, x.blocks * LANES);
    let xf = x.flat();
    for i in 0..n {
        let drow = &dy.data[i * n * nb..(i + 1) * n * nb];
        for (t, &(ty, tx)) in taps.iter().enumerate() {
            let si = i as isize + ty;
            if si < 0 || si >= n as isize {
                continue;
            }
            let xrow = &xf[si as usize * n * xs..(si as usize + 1) * n * xs];
            let (j0, j1) = valid_columns(n, tx);
            for cb in 0..nb {
                let gr = &mut gw[(t * nb + cb) * cin..(t * nb + cb + 1) * cin];
                // `x` is zero-padded to whole blocks, so a group of CHANS channels
                // may read past `cin` (zeros); only `cin` rows are stored.
                for c0 in (0..cin).step_by(CHANS) {
                    let mut acc = [_mm512_setzero_ps(); CHANS];
                    for j in j0..j1 {
                        let d = load(&drow[j * nb + cb]);
                        let src = (j as isize + tx) as usize * xs + c0;
                        let xv = &xrow[src..src + CHANS];
                        for (a, &v) in acc.iter_mut().zip(xv) {
                            *a = _mm512_fmadd_ps(_mm512_set1_ps(v), d, *a);
                        }
                    }
                    for (g, a) in gr[c0..].iter_mut().zip(acc) {
                        *g = store(_mm512_add_ps(load(g), a));
                    }
                }
            }
        }
    }
}

/// The weight gradient with AVX2 intrinsics: as [`wgrad_avx512`], a block as
/// two 8-lane halves and [`CHANS_256`] channels (16 registers in all).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn wgrad_avx2(taps: &[(isize, isize)], x: &Map, dy: &Map, gw: &mut [Block]) {
    use std::arch::x86_64::{__m256, _mm256_add_ps, _mm256_fmadd_ps, _mm256_set1_ps, _mm256_setzero_ps};
    type Half = [f32; LANES / 2];
    // SAFETY: `Half` and `__m256` are both 32 bytes of f32 lanes; every bit pattern is valid in both.
    let load = |b: &Half| unsafe { std::mem::transmute::<Half, __m256>(*b) };
    // SAFETY: as above.
    let store = |v: __m256| unsafe { std::mem::transmute::<__m256, Half>(v) };
    let halves = |b: &Block| -> [__m256; 2] {
        let (h, _) = b.as_chunks::<{ LANES / 2 }>();
        [load(&h[0]), load(&h[1])]
    };
    let n = x.n;
    let (cin, nb, xs) = (x.channels, dy.blocks, x.blocks * LANES);
    let xf = x.flat();
    for i in 0..n {
        let drow = &dy.data[i * n * nb..(i + 1) * n * nb];
        for (t, &(ty, tx)) in taps.iter().enumerate() {
            let si = i as isize + ty;
            if si < 0 || si >= n as isize {
                continue;
            }
            let xrow = &xf[si as usize * n * xs..(si as usize + 1) * n * xs];
            let (j0, j1) = valid_columns(n, tx);
            for cb in 0..nb {
                let gr = &mut gw[(t * nb + cb) * cin..(t * nb + cb + 1) * cin];
                for c0 in (0..cin).step_by(CHANS_256) {
                    let mut acc = [[_mm256_setzero_ps(); 2]; CHANS_256];
                    for j in j0..j1 {
                        let d = halves(&drow[j * nb + cb]);
                        let src = (j as isize + tx) as usize * xs + c0;
                        for (a, &v) in acc.iter_mut().zip(&xrow[src..src + CHANS_256]) {
                            let v = _mm256_set1_ps(v);
                            a[0] = _mm256_fmadd_ps(v, d[0], a[0]);
                            a[1] = _mm256_fmadd_ps(v, d[1], a[1]);
                        }
                    }
                    for (g, a) in gr[c0..].iter_mut().zip(acc) {
                        let old = halves(g);
                        let (h, _) = g.as_chunks_mut::<{ LANES / 2 }>();
                        h[0] = store(_mm256_add_ps(old[0], a[0]));
                        h[1] = store(_mm256_add_ps(old[1], a[1]));
                    }
                }
            }
        }
    }
}
