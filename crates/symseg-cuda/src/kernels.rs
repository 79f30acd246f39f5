//! The CUDA C kernel sources and their compilation by NVRTC.
//!
//! Each `.cu` file is one module with one kernel; `common.cuh` (tiling, the
//! element loss, the penalty, the block reduction) is prepended to each, so
//! NVRTC needs no include path.

use std::ffi::CString;

use cudarc::nvrtc::{CompileOptions, Ptx, compile_ptx_with_opts, result as nvrtc};
use symseg_core::{Error, Result};

use crate::availability;

const COMMON: &str = include_str!("kernels/common.cuh");

/// Threads per block (`THREADS` of `common.cuh`).
pub const THREADS: u32 = 256;
/// Blocks of `THREADS` that the kernels' `__launch_bounds__` ask an SM to
/// hold at once (`MIN_BLOCKS` of `common.cuh`), unless a kernel names its own
/// bound (see [`min_blocks`]).
pub const MIN_BLOCKS: u32 = 4;

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
/// The validation and counting scan streamed along rows, for calls without
/// a mask (see `scan_rows.cu`).
pub const SCAN_ROWS: KernelSource = KernelSource {
    file: "scan_rows.cu",
    entry: "symseg_scan_rows",
    source: include_str!("kernels/scan_rows.cu"),
};
/// The fused loss and gradient pass (SPEC §2–4).
pub const LOSS: KernelSource =
    KernelSource { file: "loss.cu", entry: "symseg_loss", source: include_str!("kernels/loss.cu") };
/// The loss and gradient streamed along rows, for the strategies whose terms
/// need no transposed element (see [`rows_apply`]).
pub const LOSS_ROWS: KernelSource = KernelSource {
    file: "loss_rows.cu",
    entry: "symseg_loss_rows",
    source: include_str!("kernels/loss_rows.cu"),
};
/// [`LOSS_ROWS`] checking the labels itself, for calls without a mask: the
/// only kernel of such a call where no label is an ignore mark or the
/// reduction is a sum (see `loss_rows.cu`).
pub const LOSS_ROWS_CHECKED: KernelSource = KernelSource {
    file: "loss_rows.cu[checked]",
    entry: "symseg_loss_rows_checked",
    source: concat!("#define SYMSEG_ROWS_CHECKED\n", include_str!("kernels/loss_rows.cu")),
};
/// [`LOSS`] checking the labels itself, for calls without a mask that the
/// row kernel does not serve (see `loss.cu`).
pub const LOSS_CHECKED: KernelSource = KernelSource {
    file: "loss.cu[checked]",
    entry: "symseg_loss_checked",
    source: concat!("#define SYMSEG_TILES_CHECKED\n", include_str!("kernels/loss.cu")),
};
/// Confusion counts and asymmetry (SPEC §5–6).
pub const STATS: KernelSource =
    KernelSource { file: "stats.cu", entry: "symseg_stats", source: include_str!("kernels/stats.cu") };
/// The symmetrised prediction (SPEC §5).
pub const SYMMETRISE: KernelSource = KernelSource {
    file: "symmetrise.cu",
    entry: "symseg_symmetrise",
    source: include_str!("kernels/symmetrise.cu"),
};

/// The per-sample reduction factors from the scan's counts (SPEC §4).
pub const FACTORS: KernelSource =
    KernelSource { file: "factors.cu", entry: "symseg_factors", source: include_str!("kernels/factors.cu") };

/// The side of the tile pairs that the kernel `entry` strides over, which
/// its grid counts work in (`LOSS_TILE` of `loss.cu`, `SCAN_TILE` of
/// `scan.cu`, otherwise `TILE` of `common.cuh`; the row kernels' grids
/// count rows instead).
pub fn tile_side(entry: &str) -> usize {
    use crate::launch_args::{LOSS_TILE, SCAN_TILE, TILE};
    match entry {
        "symseg_loss" | "symseg_loss_checked" => LOSS_TILE,
        "symseg_scan" => SCAN_TILE,
        _ => TILE,
    }
}

/// Every kernel source, each with its strategy a launch argument (what the
/// CPU emulation and the CPU driver run).
pub const ALL: [KernelSource; 9] =
    [SCAN, SCAN_ROWS, FACTORS, LOSS, LOSS_CHECKED, LOSS_ROWS, LOSS_ROWS_CHECKED, STATS, SYMMETRISE];

