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
        for k in every_build() {
            let ptx = kernels::compile(k, arch).unwrap_or_else(|e| panic!("{} for {arch}: {e}", k.file));
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

/// The generic kernels, and each loss kernel compiled for each strategy.
fn every_build() -> impl Iterator<Item = &'static kernels::KernelSource> {
    kernels::ALL
        .iter()
        .chain(&kernels::LOSS_BY_STRATEGY)
        .chain(&kernels::LOSS_CHECKED_BY_STRATEGY)
        .chain(kernels::LOSS_ROWS_BY_STRATEGY.iter().flatten())
        .chain(kernels::LOSS_ROWS_CHECKED_BY_STRATEGY.iter().flatten())
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
    // 64K 32-bit registers per SM on A100 and H100.
    const REGISTERS_PER_SM: u32 = 65_536;
    for sm in ["sm_80", "sm_90"] {
        for k in every_build() {
            let r = kernels::resources(k, sm).unwrap_or_else(|e| panic!("{sm}: {e}"));
            println!("{sm} {}: {r:?}", k.file);
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
        }
    }
}
