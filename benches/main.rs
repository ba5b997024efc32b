//! theta's criterion benchmarks: one binary, one module per topic.
//!
//! `cargo bench -p theta-benches` runs them all; `-- algorithms` a topic.
//! `cargo xtask bench` runs them and prints one comparison table.

use criterion::{criterion_group, criterion_main};

mod algorithms;
mod kernels;

criterion_group!(
    benches,
    kernels::peak,
    kernels::products,
    kernels::mlp_passes,
    kernels::lane_passes,
    algorithms::meta_steps,
    algorithms::maml_784
);
criterion_main!(benches);
