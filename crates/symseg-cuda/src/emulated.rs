//! The CUDA kernels run on the CPU, against the float64 reference, so that CI
//! (no GPU) checks what they compute and not only that they compile.
//!
//! Each kernel's NVRTC source (`kernels::full_source`) is compiled as C++
//! with `emulator/cuda_on_cpu.h` (threads, a real barrier for
//! `__syncthreads`, atomics) and `emulator/driver.cpp` (arguments in on stdin,
//! outputs back on stdout), under AddressSanitizer and UBSan where the compiler
//! has them; once more under ThreadSanitizer, which finds two threads of a
//! block touching one element without a barrier between them.
//! The host side of each launch is the backend's own (`launch_args`): codes,
//! reduction factors, grid and block-ordered sums. Without a C++ compiler
//! (or, for the race test, without ThreadSanitizer) the tests print
//! `skipped: <reason>` and pass, unless `SYMSEG_REQUIRE_EMULATOR` is set (as in CI).
#![allow(clippy::print_stdout, clippy::expect_used, clippy::unwrap_used)] // test code

use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use symseg_core::metrics::{Confusion, PredictConfig, decision_bound, predicted, score, sym_pair};
use symseg_core::reference::RefBatch;
use symseg_core::testing::{
    Case, CaseSpec, Rng, check_against_reference, random_case, random_config, random_draw,
};
use symseg_core::validate::RegionCounts;
use symseg_core::{LossConfig, SymMode};

use crate::find_cxx;
use crate::kernels::{self, KernelSource};
use crate::launch_args::{self, LossArgs, mode_code};

const SHIM: &str = include_str!("../emulator/cuda_on_cpu.h");
const DRIVER: &str = include_str!("../emulator/driver.cpp");

/// The emulator executables of one build flavour.
struct Emulators {
    scan: PathBuf,
    scan_rows: PathBuf,
    factors: PathBuf,
    loss: PathBuf,
    loss_checked: PathBuf,
    loss_rows: PathBuf,
    loss_rows_checked: PathBuf,
    stats: PathBuf,
    symmetrise: PathBuf,
}

/// What an emulator build checks besides the values it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    /// AddressSanitizer and UBSan: an index outside a buffer, undefined
    /// behaviour. Falls back to a plain build where the compiler lacks them.
    Bounds,
    /// ThreadSanitizer: two threads of a block touching the same `__shared__`
    /// (or global) element without a `__syncthreads` between them.
    Races,
}

impl Check {
    /// Compiler flags to try, in order.
    fn flag_sets(self) -> &'static [&'static [&'static str]] {
        match self {
            Check::Bounds => &[&["-fsanitize=address,undefined", "-fno-sanitize-recover=all"], &[]],
            Check::Races => &[&["-fsanitize=thread"]],
        }
    }
}

/// Builds `k`'s emulator, or reuses the one built from the same text, flags
/// and compiler (the executables stay in one temporary folder, named by a hash
/// of what they were built from). `None` when no flag set builds.
fn compile(cxx: &str, dir: &Path, k: &KernelSource, select: &str, check: Check) -> Option<PathBuf> {
    let text = format!("{SHIM}\n{}\n#define {select}\n{DRIVER}", kernels::full_source(k));
    let base = ["-std=c++20", "-O1", "-g", "-pthread", "-x", "c++"];
    for flags in check.flag_sets() {
        let mut h = DefaultHasher::new();
        (cxx, &text, flags).hash(&mut h);
        let exe = dir.join(format!("{}-{:016x}", k.entry, h.finish()));
        if exe.exists() {
            return Some(exe);
        }
        // Private names until the rename, so concurrent test runs never see half a file.
        let pid = std::process::id();
        let src = dir.join(format!("{}-{pid}.cpp", k.entry));
        let tmp = dir.join(format!("{}-{pid}.tmp", k.entry));
        std::fs::write(&src, &text).expect("write the emulator source");
        let out = Command::new(cxx)
            .args(base)
            .args(*flags)
            .arg(&src)
            .arg("-o")
            .arg(&tmp)
            .output()
            .expect("run the C++ compiler");
        std::fs::remove_file(&src).ok();
        if out.status.success() {
            std::fs::rename(&tmp, &exe).expect("move the emulator into place");
            return Some(exe);
        }
        if check == Check::Bounds && flags.is_empty() {
            panic!(
                "{} does not compile for the CPU emulator:\n{}",
                k.file,
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    None
}

/// The emulators built for `check`, or `None` (after saying why) where they
/// cannot be built: no C++ compiler, or, for [`Check::Races`], no
/// ThreadSanitizer. `SYMSEG_REQUIRE_EMULATOR` turns either into a failure.
fn emulators_for(check: Check) -> Option<&'static Emulators> {
    static BOUNDS: OnceLock<Result<Emulators, &'static str>> = OnceLock::new();
    static RACES: OnceLock<Result<Emulators, &'static str>> = OnceLock::new();
    let cell = if check == Check::Bounds { &BOUNDS } else { &RACES };
    let emu = cell.get_or_init(|| {
        let cxx =
            find_cxx::compiler().ok_or("no C++ compiler (CXX, c++ or g++) to build the kernel emulator")?;
        let dir = std::env::temp_dir().join("symseg-cuda-emulator");
        std::fs::create_dir_all(&dir).expect("create the emulator directory");
        let build = |k: &KernelSource, select: &str| {
            compile(&cxx, &dir, k, select, check)
                .ok_or("the C++ compiler has no ThreadSanitizer (-fsanitize=thread)")
        };
        Ok(Emulators {
            scan: build(&kernels::SCAN, "EMU_SCAN")?,
            scan_rows: build(&kernels::SCAN_ROWS, "EMU_SCAN_ROWS")?,
            factors: build(&kernels::FACTORS, "EMU_FACTORS")?,
            loss: build(&kernels::LOSS, "EMU_LOSS")?,
            loss_checked: build(&kernels::LOSS_CHECKED, "EMU_LOSS_CHECKED")?,
            loss_rows: build(&kernels::LOSS_ROWS, "EMU_LOSS_ROWS")?,
            loss_rows_checked: build(&kernels::LOSS_ROWS_CHECKED, "EMU_LOSS_ROWS_CHECKED")?,
            stats: build(&kernels::STATS, "EMU_STATS")?,
            symmetrise: build(&kernels::SYMMETRISE, "EMU_SYMMETRISE")?,
        })
    });
    match emu {
        Ok(e) => Some(e),
        Err(reason) => {
            assert!(
                std::env::var("SYMSEG_REQUIRE_EMULATOR").is_err(),
                "SYMSEG_REQUIRE_EMULATOR is set but {reason}"
            );
            println!("skipped: {reason}");
            None
        }
    }
}

/// The bounds-checked emulators, which every value test uses.
fn emulators() -> Option<&'static Emulators> {
    emulators_for(Check::Bounds)
}

/// How one emulated launch runs: its grid, and whether rows take wide accesses.
#[derive(Debug, Clone, Copy)]
struct Grid {
    blocks: u32,
    wide: bool,
    /// The device's resident blocks it was made for: the row kernel's grid
    /// (`launch_args::row_blocks`) follows from it.
    resident: u32,
}

impl Grid {
    /// The grid the backend would launch on a device keeping `resident`
    /// blocks, with wide rows where the layout allows them (the driver's
    /// buffers are 16-byte aligned) and `wide` asks for them. Counted in
    /// the smallest tiles (`TILE`), so that the kernels over wider tile
    /// pairs also meet blocks with nothing to do.
    fn new(case: &Case, resident: u32, wide: bool) -> Grid {
        let (b, n) = (case.dims.batch, case.dims.n);
        let wide = wide && launch_args::wide(n, &[0], &[0]);
        Grid { blocks: launch_args::blocks(b, n, launch_args::TILE, resident), wide, resident }
    }

    /// A grid that varies with `seed`: one block (which then strides over
    /// every tile pair of every sample), a few, or one per tile pair; wide
    /// rows on two seeds of three.
    fn varied(case: &Case, seed: u64) -> Grid {
        Grid::new(case, [1, 3, 7, u32::MAX][(seed % 4) as usize], !seed.is_multiple_of(3))
    }
}

/// Little-endian arguments in a kernel's parameter order.
#[derive(Default)]
struct Args(Vec<u8>);

impl Args {
    /// The driver's header: the grid and the shape.
    fn launch(case: &Case, grid: Grid) -> Args {
        let mut a = Args::default();
        a.u32(grid.blocks).i64(case.dims.batch as i64).i64(case.dims.n as i64).i32(i32::from(grid.wide));
        a
    }
    fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend(v.to_le_bytes());
        self
    }
    fn i32(&mut self, v: i32) -> &mut Self {
        self.0.extend(v.to_le_bytes());
        self
    }
    fn i64(&mut self, v: i64) -> &mut Self {
        self.0.extend(v.to_le_bytes());
        self
    }
    fn f32(&mut self, v: f32) -> &mut Self {
        self.0.extend(v.to_le_bytes());
        self
    }
    fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend(v.to_le_bytes());
        self
    }
    fn f64(&mut self, v: f64) -> &mut Self {
        self.0.extend(v.to_le_bytes());
        self
    }
    fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.0.extend(v);
        self
    }
    fn f32s(&mut self, v: &[f32]) -> &mut Self {
        v.iter().for_each(|&x| self.0.extend(x.to_le_bytes()));
        self
    }
    fn f64s(&mut self, v: &[f64]) -> &mut Self {
        v.iter().for_each(|&x| self.0.extend(x.to_le_bytes()));
        self
    }
    fn lengths(&mut self, case: &Case) -> &mut Self {
        let (b, n) = (case.dims.batch, case.dims.n);
        for s in 0..b {
            self.i64(case.lengths.as_ref().map_or(n, |l| l[s]) as i64);
        }
        self
    }
}

