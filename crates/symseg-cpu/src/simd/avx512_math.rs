//! The element loss and the penalty of [`super::elem`] and [`super::penalty`]
//! on 16 lanes, written with AVX-512 intrinsics for the tile kernel's lane
//! body: there LLVM's auto-vectorisation kept a rolled loop over stack arrays.
//!
//! Every function performs the scalar form's operations in the same order with
//! the same rounding (fused where `fma::<true>` is), so the results are the
//! FMA levels' bit for bit (`fma_levels_agree_bit_for_bit…` in the tests).
//! Labels are lane masks; the caller guarantees AVX-512 F/BW/DQ/VL by calling
//! only from a function compiled with them.

use std::arch::x86_64::*;

use super::elem::{FastElem, GAMMA_0, GAMMA_1, GAMMA_2};
use super::penalty::{FastPenalty, KIND_L1, KIND_L2, PEN_PROBS};

const SIGN: f32 = -0.0;

/// # Safety
/// The CPU has AVX-512F.
#[inline(always)]
unsafe fn splat(v: f32) -> __m512 {
    // SAFETY: the caller's contract.
    unsafe { _mm512_set1_ps(v) }
}

/// Lanes `base..base + 16` that fall in `lo..hi`.
#[inline(always)]
pub(crate) fn lane_range(lo: usize, hi: usize, base: usize) -> __mmask16 {
    let from = lo.saturating_sub(base).min(16);
    let to = hi.saturating_sub(base).min(16);
    let below = |k: usize| ((1u32 << k) - 1) as u16;
    below(to) & !below(from)
}

/// `e^x` for `x <= 0`, as [`super::fastmath::exp_nonpos`].
#[inline(always)]
pub(crate) unsafe fn exp_nonpos(x: __m512) -> __m512 {
    const ROUND_MAGIC: f32 = 12_582_912.0;
    // SAFETY: AVX-512F (module contract).
    unsafe {
        let x = _mm512_max_ps(x, splat(-87.33));
        let t = _mm512_fmadd_ps(x, splat(std::f32::consts::LOG2_E), splat(ROUND_MAGIC));
        let n = _mm512_sub_ps(t, splat(ROUND_MAGIC));
        // fma(-n, c, a) = -(n c) + a, one rounding either way.
        let r = _mm512_fnmadd_ps(n, splat(-2.121_944_4e-4), _mm512_fnmadd_ps(n, splat(0.693_359_4), x));
        let mut q = splat(1.390_128_5e-3);
        q = _mm512_fmadd_ps(q, r, splat(8.363_141e-3));
        q = _mm512_fmadd_ps(q, r, splat(4.166_685_4e-2));
        q = _mm512_fmadd_ps(q, r, splat(1.666_657_8e-1));
        q = _mm512_fmadd_ps(q, r, splat(5e-1));
        let p = _mm512_add_ps(_mm512_fmadd_ps(_mm512_mul_ps(q, r), r, r), splat(1.0));
        let ni = _mm512_sub_epi32(_mm512_castps_si512(t), _mm512_set1_epi32(ROUND_MAGIC.to_bits() as i32));
        _mm512_castsi512_ps(_mm512_add_epi32(_mm512_castps_si512(p), _mm512_slli_epi32::<23>(ni)))
    }
}

/// `ln(1 + e)` for `e` in `[0, 1]`, as [`super::fastmath::ln_1p_unit`].
#[inline(always)]
pub(crate) unsafe fn ln_1p_unit(e: __m512) -> __m512 {
    const P: [f32; 9] = [
        5.232_691_3e-3,
        -2.950_522_7e-2,
        7.822_593e-2,
        -1.366_324_4e-1,
        1.910_600_7e-1,
        -2.484_298_2e-1,
        3.331_909_8e-1,
        -4.999_949_3e-1,
        9.999_999_4e-1,
    ];
    // SAFETY: AVX-512F (module contract).
    unsafe {
        let mut p = splat(P[0]);
        for c in &P[1..] {
            p = _mm512_fmadd_ps(p, e, splat(*c));
        }
        _mm512_mul_ps(e, p)
    }
}

