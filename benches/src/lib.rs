//! Criterion benchmarks of symseg live in `benches/`; this crate has no API.