/// Runs one launch; returns its outputs.
fn launch(exe: &Path, args: &Args) -> Outputs {
    let mut child = Command::new(exe)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the emulator");
    // The driver reads every argument before it writes anything, so this cannot deadlock.
    child.stdin.take().expect("stdin").write_all(&args.0).expect("send the arguments");
    let out = child.wait_with_output().expect("run the emulator");
    assert!(
        out.status.success(),
        "{} failed ({}):\n{}",
        exe.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Outputs { bytes: out.stdout, at: 0 }
}

/// A launch's outputs, read back in the driver's order.
struct Outputs {
    bytes: Vec<u8>,
    at: usize,
}

impl Outputs {
    fn take<const W: usize>(&mut self, count: usize) -> Vec<[u8; W]> {
        let end = self.at + W * count;
        assert!(
            end <= self.bytes.len(),
            "the emulator returned {} bytes, fewer than expected",
            self.bytes.len()
        );
        let v = self.bytes[self.at..end].chunks_exact(W).map(|c| c.try_into().unwrap()).collect();
        self.at = end;
        v
    }
    fn f32s(&mut self, count: usize) -> Vec<f32> {
        self.take::<4>(count).into_iter().map(f32::from_le_bytes).collect()
    }
    fn f64s(&mut self, count: usize) -> Vec<f64> {
        self.take::<8>(count).into_iter().map(f64::from_le_bytes).collect()
    }
    fn u64s(&mut self, count: usize) -> Vec<u64> {
        self.take::<8>(count).into_iter().map(u64::from_le_bytes).collect()
    }
    fn done(&self) {
        assert_eq!(self.at, self.bytes.len(), "the emulator returned more than expected");
    }
}

/// `symseg_scan`: per-sample counts, or the violation's flat index.
fn scan(emu: &Emulators, case: &Case, grid: Grid, require_symmetric: bool) -> Result<Vec<RegionCounts>, u64> {
    let b = case.dims.batch;
    let mut a = Args::launch(case, grid);
    a.i64(case.min_sep as i64).i32(i32::from(require_symmetric)).i32(i32::from(case.mask.is_some()));
    a.bytes(&case.labels).bytes(case.mask.as_deref().unwrap_or(&[])).lengths(case);
    let mut out = launch(&emu.scan, &a);
    let counts = out.u64s(2 * b);
    let violation = out.u64s(1)[0];
    out.done();
    if violation == u64::MAX { Ok(launch_args::region_counts(&counts)) } else { Err(violation) }
}

/// `symseg_scan_rows` with bands of `band` rows (on the grid the backend
/// would launch for `grid`'s device): per-sample counts, or the violation word.
fn scan_rows(
    emu: &Emulators,
    case: &Case,
    grid: Grid,
    require_symmetric: bool,
    band: i32,
) -> Result<Vec<RegionCounts>, u64> {
    assert!(case.mask.is_none(), "the row scan reads no mask");
    let (b, n) = (case.dims.batch, case.dims.n);
    let grid = Grid { blocks: launch_args::scan_row_blocks(b, n, band, grid.resident), ..grid };
    let mut a = Args::launch(case, grid);
    a.i64(case.min_sep as i64).i32(i32::from(require_symmetric)).i32(band);
    a.bytes(&case.labels).lengths(case);
    let mut out = launch(&emu.scan_rows, &a);
    let counts = out.u64s(2 * b);
    let violation = out.u64s(1)[0];
    let tally = out.u64s(2);
    out.done();
    assert_eq!(tally[1], u64::from(grid.blocks), "every block counts itself done once");
    if violation == u64::MAX { Ok(launch_args::region_counts(&counts)) } else { Err(violation) }
}

/// What `symseg_loss` returns: the gradient (when asked for), the host's
/// block-ordered `(element, penalty)` sums and the non-finite index.
struct LossOut {
    grad: Option<Vec<f32>>,
    sums: (f64, f64),
    bad: u64,
}

fn loss(
    emu: &Emulators,
    case: &Case,
    grid: Grid,
    cfg: &LossConfig,
    counts: &[RegionCounts],
    grad: bool,
) -> LossOut {
    loss_after_scan(emu, case, grid, cfg, counts, grad, u64::MAX)
}

/// Which loss kernel a launch runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LossKernel {
    /// The backend's choice (`kernels::rows_apply`).
    Chosen,
    /// `symseg_loss` (tiles).
    Tiles,
    /// `symseg_loss_rows`.
    Rows,
}