/// The loss kernel compiled for one strategy (`SYMSEG_STRATEGY`, the
/// `strategy` code of `launch_args::LossArgs`): its branches fold away and it
/// gets its own register budget. On a GPU the backend launches these,
/// compiling each on its first use; their source is [`LOSS`]'s.
pub const LOSS_BY_STRATEGY: [KernelSource; 5] = [
    loss_for("loss.cu[plain]", concat!("#define SYMSEG_STRATEGY 0\n", include_str!("kernels/loss.cu"))),
    loss_for("loss.cu[dual]", concat!("#define SYMSEG_STRATEGY 1\n", include_str!("kernels/loss.cu"))),
    loss_for("loss.cu[average]", concat!("#define SYMSEG_STRATEGY 2\n", include_str!("kernels/loss.cu"))),
    loss_for("loss.cu[upper]", concat!("#define SYMSEG_STRATEGY 3\n", include_str!("kernels/loss.cu"))),
    loss_for("loss.cu[lower]", concat!("#define SYMSEG_STRATEGY 4\n", include_str!("kernels/loss.cu"))),
];

const fn loss_for(file: &'static str, source: &'static str) -> KernelSource {
    KernelSource { file, entry: LOSS.entry, source }
}

/// [`LOSS_CHECKED`] compiled for each strategy.
pub const LOSS_CHECKED_BY_STRATEGY: [KernelSource; 5] = [
    loss_checked_for(
        "loss.cu[plain, checked]",
        concat!("#define SYMSEG_STRATEGY 0\n#define SYMSEG_TILES_CHECKED\n", include_str!("kernels/loss.cu")),
    ),
    loss_checked_for(
        "loss.cu[dual, checked]",
        concat!("#define SYMSEG_STRATEGY 1\n#define SYMSEG_TILES_CHECKED\n", include_str!("kernels/loss.cu")),
    ),
    loss_checked_for(
        "loss.cu[average, checked]",
        concat!("#define SYMSEG_STRATEGY 2\n#define SYMSEG_TILES_CHECKED\n", include_str!("kernels/loss.cu")),
    ),
    loss_checked_for(
        "loss.cu[upper, checked]",
        concat!("#define SYMSEG_STRATEGY 3\n#define SYMSEG_TILES_CHECKED\n", include_str!("kernels/loss.cu")),
    ),
    loss_checked_for(
        "loss.cu[lower, checked]",
        concat!("#define SYMSEG_STRATEGY 4\n#define SYMSEG_TILES_CHECKED\n", include_str!("kernels/loss.cu")),
    ),
];

const fn loss_checked_for(file: &'static str, source: &'static str) -> KernelSource {
    KernelSource { file, entry: LOSS_CHECKED.entry, source }
}

/// [`LOSS_ROWS`] compiled for each strategy it serves (`None`: `average`,
/// which always takes the tile kernel).
pub const LOSS_ROWS_BY_STRATEGY: [Option<KernelSource>; 5] = [
    Some(rows_for(
        "loss_rows.cu[plain]",
        concat!("#define SYMSEG_STRATEGY 0\n", include_str!("kernels/loss_rows.cu")),
    )),
    Some(rows_for(
        "loss_rows.cu[dual]",
        concat!("#define SYMSEG_STRATEGY 1\n", include_str!("kernels/loss_rows.cu")),
    )),
    None,
    Some(rows_for(
        "loss_rows.cu[upper]",
        concat!("#define SYMSEG_STRATEGY 3\n", include_str!("kernels/loss_rows.cu")),
    )),
    Some(rows_for(
        "loss_rows.cu[lower]",
        concat!("#define SYMSEG_STRATEGY 4\n", include_str!("kernels/loss_rows.cu")),
    )),
];

const fn rows_for(file: &'static str, source: &'static str) -> KernelSource {
    KernelSource { file, entry: LOSS_ROWS.entry, source }
}

