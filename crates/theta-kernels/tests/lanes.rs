//! The lane products against the per-task ones: each lane holds its task's
//! bits from the small kernel (`gemm`, `gemm_tn`, `gemm_bias_relu`, and
//! `gemm` on a transposed W for `δ Wᵀ`) on every shape that kernel runs, with
//! shared and per-lane weights, with and without accumulation; on every
//! shape, near the scalar reference. Packs after the output must survive.

use theta_kernels::gemm::{
    gemm, gemm_bias_relu, gemm_ref, gemm_sum, gemm_tn, gemm_tn_sum, is_small, is_small_tn,
    transpose,
};
use theta_kernels::lanes::{self, Store, Weights};
use theta_kernels::{Pack, Real};

mod common;
use common::Lcg;

/// One matrix of `len` values per lane.
fn tasks<T: Real>(g: &mut Lcg, len: usize) -> Vec<Vec<T>> {
    (0..T::Pack::LANES).map(|_| g.vec(len)).collect()
}

/// Lane-major packs of the tasks' matrices (task t in lane t).
fn to_lanes<T: Real>(tasks: &[Vec<T>]) -> Vec<T::Pack> {
    let mut lane = vec![T::ZERO; T::Pack::LANES];
    (0..tasks[0].len())
        .map(|i| {
            for (l, t) in lane.iter_mut().zip(tasks) {
                *l = t[i];
            }
            T::Pack::load(&lane)
        })
        .collect()
}

/// Task `t`'s values of lane-major packs.
fn lane<T: Real>(x: &[T::Pack], t: usize) -> Vec<T> {
    let mut buf = vec![T::ZERO; T::Pack::LANES];
    x.iter()
        .map(|p| {
            p.store(&mut buf);
            buf[t]
        })
        .collect()
}

const SENTINEL: f64 = 12345.0;

/// An output of `len` packs from `old` (random, for accumulation), then two
/// sentinel packs.
fn output<T: Real>(old: &[T::Pack]) -> Vec<T::Pack> {
    let mut out = old.to_vec();
    out.extend([T::Pack::splat(T::from_f64(SENTINEL)); 2]);
    out
}

fn bits<T: Real>(x: &[T]) -> Vec<u64> {
    x.iter().map(|v| v.to_f64().to_bits()).collect()
}

fn sentinels_intact<T: Real>(what: &str, out: &[T::Pack], len: usize) {
    for t in 0..T::Pack::LANES {
        for (i, x) in lane::<T>(&out[len..], t).iter().enumerate() {
            assert_eq!(x.to_f64(), SENTINEL, "{what}: wrote past the output, pack {i} lane {t}");
        }
    }
}

/// Shapes the per-task small kernel runs (`x W`: k ≥ 2, 16 ≤ n, m ≤ 32),
/// with rows that make every block height and columns every block width.
const SMALL: [(usize, usize, usize); 8] = [
    (10, 40, 40),
    (1, 2, 16),
    (3, 7, 17),
    (7, 40, 1 + 16),
    (11, 5, 33),
    (13, 64, 48),
    (32, 3, 21),
    (5, 128, 19),
];

