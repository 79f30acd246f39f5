//! Loss + gradient and loss-only throughput of the CPU backend for every
//! strategy, and the metric counts for every prediction mode, at the shapes of
//! `cargo xtask bench`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ndarray::Array3;
use symseg::metrics::PredictConfig;
use symseg::testing::{Case, CaseSpec, Rng};
use symseg::{CpuBackend, LossConfig, LossInput, Penalty, PenaltyKind, Strategy, SymMode, TensorBackend};

fn loss(c: &mut Criterion) {
    let backend = CpuBackend::new();
    for (b, n) in [(8usize, 512usize), (1, 2048), (32, 256)] {
        let case = Case::random(&mut Rng::new(7), &CaseSpec::new(b, n));
        let x = Array3::from_shape_vec((b, n, n), case.logits).unwrap();
        let y = Array3::from_shape_vec((b, n, n), case.labels).unwrap();
        let mut g = Array3::<f32>::zeros((b, n, n));
        let input = LossInput::new(x.view(), y.view());
        let mut group = c.benchmark_group(format!("cpu/{b}x{n}x{n}"));
        group.throughput(Throughput::Bytes((b * n * n * 9) as u64));
        group.sample_size(20);
        for strategy in Strategy::ALL {
            for (pname, penalty) in [("none", None), ("l2", Some(Penalty::new(PenaltyKind::L2).weight(0.1)))]
            {
                let cfg = LossConfig::default().strategy(strategy).penalty(penalty);
                let id = format!("{strategy}+{pname}");
                group.bench_function(BenchmarkId::new("loss_grad", &id), |bench| {
                    bench.iter(|| backend.loss_grad(&input, &cfg, g.view_mut()).unwrap())
                });
                group.bench_function(BenchmarkId::new("loss", &id), |bench| {
                    bench.iter(|| backend.loss(&input, &cfg).unwrap())
                });
            }
        }
        for mode in SymMode::ALL {
            let pred = PredictConfig::default().mode(mode);
            group.bench_function(BenchmarkId::new("stats", mode.as_str()), |bench| {
                bench.iter(|| backend.sample_stats(&input, &pred).unwrap())
            });
        }
        group.finish();
    }
}

criterion_group!(benches, loss);
criterion_main!(benches);
