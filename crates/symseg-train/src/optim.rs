//! AdamW with a warm-up + cosine learning-rate schedule and global-norm clipping.

use serde::{Deserialize, Serialize};

/// Optimiser settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AdamWConfig {
    /// Peak learning rate.
    pub lr: f64,
    /// Decoupled weight decay (weights only, not biases).
    pub weight_decay: f64,
    /// `beta1`.
    pub beta1: f64,
    /// `beta2`.
    pub beta2: f64,
    /// `epsilon`.
    pub eps: f64,
    /// Clip the gradient's global L2 norm to this (0 disables).
    pub clip_norm: f64,
    /// Fraction of steps spent warming up linearly.
    pub warmup: f64,
    /// Final learning rate as a fraction of the peak (cosine decay).
    pub final_lr_fraction: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        AdamWConfig {
            lr: 3e-3,
            weight_decay: 1e-4,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            clip_norm: 1.0,
            warmup: 0.05,
            final_lr_fraction: 0.05,
        }
    }
}

/// AdamW state.
#[derive(Debug, Clone)]
pub struct AdamW {
    cfg: AdamWConfig,
    m: Vec<f32>,
    v: Vec<f32>,
    step: u64,
    total_steps: u64,
    decay: Vec<bool>,
}

impl AdamW {
    /// State for `decay.len()` parameters over `total_steps` steps.
    pub fn new(cfg: AdamWConfig, decay: Vec<bool>, total_steps: u64) -> Self {
        let n = decay.len();
        AdamW { cfg, m: vec![0.0; n], v: vec![0.0; n], step: 0, total_steps: total_steps.max(1), decay }
    }

    /// The learning rate of step `t` (0-based): linear warm-up, then cosine decay.
    pub fn lr_at(&self, t: u64) -> f64 {
        let c = &self.cfg;
        let warm = ((self.total_steps as f64) * c.warmup).ceil().max(1.0);
        let t = t as f64;
        if t < warm {
            return c.lr * (t + 1.0) / warm;
        }
        let progress = ((t - warm) / ((self.total_steps as f64 - warm).max(1.0))).min(1.0);
        let floor = c.lr * c.final_lr_fraction;
        floor + (c.lr - floor) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
    }

    /// One update of `params` with `grad` (clipped in place); returns the gradient
    /// norm before clipping.
    pub fn step(&mut self, params: &mut [f32], grad: &mut [f32]) -> f64 {
        let norm = grad.iter().map(|&g| f64::from(g) * f64::from(g)).sum::<f64>().sqrt();
        if self.cfg.clip_norm > 0.0 && norm > self.cfg.clip_norm {
            let s = (self.cfg.clip_norm / norm) as f32;
            grad.iter_mut().for_each(|g| *g *= s);
        }
        let lr = self.lr_at(self.step);
        self.step += 1;
        let c = self.cfg;
        let t = self.step as i32;
        let bc1 = 1.0 - c.beta1.powi(t);
        let bc2 = 1.0 - c.beta2.powi(t);
        for k in 0..params.len() {
            let g = f64::from(grad[k]);
            let m = c.beta1 * f64::from(self.m[k]) + (1.0 - c.beta1) * g;
            let v = c.beta2 * f64::from(self.v[k]) + (1.0 - c.beta2) * g * g;
            self.m[k] = m as f32;
            self.v[k] = v as f32;
            let mut p = f64::from(params[k]);
            if self.decay[k] {
                p -= lr * c.weight_decay * p;
            }
            p -= lr * (m / bc1) / ((v / bc2).sqrt() + c.eps);
            params[k] = p as f32;
        }
        norm
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimises_a_quadratic_and_clips() {
        // f(p) = sum (p - 3)^2: AdamW with tiny decay converges near 3.
        let cfg = AdamWConfig { lr: 0.1, weight_decay: 0.0, clip_norm: 0.0, ..Default::default() };
        let mut opt = AdamW::new(cfg, vec![true; 2], 500);
        let mut p = vec![0.0f32, -5.0];
        for _ in 0..500 {
            let mut g: Vec<f32> = p.iter().map(|&x| 2.0 * (x - 3.0)).collect();
            opt.step(&mut p, &mut g);
        }
        assert!(p.iter().all(|&x| (x - 3.0).abs() < 0.05), "{p:?}");
        let mut opt = AdamW::new(AdamWConfig { clip_norm: 1.0, ..Default::default() }, vec![true; 2], 10);
        let mut g = vec![30.0f32, 40.0];
        let norm = opt.step(&mut [0.0; 2], &mut g);
        assert!((norm - 50.0).abs() < 1e-9);
        assert!(((g[0] * g[0] + g[1] * g[1]).sqrt() - 1.0).abs() < 1e-6);
    }

    #[test]
    fn schedule_warms_up_then_decays() {
        let opt = AdamW::new(
            AdamWConfig { lr: 1.0, warmup: 0.1, final_lr_fraction: 0.0, ..Default::default() },
            vec![],
            100,
        );
        assert!((opt.lr_at(0) - 0.1).abs() < 1e-12);
        assert!((opt.lr_at(9) - 1.0).abs() < 1e-12);
        assert!(opt.lr_at(50) < 1.0 && opt.lr_at(50) > opt.lr_at(90));
        assert!(opt.lr_at(99) < 0.01);
    }
}
