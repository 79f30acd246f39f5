//! Vectorised loss kernels with run-time CPU-feature dispatch.
//!
//! The kernels are written once as `#[inline(always)]` lane loops over plain
//! arithmetic and selects ([`fastmath`], [`elem`]); thin `#[target_feature]`
//! wrappers compile that one body for AVX-512 and AVX2+FMA, and a plain
//! wrapper is the portable fallback. [`SimdLevel::detect`] runs once, when the
//! backend is built; the level is chosen once per call, never per row. Nothing
//! is compiled for the build machine's CPU (`target-cpu=native` is not used), so
//! one binary runs everywhere and uses what the CPU it runs on has.

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx512_math;
pub(crate) mod elem;
pub(crate) mod fastmath;
pub(crate) mod penalty;
pub(crate) mod plain;
pub(crate) mod prefetch;
pub(crate) mod scan;
pub(crate) mod stats;
#[cfg(target_arch = "x86_64")]
pub(crate) mod tile_row_avx512;
pub(crate) mod tiled;
pub(crate) mod transpose;

/// Whether the portable level's kernels fuse multiply-adds. On aarch64 FMA is
/// part of the base instruction set (`mul_add` is one `fmadd`, NEON has
/// `fmla`); on x86-64 without the FMA feature `mul_add` would be a library
/// call per element, so the portable level multiplies and adds there.
pub(crate) const PORTABLE_FMA: bool = cfg!(target_arch = "aarch64");

/// An instruction-set level the CPU backend can run its kernels at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SimdLevel {
    /// Portable code (whatever the compilation target guarantees, SSE2 on x86-64).
    Scalar,
    /// AVX2 with FMA.
    Avx2,
    /// AVX-512 (F, BW, DQ, VL).
    Avx512,
}

impl SimdLevel {
    /// The best level this CPU supports.
    pub fn detect() -> SimdLevel {
        *SimdLevel::available().last().unwrap_or(&SimdLevel::Scalar)
    }

    /// Every level this CPU supports, from `Scalar` up.
    pub fn available() -> Vec<SimdLevel> {
        #[cfg_attr(not(target_arch = "x86_64"), allow(unused_mut))]
        let mut v = vec![SimdLevel::Scalar];
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                v.push(SimdLevel::Avx2);
            }
            if is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx512bw")
                && is_x86_feature_detected!("avx512dq")
                && is_x86_feature_detected!("avx512vl")
            {
                v.push(SimdLevel::Avx512);
            }
        }
        v
    }

    /// Whether kernels at this level use fused multiply-adds (every scalar
    /// path of a call follows it, so that all paths round alike).
    pub(crate) fn fused(self) -> bool {
        match self {
            SimdLevel::Scalar => PORTABLE_FMA,
            _ => true,
        }
    }

    /// The name used in benchmarks.
    pub fn as_str(self) -> &'static str {
        match self {
            SimdLevel::Scalar => "scalar",
            SimdLevel::Avx2 => "avx2",
            SimdLevel::Avx512 => "avx512",
        }
    }
}