fn products_match_the_small_kernel<T: Real>() {
    let mut g = Lcg(7);
    for &(m, k, n) in &SMALL {
        assert!(is_small(m, k, n), "{m} × {k} × {n} is not a small-kernel shape");
        let xs = tasks::<T>(&mut g, m * k);
        let ws = tasks::<T>(&mut g, k * n);
        let olds = tasks::<T>(&mut g, m * n);
        let bias = tasks::<T>(&mut g, n);
        let (x, w, old, b) = (to_lanes(&xs), to_lanes(&ws), to_lanes(&olds), to_lanes(&bias));
        let shared = &ws[0];
        for accumulate in [false, true] {
            let store = if accumulate { Store::Accumulate } else { Store::Replace };
            for (label, weights) in
                [("per-lane", Weights::Lanes(&w)), ("shared", Weights::Shared(shared))]
            {
                let mut out = output::<T>(&old);
                lanes::gemm::<T>(store, &mut out, &x, weights, m, k, n);
                let what = format!("x W {label} {m}×{k}×{n} accumulate {accumulate}");
                sentinels_intact::<T>(&what, &out, m * n);
                for t in 0..T::Pack::LANES {
                    let wt = if label == "shared" { shared } else { &ws[t] };
                    let mut expected = olds[t].clone();
                    gemm(accumulate, &mut expected, &xs[t], wt, m, k, n);
                    assert_eq!(
                        bits(&lane::<T>(&out[..m * n], t)),
                        bits(&expected),
                        "{what}: lane {t}"
                    );
                }
            }
        }
        // σ(x W + b) with both ReLU and the identity, the bias per lane and shared.
        for relu in [false, true] {
            for (label, weights, bw) in [
                ("per-lane", Weights::Lanes(&w), Weights::Lanes(&b)),
                ("shared", Weights::Shared(shared), Weights::Shared(&bias[0])),
            ] {
                let mut out = output::<T>(&old);
                lanes::gemm::<T>(Store::Bias { bias: bw, relu }, &mut out, &x, weights, m, k, n);
                let what = format!("σ(x W + b) {label} relu {relu} {m}×{k}×{n}");
                sentinels_intact::<T>(&what, &out, m * n);
                for t in 0..T::Pack::LANES {
                    let (wt, bt) =
                        if label == "shared" { (shared, &bias[0]) } else { (&ws[t], &bias[t]) };
                    let mut expected = vec![T::ZERO; m * n];
                    gemm_bias_relu(relu, &mut expected, &xs[t], wt, bt, m, k, n);
                    assert_eq!(
                        bits(&lane::<T>(&out[..m * n], t)),
                        bits(&expected),
                        "{what}: lane {t}"
                    );
                }
            }
        }
        // Two factor pairs, one sum: `Rx W + x V`.
        let rxs = tasks::<T>(&mut g, m * k);
        let vs = tasks::<T>(&mut g, k * n);
        let (rx, v) = (to_lanes(&rxs), to_lanes(&vs));
        let mut out = output::<T>(&old);
        let terms = [(&rx[..], Weights::Shared(shared)), (&x[..], Weights::Lanes(&v))];
        lanes::gemm_sum(Store::Accumulate, &mut out, terms, m, k, n);
        for t in 0..T::Pack::LANES {
            let mut expected = olds[t].clone();
            gemm_sum(true, &mut expected, (&rxs[t], shared), (&xs[t], &vs[t]), m, k, n);
            let what = format!("Rx W + x V {m}×{k}×{n}: lane {t}");
            assert_eq!(bits(&lane::<T>(&out[..m * n], t)), bits(&expected), "{what}");
        }
    }
}