/// The label-independent part of an element loss at `x`: `e = exp(-|x|)`,
/// `1 / (1 + e)`, `ln(1 + e)` and `e / (1 + e)`. A strategy that evaluates
/// one logit under both labels (asymmetric `dual`) computes it once.
#[derive(Clone, Copy)]
pub(crate) struct Core {
    x: __m512,
    inv: __m512,
    l: __m512,
    ei: __m512,
}

#[inline(always)]
pub(crate) unsafe fn core(x: __m512) -> Core {
    // SAFETY: AVX-512F/DQ (module contract).
    unsafe {
        let e = exp_nonpos(_mm512_or_ps(x, splat(SIGN)));
        let inv = _mm512_div_ps(splat(1.0), _mm512_add_ps(splat(1.0), e));
        Core { x, inv, l: ln_1p_unit(e), ei: _mm512_mul_ps(e, inv) }
    }
}

/// `(l(x, y), dl/dx)` from [`core`], `y = 1` where `pos` is set, as
/// [`FastElem::value_grad`] with fused multiply-adds.
#[inline(always)]
pub(crate) unsafe fn finish<const K: u8>(fe: &FastElem, c: Core, pos: __mmask16) -> (__m512, __m512) {
    // SAFETY: AVX-512F/DQ (module contract).
    unsafe {
        let zero = _mm512_setzero_ps();
        let z = _mm512_mask_xor_ps(c.x, pos, c.x, splat(SIGN));
        let nonneg = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(z, zero);
        let s = _mm512_mask_blend_ps(nonneg, c.ei, c.inv);
        let t = _mm512_mask_blend_ps(nonneg, c.inv, c.ei);
        let sp = _mm512_add_ps(_mm512_max_ps(z, zero), c.l);
        let w = _mm512_mask_blend_ps(pos, splat(fe.w_neg), splat(fe.w_pos));
        // `w * 1.0` is `w` exactly.
        let wp = match K {
            GAMMA_0 => w,
            GAMMA_1 => _mm512_mul_ps(w, s),
            GAMMA_2 => _mm512_mul_ps(w, _mm512_mul_ps(s, s)),
            _ => {
                let nz = _mm512_xor_ps(z, splat(SIGN));
                let soft = _mm512_add_ps(_mm512_max_ps(nz, zero), c.l);
                _mm512_mul_ps(w, exp_nonpos(_mm512_mul_ps(splat(-fe.gamma), soft)))
            }
        };
        let mag = match K {
            GAMMA_0 => _mm512_mul_ps(wp, s),
            GAMMA_1 => _mm512_mul_ps(wp, _mm512_fmadd_ps(t, sp, s)),
            GAMMA_2 => _mm512_mul_ps(wp, _mm512_fmadd_ps(_mm512_add_ps(t, t), sp, s)),
            _ => _mm512_mul_ps(wp, _mm512_fmadd_ps(_mm512_mul_ps(splat(fe.gamma), t), sp, s)),
        };
        (_mm512_mul_ps(wp, sp), _mm512_mask_xor_ps(mag, pos, mag, splat(SIGN)))
    }
}

/// [`FastElem::value_grad`] on 16 lanes.
#[inline(always)]
pub(crate) unsafe fn value_grad<const K: u8>(fe: &FastElem, x: __m512, pos: __mmask16) -> (__m512, __m512) {
    // SAFETY: module contract.
    unsafe { finish::<K>(fe, core(x), pos) }
}

