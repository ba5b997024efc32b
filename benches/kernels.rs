//! Kernel throughput: the fused MLP passes against the same passes from plain
//! faer calls, in GFLOP/s (criterion's "elem/s" here counts floating-point
//! operations), beside the machine's measured FMA peak.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput};
use faer::Mat;
use theta_benches::peak;
use theta_benches::plain::PlainMlp;
use theta_core::random::{rng_from_seed, uniform};
use theta_core::{LaneSplit, Loss, Matrix, Model, Pass, Scratch, Split, Targets};
use theta_models::{Init, Mlp, MlpSpec};

/// One-core f32 FMA peak.
pub(crate) fn peak(c: &mut Criterion) {
    eprintln!("theta kernels SIMD level: {}", theta_kernels::simd_level());
    let mut g = c.benchmark_group("peak");
    let iterations = 100_000;
    g.throughput(Throughput::Elements(peak::flops(iterations)));
    g.bench_function("f32_fma", |b| {
        b.iter(|| peak::fma_chains(black_box(iterations), 0.999, 1e-3))
    });
    g.finish();
}

struct Workload {
    name: &'static str,
    sizes: &'static [usize],
    rows: usize,
}

const WORKLOADS: [Workload; 3] = [
    Workload { name: "1-40-40-1", sizes: &[1, 40, 40, 1], rows: 10 },
    Workload { name: "1-40-40-1", sizes: &[1, 40, 40, 1], rows: 250 },
    Workload { name: "784-256-128-64-64-5", sizes: &[784, 256, 128, 64, 64, 5], rows: 80 },
];

/// Loss + gradient and loss + gradient + HVP, fused and plain.
pub(crate) fn mlp_passes(c: &mut Criterion) {
    for w in &WORKLOADS {
        let mlp = Mlp::new(MlpSpec::relu(w.sizes, Loss::Mse)).unwrap();
        let model: &dyn Model<f32> = &mlp;
        let mut rng = rng_from_seed(1);
        let theta: Vec<f32> = mlp.init(Init::UniformFanIn, &mut rng);
        let v: Vec<f32> = (0..theta.len()).map(|_| uniform(&mut rng, -1.0, 1.0) as f32).collect();
        let (d_in, d_out) = (w.sizes[0], w.sizes[w.sizes.len() - 1]);
        let x: Vec<f32> = (0..w.rows * d_in).map(|_| uniform(&mut rng, -1.0, 1.0) as f32).collect();
        let y: Vec<f32> =
            (0..w.rows * d_out).map(|_| uniform(&mut rng, -1.0, 1.0) as f32).collect();
        let split = Split::new(
            "support",
            Matrix::from_vec(w.rows, d_in, x.clone()).unwrap(),
            Targets::Values(Matrix::from_vec(w.rows, d_out, y.clone()).unwrap()),
        )
        .unwrap();
        let plain = PlainMlp::new(w.sizes, &theta);
        let plain_v = PlainMlp::new(w.sizes, &v);
        let xm = Mat::from_fn(w.rows, d_in, |i, j| x[i * d_in + j]);
        let ym = Mat::from_fn(w.rows, d_out, |i, j| y[i * d_out + j]);
        let mut scratch = Scratch::for_model(model, Pass::HessianVector, w.rows);
        let (mut g, mut hv) = (vec![0f32; theta.len()], vec![0f32; theta.len()]);

        // The baseline computes the same numbers (a sanity check, not a test).
        let fused = model
            .loss_grad(&theta, &split, &mut g, scratch.get(model, Pass::Gradient, w.rows))
            .unwrap();
        let (plain_loss, plain_grads) = plain.loss_grad(&xm, &ym);
        assert!((fused - plain_loss).abs() <= 1e-4 * fused.abs(), "{fused} vs {plain_loss}");
        let last = mlp.layers().last().unwrap();
        let plain_gb = &plain_grads[1];
        for j in 0..d_out {
            let (a, b) = (g[last.bias.start + j], plain_gb[(0, j)]);
            assert!((a - b).abs() <= 1e-4 * (1.0 + b.abs()), "output bias gradient {a} vs {b}");
        }

        let mut group = c.benchmark_group(format!("mlp_{}_rows{}", w.name, w.rows));
        group.throughput(Throughput::Elements(model.flops(Pass::Gradient, w.rows) as u64));
        group.bench_function(BenchmarkId::new("loss_grad", "fused"), |b| {
            b.iter(|| {
                let s = scratch.get(model, Pass::Gradient, w.rows);
                model.loss_grad(black_box(&theta), &split, &mut g, s).unwrap()
            })
        });
        group.bench_function(BenchmarkId::new("loss_grad", "plain_faer"), |b| {
            b.iter(|| plain.loss_grad(black_box(&xm), &ym).0)
        });
        group.throughput(Throughput::Elements(model.flops(Pass::HessianVector, w.rows) as u64));
        group.bench_function(BenchmarkId::new("loss_grad_hvp", "fused"), |b| {
            b.iter(|| {
                let s = scratch.get(model, Pass::HessianVector, w.rows);
                model.loss_grad_hvp(black_box(&theta), &split, &v, &mut g, &mut hv, s).unwrap()
            })
        });
        group.bench_function(BenchmarkId::new("loss_grad_hvp", "plain_faer"), |b| {
            b.iter(|| plain.loss_grad_hvp(black_box(&xm), &ym, &plain_v).0)
        });
        group.finish();
    }
}

