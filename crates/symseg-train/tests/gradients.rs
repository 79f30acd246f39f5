//! Finite-difference checks of every layer's hand-written backward, and of the
//! whole network.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ndarray::{Array1, Array2, Array3};
use symseg::SimdLevel;
use symseg::rng::Rng;
use symseg_train::model::conv::{self, ConvShape};
use symseg_train::model::{Arch, CpuOps, Im2colOps, ModelOps};

fn random3(rng: &mut Rng, shape: (usize, usize, usize)) -> Array3<f32> {
    Array3::from_shape_fn(shape, |_| rng.normal() as f32)
}

/// `L = sum(R * conv(x))` and its analytic gradients.
fn conv_loss(s: &ConvShape, w: &Array2<f32>, b: &Array1<f32>, x: &Array3<f32>, r: &Array2<f32>) -> f64 {
    let col = conv::im2col(s, x.view());
    let y = conv::forward(w.view(), b.view(), &col);
    y.iter().zip(r.iter()).map(|(a, b)| f64::from(*a) * f64::from(*b)).sum()
}

#[test]
fn convolution_backward_matches_finite_differences() {
    let mut rng = Rng::new(0xC0_0001);
    for (k, dilation, n) in [(3, 1, 7), (3, 2, 9), (3, 3, 5), (1, 1, 6), (3, 4, 4)] {
        let s = ConvShape { cin: 3, cout: 4, k, dilation };
        let x = random3(&mut rng, (3, n, n));
        let w = Array2::from_shape_fn((4, s.patch()), |_| rng.normal() as f32);
        let b = Array1::from_shape_fn(4, |_| rng.normal() as f32);
        let r = Array2::from_shape_fn((4, n * n), |_| rng.normal() as f32);
        let col = conv::im2col(&s, x.view());
        let mut dw = Array2::<f32>::zeros(w.raw_dim());
        let mut db = Array1::<f32>::zeros(4);
        let dcol = conv::backward(w.view(), &col, r.view(), dw.view_mut(), db.view_mut(), true).unwrap();
        let mut dx = Array3::<f32>::zeros(x.raw_dim());
        conv::col2im(&s, dcol.view(), n, &mut dx);
        let h = 1e-2f32;
        let tol = |g: f32| 2e-3 * g.abs().max(1.0);
        for idx in 0..w.len() {
            let (mut wp, mut wm) = (w.clone(), w.clone());
            wp.as_slice_mut().unwrap()[idx] += h;
            wm.as_slice_mut().unwrap()[idx] -= h;
            let fd = ((conv_loss(&s, &wp, &b, &x, &r) - conv_loss(&s, &wm, &b, &x, &r))
                / (2.0 * f64::from(h))) as f32;
            let g = dw.as_slice().unwrap()[idx];
            assert!((fd - g).abs() <= tol(g), "k={k} d={dilation} dw[{idx}]: {g} vs {fd}");
        }
        for c in 0..4 {
            let (mut bp, mut bm) = (b.clone(), b.clone());
            bp[c] += h;
            bm[c] -= h;
            let fd = ((conv_loss(&s, &w, &bp, &x, &r) - conv_loss(&s, &w, &bm, &x, &r))
                / (2.0 * f64::from(h))) as f32;
            assert!((fd - db[c]).abs() <= tol(db[c]), "db[{c}]: {} vs {fd}", db[c]);
        }
        for idx in 0..x.len() {
            let (mut xp, mut xm) = (x.clone(), x.clone());
            xp.as_slice_mut().unwrap()[idx] += h;
            xm.as_slice_mut().unwrap()[idx] -= h;
            let fd = ((conv_loss(&s, &w, &b, &xp, &r) - conv_loss(&s, &w, &b, &xm, &r))
                / (2.0 * f64::from(h))) as f32;
            let g = dx.as_slice().unwrap()[idx];
            assert!((fd - g).abs() <= tol(g), "k={k} d={dilation} dx[{idx}]: {g} vs {fd}");
        }
    }
}

#[test]
fn im2col_matches_a_direct_convolution() {
    let mut rng = Rng::new(0xC0_0002);
    let s = ConvShape { cin: 2, cout: 3, k: 3, dilation: 2 };
    let n = 6;
    let x = random3(&mut rng, (2, n, n));
    let w = Array2::from_shape_fn((3, s.patch()), |_| rng.normal() as f32);
    let b = Array1::from_shape_fn(3, |_| rng.normal() as f32);
    let y = conv::forward(w.view(), b.view(), &conv::im2col(&s, x.view()));
    for o in 0..3 {
        for i in 0..n {
            for j in 0..n {
                let mut acc = f64::from(b[o]);
                for c in 0..2 {
                    for ky in 0..3 {
                        for kx in 0..3 {
                            let (si, sj) =
                                (i as isize + (ky as isize - 1) * 2, j as isize + (kx as isize - 1) * 2);
                            if (0..n as isize).contains(&si) && (0..n as isize).contains(&sj) {
                                acc += f64::from(w[[o, (c * 3 + ky) * 3 + kx]])
                                    * f64::from(x[[c, si as usize, sj as usize]]);
                            }
                        }
                    }
                }
                assert!((f64::from(y[[o, i * n + j]]) - acc).abs() < 1e-4, "({o},{i},{j})");
            }
        }
    }
}

