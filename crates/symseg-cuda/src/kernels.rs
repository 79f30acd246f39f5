//! The CUDA C kernel sources and their compilation by NVRTC.
//!
//! Each `.cu` file is one module with one kernel; `common.cuh` (tiling, the
//! element loss, the penalty, the block reduction) is prepended to each, so
//! NVRTC needs no include path.

use cudarc::nvrtc::{CompileOptions, Ptx, compile_ptx_with_opts};
use symseg_core::{Error, Result};

const COMMON: &str = include_str!("kernels/common.cuh");

/// One kernel: its module source (without the common header) and entry point.
#[derive(Debug, Clone, Copy)]
pub struct KernelSource {
    /// The `.cu` file's name.
    pub file: &'static str,
    /// The `extern "C"` entry point.
    pub entry: &'static str,
    /// The file's text.
    pub source: &'static str,
}

/// The validation and counting scan (SPEC §1).
pub const SCAN: KernelSource =
    KernelSource { file: "scan.cu", entry: "symseg_scan", source: include_str!("kernels/scan.cu") };
/// The fused loss and gradient pass (SPEC §2–4).
pub const LOSS: KernelSource =
    KernelSource { file: "loss.cu", entry: "symseg_loss", source: include_str!("kernels/loss.cu") };
/// Confusion counts and asymmetry (SPEC §5–6).
pub const STATS: KernelSource =
    KernelSource { file: "stats.cu", entry: "symseg_stats", source: include_str!("kernels/stats.cu") };
/// The symmetrised prediction (SPEC §5).
pub const SYMMETRISE: KernelSource = KernelSource {
    file: "symmetrise.cu",
    entry: "symseg_symmetrise",
    source: include_str!("kernels/symmetrise.cu"),
};

/// Every kernel the backend uses.
pub const ALL: [KernelSource; 4] = [SCAN, LOSS, STATS, SYMMETRISE];

/// The full text NVRTC compiles for `k`.
pub fn full_source(k: &KernelSource) -> String {
    format!("{COMMON}\n// ---- {}\n{}", k.file, k.source)
}

/// Compiles `k` to PTX for `arch` (e.g. `"compute_90"`), with IEEE division
/// and square roots and no flush-to-zero, as SPEC §4's accuracy needs.
///
/// # Errors
/// [`Error::Backend`] with NVRTC's log when the source does not compile.
pub fn compile(k: &KernelSource, arch: &'static str) -> Result<Ptx> {
    let opts = CompileOptions {
        arch: Some(arch),
        ftz: Some(false),
        prec_div: Some(true),
        prec_sqrt: Some(true),
        fmad: Some(true),
        name: Some(k.file.to_string()),
        ..Default::default()
    };
    compile_ptx_with_opts(full_source(k), opts).map_err(|e| Error::Backend {
        backend: "cuda",
        message: format!("NVRTC failed on {}: {e:?}", k.file),
    })
}
