//! Algorithm throughput on the MAML paper's sinusoid workload: a 1-40-40-1
//! ReLU network, K = 10 support and 10 query points, 25 tasks per
//! meta-batch, α = 0.01, Adam 1e-3, f32, one thread. One iteration is one
//! full meta-step, sampling its 25 tasks included, as the peers measure it;
//! criterion's "elem/s" here is meta-steps per second.

use criterion::{BatchSize, Criterion, Throughput};
use theta_benches::workload::{self, META_BATCH, learners};
use theta_core::random::rng_from_seed;
use theta_core::{Loss, Model, Scratch};
use theta_maml::{Maml, MamlConfig};
use theta_meta::{MetaLearner, Trainer};
use theta_models::{Init, Mlp, MlpSpec};

/// One meta-step of each algorithm.
pub(crate) fn meta_steps(c: &mut Criterion) {
    let (mlp, dist, adam) = workload::setup();
    let mut group = c.benchmark_group("algorithms");
    group.throughput(Throughput::Elements(1));
    for (name, mut learner) in learners() {
        let state = workload::initial_state(&mlp, &adam);
        let mut trainer = Trainer::new(&mlp, &dist, META_BATCH).unwrap();
        // Every iteration steps from the same state (a fresh copy, made
        // outside the timing): the cost of a step does not depend on θ, and
        // a long run would otherwise train iMAML with gradient inner steps
        // into the divergence its crate doc describes.
        group.bench_function(name, |b| {
            b.iter_batched_ref(
                || state.clone(),
                |s| trainer.step(learner.as_mut(), &adam, s).unwrap(),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

/// Issue 5's kernel-efficiency workload: the MAML meta-gradient (one inner
/// step) of the MAML paper's Omniglot network, 784-256-128-64-64-5, over 32
/// tasks of 5 + 75 rows (5-way 1-shot shapes; Gaussian-blob data drawn once,
/// so that neither a download nor the sampling's transcendentals are timed),
/// summed in task order, one thread. MAML runs the network's fused one-step
/// pass here ([`Model::one_step_meta_gradient`]), and criterion's "elem/s"
/// counts the floating-point operations that pass does, so that `cargo
/// xtask bench` prints it as GFLOP/s beside the measured FMA peak.
///
/// The composed passes would do, per task, the support gradient, the
/// query gradient and a Hessian-vector product that reuses the support
/// gradient's forward pass and δ chain and computes no gradient (a full
/// Hessian-vector pass less one forward product and one `xᵀ δ` per layer
/// and one `δ Wᵀ` per layer above the first). Of those, four products the
/// size of `W_1` run over the K support rows (`x_s W_1`, `∂W_1`, `x_s V_1`,
/// `R∂W_1`); the fused pass instead adds the K rows to the query's two
/// (`x W_1` and the gradient of `W_1`, over the N + K stacked rows), and
/// adds the Gram matrix `x_q x_sᵀ` (N·K·d_0 multiply-adds) and two N·K·d_1
/// products through it: about 3% fewer operations in all.
pub(crate) fn maml_784(c: &mut Criterion) {
    use theta_core::Pass;
    use theta_core::TaskDistribution;
    use theta_tasks::GaussianBlobs;
    let mlp =
        Mlp::new(MlpSpec::relu(&[784, 256, 128, 64, 64, 5], Loss::SoftmaxCrossEntropy)).unwrap();
    let dist = GaussianBlobs::new(5, 1, 15, 784, 1.0).unwrap();
    let model: &dyn Model<f32> = &mlp;
    let (support, query, tasks) = (5, 75, 32);
    let first = mlp.layers()[0].dense;
    let (d0, d1) = (first.fan_in, first.fan_out);
    let composed = model.flops(Pass::Gradient, support)
        + model.flops(Pass::Gradient, query)
        + model.flops(Pass::HessianVector, support)
        - 3 * model.flops(Pass::Loss, support)
        + first.forward_flops(support);
    let fused = composed - 2 * first.forward_flops(support)
        + 2 * query * support * d0
        + 2 * 2 * query * support * d1;
    let flops = tasks * fused;
    let theta: Vec<f32> = mlp.init(Init::UniformFanIn, &mut rng_from_seed(0));
    let mut rng = rng_from_seed(1);
    let batch: Vec<_> = (0..tasks).map(|_| dist.sample(&mut rng).unwrap()).collect();
    let mut maml = Maml::new(MamlConfig { inner_lr: 0.01, inner_steps: 1 }).unwrap();
    let p = model.num_params();
    let (mut g, mut sum) = (vec![0f32; p], vec![0f32; p]);
    let (s, q) = (&batch[0].support, &batch[0].query);
    let taken = model.one_step_meta_gradient(&theta, s, q, 0.01, &mut g, &mut Scratch::new());
    assert!(taken.is_some(), "the count above is the fused pass's");
    let mut group = c.benchmark_group("maml_784-256-128-64-64-5_32x80");
    group.throughput(Throughput::Elements(flops as u64));
    group.sample_size(20);
    group.bench_function("meta_gradient", |b| {
        b.iter(|| {
            sum.fill(0.0);
            for task in &batch {
                maml.task_gradient(model, &theta, task, &mut g).unwrap();
                theta_kernels::vector::axpy(1.0, &g, &mut sum);
            }
        })
    });
    group.finish();
}
