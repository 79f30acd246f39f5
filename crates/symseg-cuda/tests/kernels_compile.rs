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
        for k in kernels::ALL {
            let ptx = kernels::compile(&k, arch).unwrap_or_else(|e| panic!("{} for {arch}: {e}", k.file));
            let text = ptx.to_src();
            assert!(text.contains(&format!(".entry {}", k.entry)), "{}: no entry {}", k.file, k.entry);
            // The f64 partial sums must stay f64 (no silent demotion).
            if k.file == "loss.cu" {
                assert!(text.contains(".f64"), "loss.cu has no f64 arithmetic");
            }
        }
    }
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
