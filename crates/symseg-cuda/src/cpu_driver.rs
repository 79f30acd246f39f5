//! A CUDA driver that runs on the CPU, for checking the backend on a machine
//! without a GPU (a laptop, CI).
//!
//! [`install`] builds `emulator/cpu_driver.cpp` as `libcuda.so` (with one
//! emulator library per kernel beside it, in a folder under the temporary
//! directory keyed by a hash of what went into it) and loads it before cudarc
//! looks for the driver. cudarc then finds it by name (the dynamic loader
//! matches an already-loaded library's soname), and [`crate::CudaBackend`]
//! runs its real host code (context, stream, scratch words, copies and every
//! launch's argument list) with the kernels emulated on the CPU. It needs a
//! C++20 compiler (`$CXX`, `c++` or `g++`) and NVRTC, as the backend does.
//!
//! The driver checks what a GPU would reject or corrupt silently: every copy
//! and memset must lie inside one live allocation, a module's PTX must declare
//! the entry point asked of it, and a launch must be 1-D with 256 threads.
//! Copies to and from page-locked host memory (`cuMemHostAlloc`) run in
//! stream order, as DMA does, so reading such memory before waiting reads
//! stale words here too. It
//! reports sm_90 with one SM holding two blocks, so every grid strides. Its
//! timings are the CPU's, not a GPU's: it is for correctness, never for speed.
//!
//! Where a real driver library is present it is used as it is.
//! `SYMSEG_CPU_DRIVER=0` turns the CPU driver off.
//!
//! ```no_run
//! use symseg_cuda::cpu_driver::{self, Driver};
//!
//! match cpu_driver::install() {
//!     Ok(Driver::System) => println!("a real CUDA driver is present"),
//!     Ok(Driver::Cpu) => println!("running on the CPU driver"),
//!     Err(e) => println!("no driver: {e}"),
//! }
//! let backend = symseg_cuda::CudaBackend::new()?;
//! # Ok::<(), symseg_core::Error>(())
//! ```

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use symseg_core::{Error, Result};

use crate::{find_cxx, kernels};

const SHIM: &str = include_str!("../emulator/cuda_on_cpu.h");
const DRIVER: &str = include_str!("../emulator/cpu_driver.cpp");
const ENTRY: &str = include_str!("../emulator/kernel_entry.cpp");

/// The compiler flags of every library of the CPU driver (part of the build's hash).
const CXX_FLAGS: [&str; 8] = ["-std=c++20", "-O2", "-g", "-shared", "-fPIC", "-pthread", "-x", "c++"];

/// Which driver the backend runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    /// The system's libcuda (a GPU machine, or one whose driver sees no GPU).
    System,
    /// The CPU driver, built and loaded by [`install`].
    Cpu,
}

/// Makes a driver loadable, once per process: the system's where present,
/// else the CPU driver, built on the first call (a minute or two; later
/// processes reuse the build). Call it before the first [`crate::CudaBackend`].
///
/// # Errors
/// [`Error::Backend`] saying why neither can be had: no C++ compiler, a
/// source that does not compile, a library that does not load, or
/// `SYMSEG_CPU_DRIVER=0`.
pub fn install() -> Result<Driver> {
    static DRIVER_STATE: OnceLock<std::result::Result<Driver, String>> = OnceLock::new();
    DRIVER_STATE
        .get_or_init(|| {
            // SAFETY: only opens the library by its known names; nothing is called.
            if unsafe { cudarc::driver::sys::is_culib_present() } {
                return Ok(Driver::System);
            }
            if std::env::var("SYMSEG_CPU_DRIVER").is_ok_and(|v| v == "0") {
                return Err("no CUDA driver library, and SYMSEG_CPU_DRIVER=0".into());
            }
            let lib = build()?;
            // SAFETY: the library's initialisers only set up empty tables.
            let loaded = unsafe { libloading::Library::new(&lib) }
                .map_err(|e| format!("loading {}: {e}", lib.display()))?;
            // Kept loaded for the process: cudarc holds pointers into it.
            std::mem::forget(loaded);
            Ok(Driver::Cpu)
        })
        .clone()
        .map_err(|message| Error::Backend { backend: "cuda", message })
}

/// Builds the CPU driver and the kernels' libraries into a folder named by a
/// hash of their sources, the compiler and its flags, reusing an earlier build of the
/// same; returns the driver library's path.
fn build() -> std::result::Result<PathBuf, String> {
    let cxx = find_cxx::compiler().ok_or("no C++ compiler (CXX, c++ or g++) to build the CPU driver")?;
    let sources: Vec<(String, String)> = kernels::ALL
        .iter()
        .map(|k| {
            let text = format!(
                "#define EMU_FIBERS\n{SHIM}\n{}\n#define EMU_ENTRY {}\n{ENTRY}",
                kernels::full_source(k),
                k.entry
            );
            (k.entry.to_string(), text)
        })
        .collect();
    let mut h = DefaultHasher::new();
    (&cxx, CXX_FLAGS, DRIVER, &sources).hash(&mut h);
    let dir = std::env::temp_dir().join(format!("symseg-cpu-driver-{:016x}", h.finish()));
    let lib = dir.join("libcuda.so");
    if lib.exists() {
        return Ok(lib);
    }
    // Built in a private folder and renamed into place whole, so concurrent
    // test binaries never load half of one.
    let tmp = dir.with_extension(format!("tmp{}", std::process::id()));
    std::fs::create_dir_all(&tmp).map_err(|e| format!("creating {}: {e}", tmp.display()))?;
    compile(&cxx, &tmp, "libcuda", DRIVER, &["-Wl,-soname,libcuda.so"])?;
    for (entry, text) in &sources {
        compile(&cxx, &tmp, entry, text, &[])?;
    }
    match std::fs::rename(&tmp, &dir) {
        Ok(()) => {}
        // Another process got there first with the same build.
        Err(_) if lib.exists() => {
            std::fs::remove_dir_all(&tmp).ok();
        }
        Err(e) => return Err(format!("moving the CPU driver into {}: {e}", dir.display())),
    }
    Ok(lib)
}

/// Compiles `text` into `dir/<name>.so`.
fn compile(cxx: &str, dir: &Path, name: &str, text: &str, extra: &[&str]) -> std::result::Result<(), String> {
    let src = dir.join(format!("{name}.cpp"));
    std::fs::write(&src, text).map_err(|e| format!("writing {}: {e}", src.display()))?;
    let out = Command::new(cxx)
        .args(CXX_FLAGS)
        .arg(&src)
        .args(extra)
        .arg("-o")
        .arg(dir.join(format!("{name}.so")))
        .arg("-ldl")
        .output()
        .map_err(|e| format!("running {cxx}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{name} does not compile:\n{}", String::from_utf8_lossy(&out.stderr)))
    }
}
