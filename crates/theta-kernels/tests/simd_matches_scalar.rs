//! Every SIMD kernel equals its scalar reference within a few ulps, at every
//! size from 1 to 67 (whole packs, tails, and both), in f32 and f64.

use theta_kernels::activation::*;
use theta_kernels::loss::{mse, mse_ref};
use theta_kernels::vector::*;
use theta_kernels::{Activation, Pack, Real};

const MAX_ULPS: f64 = 4.0;

/// A small deterministic generator, so this crate's tests need no RNG crate.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
    fn vec<T: Real>(&mut self, n: usize, scale: f64) -> Vec<T> {
        (0..n).map(|_| T::from_f64((2.0 * self.next() - 1.0) * scale)).collect()
    }
}

fn assert_ulps<T: Real>(what: &str, actual: &[T], expected: &[T]) {
    assert_eq!(actual.len(), expected.len());
    for (i, (&a, &e)) in actual.iter().zip(expected).enumerate() {
        let (a, e) = (a.to_f64(), e.to_f64());
        let scale = a.abs().max(e.abs()).max(f64::MIN_POSITIVE);
        let ulps = (a - e).abs() / (T::EPSILON.to_f64() * scale);
        assert!(
            ulps <= MAX_ULPS,
            "{what} ({}): element {i} of {}: {a} vs {e} ({ulps:.1} ulps)",
            T::NAME,
            actual.len()
        );
    }
}

fn sweeps<T: Real>() {
    let mut g = Lcg(7);
    for act in Activation::ALL {
        for cols in 1..=67 {
            let rows = 3;
            let b: Vec<T> = g.vec(cols, 1.0);
            let z: Vec<T> = g.vec(rows * cols, 4.0);
            let (mut h, mut h_ref) = (z.clone(), z.clone());
            bias_activation(act, &mut h, &b);
            bias_activation_ref(act, &mut h_ref, &b);
            assert_ulps(&format!("bias_activation {act} cols {cols}"), &h, &h_ref);

            let x: Vec<T> = g.vec(rows * cols, 2.0);
            let (mut y, mut y_ref) = (x.clone(), x.clone());
            mul_activation_derivative(act, &h_ref, &mut y);
            mul_activation_derivative_ref(act, &h_ref, &mut y_ref);
            assert_ulps(&format!("mul_activation_derivative {act} n {}", y.len()), &y, &y_ref);

            let c: Vec<T> = g.vec(cols, 1.0);
            let rz0: Vec<T> = g.vec(rows * cols, 1.0);
            let (mut rz, mut rz_ref) = (rz0.clone(), rz0.clone());
            let (mut rh, mut rh_ref) = (vec![T::ZERO; rows * cols], vec![T::ZERO; rows * cols]);
            tangent_bias_activation(act, &h_ref, &c, &mut rz, &mut rh);
            tangent_bias_activation_ref(act, &h_ref, &c, &mut rz_ref, &mut rh_ref);
            assert_ulps(&format!("tangent_bias_activation rz {act} cols {cols}"), &rz, &rz_ref);
            assert_ulps(&format!("tangent_bias_activation rh {act} cols {cols}"), &rh, &rh_ref);
        }
        for n in 1..=67 {
            let z: Vec<T> = g.vec(n, 3.0);
            let mut h = z.clone();
            bias_activation_ref(act, &mut h, &[T::ZERO]);
            let rz: Vec<T> = g.vec(n, 1.0);
            let d0: Vec<T> = g.vec(n, 1.0);
            let r0: Vec<T> = g.vec(n, 1.0);
            let (mut d, mut r) = (d0.clone(), r0.clone());
            let (mut d_ref, mut r_ref) = (d0.clone(), r0.clone());
            backward_tangent(act, &h, &rz, &mut d, &mut r);
            backward_tangent_ref(act, &h, &rz, &mut d_ref, &mut r_ref);
            assert_ulps(&format!("backward_tangent delta {act} n {n}"), &d, &d_ref);
            // Rδz = Rδh·σ' + δh·σ''·Rz is a sum of two terms that may cancel;
            // the SIMD version fuses it into one multiply-add, so the bound is
            // a few ulps of the terms' magnitudes, not of the result.
            for i in 0..n {
                let hv = h[i];
                let terms = (r0[i] * act.derivative_from_output(hv)).to_f64().abs()
                    + (d0[i] * act.second_derivative_from_output(hv) * rz[i]).to_f64().abs();
                let err = (r[i].to_f64() - r_ref[i].to_f64()).abs();
                assert!(
                    err <= MAX_ULPS * T::EPSILON.to_f64() * terms,
                    "backward_tangent r_delta {act} n {n} element {i}: {} vs {}",
                    r[i],
                    r_ref[i]
                );
            }
        }
    }
    for cols in 1..=67 {
        let m: Vec<T> = g.vec(5 * cols, 1.0).into_iter().map(|x: T| x.abs()).collect();
        let (mut s, mut s_ref) = (vec![T::ZERO; cols], vec![T::ZERO; cols]);
        column_sums(&m, &mut s);
        column_sums_ref(&m, &mut s_ref);
        // The same order of additions per column: the same bits.
        assert_eq!(s, s_ref, "column_sums cols {cols} ({})", T::NAME);
    }
}

