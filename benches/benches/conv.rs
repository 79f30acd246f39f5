//! The trainer's convolution kernels (16 -> 16 channels, 3 x 3, dilation 4) at
//! N = 80 and 150, one thread: forward, and the weight gradient, each at every
//! SIMD level, beside the im2col + GEMM reference. Throughput is in FLOP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ndarray::{Array1, Array2, Array3};
use symseg::SimdLevel;
use symseg::rng::Rng;
use symseg_train::model::ConvShape;
use symseg_train::model::conv;
use symseg_train::model::direct::{Map, Packed, PackedGrad};

fn convolutions(c: &mut Criterion) {
    let s = ConvShape { cin: 16, cout: 16, k: 3, dilation: 4 };
    let mut rng = Rng::new(11);
    let w: Vec<f32> = (0..s.cout * s.patch()).map(|_| rng.normal() as f32).collect();
    let b: Vec<f32> = (0..s.cout).map(|_| rng.normal() as f32).collect();
    let packed = Packed::new(&s, &w, &b);
    for n in [80usize, 150] {
        let x = Array3::from_shape_fn((16, n, n), |_| rng.normal() as f32);
        let map = Map::from_chw(x.view());
        let mut group = c.benchmark_group(format!("conv3x3/16x{n}x{n}"));
        group.throughput(Throughput::Elements((2 * n * n * s.patch() * s.cout) as u64));
        group.sample_size(20);
        for level in SimdLevel::available() {
            group.bench_function(BenchmarkId::new("forward", level.as_str()), |bench| {
                bench.iter(|| packed.apply(&map, false, level))
            });
            group.bench_function(BenchmarkId::new("weight_grad", level.as_str()), |bench| {
                bench.iter(|| PackedGrad::compute(&s, &map, &map, level))
            });
        }
        let wm = Array2::from_shape_vec((s.cout, s.patch()), w.clone()).unwrap();
        let bv = Array1::from(b.clone());
        group.bench_function(BenchmarkId::new("forward", "im2col+gemm"), |bench| {
            bench.iter(|| conv::forward(wm.view(), bv.view(), &conv::im2col(&s, x.view())))
        });
        group.finish();
    }
}

criterion_group!(benches, convolutions);
criterion_main!(benches);
