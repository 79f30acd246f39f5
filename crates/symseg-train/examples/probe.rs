#![allow(clippy::print_stdout, clippy::unwrap_used)]
use symseg_train::data::Dataset;
use symseg_train::model::CpuOps;
use symseg_train::train::{TrainConfig, train, predict_all, evaluate, choose_decode};
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let spec = &args[1];
    let lr: f64 = args[2].parse().unwrap();
    let width: usize = args[3].parse().unwrap();
    let epochs: usize = args[4].parse().unwrap();
    let loss = match args[5].as_str() { "bce" => symseg::ElementLoss::bce(), "focal-none" => symseg::ElementLoss::focal().with_alpha(None), "focal-g1" => symseg::ElementLoss::focal().with_alpha(None).with_gamma(1.0), _ => symseg::ElementLoss::focal() };
    let data = Dataset::load(spec, false).unwrap();
    let cfg = TrainConfig {
        epochs, width, dilations: vec![1, 2, 4, 8, 1], batch_size: 6,
        loss: symseg::LossConfig::default().loss(loss),
        optim: symseg_train::optim::AdamWConfig { lr, ..Default::default() },
        ..TrainConfig::default()
    };
    let t0 = std::time::Instant::now();
    let t = train(&CpuOps, &cfg, &data, None, &mut |_| {}).unwrap();
    for h in t.history.iter().step_by(epochs / 5) { println!("epoch {} loss {:.5}", h.epoch, h.train_loss); }
    let logits = predict_all(&CpuOps, &t.arch, &t.params, &data);
    let d = choose_decode(&data, &logits, 4).unwrap();
    println!("f1 {:.3} {:?} {:.1}s", evaluate(&data, &logits, 4, &d).unwrap().f1, d, t0.elapsed().as_secs_f64());
}