/// `symseg_loss` or `symseg_loss_rows`, as the backend would choose, after a
/// scan that left `violation` (`u64::MAX`: none).
fn loss_after_scan(
    emu: &Emulators,
    case: &Case,
    grid: Grid,
    cfg: &LossConfig,
    counts: &[RegionCounts],
    grad: bool,
    violation: u64,
) -> LossOut {
    loss_on(emu, LossKernel::Chosen, case, grid, cfg, counts, grad, violation)
}

#[allow(clippy::too_many_arguments)]
fn loss_on(
    emu: &Emulators,
    kernel: LossKernel,
    case: &Case,
    grid: Grid,
    cfg: &LossConfig,
    counts: &[RegionCounts],
    grad: bool,
    violation: u64,
) -> LossOut {
    let (b, n) = (case.dims.batch, case.dims.n);
    let la = LossArgs::new(cfg);
    let rows = match kernel {
        LossKernel::Chosen => kernels::rows_apply(la.strategy, la.pen_kind, !cfg.allow_asymmetric_labels),
        LossKernel::Tiles => false,
        LossKernel::Rows => true,
    };
    let grid =
        if rows { Grid { blocks: launch_args::row_blocks(b, n, grid.resident), ..grid } } else { grid };
    let (r, wp) = launch_args::host_factors(cfg, counts);
    let e = la.elem;
    let mut a = Args::launch(case, grid);
    a.i64(case.min_sep as i64).i32(la.strategy).f32(e.w_pos).f32(e.w_neg).f32(e.gamma).i32(e.kind);
    a.i32(la.pen_kind).i32(la.pen_probs).f32(la.delta);
    a.i32(i32::from(case.mask.is_some())).i32(i32::from(grad));
    a.f32s(&case.logits).bytes(&case.labels).bytes(case.mask.as_deref().unwrap_or(&[]));
    a.lengths(case).f64s(&r).f64s(&wp).u64(violation);
    let mut out = launch(if rows { &emu.loss_rows } else { &emu.loss }, &a);
    let g = grad.then(|| out.f32s(b * n * n));
    let partial = out.f64s(2 * grid.blocks as usize);
    let bad = out.u64s(1)[0];
    out.done();
    LossOut { grad: g, sums: launch_args::sum_partials(&partial), bad }
}

/// What a checked loss kernel returns besides [`LossOut`]: per sample the
/// ignore marks of the counted set, and whether it found the labels invalid.
struct CheckedOut {
    loss: LossOut,
    ignored: Vec<RegionCounts>,
    invalid: bool,
}

/// `symseg_loss_rows_checked` (`rows`) or `symseg_loss_checked` on `case`
/// (no mask), as the backend launches them: the factors from
/// [`RegionCounts::unmasked`], each kernel's grid.
fn loss_checked(
    emu: &Emulators,
    rows: bool,
    case: &Case,
    grid: Grid,
    cfg: &LossConfig,
    grad: bool,
) -> CheckedOut {
    assert!(case.mask.is_none(), "the checked kernels read no mask");
    let (b, n) = (case.dims.batch, case.dims.n);
    let la = LossArgs::new(cfg);
    let grid =
        if rows { Grid { blocks: launch_args::row_blocks(b, n, grid.resident), ..grid } } else { grid };
    let (r, wp) = launch_args::host_factors(cfg, &unmasked_counts(case));
    let (e, sym) = (la.elem, i32::from(!cfg.allow_asymmetric_labels));
    let mut a = Args::launch(case, grid);
    a.i64(case.min_sep as i64).i32(la.strategy).f32(e.w_pos).f32(e.w_neg).f32(e.gamma).i32(e.kind);
    if !rows {
        a.i32(la.pen_kind).i32(la.pen_probs).f32(la.delta);
    }
    a.i32(sym).i32(i32::from(grad)).f32s(&case.logits).bytes(&case.labels).lengths(case).f64s(&r);
    if !rows {
        a.f64s(&wp);
    }
    let mut out = launch(if rows { &emu.loss_rows_checked } else { &emu.loss_checked }, &a);
    let g = grad.then(|| out.f32s(b * n * n));
    let partial = out.f64s(2 * grid.blocks as usize);
    let bad = out.u64s(1)[0];
    let ignored = launch_args::region_counts(&out.u64s(2 * b));
    let violation = out.u64s(1)[0];
    if rows {
        let tally = out.u64s(2);
        assert_eq!(tally[1], u64::from(grid.blocks), "every block counts itself done once");
    }
    out.done();
    assert!(violation == u64::MAX || violation == 0, "the violation word is a flag: {violation}");
    CheckedOut {
        loss: LossOut { grad: g, sums: launch_args::sum_partials(&partial), bad },
        ignored,
        invalid: violation != u64::MAX,
    }
}

/// Each sample's [`RegionCounts::unmasked`].
fn unmasked_counts(case: &Case) -> Vec<RegionCounts> {
    let n = case.dims.n;
    (0..case.dims.batch)
        .map(|s| RegionCounts::unmasked(case.lengths.as_ref().map_or(n, |l| l[s]), case.min_sep))
        .collect()
}

#[test]
fn scan_counts_match_the_reference() {
    let Some(emu) = emulators() else { return };
    for seed in 1..=40u64 {
        let case = random_case(&mut Rng::new(seed));
        let counts = scan(emu, &case, Grid::varied(&case, seed), true);
        check_scan_counts(&case, counts, &format!("seed {seed}"));
    }
}

/// A band for the row scan that varies with `seed`: the backend's, one row,
/// or a few (so that a band's strips take one round or several, and bands
/// end inside and outside a sample's length).
fn varied_band(n: usize, seed: u64) -> i32 {
    [launch_args::scan_band(n), 1, 3, 7][(seed % 4) as usize]
}

