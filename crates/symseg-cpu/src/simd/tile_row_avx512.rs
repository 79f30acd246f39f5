//! One row of an off-diagonal tile pair, hand-written for AVX-512: the lane
//! loop of [`super::tiled`] as 16-lane intrinsics, counted lanes as a bit
//! mask, sums widened to f64 in registers.
//!
//! Auto-vectorised, this loop stayed rolled and passed every lane's results
//! through stack arrays (about 0.8 instructions per cycle; `docs/benchmarks.md`,
//! "The tile kernel's compiled loop"). It computes exactly what the portable
//! lane loop computes, in the same lane order, so the levels agree bit for bit.

use std::arch::x86_64::*;

use super::avx512_math::{Core, core, finish, lane_range, penalty, value_grad};
use super::elem::FastElem;
use super::penalty::PEN_NONE;
use super::tiled::{Average, DualAsym, DualSym, LANES, Lower, Plain, Sums, TileJob, Upper, VecPair};
use crate::tiles::TILE;

/// A strategy's pair math on 16 lanes (as [`VecPair::pair`]), labels as masks.
pub(crate) trait VecPair512: VecPair {
    /// # Safety
    /// The CPU has AVX-512 F/BW/DQ/VL.
    unsafe fn pair512<const K: u8>(
        fe: &FastElem,
        xij: __m512,
        xji: __m512,
        pij: __mmask16,
        pji: __mmask16,
    ) -> [__m512; 4];
}

/// Implements [`VecPair512`] from the body of `pair512`, run in an `unsafe`
/// block under the trait's contract.
macro_rules! pair512 {
    ($ty:ty, |$fe:ident, $xij:ident, $xji:ident, $pij:ident, $pji:ident| $body:block) => {
        impl VecPair512 for $ty {
            #[inline(always)]
            #[allow(unused_variables)]
            unsafe fn pair512<const K: u8>(
                $fe: &FastElem,
                $xij: __m512,
                $xji: __m512,
                $pij: __mmask16,
                $pji: __mmask16,
            ) -> [__m512; 4] {
                // SAFETY: the caller's contract.
                unsafe { $body }
            }
        }
    };
}

pair512!(Plain, |fe, xij, xji, pij, pji| {
    let (a, b) = (value_grad::<K>(fe, xij, pij), value_grad::<K>(fe, xji, pji));
    [a.0, b.0, a.1, b.1]
});

// Twice `plain`: the factor is `DualSym::SCALE`, applied by `run_tile`.
pair512!(DualSym, |fe, xij, xji, pij, pji| {
    let (a, b) = (value_grad::<K>(fe, xij, pij), value_grad::<K>(fe, xji, pij));
    [a.0, b.0, a.1, b.1]
});

pair512!(DualAsym, |fe, xij, xji, pij, pji| {
    // Each logit under both labels: its exp, division and log once.
    let (ca, cb): (Core, Core) = (core(xij), core(xji));
    let (a_own, a_mirror) = (finish::<K>(fe, ca, pij), finish::<K>(fe, ca, pji));
    let (b_own, b_mirror) = (finish::<K>(fe, cb, pji), finish::<K>(fe, cb, pij));
    [
        _mm512_add_ps(a_own.0, a_mirror.0),
        _mm512_add_ps(b_own.0, b_mirror.0),
        _mm512_add_ps(a_own.1, a_mirror.1),
        _mm512_add_ps(b_own.1, b_mirror.1),
    ]
});

pair512!(Average, |fe, xij, xji, pij, pji| {
    let half = _mm512_set1_ps(0.5);
    let mean = _mm512_add_ps(_mm512_mul_ps(half, xij), _mm512_mul_ps(half, xji));
    let a = value_grad::<K>(fe, mean, pij);
    [a.0, a.0, a.1, a.1]
});

pair512!(Upper, |fe, xij, xji, pij, pji| {
    let a = value_grad::<K>(fe, xij, pij);
    let zero = _mm512_setzero_ps();
    [a.0, zero, a.1, zero]
});

