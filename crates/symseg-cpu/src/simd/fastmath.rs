//! Branch-free f32 `exp` and `log1p` for the loss kernels: plain arithmetic
//! and selects only, so LLVM vectorises them inside lane loops at whatever
//! instruction set the calling function is compiled for.
//!
//! The polynomials are minimax fits (Lawson's algorithm on the relative
//! error); in f32 they are good to 1e-7 (`exp`) and 2e-7 (`log1p`), well inside
//! SPEC §4's 1e-5.

const LOG2E: f32 = std::f32::consts::LOG2_E;
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// 1.5 * 2^23: adding it rounds an f32 of magnitude below 2^22 to an integer.
const ROUND_MAGIC: f32 = 12_582_912.0;

/// `a * b + c`: one fused multiply-add where the kernel is compiled with FMA
/// (`F`), else a multiply and an add (Rust never contracts them on its own, and
/// `mul_add` without the instruction is a library call).
#[inline(always)]
pub fn fma<const F: bool>(a: f32, b: f32, c: f32) -> f32 {
    if F { a.mul_add(b, c) } else { a * b + c }
}

/// `e^x` for `x <= 0`. Below -87.33 it returns `e^-87.33`, about 1.2e-38,
/// instead of a subnormal: every use multiplies it into terms that are
/// negligible there.
#[inline(always)]
pub fn exp_nonpos<const F: bool>(x: f32) -> f32 {
    // Far enough above -126 ln 2 that the result is normal (see the scaling below).
    let x = x.max(-87.33);
    // Round x * log2(e) to the nearest integer with the 1.5 * 2^23 trick: no
    // libm call (`floor` is one on baseline x86-64) and it vectorises.
    let t = fma::<F>(x, LOG2E, ROUND_MAGIC);
    let n = t - ROUND_MAGIC;
    let r = fma::<F>(-n, LN2_LO, fma::<F>(-n, LN2_HI, x));
    // e^r = 1 + r + r^2 q(r) on |r| <= ln(2)/2: a degree-4 minimax q (relative
    // error 1.2e-7 in exact arithmetic, one multiply-add fewer than Cephes'
    // degree 5 at no loss visible in f32).
    let mut q = 1.390_128_5e-3f32;
    q = fma::<F>(q, r, 8.363_141e-3);
    q = fma::<F>(q, r, 4.166_685_4e-2);
    q = fma::<F>(q, r, 1.666_657_8e-1);
    q = fma::<F>(q, r, 5e-1);
    let p = fma::<F>(q * r, r, r) + 1.0;
    // p * 2^n by adding n (the integer in t's low mantissa bits, -126..=0
    // here) to p's exponent field: an integer add where a multiply by 2^n
    // would take one of the two multiply pipes the lane loops are bound by on
    // Zen 4. The same bits, as the result is normal: p >= 1 where n = -126.
    let ni = (t.to_bits() as i32).wrapping_sub(ROUND_MAGIC.to_bits() as i32);
    f32::from_bits((p.to_bits() as i32).wrapping_add(ni << 23) as u32)
}

/// `ln(1 + e)` for `e` in `[0, 1]` as `e * P(e)`, `P` a degree-8 minimax
/// polynomial for `ln(1 + e) / e` (relative error 3e-8 in exact arithmetic,
/// 2e-7 in f32): no range reduction, no selects, no division, and accurate for
/// tiny `e` because the relative error of the product is that of `P`.
#[inline(always)]
pub fn ln_1p_unit<const F: bool>(e: f32) -> f32 {
    let mut p = 5.232_691_3e-3f32;
    p = fma::<F>(p, e, -2.950_522_7e-2);
    p = fma::<F>(p, e, 7.822_593e-2);
    p = fma::<F>(p, e, -1.366_324_4e-1);
    p = fma::<F>(p, e, 1.910_600_7e-1);
    p = fma::<F>(p, e, -2.484_298_2e-1);
    p = fma::<F>(p, e, 3.331_909_8e-1);
    p = fma::<F>(p, e, -4.999_949_3e-1);
    p = fma::<F>(p, e, 9.999_999_4e-1);
    e * p
}

/// `a * b + c` in f64, fused if `F` (as [`fma`]).
#[inline(always)]
pub fn fma64<const F: bool>(a: f64, b: f64, c: f64) -> f64 {
    if F { a.mul_add(b, c) } else { a * b + c }
}

/// `e^x` in f64 for `x <= 0`, to about 2 ulp (the metric kernels' scores, which
/// must agree with the f64 reference to ~1e-15). Below -708 it returns about
/// 3e-308 instead of a subnormal.
#[inline(always)]
pub fn exp_nonpos_f64<const F: bool>(x: f64) -> f64 {
    // fdlibm's split of ln 2: the high part has trailing zero bits, so n * LN2_HI is exact.
    const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000);
    const LN2_LO: f64 = f64::from_bits(0x3dea_39ef_3579_3c76);
    /// 1.5 * 2^52: adding it rounds an f64 of magnitude below 2^51 to an integer.
    const MAGIC: f64 = 6_755_399_441_055_744.0;
    let x = x.max(-708.0);
    let t = fma64::<F>(x, std::f64::consts::LOG2_E, MAGIC);
    let n = t - MAGIC;
    let r = fma64::<F>(-n, LN2_LO, fma64::<F>(-n, LN2_HI, x));
    // Taylor to degree 13 on |r| <= ln(2)/2: truncation error 5e-18.
    let mut p = 1.0 / 6_227_020_800.0;
    for k in (1..=12u32).rev() {
        p = fma64::<F>(p, r, 1.0 / FACTORIALS[k as usize]);
    }
    p = fma64::<F>(p, r, 1.0);
    let ni = (t.to_bits() as i64).wrapping_sub(MAGIC.to_bits() as i64);
    p * f64::from_bits(((ni + 1023) as u64) << 52)
}