#[test]
fn network_backward_matches_finite_differences() {
    let mut rng = Rng::new(0xC0_0003);
    let arch = Arch { channels: 3, width: 5, dilations: vec![1, 2] };
    let mut params = arch.init(3);
    // The head's prior bias (logits near -3.9) would leave f32 logits only ~2e-7
    // absolute precision, noise the finite differences divide by 2h; centre them.
    *params.last_mut().unwrap() = 0.0;
    let n = 7;
    let x = random3(&mut rng, (3, n, n));
    let r = Array2::from_shape_fn((n, n), |_| rng.normal() as f32);
    let loss = |p: &[f32]| -> f64 {
        let (l, _) = CpuOps::default().forward(&arch, p, x.view()).unwrap();
        l.iter().zip(r.iter()).map(|(a, b)| f64::from(*a) * f64::from(*b)).sum()
    };
    let (_, tape) = CpuOps::default().forward(&arch, &params, x.view()).unwrap();
    let mut g = vec![0.0f32; params.len()];
    CpuOps::default().backward(&arch, &params, &tape, r.view(), &mut g);
    let h = 1e-3f32;
    let mut worst = 0.0f32;
    let mut kinks = 0;
    for idx in 0..params.len() {
        let mut p = params.clone();
        p[idx] += h;
        let up = loss(&p);
        p[idx] -= 2.0 * h;
        let down = loss(&p);
        let fd = ((up - down) / (2.0 * f64::from(h))) as f32;
        let err = (fd - g[idx]).abs() / g[idx].abs().max(0.05);
        // A difference that straddles a ReLU kink is not a derivative; allow a handful.
        if err > 2e-2 {
            kinks += 1;
        }
        worst = worst.max(err);
    }
    assert!(kinks <= params.len() / 100, "{kinks} of {} parameters disagree (worst {worst})", params.len());
    assert!(g.iter().any(|v| v.abs() > 1e-3), "gradient is not trivially zero");
}

/// Largest `|a - b|` relative to the largest `|b|`.
fn rel_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-6);
    a.iter().zip(b).fold(0.0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

#[test]
fn direct_convolutions_match_im2col_at_every_simd_level() {
    let mut rng = Rng::new(0xC0_0004);
    // Width 20 spans two channel blocks; 17 inputs do not fill theirs; dilation 16
    // reaches past the border of the small maps.
    let arch = Arch { channels: 17, width: 20, dilations: vec![1, 2, 4, 8, 16, 1] };
    let params: Vec<f32> = arch.init(5).iter().map(|p| p + 0.05 * rng.normal() as f32).collect();
    for n in [1, 3, 6, 23, 41] {
        let x = random3(&mut rng, (17, n, n));
        let r = Array2::from_shape_fn((n, n), |_| rng.normal() as f32);
        let (want, tape) = Im2colOps.forward(&arch, &params, x.view()).unwrap();
        let mut want_g = vec![0.0f32; params.len()];
        Im2colOps.backward(&arch, &params, &tape, r.view(), &mut want_g);
        for level in SimdLevel::available() {
            let ops = CpuOps::with_simd(level);
            let (got, tape) = ops.forward(&arch, &params, x.view()).unwrap();
            let mut got_g = vec![0.0f32; params.len()];
            ops.backward(&arch, &params, &tape, r.view(), &mut got_g);
            let d = rel_diff(got.as_slice().unwrap(), want.as_slice().unwrap());
            assert!(d < 1e-5, "n={n} {level:?}: logits differ by {d}");
            let d = rel_diff(&got_g, &want_g);
            assert!(d < 1e-4, "n={n} {level:?}: gradients differ by {d}");
            if n > 20 {
                assert!(
                    got_g.iter().filter(|g| g.abs() > 0.0).count() > params.len() / 2,
                    "n={n}: mostly zero"
                );
            }
        }
    }
}

#[test]
fn inputs_that_do_not_fit_the_model_are_errors() {
    let arch = Arch { channels: 3, width: 4, dilations: vec![1] };
    let params = arch.init(0);
    let err = CpuOps::default()
        .forward(&arch, &params, Array3::<f32>::zeros((2, 5, 5)).view())
        .unwrap_err()
        .to_string();
    assert!(err.contains("expects 3 x N x N"), "{err}");
    let err = CpuOps::default()
        .forward(&arch, &params[1..], Array3::<f32>::zeros((3, 5, 5)).view())
        .unwrap_err()
        .to_string();
    assert!(err.contains("parameters"), "{err}");
    assert!(CpuOps::default().forward(&arch, &params, Array3::<f32>::zeros((3, 4, 5)).view()).is_err());
}