#[test]
fn row_scan_counts_match_the_reference() {
    let Some(emu) = emulators() else { return };
    let mut rng = Rng::new(808);
    for seed in 1..=40u64 {
        let mut case = if seed % 2 == 0 {
            random_case(&mut Rng::new(seed))
        } else {
            large_scan_case(&mut rng, seed as usize)
        };
        case.mask = None;
        let require_symmetric = seed % 2 == 0 || !case_is_asymmetric(seed as usize);
        let band = varied_band(case.dims.n, seed);
        let counts = scan_rows(emu, &case, Grid::varied(&case, seed), require_symmetric, band);
        check_scan_counts(&case, counts, &format!("seed {seed}, band {band}"));
    }
}

/// A scan's counts of `case` against SPEC §1's counted set, sample by sample.
fn check_scan_counts(case: &Case, counts: Result<Vec<RegionCounts>, u64>, what: &str) {
    let x64 = case.logits_f64();
    let rb = case.ref_batch(&x64);
    let counts = counts.unwrap_or_else(|k| panic!("{what}: violation at {k}"));
    let n = case.dims.n;
    for (s, c) in counts.iter().enumerate() {
        let pairs = (0..n).flat_map(|i| (i + 1..n).map(move |j| (i, j))).filter(|&(i, j)| rb.in_set(s, i, j));
        let diagonal = (0..n).filter(|&i| rb.in_set(s, i, i)).count() as u64;
        assert_eq!((c.pairs, c.diagonal), (pairs.count() as u64, diagonal), "{what} sample {s}");
    }
}

/// Maps large enough for the scan's 64-wide interior tile pairs (where four
/// columns are judged at once), with every row load: 16 bytes (N a multiple
/// of 16), 4 bytes (of 4), bytes (odd N); with and without lengths, masks,
/// ignore labels and `min_sep`; every fifth with asymmetric labels (which
/// the scan must then be told to allow).
fn large_scan_case(rng: &mut Rng, round: usize) -> Case {
    let n = [128, 144, 200, 131, 192, 260][round % 6];
    let spec = CaseSpec {
        lengths: rng.chance(0.5),
        min_sep: [0, 1, 3][rng.below(3)],
        mask: rng.chance(0.5),
        ignore: if rng.chance(0.5) { 0.02 } else { 0.0 },
        asymmetric_labels: case_is_asymmetric(round),
        ..CaseSpec::new(1 + rng.below(2), n)
    };
    Case::random(rng, &spec)
}

fn case_is_asymmetric(round: usize) -> bool {
    round % 5 == 4
}

#[test]
fn scan_counts_match_the_reference_on_large_maps() {
    let Some(emu) = emulators() else { return };
    let mut rng = Rng::new(2026);
    for round in 0..12 {
        let case = large_scan_case(&mut rng, round);
        let require_symmetric = !case_is_asymmetric(round);
        let counts = scan(emu, &case, Grid::varied(&case, round as u64), require_symmetric);
        check_scan_counts(&case, counts, &format!("round {round}"));
    }
}

#[test]
fn scan_reports_the_lowest_violation_on_large_maps() {
    let Some(emu) = emulators() else { return };
    let mut rng = Rng::new(4048);
    for round in 0..36 {
        let mut case = large_scan_case(&mut rng, round);
        let asymmetric = case_is_asymmetric(round);
        let (b, n) = (case.dims.batch, case.dims.n);
        let mut keys = Vec::new();
        for _ in 0..1 + rng.below(3) {
            // Inside the sample's length: the scan checks only the real region.
            let s = rng.below(b);
            let len = case.lengths.as_ref().map_or(n, |l| l[s]);
            let (i, j) = (rng.below(len), rng.below(len));
            let key = (s * n + i.min(j)) * n + i.max(j);
            if keys.contains(&key) {
                continue;
            }
            // A label outside {0, 1, 255}, an asymmetric label, or an
            // asymmetric mask (where there is one).
            let k = (s * n + i) * n + j;
            match (i == j, rng.below(3), case.mask.as_mut()) {
                (_, 2, Some(m)) if i != j => m[k] = 1 - m[k].min(1),
                (false, 1, _) if case.labels[k] != 255 && !asymmetric => case.labels[k] = 1 - case.labels[k],
                _ => case.labels[k] = 7,
            }
            keys.push(key);
        }
        let want = *keys.iter().min().unwrap() as u64;
        let grid = Grid::varied(&case, round as u64);
        assert_eq!(scan(emu, &case, grid, !asymmetric).err(), Some(want), "round {round} ({grid:?})");
    }
}

/// Labels made invalid in the ways the row scan must catch, each in its own
/// way: a value outside {0, 1, 255} in either triangle; a pair whose labels
/// differ where both are non-zero, or where only the upper one is (its
/// mirror test finds those), or where only the lower one is (only the count
/// of non-zero labels per triangle finds those); an ignore mark on one side
/// only (invalid even where symmetry is not required). Or a change the scan
/// must not flag: labels of padding, outside the sample's length.
fn spoil(rng: &mut Rng, case: &mut Case, require_symmetric: bool) -> &'static str {
    let (b, n) = (case.dims.batch, case.dims.n);
    let s = rng.below(b);
    let len = case.lengths.as_ref().map_or(n, |l| l[s]);
    let at = |i: usize, j: usize| (s * n + i) * n + j;
    let (i, j) = (rng.below(len), rng.below(len));
    let (lo, hi) = (i.min(j), i.max(j));
    match rng.below(6) {
        0 => {
            case.labels[at(i, j)] = [2, 7, 128, 254][rng.below(4)];
            "a bad value"
        }
        1 if require_symmetric && lo != hi => {
            case.labels[at(lo, hi)] = 1;
            case.labels[at(hi, lo)] = if rng.chance(0.5) { 0 } else { 255 };
            "upper 1, lower another"
        }
        2 if require_symmetric && lo != hi => {
            case.labels[at(lo, hi)] = 0;
            case.labels[at(hi, lo)] = 1;
            "lower 1 over an upper 0"
        }
        3 if lo != hi => {
            let (a, z) = if rng.chance(0.5) { (at(lo, hi), at(hi, lo)) } else { (at(hi, lo), at(lo, hi)) };
            case.labels[a] = 255;
            case.labels[z] = rng.below(2) as u8;
            "an ignore mark on one side"
        }
        4 if len < n => {
            let (p, q) = (len + rng.below(n - len), rng.below(n));
            case.labels[if rng.chance(0.5) { at(p, q) } else { at(q, p) }] = 7;
            "padding (valid)"
        }
        _ => "nothing (valid)",
    }
}