/// [`LOSS_ROWS_CHECKED`] compiled for each strategy it serves (those of
/// [`LOSS_ROWS_BY_STRATEGY`]).
pub const LOSS_ROWS_CHECKED_BY_STRATEGY: [Option<KernelSource>; 5] = [
    Some(checked_for(
        "loss_rows.cu[plain, checked]",
        concat!(
            "#define SYMSEG_STRATEGY 0\n#define SYMSEG_ROWS_CHECKED\n",
            include_str!("kernels/loss_rows.cu")
        ),
    )),
    Some(checked_for(
        "loss_rows.cu[dual, checked]",
        concat!(
            "#define SYMSEG_STRATEGY 1\n#define SYMSEG_ROWS_CHECKED\n",
            include_str!("kernels/loss_rows.cu")
        ),
    )),
    None,
    Some(checked_for(
        "loss_rows.cu[upper, checked]",
        concat!(
            "#define SYMSEG_STRATEGY 3\n#define SYMSEG_ROWS_CHECKED\n",
            include_str!("kernels/loss_rows.cu")
        ),
    )),
    Some(checked_for(
        "loss_rows.cu[lower, checked]",
        concat!(
            "#define SYMSEG_STRATEGY 4\n#define SYMSEG_ROWS_CHECKED\n",
            include_str!("kernels/loss_rows.cu")
        ),
    )),
];

const fn checked_for(file: &'static str, source: &'static str) -> KernelSource {
    KernelSource { file, entry: LOSS_ROWS_CHECKED.entry, source }
}

/// Whether a loss call may take [`LOSS_ROWS`] (strategy code `strategy`,
/// `pen_kind` 0 for no penalty): no penalty, and a strategy whose terms are
/// the element's own — `plain`, `upper`, `lower`, and `dual` when the labels
/// are required symmetric (its swapped terms are then its own).
pub fn rows_apply(strategy: i32, pen_kind: i32, require_symmetric: bool) -> bool {
    let own_terms = match strategy {
        0 | 3 | 4 => true,
        1 => require_symmetric,
        _ => false,
    };
    pen_kind == 0 && own_terms
}

/// The blocks an SM must hold at once by `k`'s `__launch_bounds__(THREADS, B)`:
/// `B` a number or a name `#define`d in the source or the common header.
/// `None` when the source declares no such bound.
pub fn min_blocks(k: &KernelSource) -> Option<u32> {
    let text = full_source(k);
    let at = text.find("__launch_bounds__(THREADS,")? + "__launch_bounds__(THREADS,".len();
    let name = text[at..].split(')').next()?.trim();
    if let Ok(v) = name.parse() {
        return Some(v);
    }
    let define = format!("#define {name} ");
    text.lines().find_map(|l| l.strip_prefix(&define)).and_then(|v| v.trim().parse().ok())
}

/// The full text NVRTC compiles for `k`.
pub fn full_source(k: &KernelSource) -> String {
    format!("{COMMON}\n// ---- {}\n{}", k.file, k.source)
}

/// NVRTC's flags for SPEC §4's accuracy: no flush-to-zero, IEEE division and
/// square roots; fused multiply-adds stay on (they only make results closer).
/// (The element loss asks for the hardware reciprocal of `1 + e` explicitly,
/// within an ulp there; docs/cuda.md says why.) Both [`compile`] and
/// [`resources`] pass these, so the registers counted are those of the code
/// that runs.
const ACCURACY_FLAGS: [&str; 4] = ["--ftz=false", "--prec-div=true", "--prec-sqrt=true", "--fmad=true"];

/// How `s^gamma` of the element loss is evaluated: the `kind` of
/// `launch_args::ElemArgs` (0, 1, 2 by multiplication, 3 by `exp`). The
/// backend compiles each loss kernel for the kind a call needs.
pub const ELEM_KINDS: [i32; 4] = [0, 1, 2, 3];

/// NVRTC's options for `elem_kind` (see [`compile_for_kind`]).
fn options(elem_kind: Option<i32>) -> Vec<String> {
    let mut opts = ACCURACY_FLAGS.map(String::from).to_vec();
    opts.extend(elem_kind.map(|kind| format!("-DSYMSEG_ELEM_KIND={kind}")));
    opts
}

/// Compiles `k` to PTX for `arch` (e.g. `"compute_90"`), with IEEE division
/// and square roots and no flush-to-zero, as SPEC §4's accuracy needs.
///
/// # Errors
/// [`Error::Backend`] with NVRTC's log when the source does not compile.
pub fn compile(k: &KernelSource, arch: &'static str) -> Result<Ptx> {
    compile_with(k, arch, None)
}