pair512!(Lower, |fe, xij, xji, pij, pji| {
    let b = value_grad::<K>(fe, xji, pji);
    let zero = _mm512_setzero_ps();
    [zero, b.0, zero, b.1]
});

/// One row of a tile pair: what [`super::tiled`]'s portable lane loop
/// computes for the row, with the same inputs.
pub(crate) struct Row<'a> {
    /// Columns `lo..hi` of the row (tile-local) are inside the sample, above
    /// the diagonal and outside the `min_sep` band.
    pub lo: usize,
    pub hi: usize,
    /// The row's logits and labels, `tj` long.
    pub x: &'a [f32],
    pub y: &'a [u8],
    /// The mirror's, transposed (labels: the row's own when symmetric).
    pub xt: &'a [f32; TILE],
    pub yt: &'a [u8],
    pub mask: Option<&'a [u8]>,
}

/// Runs the row's lanes: gradients into `g_row` (own elements) and `gt_row`
/// (mirror elements, transposed), sums into `sums` (lane `s` of each 32-lane
/// step into `sums.elem[s]`, as the portable loop).
///
/// # Safety
/// The CPU has AVX-512 F/BW/DQ/VL; `row.y`, `row.yt` and `row.mask` are at
/// least `row.x.len()` long and `row.hi <= row.x.len() <= TILE`.
#[inline(always)]
pub(crate) unsafe fn run<S: VecPair512, const K: u8, const P: u8>(
    job: &TileJob<'_>,
    row: &Row<'_>,
    g_row: &mut [f32; TILE],
    gt_row: &mut [f32; TILE],
    sums: &mut Sums,
) {
    // SAFETY: the caller's contract.
    unsafe {
        if row.lo == 0 && row.hi == TILE {
            // Most rows of a large map: every lane counts, no masks to build.
            lanes_of::<S, K, P, true>(job, row, g_row, gt_row, sums)
        } else {
            lanes_of::<S, K, P, false>(job, row, g_row, gt_row, sums)
        }
    }
}

/// [`run`], `FULL`: the whole row is `lo = 0 .. hi = TILE`.
#[inline(always)]
unsafe fn lanes_of<S: VecPair512, const K: u8, const P: u8, const FULL: bool>(
    job: &TileJob<'_>,
    row: &Row<'_>,
    g_row: &mut [f32; TILE],
    gt_row: &mut [f32; TILE],
    sums: &mut Sums,
) {
    const { assert!(LANES == 32 && TILE.is_multiple_of(LANES)) };
    let tj = row.x.len();
    // SAFETY: AVX-512 by the caller's contract; masked loads touch only lanes
    // below `hi <= tj`, inside every row slice, and full loads and stores stay
    // inside the TILE-long buffers (`base + 16 <= TILE`).
    unsafe {
        let mut elem = [_mm512_setzero_pd(); 4];
        let mut pen = [_mm512_setzero_pd(); 4];
        for (q, (e, p)) in elem.iter_mut().zip(&mut pen).enumerate() {
            *e = _mm512_loadu_pd(sums.elem.as_ptr().add(8 * q));
            *p = _mm512_loadu_pd(sums.pen.as_ptr().add(8 * q));
        }
        let mut bad: __mmask16 = 0;
        let mut c = 0;
        while c < tj {
            let [e0, e1, e2, e3] = &mut elem;
            let [p0, p1, p2, p3] = &mut pen;
            chunk::<S, K, P, FULL>(job, row, c, (g_row, gt_row), (e0, e1), (p0, p1), &mut bad);
            chunk::<S, K, P, FULL>(job, row, c + 16, (g_row, gt_row), (e2, e3), (p2, p3), &mut bad);
            c += LANES;
        }
        for (q, (e, p)) in elem.iter().zip(&pen).enumerate() {
            _mm512_storeu_pd(sums.elem.as_mut_ptr().add(8 * q), *e);
            _mm512_storeu_pd(sums.pen.as_mut_ptr().add(8 * q), *p);
        }
        sums.bad |= bad != 0;
    }
}