#[test]
fn the_row_scan_flags_exactly_what_the_tile_scan_does() {
    let Some(emu) = emulators() else { return };
    let mut rng = Rng::new(1212);
    for round in 0..60usize {
        let mut case = if round % 3 == 0 {
            let spec =
                CaseSpec { lengths: true, ..CaseSpec::new(1 + rng.below(3), [5, 33, 70][round % 9 / 3]) };
            Case::random(&mut rng, &spec)
        } else {
            large_scan_case(&mut rng, round)
        };
        case.mask = None;
        let require_symmetric = !case_is_asymmetric(round) || round % 3 == 0;
        let what = spoil(&mut rng, &mut case, require_symmetric);
        let grid = Grid::varied(&case, round as u64);
        let band = varied_band(case.dims.n, round as u64);
        let tiles = scan(emu, &case, grid, require_symmetric);
        let rows = scan_rows(emu, &case, grid, require_symmetric, band);
        let context = format!("round {round}: {what} (n {}, band {band}, {grid:?})", case.dims.n);
        match (&tiles, &rows) {
            (Ok(t), Ok(r)) => assert_eq!(t, r, "{context}: counts"),
            (Err(_), Err(_)) => {}
            _ => panic!("{context}: the tile scan gives {tiles:?}, the row scan {rows:?}"),
        }
        assert_eq!(tiles.is_ok(), what.ends_with("(valid)"), "{context}");
    }
}

#[test]
fn scan_reports_the_lowest_violation() {
    let Some(emu) = emulators() else { return };
    let mut rng = Rng::new(77);
    for round in 0..12 {
        let (b, n) = (1 + rng.below(3), [5, 33, 64, 70][round % 4]);
        let mut case = Case::random(&mut rng, &CaseSpec::new(b, n));
        let mut keys = Vec::new();
        for _ in 0..1 + rng.below(3) {
            let (s, i, j) = (rng.below(b), rng.below(n), rng.below(n));
            let key = (s * n + i.min(j)) * n + i.max(j);
            if keys.contains(&key) {
                continue; // a second change to one pair could undo the first
            }
            // A value outside {0, 1, 255}, or an asymmetric pair (off the diagonal).
            let k = (s * n + i) * n + j;
            case.labels[k] = if i == j || rng.chance(0.5) { 7 } else { 1 - case.labels[k] };
            keys.push(key);
        }
        let want = *keys.iter().min().unwrap() as u64;
        let grid = Grid::varied(&case, round as u64);
        assert_eq!(scan(emu, &case, grid, true).err(), Some(want), "round {round} ({grid:?})");
    }
}

#[test]
fn loss_and_gradient_match_the_reference() {
    let Some(emu) = emulators() else { return };
    for seed in 1..=60u64 {
        let (case, cfg) = random_draw(seed);
        let x64 = case.logits_f64();
        let rb = case.ref_batch(&x64);
        let reference = symseg_core::reference::loss_grad(&rb, &cfg);
        let grid = Grid::varied(&case, seed);
        let counts = scan(emu, &case, grid, !cfg.allow_asymmetric_labels)
            .unwrap_or_else(|k| panic!("seed {seed}: violation at {k}"));
        let with = loss(emu, &case, grid, &cfg, &counts, true);
        assert_eq!(with.bad, u64::MAX, "seed {seed}: a finite case reported a non-finite logit");
        let grad = with.grad.expect("asked for the gradient");
        // Every element written (the driver pre-fills 1234.5; the check below
        // also requires exact zeros outside the counted set).
        let report = RegionCounts::report(&counts, cfg.strategy, with.sums.0, with.sums.1);
        check_against_reference(report.loss, Some(&grad), &reference, &rb)
            .unwrap_or_else(|m| panic!("seed {seed}: {m} ({cfg:?}, n {}, {grid:?})", case.dims.n));
        let without = loss(emu, &case, grid, &cfg, &counts, false);
        assert_eq!(without.sums.0.to_bits(), with.sums.0.to_bits(), "seed {seed}: loss-only differs");
        assert_eq!(without.sums.1.to_bits(), with.sums.1.to_bits(), "seed {seed}: loss-only penalty differs");
        if grid.wide {
            // Row-wide and element-wise accesses do the same arithmetic in the same order.
            let narrow = loss(emu, &case, Grid { wide: false, ..grid }, &cfg, &counts, true);
            assert_eq!(
                narrow.sums.0.to_bits(),
                with.sums.0.to_bits(),
                "seed {seed}: wide rows change the loss"
            );
            assert!(
                narrow.grad.expect("asked").iter().zip(&grad).all(|(a, b)| a.to_bits() == b.to_bits()),
                "seed {seed}: wide rows change the gradient"
            );
        }
    }
}

/// The row kernel on every strategy it serves, without a penalty: against
/// the float64 reference, and against the tile kernel, which must give the
/// same gradient bit for bit (the same element arithmetic) and the same loss
/// up to the order of its sums. Random cases (odd sizes, lengths, `min_sep`,
/// masks, ignore labels, extreme logits) and rows of 2 to 260 columns, on
/// grids of one block up to one per 256 quads, wide and element-wise.
#[test]
fn the_row_kernel_matches_the_reference_and_the_tile_kernel() {
    use symseg_core::Strategy;
    let Some(emu) = emulators() else { return };
    let mut rng = Rng::new(909);
    for round in 0..48u64 {
        let (case, cfg) = if round % 3 == 2 {
            // A larger map, past a warp's 128 columns a row.
            let (case, cfg) = (large_scan_case(&mut rng, round as usize), random_config(&mut rng));
            (case, cfg.allow_asymmetric_labels(false))
        } else {
            random_draw(5000 + round)
        };
        if case_is_asymmetric(round as usize) && round % 3 == 2 {
            continue; // asymmetric labels: the row kernel never sees them
        }
        let strategy =
            [Strategy::Plain, Strategy::Dual, Strategy::Upper, Strategy::Lower][round as usize % 4];
        let cfg = cfg.strategy(strategy).penalty(None);
        let la = LossArgs::new(&cfg);
        assert!(kernels::rows_apply(la.strategy, la.pen_kind, true), "{cfg:?}");
        let x64 = case.logits_f64();
        let rb = case.ref_batch(&x64);
        let reference = symseg_core::reference::loss_grad(&rb, &cfg);
        let grid = Grid::varied(&case, round);
        let counts =
            scan(emu, &case, grid, true).unwrap_or_else(|k| panic!("round {round}: violation at {k}"));
        let rows = loss_on(emu, LossKernel::Rows, &case, grid, &cfg, &counts, true, u64::MAX);
        assert_eq!(rows.bad, u64::MAX, "round {round}");
        let grad = rows.grad.expect("asked for the gradient");
        let report = RegionCounts::report(&counts, cfg.strategy, rows.sums.0, rows.sums.1);
        let what = format!("round {round} ({cfg:?}, n {}, {grid:?})", case.dims.n);
        check_against_reference(report.loss, Some(&grad), &reference, &rb)
            .unwrap_or_else(|m| panic!("{what}: {m}"));
        assert_eq!(rows.sums.1, 0.0, "{what}: a penalty sum without a penalty");
        let tiles = loss_on(emu, LossKernel::Tiles, &case, grid, &cfg, &counts, true, u64::MAX);
        let tile_grad = tiles.grad.expect("asked for the gradient");
        if let Some(k) = (0..grad.len()).find(|&k| grad[k].to_bits() != tile_grad[k].to_bits()) {
            panic!("{what}: element {k}: rows {} tiles {}", grad[k], tile_grad[k]);
        }
        let (a, b) = (rows.sums.0, tiles.sums.0);
        assert!((a - b).abs() <= 1e-6 * a.abs().max(b.abs()) + 1e-300, "{what}: loss rows {a} tiles {b}");
        let narrow = loss_on(
            emu,
            LossKernel::Rows,
            &case,
            Grid { wide: false, ..grid },
            &cfg,
            &counts,
            false,
            u64::MAX,
        );
        assert_eq!(narrow.sums.0.to_bits(), rows.sums.0.to_bits(), "{what}: element-wise rows differ");
    }
}

