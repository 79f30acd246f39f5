//! Whether the CUDA driver and NVRTC can be used here. cudarc loads both
//! libraries on first use and panics when one is missing, so every entry
//! point asks here first and turns a missing library into an error.

use symseg_core::{Error, Result};

fn missing(what: &str) -> Error {
    Error::Backend { backend: "cuda", message: what.to_string() }
}

/// `Ok` when the NVRTC shared library can be loaded (kernels can be compiled).
///
/// # Errors
/// [`Error::Backend`] naming the missing library.
pub fn nvrtc() -> Result<()> {
    // SAFETY: only tries to open the library by its known names; nothing is called.
    if unsafe { cudarc::nvrtc::sys::is_culib_present() } {
        Ok(())
    } else {
        Err(missing(
            "the NVRTC library (libnvrtc.so) was not found; install the CUDA toolkit or the \
             nvidia-cuda-nvrtc wheel and put its lib directory on LD_LIBRARY_PATH",
        ))
    }
}

/// `Ok` when the CUDA driver library can be loaded.
///
/// # Errors
/// [`Error::Backend`] naming the missing library.
pub fn driver() -> Result<()> {
    // SAFETY: as above.
    if unsafe { cudarc::driver::sys::is_culib_present() } {
        Ok(())
    } else {
        Err(missing("the CUDA driver library (libcuda.so) was not found: no NVIDIA driver on this machine"))
    }
}

/// Why the CUDA backend cannot run here, or `None` when it can (driver,
/// NVRTC and at least one device). Tests and benches print `skipped: <reason>`.
pub fn unavailable_reason() -> Option<String> {
    if let Err(e) = driver().and_then(|()| nvrtc()) {
        return Some(e.to_string());
    }
    match cudarc::driver::result::init().and_then(|()| cudarc::driver::result::device::get_count()) {
        Ok(0) => Some("no CUDA device found".to_string()),
        Ok(_) => None,
        Err(e) => Some(format!("CUDA driver failed to initialise: {e}")),
    }
}