/// [`compile`] for one element-loss kind (one of [`ELEM_KINDS`]): the
/// kernel's `Elem::kind` argument is then ignored and `s^gamma`'s selects
/// fold away (`SYMSEG_ELEM_KIND` in `common.cuh`). For the loss kernels.
///
/// # Errors
/// As [`compile`].
pub fn compile_for_kind(k: &KernelSource, arch: &'static str, elem_kind: i32) -> Result<Ptx> {
    compile_with(k, arch, Some(elem_kind))
}

fn compile_with(k: &KernelSource, arch: &'static str, elem_kind: Option<i32>) -> Result<Ptx> {
    let opts = CompileOptions {
        arch: Some(arch),
        options: options(elem_kind),
        name: Some(k.file.to_string()),
        ..Default::default()
    };
    compile_ptx_with_opts(full_source(k), opts).map_err(|e| Error::Backend {
        backend: "cuda",
        message: format!("NVRTC failed on {}: {e:?}", k.file),
    })
}

/// What the assembler reports for one kernel compiled to machine code: what
/// bounds how many of its blocks an SM holds, and whether it spills.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Resources {
    /// Registers per thread.
    pub registers: u32,
    /// Bytes of registers spilled to local memory, stored and loaded.
    pub spill_stores: u32,
    /// See `spill_stores`.
    pub spill_loads: u32,
    /// Bytes of stack frame per thread (local arrays, spills).
    pub stack_bytes: u32,
    /// Bytes of static shared memory per block.
    pub shared_bytes: u32,
}

/// Compiles `k` to machine code for `sm` (e.g. `"sm_90"`) with the options of
/// [`compile`] and returns what the assembler (`ptxas -v`, inside NVRTC)
/// reports. Needs NVRTC only, no GPU.
///
/// # Errors
/// [`Error::Backend`] when NVRTC is missing, the source does not compile, or
/// the report lacks a figure.
pub fn resources(k: &KernelSource, sm: &str) -> Result<Resources> {
    resources_with(k, sm, None)
}

/// [`resources`] of [`compile_for_kind`]'s build.
///
/// # Errors
/// As [`resources`].
pub fn resources_for_kind(k: &KernelSource, sm: &str, elem_kind: i32) -> Result<Resources> {
    resources_with(k, sm, Some(elem_kind))
}

fn resources_with(k: &KernelSource, sm: &str, elem_kind: Option<i32>) -> Result<Resources> {
    availability::nvrtc()?;
    let fail = |what: String| Error::Backend { backend: "cuda", message: format!("{}: {what}", k.file) };
    let src = CString::new(full_source(k)).map_err(|e| fail(e.to_string()))?;
    let mut opts = vec![format!("--gpu-architecture={sm}"), "--ptxas-options=-v".into()];
    opts.extend(options(elem_kind));
    let prog = nvrtc::create_program(&src, None).map_err(|e| fail(format!("{e:?}")))?;
    // SAFETY: `prog` was created above from `src`, which outlives it, and is
    // destroyed once, after its last use.
    let (compiled, log) = unsafe {
        let compiled = nvrtc::compile_program(prog, &opts);
        let log = nvrtc::get_program_log(prog);
        nvrtc::destroy_program(prog).ok();
        (compiled, log)
    };
    // `c_char` is `i8` on x86-64 and `u8` on aarch64: a cast on one, none on the other.
    #[allow(clippy::unnecessary_cast)]
    let log: Vec<u8> = log.map_err(|e| fail(format!("{e:?}")))?.iter().map(|&c| c as u8).collect();
    let log = String::from_utf8_lossy(&log).trim_end_matches('\0').to_string();
    compiled.map_err(|e| fail(format!("NVRTC failed ({e:?}):\n{log}")))?;
    let figure = |suffix: &str| {
        figure_before(&log, suffix)
            .ok_or_else(|| fail(format!("no '{suffix}' in the assembler's report:\n{log}")))
    };
    Ok(Resources {
        registers: figure(" registers")?,
        spill_stores: figure(" bytes spill stores")?,
        spill_loads: figure(" bytes spill loads")?,
        stack_bytes: figure(" bytes stack frame")?,
        // Absent when the kernel uses no shared memory.
        shared_bytes: figure_before(&log, " bytes smem").unwrap_or(0),
    })
}