/// The three matrix products of a dense layer at the sinusoid's shape
/// (10 rows, 40 × 40 weights): `x W`, `xᵀ δ` and `δ Wᵀ`.
pub(crate) fn products(c: &mut Criterion) {
    use theta_kernels::gemm::{gemm, gemm_nt, gemm_tn};
    let (m, k, n) = (10, 40, 40);
    let mut rng = rng_from_seed(2);
    let mut draw = |len: usize| -> Vec<f32> {
        (0..len).map(|_| uniform(&mut rng, -1.0, 1.0) as f32).collect()
    };
    let (x, w, d) = (draw(m * k), draw(k * n), draw(m * n));
    let (mut out_mn, mut out_kn, mut out_mk) =
        (vec![0f32; m * n], vec![0f32; k * n], vec![0f32; m * k]);
    let mut group = c.benchmark_group("gemm_10x40x40");
    group.throughput(Throughput::Elements((2 * m * k * n) as u64));
    group
        .bench_function("x_w", |b| b.iter(|| gemm(false, &mut out_mn, black_box(&x), &w, m, k, n)));
    // The same product on faer, which `gemm` uses above the small kernel's sizes.
    group.bench_function("x_w_faer", |b| {
        b.iter(|| {
            faer::linalg::matmul::matmul(
                faer::MatMut::from_row_major_slice_mut(&mut out_mn, m, n),
                faer::Accum::Replace,
                faer::MatRef::from_row_major_slice(black_box(&x), m, k),
                faer::MatRef::from_row_major_slice(&w, k, n),
                1.0,
                faer::Par::Seq,
            )
        })
    });
    group.bench_function("xt_d", |b| {
        b.iter(|| gemm_tn(false, &mut out_kn, black_box(&x), &d, m, k, n))
    });
    group.bench_function("d_wt", |b| {
        b.iter(|| gemm_nt(false, &mut out_mk, black_box(&d), &w, m, n, k))
    });
    // What running `δ Wᵀ` on the small kernel costs first: W's transpose
    // (`δ · Wᵀ` itself then runs as `x_w` does).
    let mut wt = vec![0f32; k * n];
    group.bench_function("transpose_w", |b| {
        b.iter(|| theta_kernels::gemm::transpose(black_box(&w), k, n, &mut wt))
    });
    group.finish();

    // The same three products over 16 tasks at once, one task per lane
    // (`theta_kernels::lanes`), with each task's own W: the throughput is in
    // the same units, so the two groups' GFLOP/s compare directly.
    use theta_kernels::lanes::{self, Store, Weights};
    type P = <f32 as theta_kernels::Real>::Pack;
    let lanes = <P as theta_kernels::Pack<f32>>::LANES;
    let mut draw_lanes = |len: usize| -> Vec<P> {
        (0..len).map(|_| <P as theta_kernels::Pack<f32>>::load(&draw(lanes))).collect()
    };
    let (x, w, d) = (draw_lanes(m * k), draw_lanes(k * n), draw_lanes(m * n));
    let zero = <P as theta_kernels::Pack<f32>>::splat(0.0);
    let (mut out_mn, mut out_kn, mut out_mk) =
        (vec![zero; m * n], vec![zero; k * n], vec![zero; m * k]);
    let mut group = c.benchmark_group("lanes_10x40x40");
    group.throughput(Throughput::Elements((2 * m * k * n * lanes) as u64));
    group.bench_function("x_w", |b| {
        b.iter(|| {
            lanes::gemm::<f32>(
                Store::Replace,
                &mut out_mn,
                black_box(&x),
                Weights::Lanes(&w),
                m,
                k,
                n,
            )
        })
    });
    group.bench_function("xt_d", |b| {
        b.iter(|| lanes::gemm_tn::<f32>(false, &mut out_kn, black_box(&x), &d, m, k, n))
    });
    group.bench_function("d_wt", |b| {
        b.iter(|| {
            lanes::gemm_nt::<f32>(false, &mut out_mk, black_box(&d), Weights::Lanes(&w), m, n, k)
        })
    });
    group.finish();
}