fn gradients_match_the_small_kernel<T: Real>() {
    let mut g = Lcg(11);
    // `xᵀ δ`: the rows summed over (m) and the output's rows (k) and columns (n).
    for &(m, k, n) in &[(10, 40, 40), (10, 40, 17), (3, 2, 16), (32, 9, 33), (1, 5, 20), (7, 3, 16)]
    {
        assert!(k > 1 && n > 1 && is_small_tn(m, k, n), "{m} × {k} × {n} is not a small xᵀ δ");
        let (xs, ds, rxs, rds) = (
            tasks::<T>(&mut g, m * k),
            tasks::<T>(&mut g, m * n),
            tasks::<T>(&mut g, m * k),
            tasks::<T>(&mut g, m * n),
        );
        let olds = tasks::<T>(&mut g, k * n);
        let (x, d, rx, rd, old) =
            (to_lanes(&xs), to_lanes(&ds), to_lanes(&rxs), to_lanes(&rds), to_lanes(&olds));
        for accumulate in [false, true] {
            let mut out = output::<T>(&old);
            lanes::gemm_tn::<T>(accumulate, &mut out, &x, &d, m, k, n);
            let what = format!("xᵀ δ {m}×{k}×{n} accumulate {accumulate}");
            sentinels_intact::<T>(&what, &out, k * n);
            let mut sum = output::<T>(&old);
            lanes::gemm_tn_sum::<T, 2>(accumulate, &mut sum, [(&x, &rd), (&rx, &d)], m, k, n);
            for t in 0..T::Pack::LANES {
                let mut expected = olds[t].clone();
                gemm_tn(accumulate, &mut expected, &xs[t], &ds[t], m, k, n);
                assert_eq!(bits(&lane::<T>(&out[..k * n], t)), bits(&expected), "{what}: lane {t}");
                let mut expected = olds[t].clone();
                gemm_tn_sum(
                    accumulate,
                    &mut expected,
                    (&xs[t], &rds[t]),
                    (&rxs[t], &ds[t]),
                    m,
                    k,
                    n,
                );
                let what = format!("xᵀ Rδ + Rxᵀ δ {m}×{k}×{n}: lane {t}");
                assert_eq!(bits(&lane::<T>(&sum[..k * n], t)), bits(&expected), "{what}");
            }
        }
    }
    // `δ Wᵀ` (δ of m × n, W of k × n): the small kernel's `δ · (Wᵀ)` on W
    // transposed, which is faer's product bit for bit where FMA is fused
    // (from 3 rows; see `Dense::transposes`).
    for &(m, n, k) in &[(10, 40, 40), (10, 40, 1 + 16), (3, 16, 16), (12, 7, 33), (1, 2, 16)] {
        assert!(is_small(m, n, k), "{m} × {n} × {k} is not a small δ Wᵀ");
        let (ds, ws, vs, rds) = (
            tasks::<T>(&mut g, m * n),
            tasks::<T>(&mut g, k * n),
            tasks::<T>(&mut g, k * n),
            tasks::<T>(&mut g, m * n),
        );
        let olds = tasks::<T>(&mut g, m * k);
        let (d, w, v, rd, old) =
            (to_lanes(&ds), to_lanes(&ws), to_lanes(&vs), to_lanes(&rds), to_lanes(&olds));
        for accumulate in [false, true] {
            for (label, weights) in
                [("per-lane", Weights::Lanes(&w)), ("shared", Weights::Shared(&ws[0]))]
            {
                let mut out = output::<T>(&old);
                lanes::gemm_nt(accumulate, &mut out, &d, weights, m, n, k);
                let what = format!("δ Wᵀ {label} {m}×{n}×{k} accumulate {accumulate}");
                sentinels_intact::<T>(&what, &out, m * k);
                for t in 0..T::Pack::LANES {
                    let wt = if label == "shared" { &ws[0] } else { &ws[t] };
                    let mut transposed = vec![T::ZERO; k * n];
                    transpose(wt, k, n, &mut transposed);
                    let mut expected = olds[t].clone();
                    gemm(accumulate, &mut expected, &ds[t], &transposed, m, n, k);
                    assert_eq!(
                        bits(&lane::<T>(&out[..m * k], t)),
                        bits(&expected),
                        "{what}: lane {t}"
                    );
                }
            }
            // `Rδ Wᵀ + δ Vᵀ` as one sum: the first pair's terms, then the second's.
            let mut out = output::<T>(&old);
            let terms = [(&rd[..], Weights::Shared(&ws[0])), (&d[..], Weights::Lanes(&v))];
            lanes::gemm_nt_sum(accumulate, &mut out, terms, m, n, k);
            for t in 0..T::Pack::LANES {
                let (mut wt, mut vt) = (vec![T::ZERO; k * n], vec![T::ZERO; k * n]);
                transpose(&ws[0], k, n, &mut wt);
                transpose(&vs[t], k, n, &mut vt);
                let mut expected = olds[t].clone();
                gemm_sum(accumulate, &mut expected, (&rds[t], &wt), (&ds[t], &vt), m, n, k);
                let what = format!("Rδ Wᵀ + δ Vᵀ {m}×{n}×{k} accumulate {accumulate}: lane {t}");
                assert_eq!(bits(&lane::<T>(&out[..m * k], t)), bits(&expected), "{what}");
            }
        }
    }
}

