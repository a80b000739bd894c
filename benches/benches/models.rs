//! The zoo on the CPU: eval forward and one SGD training step per model at batch 64, the
//! numbers `benches/python/reference_models.py` measures for PyTorch eager.
//!
//! `KD_BENCH_MODELS=resnet8,wrn_40_2` restricts the models; `KD_BENCH_THREADS` sets libtorch's
//! intra-op threads (default 2, the reference script's default).

mod common;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use kd_core::models::{self, ModelConfig};
use std::time::Duration;
use tch::nn::{self, OptimizerConfig};
use tch::{Device, Kind, Tensor};

const BATCH: i64 = 64;

fn model_names() -> Vec<String> {
    match std::env::var("KD_BENCH_MODELS") {
        Ok(list) => list
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
        Err(_) => models::names().into_iter().map(String::from).collect(),
    }
}

fn bench_models(c: &mut Criterion) {
    let threads = common::init_torch();
    let cfg = ModelConfig::default();
    let x = Tensor::randn([BATCH, 3, 32, 32], (Kind::Float, Device::Cpu));
    let y = Tensor::randint(100, [BATCH], (Kind::Int64, Device::Cpu));

    let mut group = c.benchmark_group(format!("model_forward_{threads}threads"));
    group
        .throughput(Throughput::Elements(BATCH as u64))
        .sample_size(10)
        .measurement_time(Duration::from_secs(3));
    for name in model_names() {
        let vs = nn::VarStore::new(Device::Cpu);
        let model = models::build(&name, &vs.root(), &cfg).expect("a zoo model");
        group.bench_function(BenchmarkId::from_parameter(&name), |b| {
            b.iter(|| tch::no_grad(|| model.forward_t(&x, false)))
        });
    }
    group.finish();

    let mut group = c.benchmark_group(format!("model_train_step_{threads}threads"));
    group
        .throughput(Throughput::Elements(BATCH as u64))
        .sample_size(10)
        .measurement_time(Duration::from_secs(3));
    for name in model_names() {
        let vs = nn::VarStore::new(Device::Cpu);
        let model = models::build(&name, &vs.root(), &cfg).expect("a zoo model");
        let mut opt = nn::Sgd {
            momentum: 0.9,
            dampening: 0.0,
            wd: 5e-4,
            nesterov: false,
        }
        .build(&vs, 0.05)
        .expect("an optimizer");
        group.bench_function(BenchmarkId::from_parameter(&name), |b| {
            b.iter(|| {
                let loss = model.forward_t(&x, true).cross_entropy_for_logits(&y);
                opt.backward_step(&loss);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_models);
criterion_main!(benches);
