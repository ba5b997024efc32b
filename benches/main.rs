//! theta's criterion benchmarks: one binary, one module per topic.
//!
//! `cargo bench -p theta-benches` runs them all; `-- kernels` a topic.

use criterion::{criterion_group, criterion_main};

mod kernels;

criterion_group!(benches, kernels::peak, kernels::mlp_passes);
criterion_main!(benches);