/// tanh and sigmoid in packs agree with the standard library's scalars
/// everywhere, including near 0 (where tanh must not cancel) and in saturation.
fn transcendental_accuracy<T: Real>() {
    let mut z = Vec::new();
    for i in -4000..=4000 {
        z.push(T::from_f64(i as f64 * 0.006));
    }
    for p in -30..0 {
        z.push(T::from_f64(10f64.powi(p)));
        z.push(T::from_f64(-(10f64.powi(p))));
    }
    for x in [30.0, -30.0, 80.0, -80.0, 700.0, -700.0] {
        z.push(T::from_f64(x));
    }
    let len = z.len() - z.len() % 16;
    z.truncate(len);
    for act in [Activation::Tanh, Activation::Sigmoid] {
        let (mut h, mut h_ref) = (z.clone(), z.clone());
        bias_activation(act, &mut h, &[T::ZERO]);
        // One column means the scalar tail runs; use 16 columns for packs.
        let mut hp = z.clone();
        bias_activation(act, &mut hp, &[T::ZERO; 16]);
        bias_activation_ref(act, &mut h_ref, &[T::ZERO]);
        assert_ulps(&format!("{act} scalar"), &h, &h_ref);
        assert_ulps(&format!("{act} simd"), &hp, &h_ref);
    }
}

/// `sum_in_order` gives the bits of a copy followed by one `axpy` with
/// a = 1 per term, in term order (what a batch mean does task by task), at
/// lengths around its blocks of eight packs and with terms of mixed
/// magnitudes, where another order of the additions rounds differently.
fn sums_in_order<T: Real>() {
    let mut g = Lcg(13);
    let lanes = T::Pack::LANES;
    for n in [0, 1, lanes - 1, lanes, 3 * lanes + 5, 8 * lanes, 8 * lanes + 1, 17 * lanes + 3, 1761]
    {
        for terms in [1, 2, 3, 13] {
            let vs: Vec<Vec<T>> =
                (0..terms).map(|t| g.vec(n, 10f64.powi(t as i32 % 5 - 2))).collect();
            let mut expected = vs[0].clone();
            for v in &vs[1..] {
                axpy(T::ONE, v, &mut expected);
            }
            let mut out = vec![T::ZERO; n];
            sum_in_order(&mut out, terms, |t| &vs[t]);
            let bits = |v: &[T]| v.iter().map(|x| x.to_f64().to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&out), bits(&expected), "sum_in_order n {n} terms {terms}");
            if terms == 13 && n >= lanes {
                let mut reversed = vec![T::ZERO; n];
                sum_in_order(&mut reversed, terms, |t| &vs[terms - 1 - t]);
                assert_ne!(bits(&reversed), bits(&expected), "the order shows (n {n})");
            }
        }
    }
}

#[test]
fn sum_in_order_is_axpy_term_by_term_f32() {
    sums_in_order::<f32>();
}

#[test]
fn sum_in_order_is_axpy_term_by_term_f64() {
    sums_in_order::<f64>();
}