/// The sinusoid network's loss and gradient for 16 tasks of 10 rows at
/// once, one task per lane (`Model::loss_grad_lanes`), each task with its own
/// parameters (as an adapted φ): the throughput counts 16 per-task passes,
/// so its GFLOP/s compare with `mlp_1-40-40-1_rows10/loss_grad/fused`; and
/// the R-pass (`Model::hvp_lanes`), each task with its own direction.
pub(crate) fn lane_passes(c: &mut Criterion) {
    use theta_kernels::Pack;
    use theta_kernels::lanes::Weights;
    type P = <f32 as theta_kernels::Real>::Pack;
    let (sizes, rows) = (&[1, 40, 40, 1][..], 10);
    let mlp = Mlp::new(MlpSpec::relu(sizes, Loss::Mse)).unwrap();
    let model: &dyn Model<f32> = &mlp;
    let lanes = P::LANES;
    let mut rng = rng_from_seed(1);
    let thetas: Vec<Vec<f32>> =
        (0..lanes).map(|_| mlp.init(Init::UniformFanIn, &mut rng)).collect();
    // Task t's values in lane t of each pack.
    let theta: Vec<P> = (0..thetas[0].len())
        .map(|i| P::load(&thetas.iter().map(|t| t[i]).collect::<Vec<f32>>()))
        .collect();
    let mut draw = |n: usize| -> Vec<P> {
        (0..n)
            .map(|_| {
                P::load(
                    &(0..lanes).map(|_| uniform(&mut rng, -5.0, 5.0) as f32).collect::<Vec<_>>(),
                )
            })
            .collect()
    };
    let (x, y) = (draw(rows), draw(rows));
    let split = LaneSplit { rows, x: &x, y: &y };
    let mut grad = vec![P::splat(0.0); theta.len()];
    let mut scratch = vec![P::splat(0.0); model.lane_scratch_len(rows).unwrap()];
    let mut group = c.benchmark_group(format!("lanes_1-40-40-1_rows{rows}"));
    group.throughput(Throughput::Elements((model.flops(Pass::Gradient, rows) * lanes) as u64));
    group.bench_function(BenchmarkId::new("loss_grad", lanes), |b| {
        b.iter(|| {
            let theta = Weights::Lanes(black_box(&theta));
            model.loss_grad_lanes(theta, split, &mut grad, &mut scratch).unwrap().unwrap()
        })
    });
    // θ shared by the 16 tasks (an inner loop's first step): broadcast from one copy.
    group.bench_function(BenchmarkId::new("loss_grad_shared", lanes), |b| {
        b.iter(|| {
            let theta = Weights::Shared(black_box(&thetas[0]));
            model.loss_grad_lanes(theta, split, &mut grad, &mut scratch).unwrap().unwrap()
        })
    });
    // The R-pass, each task with its own direction (MAML's reverse pass).
    let v = draw(theta.len());
    let mut hv = vec![P::splat(0.0); theta.len()];
    let hvp_flops = model.flops(Pass::HessianVector, rows) * lanes;
    group.throughput(Throughput::Elements(hvp_flops as u64));
    group.bench_function(BenchmarkId::new("hvp", lanes), |b| {
        b.iter(|| {
            let theta = Weights::Lanes(black_box(&theta));
            model.hvp_lanes(theta, split, &v, &mut hv, &mut scratch).unwrap().unwrap()
        })
    });
    group.bench_function(BenchmarkId::new("hvp_shared", lanes), |b| {
        b.iter(|| {
            let theta = Weights::Shared(black_box(&thetas[0]));
            model.hvp_lanes(theta, split, &v, &mut hv, &mut scratch).unwrap().unwrap()
        })
    });
    group.finish();
}
