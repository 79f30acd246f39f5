//! Without a driver, NVRTC or a device, the backend says why instead of
//! panicking (cudarc panics on a missing library). This binary never loads
//! the CPU driver, so on a machine without CUDA it sees what a user would.
#![allow(clippy::print_stdout, clippy::expect_used)] // the test reports what it saw

use symseg_cuda::CudaBackend;

#[test]
fn without_a_device_the_backend_reports_why() {
    match symseg_cuda::unavailable_reason() {
        Some(reason) => {
            let err = CudaBackend::new().expect_err("no usable device");
            assert!(!reason.is_empty());
            assert!(err.to_string().starts_with("cuda backend:"), "{err}");
            // SAFETY: null is the legacy default stream; nothing is queued on it here.
            let raw = unsafe { CudaBackend::on_raw_stream(0, std::ptr::null_mut()) };
            assert_eq!(raw.expect_err("no usable device").to_string(), err.to_string());
            println!("no device: {reason} (and CudaBackend::new() said: {err})");
        }
        None => assert!(CudaBackend::new().is_ok()),
    }
}