/// `k!` for `k <= 12`, exactly representable in f64.
const FACTORIALS: [f64; 13] = [
    1.0,
    1.0,
    2.0,
    6.0,
    24.0,
    120.0,
    720.0,
    5040.0,
    40320.0,
    362_880.0,
    3_628_800.0,
    39_916_800.0,
    479_001_600.0,
];

/// `|sigmoid(a) - sigmoid(b)|` in f64 from [`exp_nonpos_f64`], with one
/// division. Over the common denominator `(1 + e_a)(1 + e_b)`, `e = exp(-|x|)`,
/// the numerator is `|e_a - e_b|` when `a` and `b` have the same sign and
/// `1 - e_a e_b` otherwise: no `1 + e` is rounded before the subtraction, so
/// it is at least as accurate as subtracting two sigmoids, at half the
/// divisions (the metric pass's bound before this form).
#[inline(always)]
pub fn sigmoid_gap_f64<const F: bool>(a: f64, b: f64) -> f64 {
    let ea = exp_nonpos_f64::<F>(-a.abs());
    let eb = exp_nonpos_f64::<F>(-b.abs());
    let num = if (a >= 0.0) == (b >= 0.0) { (ea - eb).abs() } else { fma64::<F>(-ea, eb, 1.0) };
    num / ((1.0 + ea) * (1.0 + eb))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exp_accuracy<const F: bool>() {
        let mut worst = 0.0f64;
        let mut x = -87.0f32;
        while x <= 0.0 {
            let got = f64::from(exp_nonpos::<F>(x));
            let want = f64::from(x).exp();
            worst = worst.max((got - want).abs() / want);
            x += 0.000_731;
        }
        assert!(worst < 4e-7, "fused {F}: worst relative error {worst:e}");
        assert_eq!(exp_nonpos::<F>(0.0), 1.0);
        assert!(exp_nonpos::<F>(-200.0) < 2e-38);
    }

    fn log1p_accuracy<const F: bool>() {
        let mut worst = 0.0f64;
        let mut e = 1e-30f32;
        while e <= 1.0 {
            let got = f64::from(ln_1p_unit::<F>(e));
            let want = f64::from(e).ln_1p();
            worst = worst.max((got - want).abs() / want);
            e *= 1.000_37;
        }
        assert!(worst < 4e-7, "fused {F}: worst relative error {worst:e}");
        assert_eq!(ln_1p_unit::<F>(0.0), 0.0);
    }

    fn exp_f64_accuracy<const F: bool>() {
        let mut worst = 0.0f64;
        let mut x = -708.0f64;
        while x <= 0.0 {
            let (got, want) = (exp_nonpos_f64::<F>(x), x.exp());
            worst = worst.max((got - want).abs() / want);
            x += 0.000_731_3;
        }
        assert!(worst < 5e-16, "fused {F}: worst relative error {worst:e}");
        assert_eq!(exp_nonpos_f64::<F>(0.0), 1.0);
        assert!(exp_nonpos_f64::<F>(-1e6) < 4e-308);
    }

    /// The gap against the difference of two sigmoids from `libm` (SPEC's
    /// reference form): within a few ulp of the larger score, the rounding
    /// that the reference's own subtraction carries, and for two negative
    /// logits (scores `e / (1 + e)`) within a few ulp of those tails.
    fn sigmoid_gap_accuracy<const F: bool>() {
        let pts =
            [-88.0f64, -80.0, -30.5, -1.5, -0.25, -1e-9, -0.0, 0.0, 1e-9, 0.25, 1.5, 2.5, 30.5, 80.0, 88.0];
        let mut rng = 0x1234_5678_9abc_def0u64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            f64::from(((rng >> 11) as f64 / (1u64 << 53) as f64 * 60.0 - 30.0) as f32)
        };
        let mut pairs: Vec<(f64, f64)> = pts.iter().flat_map(|&a| pts.iter().map(move |&b| (a, b))).collect();
        pairs.extend((0..20_000).map(|_| (next(), next())));
        pairs.extend((0..2_000).map(|_| {
            let a = next();
            (a, f64::from((a as f32).next_up()))
        }));
        for (a, b) in pairs {
            let (sa, sb) = (symseg_core::metrics::score(a), symseg_core::metrics::score(b));
            let want = (sa - sb).abs();
            let got = sigmoid_gap_f64::<F>(a, b);
            assert!(
                (got - want).abs() <= 8e-16 * (sa + sb),
                "fused {F}: gap({a}, {b}) = {got:e}, want {want:e}"
            );
            assert_eq!(got, sigmoid_gap_f64::<F>(b, a), "symmetric in its arguments");
        }
        assert_eq!(sigmoid_gap_f64::<F>(3.0, 3.0), 0.0);
        assert!((sigmoid_gap_f64::<F>(-1e6, 1e6) - 1.0).abs() <= f64::EPSILON);
    }

    #[test]
    fn sigmoid_gap_f64_matches_libm_sigmoids() {
        sigmoid_gap_accuracy::<false>();
        sigmoid_gap_accuracy::<true>();
    }

    #[test]
    fn exp_f64_is_accurate_on_its_range() {
        exp_f64_accuracy::<false>();
        exp_f64_accuracy::<true>();
    }

    #[test]
    fn exp_is_accurate_on_its_range() {
        exp_accuracy::<false>();
        exp_accuracy::<true>();
    }

    #[test]
    fn log1p_is_accurate_from_tiny_to_one() {
        log1p_accuracy::<false>();
        log1p_accuracy::<true>();
    }
}