/// The checked kernels on valid labels, the row kernel on even rounds (its
/// strategies, no penalty) and the tile kernel on odd ones (any config):
/// their ignore counts are what the tile scan's counts lack of
/// [`RegionCounts::unmasked`]; where there are none (or the reduction is a
/// sum, whose factors do not depend on them), the loss matches the float64
/// reference, and loss and gradient are the scanned kernel's bit for bit.
#[test]
fn the_checked_kernels_match_the_reference_and_the_scanned_ones() {
    use symseg_core::{Reduction, Strategy};
    let Some(emu) = emulators() else { return };
    let mut rng = Rng::new(6061);
    let mut compared = [0, 0];
    for round in 0..64u64 {
        let rows = round % 2 == 0;
        let (mut case, cfg) = if round % 3 == 2 {
            let (case, cfg) = (large_scan_case(&mut rng, round as usize), random_config(&mut rng));
            (case, cfg.allow_asymmetric_labels(false))
        } else {
            random_draw(7000 + round)
        };
        case.mask = None;
        let asymmetric = case_is_asymmetric(round as usize) && round % 3 == 2;
        let cfg = cfg.allow_asymmetric_labels(asymmetric);
        let cfg = match (rows, asymmetric) {
            (true, true) => cfg
                .strategy([Strategy::Plain, Strategy::Upper, Strategy::Lower][round as usize % 3])
                .penalty(None),
            (true, false) => cfg
                .strategy(
                    [Strategy::Plain, Strategy::Dual, Strategy::Upper, Strategy::Lower][round as usize % 4],
                )
                .penalty(None),
            (false, _) => cfg,
        };
        let la = LossArgs::new(&cfg);
        if rows {
            assert!(kernels::rows_apply(la.strategy, la.pen_kind, !asymmetric), "{cfg:?}");
        }
        let grid = Grid::varied(&case, round);
        let what = format!("round {round} (rows {rows}, {cfg:?}, n {}, {grid:?})", case.dims.n);
        let counts =
            scan(emu, &case, grid, !asymmetric).unwrap_or_else(|k| panic!("{what}: violation at {k}"));
        let checked = loss_checked(emu, rows, &case, grid, &cfg, true);
        assert!(!checked.invalid, "{what}: valid labels flagged");
        let found: Vec<RegionCounts> = unmasked_counts(&case)
            .iter()
            .zip(&checked.ignored)
            .map(|(u, i)| RegionCounts { pairs: u.pairs - i.pairs, diagonal: u.diagonal - i.diagonal })
            .collect();
        assert_eq!(found, counts, "{what}: counts");
        let no_marks = checked.ignored.iter().all(|c| *c == RegionCounts::default());
        if !no_marks && cfg.reduction != Reduction::Sum {
            continue; // the backend runs the scan instead
        }
        compared[usize::from(rows)] += 1;
        assert_eq!(checked.loss.bad, u64::MAX, "{what}");
        let x64 = case.logits_f64();
        let rb = case.ref_batch(&x64);
        let reference = symseg_core::reference::loss_grad(&rb, &cfg);
        let grad = checked.loss.grad.expect("asked for the gradient");
        let report = RegionCounts::report(&counts, cfg.strategy, checked.loss.sums.0, checked.loss.sums.1);
        check_against_reference(report.loss, Some(&grad), &reference, &rb)
            .unwrap_or_else(|m| panic!("{what}: {m}"));
        let kernel = if rows { LossKernel::Rows } else { LossKernel::Tiles };
        let scanned = loss_on(emu, kernel, &case, grid, &cfg, &counts, true, u64::MAX);
        let want = scanned.grad.expect("asked for the gradient");
        if let Some(k) = (0..grad.len()).find(|&k| grad[k].to_bits() != want[k].to_bits()) {
            panic!("{what}: element {k}: checked {} scanned {}", grad[k], want[k]);
        }
        let bits = |s: (f64, f64)| (s.0.to_bits(), s.1.to_bits());
        assert_eq!(bits(checked.loss.sums), bits(scanned.sums), "{what}: the loss");
        let without = loss_checked(emu, rows, &case, grid, &cfg, false);
        assert_eq!(bits(without.loss.sums), bits(scanned.sums), "{what}: loss-only");
    }
    assert!(compared.iter().all(|&c| c >= 14), "rounds compared (tiles, rows): {compared:?}");
}

/// The checked kernels flag invalid labels exactly where the tile scan
/// finds a violation (the ways of [`spoil`]), and never valid ones.
#[test]
fn the_checked_kernels_flag_exactly_what_the_tile_scan_does() {
    use symseg_core::{Penalty, PenaltyKind, Strategy};
    let Some(emu) = emulators() else { return };
    let mut rng = Rng::new(3434);
    for round in 0..80usize {
        let mut case = if round % 3 == 0 {
            let spec = CaseSpec {
                lengths: true,
                min_sep: rng.below(4),
                ignore: 0.05,
                ..CaseSpec::new(1 + rng.below(3), [5, 33, 70][round % 9 / 3])
            };
            Case::random(&mut rng, &spec)
        } else {
            large_scan_case(&mut rng, round)
        };
        case.mask = None;
        let require_symmetric = !case_is_asymmetric(round) || round % 3 == 0;
        let what = spoil(&mut rng, &mut case, require_symmetric);
        let grid = Grid::varied(&case, round as u64);
        let tiles = scan(emu, &case, grid, require_symmetric);
        let rows = round % 2 == 0;
        let cfg = if rows {
            LossConfig::default().strategy([Strategy::Plain, Strategy::Upper][round / 2 % 2])
        } else {
            let penalty = Penalty::new(PenaltyKind::L1).weight(0.5);
            LossConfig::default()
                .strategy([Strategy::Average, Strategy::Dual][round / 2 % 2])
                .penalty(Some(penalty))
        };
        let cfg = cfg.allow_asymmetric_labels(!require_symmetric);
        let checked = loss_checked(emu, rows, &case, grid, &cfg, round % 4 != 1);
        let context = format!("round {round}: {what} (rows {rows}, n {}, {grid:?})", case.dims.n);
        assert_eq!(checked.invalid, tiles.is_err(), "{context}: the tile scan gives {tiles:?}");
        assert_eq!(tiles.is_ok(), what.ends_with("(valid)"), "{context}");
    }
}

