//! Loss + gradient throughput of the CUDA backend for every strategy at the
//! shapes of `cargo xtask bench` (and 8 x 2048^2, the GPU target shape), on
//! device buffers. Without a driver or GPU it prints `skipped: <reason>`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use symseg::testing::{Case, CaseSpec, Rng};
use symseg::{
    CudaBackend, DeviceTensor, DeviceTensorMut, LossConfig, LossInput, Penalty, PenaltyKind, Strategy,
    TensorBackend,
};

fn cuda(c: &mut Criterion) {
    if let Some(reason) = symseg::cuda::unavailable_reason() {
        println!("skipped: {reason}");
        return;
    }
    let gpu = CudaBackend::new().expect("a usable device");
    let s = gpu.stream();
    for (b, n) in [(8usize, 2048usize), (8, 512), (1, 2048), (32, 256)] {
        let case = Case::random(&mut Rng::new(7), &CaseSpec::new(b, n));
        let shape = [b, n, n];
        let x = s.clone_htod(&case.logits).unwrap();
        let y = s.clone_htod(&case.labels).unwrap();
        let mut g = s.alloc_zeros::<f32>(case.logits.len()).unwrap();
        let input = LossInput::<CudaBackend>::new(
            DeviceTensor::new(&x, shape).unwrap(),
            DeviceTensor::new(&y, shape).unwrap(),
        );
        let mut group = c.benchmark_group(format!("cuda/{b}x{n}x{n}"));
        group.throughput(Throughput::Bytes((b * n * n * 9) as u64));
        group.sample_size(20);
        for strategy in Strategy::ALL {
            for (pname, penalty) in [("none", None), ("l2", Some(Penalty::new(PenaltyKind::L2).weight(0.1)))]
            {
                let cfg = LossConfig::default().strategy(strategy).penalty(penalty);
                group.bench_function(BenchmarkId::new("loss_grad", format!("{strategy}+{pname}")), |bench| {
                    bench.iter(|| {
                        let out = DeviceTensorMut::new(&mut g, shape).unwrap();
                        gpu.loss_grad(&input, &cfg, out).unwrap()
                    })
                });
            }
        }
        group.finish();
    }
}

criterion_group!(benches, cuda);
criterion_main!(benches);