/// `(sigmoid(a) - sigmoid(b), p_a q_a, p_b q_b)` without cancellation, as the
/// penalty's scalar form.
#[inline(always)]
unsafe fn sigmoid_gap(a: __m512, b: __m512) -> (__m512, __m512, __m512) {
    // SAFETY: AVX-512F/DQ (module contract).
    unsafe {
        let one = splat(1.0);
        let ea = exp_nonpos(_mm512_or_ps(a, splat(SIGN)));
        let eb = exp_nonpos(_mm512_or_ps(b, splat(SIGN)));
        let ia = _mm512_div_ps(one, _mm512_add_ps(one, ea));
        let ib = _mm512_div_ps(one, _mm512_add_ps(one, eb));
        let a_nonneg = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(a, _mm512_setzero_ps());
        let b_nonneg = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(b, _mm512_setzero_ps());
        // Each case computed as the scalar form does (`ea - eb` is not negated
        // `eb - ea`: that would turn a +0 gap into -0).
        let same = _mm512_mask_blend_ps(a_nonneg, _mm512_sub_ps(ea, eb), _mm512_sub_ps(eb, ea));
        let differ =
            _mm512_mask_blend_ps(a_nonneg, _mm512_fmsub_ps(ea, eb, one), _mm512_fnmadd_ps(ea, eb, one));
        let num = _mm512_mask_blend_ps(!(a_nonneg ^ b_nonneg), differ, same);
        (
            _mm512_mul_ps(num, _mm512_mul_ps(ia, ib)),
            _mm512_mul_ps(_mm512_mul_ps(ea, ia), ia),
            _mm512_mul_ps(_mm512_mul_ps(eb, ib), ib),
        )
    }
}

/// [`FastPenalty::value_grad`] on 16 lanes: `(rho, d rho / d x_a, d rho / d x_b)`.
/// The penalty's kind is a run-time value here, but a branch per 16 lanes that
/// always goes the same way, not a select chain per lane.
#[inline(always)]
pub(crate) unsafe fn penalty<const ON: u8>(
    p: &FastPenalty,
    xa: __m512,
    xb: __m512,
) -> (__m512, __m512, __m512) {
    // SAFETY: AVX-512F/DQ (module contract).
    unsafe {
        let one = splat(1.0);
        let (d, dta, dtb) = if ON == PEN_PROBS {
            let (d, sa, sb) = sigmoid_gap(xa, xb);
            (d, Some(sa), Some(sb))
        } else {
            (_mm512_sub_ps(xa, xb), None, None)
        };
        let ad = _mm512_abs_ps(d);
        let sign = || {
            let gt = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(xa, xb);
            let lt = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(xa, xb);
            _mm512_mask_blend_ps(gt, _mm512_maskz_mov_ps(lt, splat(-1.0)), one)
        };
        let (rho, drho) = match p.kind() {
            KIND_L1 => (ad, sign()),
            KIND_L2 => (_mm512_mul_ps(d, d), _mm512_mul_ps(splat(2.0), d)),
            _ => {
                let delta = splat(p.delta());
                let inner = _mm512_cmp_ps_mask::<_CMP_LE_OQ>(ad, delta);
                let outer_rho = _mm512_mul_ps(delta, _mm512_sub_ps(ad, _mm512_mul_ps(splat(0.5), delta)));
                let inner_rho = _mm512_mul_ps(_mm512_mul_ps(splat(0.5), d), d);
                (
                    _mm512_mask_blend_ps(inner, outer_rho, inner_rho),
                    _mm512_mask_blend_ps(inner, _mm512_mul_ps(delta, sign()), d),
                )
            }
        };
        // `drho * 1.0` is `drho` exactly.
        let da = dta.map_or(drho, |t| _mm512_mul_ps(drho, t));
        let db = dtb.map_or(drho, |t| _mm512_mul_ps(drho, t));
        (rho, da, _mm512_xor_ps(db, splat(SIGN)))
    }
}

#[cfg(test)]
mod tests {
    use super::lane_range;

    #[test]
    fn lane_masks_cover_exactly_the_counted_columns() {
        let cases = [0, 16, 32, 48].map(|base| (base, 0..70)).into_iter().chain([(1000, 980..1030)]);
        for (base, range) in cases {
            for lo in range.clone() {
                for hi in range.clone() {
                    let want =
                        (0..16).filter(|&s| (lo..hi).contains(&(base + s))).fold(0u16, |m, s| m | 1 << s);
                    assert_eq!(lane_range(lo, hi, base), want, "lo {lo} hi {hi} base {base}");
                }
            }
        }
    }
}