#[test]
fn the_device_reduction_factors_are_the_hosts_bit_for_bit() {
    let Some(emu) = emulators() else { return };
    let mut rng = Rng::new(21);
    // Batches past one block's threads, and samples with nothing counted.
    for (round, b) in [1, 2, 7, 255, 256, 257, 1000].into_iter().enumerate() {
        let counts: Vec<RegionCounts> = (0..b)
            .map(|_| match rng.below(4) {
                0 => RegionCounts::default(),
                1 => RegionCounts { pairs: 0, diagonal: rng.below(50) as u64 },
                _ => RegionCounts { pairs: rng.below(1 << 20) as u64, diagonal: rng.below(2048) as u64 },
            })
            .collect();
        for strategy in symseg_core::Strategy::ALL {
            for reduction in symseg_core::Reduction::ALL {
                let penalty =
                    symseg_core::Penalty::new(symseg_core::PenaltyKind::L2).weight(0.3 + rng.uniform());
                let cfg =
                    LossConfig::default().strategy(strategy).reduction(reduction).penalty(Some(penalty));
                let la = LossArgs::new(&cfg);
                let mut a = Args::default();
                a.u32(1).i64(b as i64).i64(1).i32(0).i32(la.triangle).i32(la.reduction).f64(la.lambda);
                for c in &counts {
                    a.u64(c.pairs).u64(c.diagonal);
                }
                let mut out = launch(&emu.factors, &a);
                let (r, wp) = (out.f64s(b), out.f64s(b));
                out.done();
                let (want_r, want_wp) = launch_args::host_factors(&cfg, &counts);
                let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&r), bits(&want_r), "round {round} {strategy:?} {reduction:?}: r");
                assert_eq!(bits(&wp), bits(&want_wp), "round {round} {strategy:?} {reduction:?}: wp");
            }
        }
    }
}

#[test]
fn after_a_violation_the_loss_kernel_touches_nothing() {
    let Some(emu) = emulators() else { return };
    let (case, cfg) = random_draw(11);
    let grid = Grid::varied(&case, 11);
    let counts = scan(emu, &case, grid, !cfg.allow_asymmetric_labels).expect("valid labels");
    let out = loss_after_scan(emu, &case, grid, &cfg, &counts, true, 5);
    // The driver's fill values: the gradient's 1234.5, the partials' NaN.
    assert!(out.grad.expect("asked").iter().all(|&g| g == 1234.5), "the gradient was written");
    assert!(out.sums.0.is_nan() && out.sums.1.is_nan(), "partial sums were written");
    assert_eq!(out.bad, u64::MAX);
}

/// Non-finite logits anywhere (in the interior tile pairs of the larger maps
/// too, whose passes test a strip's sum of counted logits), beside huge
/// finite ones whose sums overflow but which are not to be reported.
#[test]
fn a_non_finite_counted_logit_is_found_at_its_lowest_index() {
    let Some(emu) = emulators() else { return };
    let mut rng = Rng::new(5);
    for round in 0..12 {
        let (b, n) = (1 + rng.below(2), [9, 40, 65, 131, 192, 200][round % 6]);
        let mut case = Case::random(&mut rng, &CaseSpec::new(b, n));
        for _ in 0..8 {
            let k = rng.below(b * n * n - 1);
            // Two of a row at once: a strip's sum that overflows.
            case.logits[k] = f32::MAX;
            case.logits[k + 1] = if rng.chance(0.5) { f32::MAX } else { -f32::MAX };
        }
        let mut keys = Vec::new();
        for _ in 0..1 + rng.below(3) {
            let k = rng.below(b * n * n);
            case.logits[k] = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY][rng.below(3)];
            keys.push(k as u64);
        }
        let cfg = random_config(&mut rng);
        // Every other round on the tile kernel (average), every other on the
        // strategy drawn (mostly the row kernel's).
        let cfg = if round % 2 == 0 { cfg.strategy(symseg_core::Strategy::Average) } else { cfg };
        let grid = Grid::varied(&case, round as u64);
        let counts = scan(emu, &case, grid, true).expect("valid labels");
        let out = loss(emu, &case, grid, &cfg, &counts, true);
        assert_eq!(out.bad, *keys.iter().min().unwrap(), "round {round} ({cfg:?}, {grid:?})");
    }
}

/// `upper` and `lower` read one side of the diagonal for the loss, yet a
/// non-finite logit on the other side is in the counted set all the same
/// (SPEC §1), and is reported by the row kernel as by the tile kernel.
#[test]
fn upper_and_lower_report_a_non_finite_logit_on_the_side_they_do_not_count() {
    use symseg_core::{Penalty, PenaltyKind, Strategy};
    let Some(emu) = emulators() else { return };
    let mut rng = Rng::new(55);
    for round in 0..8 {
        let n = [40, 131][round % 2];
        let mut case = Case::random(&mut rng, &CaseSpec::new(1, n));
        let strategy = [Strategy::Upper, Strategy::Lower][round / 2 % 2];
        let (a, b) = (rng.below(n - 1), rng.below(n - 1));
        let (lo, hi) = (a.min(b), a.max(b) + 1);
        // The side the strategy does not count: below the diagonal for upper.
        let k = if strategy == Strategy::Upper { hi * n + lo } else { lo * n + hi };
        case.logits[k] = [f32::NAN, f32::INFINITY][round % 2];
        let penalty = (round / 4 == 1).then(|| Penalty::new(PenaltyKind::L1).weight(0.5));
        let cfg = random_config(&mut rng).strategy(strategy).penalty(penalty);
        let grid = Grid::varied(&case, round as u64);
        let counts = scan(emu, &case, grid, true).expect("valid labels");
        let out = loss(emu, &case, grid, &cfg, &counts, true);
        assert_eq!(out.bad, k as u64, "round {round} ({cfg:?}, {grid:?})");
    }
}

