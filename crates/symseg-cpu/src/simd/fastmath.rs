//! Branch-free f32 `exp` and `log1p` for the loss kernels: plain arithmetic
//! and selects only, so LLVM vectorises them inside lane loops at whatever
//! instruction set the calling function is compiled for.
//!
//! Polynomials are Cephes' `expf` and `logf` (relative error about 1e-7 on the
//! ranges used here), well inside SPEC §4's 1e-5.

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

/// `e^x` for `x <= 0`. Below -87.3 it returns about 1.2e-38 instead of a
/// subnormal: every use multiplies it into terms that are negligible there.
#[inline(always)]
pub fn exp_nonpos<const F: bool>(x: f32) -> f32 {
    let x = x.max(-87.33654);
    // Round x * log2(e) to the nearest integer with the 1.5 * 2^23 trick: no
    // libm call (`floor` is one on baseline x86-64) and it vectorises.
    let t = fma::<F>(x, LOG2E, ROUND_MAGIC);
    let n = t - ROUND_MAGIC;
    let r = fma::<F>(-n, LN2_LO, fma::<F>(-n, LN2_HI, x));
    let mut p = 1.987_569_1e-4f32;
    p = fma::<F>(p, r, 1.398_199_9e-3);
    p = fma::<F>(p, r, 8.333_452e-3);
    p = fma::<F>(p, r, 4.166_579_6e-2);
    p = fma::<F>(p, r, 1.666_666_5e-1);
    p = fma::<F>(p, r, 5e-1);
    let p = fma::<F>(p * r, r, r) + 1.0;
    // 2^n from the integer in t's low mantissa bits (n is in -126..=0 here).
    let ni = (t.to_bits() as i32).wrapping_sub(ROUND_MAGIC.to_bits() as i32);
    let scale = f32::from_bits(((ni + 127) as u32) << 23);
    p * scale
}

/// `ln(u)` for `u` in `[1, 2]`.
#[inline(always)]
fn ln_1_2<const F: bool>(u: f32) -> f32 {
    // Reduce to m in [sqrt(1/2), sqrt(2)): u >= sqrt(2) halves it and adds ln 2.
    let big = u >= std::f32::consts::SQRT_2;
    let m = if big { 0.5 * u } else { u };
    let k = if big { 1.0f32 } else { 0.0 };
    let x = m - 1.0;
    let z = x * x;
    let mut y = 7.037_683_6e-2f32;
    y = fma::<F>(y, x, -1.151_461e-1);
    y = fma::<F>(y, x, 1.167_699_9e-1);
    y = fma::<F>(y, x, -1.242_014_1e-1);
    y = fma::<F>(y, x, 1.424_932_3e-1);
    y = fma::<F>(y, x, -1.666_805_8e-1);
    y = fma::<F>(y, x, 2.000_071_4e-1);
    y = fma::<F>(y, x, -2.499_999_4e-1);
    y = fma::<F>(y, x, 3.333_333e-1);
    let y = fma::<F>(k, LN2_LO, y * x * z);
    let y = fma::<F>(-0.5, z, y);
    fma::<F>(k, LN2_HI, x + y)
}

/// `ln(1 + e)` for `e` in `[0, 1]`, given `inv_u = 1 / (1 + e)` (the element
/// loss needs that reciprocal anyway), accurate also for tiny `e`: `u = 1 + e`
/// rounds, `e - (u - 1)` is that rounding error exactly, and
/// `ln(1 + e) = ln(u) + (e - (u - 1)) / u` to second order in it. No division
/// of its own.
#[inline(always)]
pub fn ln_1p_unit<const F: bool>(e: f32, inv_u: f32) -> f32 {
    let u = 1.0 + e;
    let err = e - (u - 1.0);
    fma::<F>(err, inv_u, ln_1_2::<F>(u))
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
            let got = f64::from(ln_1p_unit::<F>(e, 1.0 / (1.0 + e)));
            let want = f64::from(e).ln_1p();
            worst = worst.max((got - want).abs() / want);
            e *= 1.000_37;
        }
        assert!(worst < 4e-7, "fused {F}: worst relative error {worst:e}");
        assert_eq!(ln_1p_unit::<F>(0.0, 1.0), 0.0);
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