/// The number just before the first `suffix` in `text`.
fn figure_before(text: &str, suffix: &str) -> Option<u32> {
    let head = &text[..text.find(suffix)?];
    let digits = head.len() - head.bytes().rev().take_while(u8::is_ascii_digit).count();
    head[digits..].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::{COMMON, MIN_BLOCKS, THREADS, figure_before};
    use crate::launch_args::{STRIP, TILE};

    fn defined(name: &str) -> usize {
        defined_in(COMMON, name)
    }

    /// The value of `#define name N` in `source`.
    fn defined_in(source: &str, name: &str) -> usize {
        let line = source.lines().find(|l| l.starts_with(&format!("#define {name} "))).expect(name);
        line.rsplit(' ').next().and_then(|v| v.parse().ok()).expect("a number")
    }

    #[test]
    fn the_host_counts_each_kernels_work_in_its_own_tiles() {
        use super::{LOSS, LOSS_CHECKED, SCAN, STATS, SYMMETRISE, tile_side};
        assert_eq!(tile_side(LOSS.entry), defined_in(LOSS.source, "LOSS_TILE"));
        assert_eq!(tile_side(LOSS_CHECKED.entry), defined_in(LOSS.source, "LOSS_TILE"));
        assert_eq!(tile_side(SCAN.entry), defined_in(SCAN.source, "SCAN_TILE"));
        for k in [STATS, SYMMETRISE] {
            assert_eq!(tile_side(k.entry), TILE, "{}", k.file);
        }
    }

    #[test]
    fn the_host_and_the_kernels_agree_on_the_block_shape() {
        assert_eq!(defined("TILE"), TILE);
        assert_eq!(defined("STRIP"), STRIP);
        assert_eq!(TILE * TILE / STRIP, THREADS as usize);
        assert_eq!(defined("MIN_BLOCKS"), MIN_BLOCKS as usize);
    }

    /// Each strategy's code (the host's) names its specialised kernel, whose
    /// `SYMSEG_STRATEGY` is the same code and `loss.cu`'s `STRAT_` constant.
    #[test]
    fn each_strategy_launches_the_loss_kernel_compiled_for_it() {
        use symseg_core::{LossConfig, Strategy};
        for strategy in Strategy::ALL {
            let code = crate::launch_args::LossArgs::new(&LossConfig::default().strategy(strategy)).strategy;
            let name = format!("{strategy:?}").to_uppercase();
            let want = format!("#define STRAT_{name} {code}\n");
            assert!(super::LOSS.source.contains(&want), "loss.cu lacks {want:?}");
            let k = &super::LOSS_BY_STRATEGY[usize::try_from(code).expect("a code")];
            if k.file == super::LOSS.file {
                continue; // the generic kernel (dual): the strategy is its argument
            }
            assert!(k.source.starts_with(&format!("#define SYMSEG_STRATEGY {code}\n")), "{}", k.file);
            assert_eq!(k.file, format!("loss.cu[{}]", strategy.as_str()));
            assert_eq!(k.entry, super::LOSS.entry);
        }
    }

    #[test]
    fn each_kernel_declares_its_launch_bound() {
        for k in super::ALL {
            let want = match k.entry {
                "symseg_scan" => 3,
                "symseg_factors" => 1, // one block in all
                _ => MIN_BLOCKS,
            };
            assert_eq!(super::min_blocks(&k), Some(want), "{}", k.file);
        }
        let bare = super::KernelSource { file: "x.cu", entry: "x", source: "__global__ void x() {}" };
        assert_eq!(super::min_blocks(&bare), None);
    }

    #[test]
    fn figures_are_read_from_the_assemblers_report() {
        let log = "ptxas info    : Function properties for symseg_loss\n\
                   ptxas         .     32 bytes stack frame, 64 bytes spill stores, 56 bytes spill loads\n\
                   ptxas info    : Used 62 registers, used 1 barriers, 11648 bytes smem";
        assert_eq!(figure_before(log, " registers"), Some(62));
        assert_eq!(figure_before(log, " bytes spill stores"), Some(64));
        assert_eq!(figure_before(log, " bytes spill loads"), Some(56));
        assert_eq!(figure_before(log, " bytes stack frame"), Some(32));
        assert_eq!(figure_before(log, " bytes smem"), Some(11648));
        assert_eq!(figure_before(log, " bytes cmem"), None);
        assert_eq!(figure_before("Used registers", " registers"), None);
    }
}