/// Shapes the per-task products route elsewhere (one term, one column,
/// more rows or columns than the small kernel takes): the lane products
/// still sum in order, within the rounding bound of the scalar reference.
fn any_shape_is_near_the_reference<T: Real>() {
    let mut g = Lcg(3);
    for &(m, k, n) in
        &[(10, 1, 40), (10, 40, 1), (1, 1, 1), (40, 150, 3), (250, 40, 40), (2, 3, 200)]
    {
        let (xs, ws) = (tasks::<T>(&mut g, m * k), tasks::<T>(&mut g, k * n));
        let (x, w) = (to_lanes(&xs), to_lanes(&ws));
        let mut out = output::<T>(&vec![T::Pack::splat(T::ZERO); m * n]);
        lanes::gemm::<T>(Store::Replace, &mut out, &x, Weights::Lanes(&w), m, k, n);
        sentinels_intact::<T>("x W", &out, m * n);
        for t in 0..T::Pack::LANES {
            let mut expected = vec![T::ZERO; m * n];
            gemm_ref(false, &mut expected, (&xs[t], k, 1), (&ws[t], n, 1), m, k, n);
            for (i, (a, e)) in lane::<T>(&out[..m * n], t).iter().zip(&expected).enumerate() {
                let scale: f64 = (0..k)
                    .map(|p| (xs[t][(i / n) * k + p] * ws[t][p * n + i % n]).to_f64().abs())
                    .sum();
                let bound = 2.0 * k as f64 * T::EPSILON.to_f64() * scale + f64::MIN_POSITIVE;
                let (a, e) = (a.to_f64(), e.to_f64());
                assert!((a - e).abs() <= bound, "x W {m}×{k}×{n} lane {t} element {i}: {a} vs {e}");
            }
        }
    }
}

#[test]
fn lane_products_are_the_small_kernels_bits_f32() {
    products_match_the_small_kernel::<f32>();
}

#[test]
fn lane_products_are_the_small_kernels_bits_f64() {
    products_match_the_small_kernel::<f64>();
}

#[test]
fn lane_gradients_and_transposed_products_are_the_small_kernels_bits_f32() {
    gradients_match_the_small_kernel::<f32>();
}

#[test]
fn lane_gradients_and_transposed_products_are_the_small_kernels_bits_f64() {
    gradients_match_the_small_kernel::<f64>();
}

#[test]
fn lane_products_of_any_shape_are_near_the_reference() {
    any_shape_is_near_the_reference::<f32>();
    any_shape_is_near_the_reference::<f64>();
}

#[test]
#[should_panic(expected = "right factor holds")]
fn a_short_factor_is_refused() {
    let x = vec![<f32 as Real>::Pack::splat(1.0); 10 * 40];
    let mut out = vec![<f32 as Real>::Pack::splat(0.0); 10 * 40];
    lanes::gemm::<f32>(Store::Replace, &mut out, &x, Weights::Shared(&[0.0; 39]), 10, 40, 40);
}

/// `Pack::tree_sums`' definition, written out: halves, quarters, … of the
/// first `lanes` lanes, the others 0.
fn tree_sum<T: Real>(x: &[T], lanes: usize) -> T {
    let mut a: Vec<T> = (0..x.len()).map(|l| if l < lanes { x[l] } else { T::ZERO }).collect();
    let mut width = a.len() / 2;
    while width > 0 {
        for l in 0..width {
            a[l] = a[l] + a[l + width];
        }
        width /= 2;
    }
    a[0]
}

fn tree_sums_follow_their_definition<T: Real>() {
    let mut g = Lcg(11);
    let lanes = T::Pack::LANES;
    // Whole chunks of sixteen packs and a remainder; values of mixed
    // magnitude, so that another order of additions shows in the bits.
    for packs in [0, 1, 15, 16, 37] {
        let values: Vec<T> = (0..packs * lanes)
            .map(|i| {
                let v: T = g.vec(1)[0];
                v * T::from_f64(10f64.powi((i % 7) as i32 - 3))
            })
            .collect();
        let x: Vec<T::Pack> = values.chunks_exact(lanes).map(T::Pack::load).collect();
        for n in 0..=lanes {
            let mut out = vec![T::from_f64(7.0); packs + 1];
            T::Pack::tree_sums(&x, n, &mut out);
            for (i, chunk) in values.chunks_exact(lanes).enumerate() {
                let want = tree_sum(chunk, n);
                assert_eq!(
                    out[i].to_f64().to_bits(),
                    want.to_f64().to_bits(),
                    "pack {i} of {packs}, {n} lanes"
                );
            }
            assert_eq!(out[packs], T::from_f64(7.0), "past the packs");
        }
    }
}