/// Lanes `base..base + 16` of the row (see [`run`]); `elem`/`pen`: the f64
/// sums of those lanes' low and high halves.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn chunk<S: VecPair512, const K: u8, const P: u8, const FULL: bool>(
    job: &TileJob<'_>,
    row: &Row<'_>,
    base: usize,
    (g_row, gt_row): (&mut [f32; TILE], &mut [f32; TILE]),
    (elem_lo, elem_hi): (&mut __m512d, &mut __m512d),
    (pen_lo, pen_hi): (&mut __m512d, &mut __m512d),
    bad: &mut __mmask16,
) {
    // SAFETY: as in `lanes_of`.
    unsafe {
        let (r, wp) = (_mm512_set1_ps(job.r), _mm512_set1_ps(job.wp));
        let k = if FULL { u16::MAX } else { lane_range(row.lo, row.hi, base) };
        let xij = _mm512_maskz_loadu_ps(k, row.x.as_ptr().wrapping_add(base));
        let xji = _mm512_loadu_ps(row.xt.as_ptr().add(base));
        let yij = _mm_maskz_loadu_epi8(k, row.y.as_ptr().wrapping_add(base).cast());
        let yji = _mm_maskz_loadu_epi8(k, row.yt.as_ptr().wrapping_add(base).cast());
        let mut cnt = k & !_mm_cmpeq_epi8_mask(yij, _mm_set1_epi8(-1));
        if let Some(m) = row.mask {
            let mv = _mm_maskz_loadu_epi8(k, m.as_ptr().wrapping_add(base).cast());
            cnt &= _mm_test_epi8_mask(mv, mv);
        }
        let one = _mm_set1_epi8(1);
        let (pij, pji) = (_mm_cmpeq_epi8_mask(yij, one), _mm_cmpeq_epi8_mask(yji, one));
        let [la, lb, gij, gji] = S::pair512::<K>(&job.fe, xij, xji, pij, pji);
        let (mut gij, mut gji) = (_mm512_mul_ps(r, gij), _mm512_mul_ps(r, gji));
        if P != PEN_NONE
            && let Some(p) = &job.pen
        {
            let (rho, da, db) = penalty::<P>(p, xij, xji);
            gij = _mm512_add_ps(gij, _mm512_mul_ps(wp, da));
            gji = _mm512_add_ps(gji, _mm512_mul_ps(wp, db));
            let rho = _mm512_maskz_mov_ps(cnt, rho);
            *pen_lo = _mm512_add_pd(*pen_lo, _mm512_cvtps_pd(_mm512_castps512_ps256(rho)));
            *pen_hi = _mm512_add_pd(*pen_hi, _mm512_cvtps_pd(_mm512_extractf32x8_ps::<1>(rho)));
        }
        // QNaN, SNaN, +inf, -inf.
        let non_finite = _mm512_fpclass_ps_mask::<0x99>(xij) | _mm512_fpclass_ps_mask::<0x99>(xji);
        *bad |= cnt & non_finite;
        let (la, lb) = (_mm512_maskz_mov_ps(cnt, la), _mm512_maskz_mov_ps(cnt, lb));
        let lo = _mm512_add_pd(
            _mm512_cvtps_pd(_mm512_castps512_ps256(la)),
            _mm512_cvtps_pd(_mm512_castps512_ps256(lb)),
        );
        let hi = _mm512_add_pd(
            _mm512_cvtps_pd(_mm512_extractf32x8_ps::<1>(la)),
            _mm512_cvtps_pd(_mm512_extractf32x8_ps::<1>(lb)),
        );
        *elem_lo = _mm512_add_pd(*elem_lo, lo);
        *elem_hi = _mm512_add_pd(*elem_hi, hi);
        _mm512_storeu_ps(g_row.as_mut_ptr().add(base), _mm512_maskz_mov_ps(cnt, gij));
        _mm512_storeu_ps(gt_row.as_mut_ptr().add(base), _mm512_maskz_mov_ps(cnt, gji));
    }
}