fn vectors<T: Real>() {
    let mut g = Lcg(11);
    for n in 1..=67 {
        let x: Vec<T> = g.vec(n, 1.0);
        let y0: Vec<T> = g.vec(n, 1.0);
        let a = T::from_f64(0.37);
        let (mut y, mut y_ref) = (y0.clone(), y0.clone());
        axpy(a, &x, &mut y);
        axpy_ref(a, &x, &mut y_ref);
        // axpy is one fused multiply-add per element: the results may differ by
        // the rounding of the product, bounded by eps·|a·x|.
        for i in 0..n {
            let bound =
                2.0 * T::EPSILON.to_f64() * ((a * x[i]).to_f64().abs() + y_ref[i].to_f64().abs());
            assert!((y[i].to_f64() - y_ref[i].to_f64()).abs() <= bound, "axpy n {n} element {i}");
        }
        // axpy_to is axpy into another vector, bit for bit.
        let mut out = vec![T::ZERO; n];
        axpy_to(a, &x, &y0, &mut out);
        assert_eq!(out, y, "axpy_to n {n}");
        let (mut s, mut s_ref) = (x.clone(), x.clone());
        scale(a, &mut s);
        scale_ref(a, &mut s_ref);
        assert_ulps(&format!("scale n {n}"), &s, &s_ref);

        // Reductions change the order of the sum; bound by n·eps·Σ|xᵢyᵢ|.
        let bound = n as f64
            * T::EPSILON.to_f64()
            * x.iter().zip(&y0).map(|(a, b)| (a.to_f64() * b.to_f64()).abs()).sum::<f64>();
        let (d, d_ref) = (dot(&x, &y0).to_f64(), dot_ref(&x, &y0).to_f64());
        assert!((d - d_ref).abs() <= bound, "dot n {n}: {d} vs {d_ref}");
        assert_ulps(&format!("norm n {n}"), &[norm(&x)], &[norm_ref(&x)]);

        let (mut g1, mut g2) = (vec![T::ZERO; n], vec![T::ZERO; n]);
        let l = mse(&x, &y0, 1, Some(&mut g1)).to_f64();
        let l_ref = mse_ref(&x, &y0, 1, Some(&mut g2)).to_f64();
        assert!((l - l_ref).abs() <= n as f64 * T::EPSILON.to_f64() * l_ref.abs(), "mse n {n}");
        assert_ulps(&format!("mse gradient n {n}"), &g1, &g2);

        // Adam: the same operations in the same order, so the same bits.
        let c = AdamStep {
            beta1: T::from_f64(0.9),
            beta2: T::from_f64(0.999),
            one_minus_beta1: T::from_f64(0.1),
            one_minus_beta2: T::from_f64(0.001),
            step: T::from_f64(1e-3 / 0.271),
            inv_correction2: T::from_f64(1.0 / 0.002997),
            eps: T::from_f64(1e-8),
        };
        let m0: Vec<T> = g.vec(n, 0.1);
        let v0: Vec<T> = g.vec::<T>(n, 0.1).iter().map(|&v| v * v).collect();
        let (mut t1, mut m1, mut v1) = (y0.clone(), m0.clone(), v0.clone());
        let (mut t2, mut m2, mut v2) = (y0.clone(), m0, v0);
        adam_update(&mut t1, &x, &mut m1, &mut v1, c);
        adam_update_ref(&mut t2, &x, &mut m2, &mut v2, c);
        let bits = |v: &[T]| v.iter().map(|x| x.to_f64().to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&t1), bits(&t2), "adam θ n {n}");
        assert_eq!((bits(&m1), bits(&v1)), (bits(&m2), bits(&v2)), "adam moments n {n}");
    }
}

#[test]
fn sweeps_f32() {
    sweeps::<f32>();
}
#[test]
fn sweeps_f64() {
    sweeps::<f64>();
}
#[test]
fn transcendental_accuracy_f32() {
    transcendental_accuracy::<f32>();
}
#[test]
fn transcendental_accuracy_f64() {
    transcendental_accuracy::<f64>();
}
#[test]
fn vectors_f32() {
    vectors::<f32>();
}
#[test]
fn vectors_f64() {
    vectors::<f64>();
}

