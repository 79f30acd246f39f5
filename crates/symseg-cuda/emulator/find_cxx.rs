//! The C++ compiler that builds the emulators, shared by the emulated kernel
//! tests (`src/emulated.rs`) and the CPU driver (`src/cpu_driver.rs`).

use std::process::Command;

/// A working C++20 compiler: `$CXX`, else `c++`, else `g++`.
pub fn compiler() -> Option<String> {
    let candidates = std::env::var("CXX").into_iter().chain(["c++".to_string(), "g++".to_string()]);
    candidates
        .into_iter()
        .find(|c| Command::new(c).arg("--version").output().is_ok_and(|o| o.status.success()))
}