/// SPEC §6's counts over ordered counted pairs and the asymmetry over unordered ones, in f64.
fn reference_stats(rb: &RefBatch<'_>, x: &[f32], pred: &PredictConfig) -> Vec<(Confusion, f64, u64)> {
    let n = rb.n;
    (0..rb.batch)
        .map(|s| {
            let (mut c, mut asym, mut pairs) = (Confusion::default(), 0.0, 0u64);
            for i in 0..n {
                for j in 0..n {
                    if !rb.in_set(s, i, j) {
                        continue;
                    }
                    let (kij, kji) = ((s * n + i) * n + j, (s * n + j) * n + i);
                    // `sym_pair` takes the unordered pair upper element first.
                    let z = if i <= j {
                        sym_pair(pred.mode, x[kij], x[kji]).0
                    } else {
                        sym_pair(pred.mode, x[kji], x[kij]).1
                    };
                    c.record(predicted(z, pred.threshold), rb.labels[kij] == 1);
                    if i < j {
                        asym += (score(f64::from(x[kij])) - score(f64::from(x[kji]))).abs();
                        pairs += 1;
                    }
                }
            }
            (c, asym, pairs)
        })
        .collect()
}

#[test]
fn metric_counts_match_the_reference() {
    let Some(emu) = emulators() else { return };
    for seed in 1..=32u64 {
        let mut rng = Rng::new(1000 + seed);
        let case = random_case(&mut rng);
        let mode = SymMode::ALL[rng.below(SymMode::ALL.len())];
        let threshold = [0.5, 0.05, 0.95, rng.uniform()][rng.below(4)];
        let pred = PredictConfig::default().mode(mode).threshold(threshold);
        let b = case.dims.batch;
        let grid = Grid::varied(&case, seed);
        let mut a = Args::launch(&case, grid);
        a.i64(case.min_sep as i64).i32(mode_code(mode)).f64(decision_bound(threshold));
        a.i32(i32::from(case.mask.is_some()));
        a.f32s(&case.logits).bytes(&case.labels).bytes(case.mask.as_deref().unwrap_or(&[])).lengths(&case);
        let mut out = launch(&emu.stats, &a);
        let confusion = out.u64s(5 * b);
        let asym = out.f64s(b * grid.blocks as usize);
        assert_eq!(out.u64s(1)[0], u64::MAX, "seed {seed}: non-finite reported");
        out.done();
        let got = launch_args::sample_stats(&confusion, &asym, grid.blocks as usize);
        let x64 = case.logits_f64();
        let want = reference_stats(&case.ref_batch(&x64), &case.logits, &pred);
        for (s, (g, (c, asym, pairs))) in got.iter().zip(want).enumerate() {
            assert_eq!(g.confusion, c, "seed {seed} sample {s} ({mode:?}, t {threshold}, {grid:?})");
            assert_eq!(g.asym_pairs, pairs, "seed {seed} sample {s}");
            assert!(
                (g.asym_sum - asym).abs() <= 1e-12 * asym.max(1.0),
                "seed {seed}: {} vs {asym}",
                g.asym_sum
            );
        }
    }
}

#[test]
fn symmetrise_matches_the_reference() {
    let Some(emu) = emulators() else { return };
    let mut rng = Rng::new(9);
    for (round, n) in [1, 2, 31, 32, 33, 64, 70, 100].into_iter().enumerate() {
        let b = 1 + rng.below(3);
        let case = Case::random(&mut rng, &CaseSpec::new(b, n));
        let grid = Grid::varied(&case, round as u64);
        for mode in SymMode::ALL {
            let mut a = Args::launch(&case, grid);
            a.i32(mode_code(mode)).f32s(&case.logits);
            let mut out = launch(&emu.symmetrise, &a);
            let got = out.f32s(b * n * n);
            out.done();
            let want = symseg_core::reference::symmetrise(&case.logits_f64(), b, n, mode);
            for (k, (g, w)) in got.iter().zip(&want).enumerate() {
                // (x + x^T) / 2 of two f32 values is exact in f64, so one rounding either way.
                assert_eq!(*g, *w as f32, "round {round} {mode:?} element {k} ({grid:?})");
            }
        }
    }
}

#[test]
fn no_two_threads_of_a_block_race() {
    // Each kernel under ThreadSanitizer, on cases that exercise every path
    // through shared memory: padding, a mask, both diagonal and off-diagonal
    // tile pairs, a penalty on probabilities, wide and element-wise rows, and
    // two blocks that each stride over several tile pairs of both samples
    // (where one pair's reads must end before the next pair's staging).
    let Some(emu) = emulators_for(Check::Races) else { return };
    let mut rng = Rng::new(3);
    // The factors' block reduction, over more samples than threads.
    let mut a = Args::default();
    a.u32(1).i64(300).i64(1).i32(0).i32(0).i32(1).f64(0.5);
    for k in 0..600u64 {
        a.u64(k % 7);
    }
    launch(&emu.factors, &a);
    for n in [68, 70] {
        let spec = CaseSpec { lengths: true, mask: true, min_sep: 2, ignore: 0.1, ..CaseSpec::new(2, n) };
        let case = Case::random(&mut rng, &spec);
        let grid = Grid::new(&case, 2, true);
        assert_eq!(grid.wide, n % 4 == 0);
        let cfg = LossConfig::default().strategy(symseg_core::Strategy::Average).penalty(Some(
            symseg_core::Penalty::new(symseg_core::PenaltyKind::Huber { delta: 0.5 })
                .on(symseg_core::PenaltyOn::Probs),
        ));
        let counts = scan(emu, &case, grid, true).expect("valid labels");
        let out = loss(emu, &case, grid, &cfg, &counts, true);
        assert_eq!(out.bad, u64::MAX);
        // The row scan: several bands a block, a round of strips or more a band.
        let unmasked = Case { mask: None, ..case.clone() };
        assert_eq!(scan_rows(emu, &unmasked, grid, true, 3).map(|c| c.len()), Ok(2));
        assert_eq!(scan_rows(emu, &unmasked, grid, true, n as i32).map(|c| c.len()), Ok(2));
        // The row kernel (shared memory only in its final block sum).
        let plain = LossConfig::default();
        assert!(kernels::rows_apply(LossArgs::new(&plain).strategy, 0, true));
        assert_eq!(loss(emu, &case, grid, &plain, &counts, true).bad, u64::MAX);
        // The checked row kernel (its block sums, the last block's balance).
        let checked = loss_checked(emu, true, &unmasked, grid, &plain, true);
        assert!(!checked.invalid && checked.loss.bad == u64::MAX);
        let checked = loss_checked(emu, false, &unmasked, grid, &cfg, true);
        assert!(!checked.invalid && checked.loss.bad == u64::MAX);
        let mut a = Args::launch(&case, grid);
        a.i64(case.min_sep as i64).i32(mode_code(SymMode::Average)).f64(decision_bound(0.5));
        a.i32(1).f32s(&case.logits).bytes(&case.labels).bytes(case.mask.as_deref().unwrap_or(&[]));
        a.lengths(&case);
        launch(&emu.stats, &a);
        let mut a = Args::launch(&case, grid);
        a.i32(mode_code(SymMode::Average)).f32s(&case.logits);
        launch(&emu.symmetrise, &a);
    }
}