#[test]
fn tree_sums_follow_their_definition_f32() {
    tree_sums_follow_their_definition::<f32>();
}

#[test]
fn tree_sums_follow_their_definition_f64() {
    tree_sums_follow_their_definition::<f64>();
}

#[test]
fn gather_lays_tasks_side_by_side_and_zeros_the_rest() {
    let mut g = Lcg(5);
    let tasks: Vec<Vec<f32>> = (0..9).map(|_| g.vec(7)).collect();
    let mut out = vec![<f32 as Real>::Pack::splat(3.0); 7];
    lanes::gather::<f32>(&mut out, tasks.len(), |t| &tasks[t]);
    for (t, task) in tasks.iter().enumerate() {
        assert_eq!(&lane::<f32>(&out, t), task, "task {t}");
    }
    for t in tasks.len()..16 {
        assert_eq!(lane::<f32>(&out, t), vec![0.0; 7], "empty lane {t}");
    }
}

/// The R-pass's lane sweeps against the scalar references, lane by lane,
/// for every activation: `Rh = σ' ⊙ Rz`, and `Rδz`, `δz` through σ.
fn r_pass_sweeps_match_the_reference<T: Real>(tolerance: f64) {
    use theta_kernels::Activation;
    use theta_kernels::activation::{backward_tangent_ref, tangent_bias_activation_ref};
    let mut g = Lcg(17);
    let len = 37;
    for act in [Activation::Identity, Activation::Relu, Activation::Tanh, Activation::Sigmoid] {
        // h = σ(z) of random z: outputs σ can take.
        let mut hs = tasks::<T>(&mut g, len);
        for h in &mut hs {
            for v in h.iter_mut() {
                *v = act.apply(*v);
            }
        }
        let (rzs, deltas, r_deltas) =
            (tasks::<T>(&mut g, len), tasks::<T>(&mut g, len), tasks::<T>(&mut g, len));
        let (h, rz) = (to_lanes(&hs), to_lanes(&rzs));
        let mut rh = to_lanes(&rzs);
        lanes::tangent_activation::<T>(act, &h, &rz, &mut rh);
        let (mut delta, mut r_delta) = (to_lanes(&deltas), to_lanes(&r_deltas));
        lanes::backward_tangent::<T>(act, &h, &rz, &mut delta, &mut r_delta);
        // Out of place, δh kept: the same bits, and δh untouched.
        let dh = to_lanes(&deltas);
        let (mut delta_from, mut r_delta_from) = (to_lanes(&rzs), to_lanes(&r_deltas));
        lanes::backward_tangent_from::<T>(act, &h, &rz, &dh, &mut delta_from, &mut r_delta_from);
        for (what, got, want) in [("δz", &delta_from, &delta), ("Rδz", &r_delta_from, &r_delta)] {
            for t in 0..T::Pack::LANES {
                let (got, want) = (lane::<T>(got, t), lane::<T>(want, t));
                let same = got
                    .iter()
                    .zip(&want)
                    .all(|(a, b)| a.to_f64().to_bits() == b.to_f64().to_bits());
                assert!(same, "{act:?} {what} from δh, lane {t}: {got:?} vs {want:?}");
            }
        }
        for (t, want) in deltas.iter().enumerate() {
            assert!(lane::<T>(&dh, t) == *want, "{act:?}: δh of lane {t} was written");
        }
        for t in 0..T::Pack::LANES {
            let (mut rz_t, mut rh_t) = (rzs[t].clone(), vec![T::ZERO; len]);
            tangent_bias_activation_ref(act, &hs[t], &[T::ZERO], &mut rz_t, &mut rh_t);
            let (mut d_t, mut rd_t) = (deltas[t].clone(), r_deltas[t].clone());
            backward_tangent_ref(act, &hs[t], &rzs[t], &mut d_t, &mut rd_t);
            for (what, got, want) in [
                ("Rh", lane::<T>(&rh, t), rh_t),
                ("δz", lane(&delta, t), d_t),
                ("Rδz", lane(&r_delta, t), rd_t),
            ] {
                for (a, b) in got.iter().zip(&want) {
                    let error = (a.to_f64() - b.to_f64()).abs();
                    assert!(
                        error <= tolerance * (1.0 + b.to_f64().abs()),
                        "{act:?} {what} lane {t}: {a} vs {b}"
                    );
                }
            }
        }
    }
}