#[test]
fn names_round_trip() {
    for act in Activation::ALL {
        assert_eq!(Activation::from_name(act.name()), Some(act));
    }
    assert_eq!(Activation::from_name("softplus"), None);
    println!("SIMD level: {}", theta_kernels::simd_level());
}

#[test]
fn all_finite_finds_every_bad_value() {
    for n in 1..=67 {
        let x = vec![1.0f32; n];
        assert!(theta_kernels::vector::all_finite(&x));
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            for i in 0..n {
                let mut y = x.clone();
                y[i] = bad;
                assert!(!theta_kernels::vector::all_finite(&y), "n {n} at {i}");
            }
        }
    }
}

/// A moment that decays below the smallest normal number is stored as 0 (no
/// subnormal values: Intel cores take a slow microcode assist on each), in
/// the packs and in the scalar tail alike; one that stays normal is kept.
fn adam_flushes_subnormal_moments<T: Real>() {
    let c = AdamStep {
        beta1: T::from_f64(0.9),
        beta2: T::from_f64(0.999),
        one_minus_beta1: T::from_f64(0.1),
        one_minus_beta2: T::from_f64(0.001),
        step: T::from_f64(1e-3),
        inv_correction2: T::ONE,
        eps: T::from_f64(1e-8),
    };
    let tiny = T::MIN_POSITIVE.to_f64();
    for n in [5, 16, 37] {
        // Gradient 0: m ← 0.9 m, v ← 0.999 v. 1.05 × the smallest normal
        // decays below it; 2 × stays above; v's 1.0005 × as well below.
        let m0: Vec<T> = (0..n)
            .map(|i| T::from_f64(if i % 2 == 0 { 1.05 * tiny } else { 2.0 * tiny }))
            .collect();
        let v0: Vec<T> =
            (0..n).map(|i| T::from_f64(if i % 3 == 0 { 1.0005 * tiny } else { 1.0 })).collect();
        let (mut theta, grad) = (vec![T::ONE; n], vec![T::ZERO; n]);
        let (mut m, mut v) = (m0.clone(), v0.clone());
        adam_update(&mut theta, &grad, &mut m, &mut v, c);
        for i in 0..n {
            let (mi, vi) = (m[i].to_f64(), v[i].to_f64());
            assert!(mi == 0.0 || mi >= tiny, "m[{i}] = {mi:e} is subnormal (n {n})");
            assert!(vi == 0.0 || vi >= tiny, "v[{i}] = {vi:e} is subnormal (n {n})");
            assert_eq!(mi == 0.0, i % 2 == 0, "m[{i}] = {mi:e} (n {n})");
            assert_eq!(vi == 0.0, i % 3 == 0, "v[{i}] = {vi:e} (n {n})");
        }
        assert!(theta.iter().all(|t| t.is_finite()));
    }
}

#[test]
fn adam_flushes_subnormal_moments_f32() {
    adam_flushes_subnormal_moments::<f32>();
}
#[test]
fn adam_flushes_subnormal_moments_f64() {
    adam_flushes_subnormal_moments::<f64>();
}

/// `sin_in_place` at every length from 0 to 25 (whole packs of eight, a
/// tail, both): each value is what one pack's sine gives it, whatever its
/// place (the bits task sampling has always drawn), and within this
/// file's ulp bound of the standard library's on the sinusoid's inputs
/// (|x| < 9).
#[test]
fn sine_in_place_is_each_values_pack_sine() {
    let mut rng = Lcg(7);
    for n in 0..=25 {
        let xs: Vec<f64> = rng.vec(n, 9.0);
        let mut got = xs.clone();
        sin_in_place(&mut got);
        for (&x, &s) in xs.iter().zip(&got) {
            let alone = wide::f64x8::splat(x).sin_cos().0.to_array()[0];
            assert_eq!(s.to_bits(), alone.to_bits(), "sin({x}) at length {n}");
        }
        assert_ulps("sin_in_place", &got, &xs.iter().map(|x| x.sin()).collect::<Vec<_>>());
    }
}
