//! Every kernel source compiles to PTX with NVRTC (no GPU needed). CI installs
//! NVRTC and sets `SYMSEG_REQUIRE_NVRTC=1`, so there a missing library fails
//! the test instead of skipping it.

#![allow(clippy::print_stdout)] // tests report `skipped: <reason>`

use symseg_cuda::kernels;

/// Compute capabilities the backend is checked on: A100, H100/H200.
const ARCHS: [&str; 2] = ["compute_80", "compute_90"];

fn nvrtc_missing() -> bool {
    // SAFETY: only tries to open the library.
    let present = unsafe { cudarc::nvrtc::sys::is_culib_present() };
    if !present {
        assert!(
            std::env::var("SYMSEG_REQUIRE_NVRTC").is_err(),
            "SYMSEG_REQUIRE_NVRTC is set but libnvrtc.so was not found (LD_LIBRARY_PATH?)"
        );
        println!("skipped: the NVRTC library (libnvrtc.so) is not installed");
    }
    !present
}

#[test]
fn every_kernel_compiles_to_ptx() {
    if nvrtc_missing() {
        return;
    }
    for arch in ARCHS {
        // The generic kernels and the loss kernel compiled for each strategy.
        for (k, kind) in every_build() {
            let ptx = match kind {
                None => kernels::compile(k, arch),
                Some(kind) => kernels::compile_for_kind(k, arch, kind),
            };
            let ptx = ptx.unwrap_or_else(|e| panic!("{} (kind {kind:?}) for {arch}: {e}", k.file));
            let text = ptx.to_src();
            assert!(text.contains(&format!(".entry {}", k.entry)), "{}: no entry {}", k.file, k.entry);
            // The f64 partial sums must stay f64 (no silent demotion).
            let loss = k.file.starts_with("loss");
            if loss {
                assert!(text.contains(".f64"), "{} has no f64 arithmetic", k.file);
            }
            // Rows are read (and gradients written) 16 bytes of floats or 16
            // labels per thread where the layout allows it (through the
            // read-only path or not: the row scan's loads are plain ones).
            let wide_reads = match k.file {
                "scan.cu" | "scan_rows.cu" => Some(".v4.u32"),
                "factors.cu" => None, // reads two counts a sample, no rows
                _ => Some(".v4.f32"),
            };
            if let Some(w) = wide_reads {
                let wide_load = |l: &str| l.trim_start().starts_with("ld.global") && l.contains(w);
                assert!(text.lines().any(wide_load), "{} for {arch}: no wide load ({w})", k.file);
            }
            if loss || k.file == "symmetrise.cu" {
                assert!(text.contains("st.global.v4.f32"), "{} for {arch}: no wide stores", k.file);
            }
        }
    }
}

/// The generic kernels (as the emulation runs them), and each loss kernel
/// compiled for each strategy and element-loss kind (as a GPU runs them).
fn every_build() -> impl Iterator<Item = (&'static kernels::KernelSource, Option<i32>)> {
    let specialised = kernels::LOSS_BY_STRATEGY
        .iter()
        .chain(&kernels::LOSS_CHECKED_BY_STRATEGY)
        .chain(kernels::LOSS_ROWS_BY_STRATEGY.iter().flatten())
        .chain(kernels::LOSS_ROWS_CHECKED_BY_STRATEGY.iter().flatten());
    kernels::ALL
        .iter()
        .map(|k| (k, None))
        .chain(specialised.flat_map(|k| kernels::ELEM_KINDS.iter().map(move |&kind| (k, Some(kind)))))
}

#[test]
fn a_broken_source_is_reported_not_panicked() {
    if nvrtc_missing() {
        return;
    }
    let broken = kernels::KernelSource {
        file: "broken.cu",
        entry: "nope",
        source: "extern \"C\" __global__ void nope( {",
    };
    let err = kernels::compile(&broken, "compute_90").expect_err("a syntax error must not compile");
    assert!(err.to_string().contains("broken.cu"), "{err}");
}

#[test]
fn every_kernel_fits_its_launch_bounds_without_spilling() {
    if nvrtc_missing() {
        return;
    }
    // 64K 32-bit registers per SM on A100 and H100; shared memory per SM
    // (164 and 228 KiB), of which the driver reserves 1 KiB a block.
    const REGISTERS_PER_SM: u32 = 65_536;
    const RESERVED_SHARED_PER_BLOCK: u32 = 1024;
    for (sm, shared_per_sm) in [("sm_80", 164 * 1024), ("sm_90", 228 * 1024)] {
        for (k, kind) in every_build() {
            let r = match kind {
                None => kernels::resources(k, sm),
                Some(kind) => kernels::resources_for_kind(k, sm, kind),
            };
            let r = r.unwrap_or_else(|e| panic!("{sm} (kind {kind:?}): {e}"));
            println!("{sm} {} kind {kind:?}: {r:?}", k.file);
            assert_eq!(
                (r.spill_stores, r.spill_loads, r.stack_bytes),
                (0, 0, 0),
                "{sm} {}: spills or a stack frame ({r:?})",
                k.file
            );
            let blocks = kernels::min_blocks(k).unwrap_or_else(|| panic!("{}: no launch bound", k.file));
            assert!(
                r.registers * kernels::THREADS * blocks <= REGISTERS_PER_SM,
                "{sm} {}: {} registers leave fewer than {blocks} blocks per SM",
                k.file,
                r.registers,
            );
            assert!(
                (r.shared_bytes + RESERVED_SHARED_PER_BLOCK) * blocks <= shared_per_sm,
                "{sm} {}: {} bytes of shared memory a block leave fewer than {blocks} blocks per SM",
                k.file,
                r.shared_bytes,
            );
        }
    }
}

/// A build for one element-loss kind leaves out the other kinds' code: the
/// exponential of `s^gamma` in kinds 0–2, the selects in all.
#[test]
fn a_build_for_one_element_kind_drops_the_others() {
    if nvrtc_missing() {
        return;
    }
    let k = kernels::LOSS_ROWS_BY_STRATEGY[0].as_ref().expect("plain has a row kernel");
    let text = |ptx: symseg_core::Result<cudarc::nvrtc::Ptx>| ptx.expect("compiles").to_src();
    let generic = text(kernels::compile(k, "compute_90"));
    let ex2 = |t: &str| t.matches("ex2.approx").count();
    let counts: Vec<usize> = kernels::ELEM_KINDS
        .iter()
        .map(|&kind| {
            let built = text(kernels::compile_for_kind(k, "compute_90", kind));
            assert!(built.len() < generic.len(), "kind {kind}: {} vs generic {}", built.len(), generic.len());
            ex2(&built)
        })
        .collect();
    // One exponential an element in kinds 0-2, two in kind 3 (s^gamma by
    // exp), in each of the two copies of a thread's eight-element step (all
    // counted, and the general one); the generic build holds both paths.
    assert_eq!(counts, [16, 16, 16, 32], "generic {}", ex2(&generic));
    assert!(ex2(&generic) >= counts[3]);
}