#[test]
fn the_r_pass_sweeps_match_the_reference() {
    r_pass_sweeps_match_the_reference::<f32>(1e-6);
    r_pass_sweeps_match_the_reference::<f64>(1e-15);
}

/// The gradient step's stores (`gemm_tn_step`, `column_sums_step`) and the
/// step on a stored gradient (`step_from`): each lane is `gemm_tn` and
/// `column_sums` followed by `(−α) g + base` in one multiply-add, bit for
/// bit, with the base shared and per lane, on the blocked shapes and the
/// outer product's (one row).
fn steps_are_the_product_then_the_step<T: Real>() {
    let mut g = Lcg(17);
    let step = T::from_f64(-0.01);
    for &(m, k, n) in &[(10, 40, 40), (10, 1, 40), (10, 40, 1), (1, 5, 20), (7, 3, 17)] {
        let (x, d) = (to_lanes(&tasks::<T>(&mut g, m * k)), to_lanes(&tasks::<T>(&mut g, m * n)));
        let bases = tasks::<T>(&mut g, k * n);
        let base_lanes = to_lanes(&bases);
        let zero = T::Pack::splat(T::ZERO);
        let mut gradient = vec![zero; k * n];
        lanes::gemm_tn::<T>(false, &mut gradient, &x, &d, m, k, n);
        let mut sums = vec![zero; n];
        lanes::column_sums::<T>(&d, &mut sums);
        for (label, base) in
            [("shared", Weights::Shared(&bases[0])), ("per-lane", Weights::Lanes(&base_lanes))]
        {
            let at = |i: usize| match base {
                Weights::Shared(b) => T::Pack::splat(b[i]),
                Weights::Lanes(b) => b[i],
            };
            let what = format!("step {label} {m}×{k}×{n}");
            let mut out = output::<T>(&vec![zero; k * n]);
            lanes::gemm_tn_step::<T, 1>(step, base, &mut out, [(&x, &d)], m, k, n);
            sentinels_intact::<T>(&what, &out, k * n);
            let expected: Vec<T::Pack> = gradient
                .iter()
                .enumerate()
                .map(|(i, &g)| T::Pack::splat(step).mul_add(g, at(i)))
                .collect();
            let mut bias = vec![zero; n];
            lanes::column_sums_step::<T>(&d, step, base, &mut bias);
            let expected_bias: Vec<T::Pack> = sums
                .iter()
                .enumerate()
                .map(|(j, &s)| T::Pack::splat(step).mul_add(s, at(j)))
                .collect();
            // The step on a stored gradient (the passes' defaults).
            let mut stepped = gradient.clone();
            lanes::step_from::<T>(step, base, &mut stepped);
            for t in 0..T::Pack::LANES {
                let lane_bits = |v: &[T::Pack]| bits(&lane::<T>(v, t));
                assert_eq!(lane_bits(&out[..k * n]), lane_bits(&expected), "{what}: W, lane {t}");
                assert_eq!(lane_bits(&bias), lane_bits(&expected_bias), "{what}: b, lane {t}");
                assert_eq!(
                    lane_bits(&stepped),
                    lane_bits(&expected),
                    "{what}: step_from, lane {t}"
                );
            }
        }
    }
}

#[test]
fn gradient_steps_are_the_product_then_the_step() {
    steps_are_the_product_then_the_step::<f32>();
    steps_are_the_product_then_the_step::<f64>();
}
