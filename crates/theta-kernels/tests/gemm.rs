//! The matrix products against the scalar reference, on shapes that take
//! every path: the register-blocked kernel (whole packs, partial last packs
//! overlapping the pack before them, several column blocks, row blocks of
//! every height) and faer (narrow, wide and tall products), in f32 and f64,
//! with and without accumulation. Values after the output are sentinels
//! that must survive.

use theta_kernels::activation::{
    Activation, bias_activation, column_sums, mul_activation_derivative,
};
use theta_kernels::gemm::{
    SMALL_TN_ROWS, TALL_NT_ROWS, gemm, gemm_bias_relu, gemm_nt, gemm_nt_times_derivative, gemm_ref,
    gemm_sum, gemm_tn, gemm_tn_sum, is_small, is_small_tn, is_tall_nt, transpose,
    weight_and_bias_gradients,
};
use theta_kernels::{Dense, Real};

mod common;
use common::Lcg;

const SENTINEL: f64 = 12345.0;

/// `actual` equals `expected` within the rounding bound of a k-term sum,
/// `4 k ε Σ|a b|`, element by element; the sentinels after `len` are intact.
fn check<T: Real>(what: &str, actual: &[T], expected: &[T], bound: &[f64], len: usize) {
    for i in 0..len {
        let (a, e) = (actual[i].to_f64(), expected[i].to_f64());
        assert!(
            (a - e).abs() <= bound[i] * T::EPSILON.to_f64() + f64::MIN_POSITIVE,
            "{what} ({}): element {i}: {a} vs {e}",
            T::NAME
        );
    }
    for (i, x) in actual[len..].iter().enumerate() {
        assert_eq!(x.to_f64(), SENTINEL, "{what} ({}): wrote past the output at {i}", T::NAME);
    }
}

/// The error bound of each output of `A · B` with `A(i, p) = a[i·ars + p·acs]`.
fn bounds<T: Real>(
    (a, ars, acs): (&[T], usize, usize),
    (b, brs, bcs): (&[T], usize, usize),
    m: usize,
    k: usize,
    n: usize,
    old: &[T],
) -> Vec<f64> {
    let mut out = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            let s: f64 = (0..k)
                .map(|p| (a[i * ars + p * acs].to_f64() * b[p * brs + j * bcs].to_f64()).abs())
                .sum();
            out[i * n + j] = 4.0 * (k as f64 + 1.0) * (s + old[i * n + j].to_f64().abs());
        }
    }
    out
}

fn products<T: Real>() {
    let mut g = Lcg(3);
    let shapes: Vec<(usize, usize, usize)> = [
        // the sinusoid's layers, and their neighbours
        (10, 40, 40),
        (10, 1, 40),
        (10, 40, 1),
        (25, 40, 40),
        (32, 40, 40),
        (33, 40, 40),
        // every row-block height and pack count, partial and whole
        (1, 8, 16),
        (2, 9, 17),
        (3, 13, 31),
        (4, 16, 32),
        (5, 17, 33),
        (6, 20, 47),
        (7, 24, 48),
        (9, 31, 63),
        (11, 40, 64),
        (12, 64, 65),
        (13, 70, 100),
        (14, 128, 128),
        (3, 7, 40),
        (3, 40, 15),
        (3, 129, 40),
        (3, 40, 129),
        (80, 64, 64),
        (80, 256, 128),
        // one-term products (outer products), one-column outputs (dot
        // products and weighted row sums), partial and whole packs of each
        (10, 1, 16),
        (10, 1, 7),
        (7, 1, 1),
        (4, 5, 1),
        (4, 32, 1),
        (33, 17, 1),
        (500, 40, 1),
        (10, 40, 3),
        (3, 5, 7),
        // weighted row sums of more than one group of four packs
        (9, 1, 100),
        (6, 90, 1),
        // reductions over at most 32 rows with tall outputs (xᵀ δ in place)
        (10, 100, 40),
        (32, 128, 17),
        // long reductions and tall `δ Wᵀ` on the small kernel
        (500, 40, 40),
        (100, 17, 33),
        // empty sums and empty outputs
        (5, 0, 6),
        (0, 5, 6),
    ]
    .to_vec();
    for (m, k, n) in shapes {
        for accumulate in [false, true] {
            let tag = format!("{m}×{k}×{n}{}", if accumulate { " +=" } else { "" });
            let path = if is_small(m, k, n) { "small" } else { "faer" };
            // x · W
            let (a, b): (Vec<T>, Vec<T>) = (g.vec(m * k), g.vec(k * n));
            let old = g.vec(m * n);
            let run = |out: &mut [T]| gemm(accumulate, out, &a, &b, m, k, n);
            let spec = ((&a[..], k, 1), (&b[..], n, 1), m, k, n);
            case(&format!("gemm {tag} ({path})"), accumulate, &old, spec, run);
            // aᵀ · b for a of m × k, b of m × n: a k × n output
            let (a, b): (Vec<T>, Vec<T>) = (g.vec(m * k), g.vec(m * n));
            let old = g.vec(k * n);
            let run = |out: &mut [T]| gemm_tn(accumulate, out, &a, &b, m, k, n);
            case(
                &format!("gemm_tn {tag}"),
                accumulate,
                &old,
                ((&a, 1, k), (&b, n, 1), k, m, n),
                run,
            );
            // a₁ · b₁ + a₂ · b₂: the reference sums [a₁ a₂] · [b₁; b₂]
            let (a1, b1, a2, b2): (Vec<T>, Vec<T>, Vec<T>, Vec<T>) =
                (g.vec(m * k), g.vec(k * n), g.vec(m * k), g.vec(k * n));
            let old = g.vec(m * n);
            let a: Vec<T> = (0..m)
                .flat_map(|i| a1[i * k..(i + 1) * k].iter().chain(&a2[i * k..(i + 1) * k]))
                .copied()
                .collect();
            let b: Vec<T> = b1.iter().chain(&b2).copied().collect();
            let run = |out: &mut [T]| {
                gemm_sum(accumulate, out, (&a1, &b1), (&a2, &b2), m, k, n);
            };
            let spec = ((&a[..], 2 * k, 1), (&b[..], n, 1), m, 2 * k, n);
            case(&format!("gemm_sum {tag} ({path})"), accumulate, &old, spec, run);
            // a₁ᵀ · b₁ + a₂ᵀ · b₂: the reference sums [a₁; a₂]ᵀ · [b₁; b₂]
            let (a1, b1, a2, b2): (Vec<T>, Vec<T>, Vec<T>, Vec<T>) =
                (g.vec(m * k), g.vec(m * n), g.vec(m * k), g.vec(m * n));
            let old = g.vec(k * n);
            let a: Vec<T> = a1.iter().chain(&a2).copied().collect();
            let b: Vec<T> = b1.iter().chain(&b2).copied().collect();
            let run = |out: &mut [T]| {
                gemm_tn_sum(accumulate, out, (&a1, &b1), (&a2, &b2), m, k, n);
            };
            let spec = ((&a[..], 1, k), (&b[..], n, 1), k, 2 * m, n);
            case(&format!("gemm_tn_sum {tag}"), accumulate, &old, spec, run);
            // a · bᵀ for a of m × n, b of k × n: an m × k output
            let (a, b): (Vec<T>, Vec<T>) = (g.vec(m * n), g.vec(k * n));
            let old = g.vec(m * k);
            let run = |out: &mut [T]| gemm_nt(accumulate, out, &a, &b, m, n, k);
            case(
                &format!("gemm_nt {tag}"),
                accumulate,
                &old,
                ((&a, n, 1), (&b, 1, n), m, n, k),
                run,
            );
        }
    }
}

/// An operand: its values, row stride and column stride.
type Operand<'a, T> = (&'a [T], usize, usize);

/// Runs one product on `old` followed by sentinels and checks it against
/// [`gemm_ref`] on the same operands (`A` is m × k, `B` is k × n).
fn case<T: Real>(
    what: &str,
    accumulate: bool,
    old: &[T],
    (a, b, m, k, n): (Operand<'_, T>, Operand<'_, T>, usize, usize, usize),
    run: impl FnOnce(&mut [T]),
) {
    let mut out = old.to_vec();
    out.extend(std::iter::repeat_n(T::from_f64(SENTINEL), 40));
    run(&mut out);
    let mut expected = old.to_vec();
    gemm_ref(accumulate, &mut expected, a, b, m, k, n);
    let zero = vec![T::ZERO; m * n];
    let bound = bounds(a, b, m, k, n, if accumulate { old } else { &zero });
    check(what, &out, &expected, &bound, m * n);
}

#[test]
fn products_match_the_reference_f32() {
    products::<f32>();
}

#[test]
fn products_match_the_reference_f64() {
    products::<f64>();
}

/// The forward pass fused into the product's store is the product followed
/// by the bias-and-activation sweep, bit for bit, on every path (the small
/// kernel, the outer product, faer, the one-column dot products; on tall
/// shapes the small kernel against faer's plain product), with
/// negative sums, zeros and a NaN among the values, and no write past `out`.
fn fused_forward_is_product_then_sweep<T: Real>() {
    let mut g = Lcg(11);
    // Tall ones too: the fused forward pass takes the small kernel at any
    // rows, where the plain product takes faer.
    let shapes = [
        (10, 40, 40),
        (10, 1, 40),
        (10, 40, 1),
        (3, 13, 31),
        (5, 17, 33),
        (7, 1, 7),
        (80, 64, 64),
        (33, 40, 40),
        (500, 40, 40),
        (250, 128, 17),
    ];
    for (m, k, n) in shapes {
        for relu in [false, true] {
            let (mut a, b, mut bias): (Vec<T>, Vec<T>, Vec<T>) =
                (g.vec(m * k), g.vec(k * n), g.vec(n));
            bias[0] = T::ZERO;
            if m > 1 {
                // A NaN input row: ReLU maps NaN to 0 on both paths.
                a[k] = T::from_f64(f64::NAN);
            }
            let mut fused = g.vec(m * n);
            fused.extend(std::iter::repeat_n(T::from_f64(SENTINEL), 40));
            gemm_bias_relu(relu, &mut fused, &a, &b, &bias, m, k, n);
            let mut expected = vec![T::ZERO; m * n];
            gemm(false, &mut expected, &a, &b, m, k, n);
            let act = if relu { Activation::Relu } else { Activation::Identity };
            bias_activation(act, &mut expected, &bias);
            let what = format!("{m}×{k}×{n} relu={relu} ({})", T::NAME);
            assert_eq!(bits::<T>(&fused[..m * n]), bits::<T>(&expected), "{what}");
            assert!(
                fused[m * n..].iter().all(|x| x.to_f64() == SENTINEL),
                "{what}: wrote past out"
            );
        }
    }
}

#[test]
fn fused_forward_is_product_then_sweep_f32() {
    fused_forward_is_product_then_sweep::<f32>();
}

#[test]
fn fused_forward_is_product_then_sweep_f64() {
    fused_forward_is_product_then_sweep::<f64>();
}

/// The backward pass's fused products are the unfused sequences, bit for
/// bit: `weight_and_bias_gradients` is `gemm_tn` then `column_sums` (one pass
/// where a side has one column), and `gemm_nt_times_derivative` is `gemm_nt`
/// then the σ' sweep (an outer product with σ' in its store where W has one
/// column), for every activation, on one-column, one-term, partial-pack,
/// many-pack (more than a group of four) and tall shapes, with no write past
/// the outputs.
fn fused_backward_is_the_sequence<T: Real>() {
    let mut g = Lcg(17);
    let pad = |mut v: Vec<T>| {
        v.extend(std::iter::repeat_n(T::from_f64(SENTINEL), 40));
        v
    };
    let shapes = [
        (10, 1, 40),
        (10, 40, 1),
        (500, 1, 40),
        (500, 40, 1),
        (7, 1, 7),
        (7, 5, 1),
        (9, 1, 100),
        (6, 90, 1),
        (1, 1, 1),
        (10, 40, 40),
        (3, 13, 31),
        // Tall: `δz Wᵀ ⊙ σ'` in chunks of rows, the last one partial.
        (500, 40, 40),
        (77, 33, 17),
    ];
    for (m, k, n) in shapes {
        let what = format!("{m}×{k}×{n} ({})", T::NAME);
        // (∂W, ∂b) = (xᵀ δ, Σ δ) for x of m × k and δ of m × n.
        let (x, delta): (Vec<T>, Vec<T>) = (g.vec(m * k), g.vec(m * n));
        let (mut gw, mut gb) = (pad(g.vec(k * n)), pad(g.vec(n)));
        weight_and_bias_gradients(&mut gw, &mut gb, &x, &delta, m, k, n);
        let (mut ew, mut eb) = (vec![T::ZERO; k * n], vec![T::ZERO; n]);
        gemm_tn(false, &mut ew, &x, &delta, m, k, n);
        column_sums(&delta, &mut eb);
        assert_eq!(bits::<T>(&gw[..k * n]), bits::<T>(&ew), "∂W {what}");
        assert_eq!(bits::<T>(&gb[..n]), bits::<T>(&eb), "∂b {what}");
        assert!(gw[k * n..].iter().chain(&gb[n..]).all(|x| x.to_f64() == SENTINEL), "{what}");
        // δz_below = (δz Wᵀ) ⊙ σ'(h) for δz of m × n, W of k × n, h of m × k.
        for act in [Activation::Identity, Activation::Relu, Activation::Tanh, Activation::Sigmoid] {
            let (w, mut h): (Vec<T>, Vec<T>) = (g.vec(k * n), g.vec(m * k));
            if act == Activation::Sigmoid {
                h.iter_mut().for_each(|v| *v = v.abs());
            }
            let mut fused = pad(g.vec(m * k));
            gemm_nt_times_derivative(act, &h, &mut fused, &delta, &w, m, n, k);
            let mut expected = vec![T::ZERO; m * k];
            gemm_nt(false, &mut expected, &delta, &w, m, n, k);
            mul_activation_derivative(act, &h, &mut expected);
            assert_eq!(bits::<T>(&fused[..m * k]), bits::<T>(&expected), "δz {act:?} {what}");
            assert!(fused[m * k..].iter().all(|x| x.to_f64() == SENTINEL), "{what}");
        }
    }
}

#[test]
fn fused_backward_is_the_sequence_f32() {
    fused_backward_is_the_sequence::<f32>();
}

#[test]
fn fused_backward_is_the_sequence_f64() {
    fused_backward_is_the_sequence::<f64>();
}

/// The transpose, on tiles, edge tiles and sides narrower than a tile; and
/// `δ · (Wᵀ)` on the small kernel against faer's `δ Wᵀ`, bit for bit, on
/// every shape where a dense layer takes the transposed route (so that the
/// route never changes a result): rows 1 to 32 (faer's one- and two-row
/// products sum in another order; the route skips them), and widths around
/// the packs' and tiles' boundaries.
fn transposed_products_match_faer<T: Real>() {
    let mut g = Lcg(17);
    for (rows, cols) in [(1, 1), (3, 5), (8, 8), (4, 9), (9, 4), (40, 40), (17, 33), (128, 64)] {
        let w: Vec<T> = g.vec(rows * cols);
        let mut wt = vec![T::ZERO; rows * cols];
        transpose(&w, rows, cols, &mut wt);
        for i in 0..rows {
            for j in 0..cols {
                assert_eq!(
                    wt[j * rows + i],
                    w[i * cols + j],
                    "transpose {rows}×{cols} ({})",
                    T::NAME
                );
            }
        }
    }
    let widths = [2, 5, 8, 15, 16, 17, 24, 31, 33, 40, 64, 100, 128];
    let mut tried = 0;
    for rows in 1..=32 {
        for &o in &widths {
            for &i in &widths {
                let dense = Dense { fan_in: i, fan_out: o, activation: Activation::Relu };
                if !dense.transposes(rows) {
                    continue;
                }
                tried += 1;
                let (d, w): (Vec<T>, Vec<T>) = (g.vec(rows * o), g.vec(i * o));
                let mut wt = vec![T::ZERO; i * o];
                transpose(&w, i, o, &mut wt);
                for accumulate in [false, true] {
                    let old = g.vec(rows * i);
                    let (mut faer, mut small) = (old.clone(), old);
                    gemm_nt(accumulate, &mut faer, &d, &w, rows, o, i);
                    gemm(accumulate, &mut small, &d, &wt, rows, o, i);
                    assert_eq!(
                        bits::<T>(&small),
                        bits::<T>(&faer),
                        "{rows} rows, W {i}×{o}, accumulate {accumulate} ({})",
                        T::NAME
                    );
                }
            }
        }
    }
    if cfg!(target_feature = "fma") {
        assert!(tried > 2000, "the grid covers the transposed route ({tried} shapes)");
    } else {
        assert_eq!(tried, 0, "without FMA, δ Wᵀ runs on faer alone");
    }
}

#[test]
fn transposed_products_match_faer_f32() {
    transposed_products_match_faer::<f32>();
}

#[test]
fn transposed_products_match_faer_f64() {
    transposed_products_match_faer::<f64>();
}

/// Each value's bits, widened to f64 (exact), for bit-for-bit comparisons.
fn bits<T: Real>(v: &[T]) -> Vec<u64> {
    v.iter().map(|x| x.to_f64().to_bits()).collect()
}

/// `out (m × n) ← [out +] a · b` on faer, `a` of `m × k` (given transposed,
/// `k × m`, when `a_t`) and `b` of `k × n` (given transposed, `n × k`,
/// when `b_t`), all row-major: the product the small kernel's routes must
/// equal bit for bit.
#[allow(clippy::too_many_arguments)]
fn faer_product<T: Real>(
    accumulate: bool,
    out: &mut [T],
    a: &[T],
    a_t: bool,
    b: &[T],
    b_t: bool,
    (m, k, n): (usize, usize, usize),
) {
    let a = if a_t {
        faer::MatRef::from_row_major_slice(a, k, m).transpose()
    } else {
        faer::MatRef::from_row_major_slice(a, m, k)
    };
    let b = if b_t {
        faer::MatRef::from_row_major_slice(b, n, k).transpose()
    } else {
        faer::MatRef::from_row_major_slice(b, k, n)
    };
    faer::linalg::matmul::matmul(
        faer::MatMut::from_row_major_slice_mut(out, m, n),
        if accumulate { faer::Accum::Add } else { faer::Accum::Replace },
        a,
        b,
        T::ONE,
        faer::Par::Seq,
    );
}

/// `xᵀ δ` over long sums (up to [`SMALL_TN_ROWS`] rows, the pretrained
/// baseline's 500) on the small kernel is faer's product bit for bit where
/// multiply-adds are fused, so that moving the bound changed no result.
fn long_weight_gradients_match_faer<T: Real>() {
    let mut g = Lcg(23);
    for (m, k, n) in
        [(33, 40, 40), (500, 40, 40), (SMALL_TN_ROWS, 40, 40), (80, 128, 64), (250, 17, 33)]
    {
        assert!(is_small_tn(m, k, n), "{m} × {k} × {n} runs the small kernel");
        let (x, d): (Vec<T>, Vec<T>) = (g.vec(m * k), g.vec(m * n));
        let mut small = vec![T::ZERO; k * n];
        gemm_tn(false, &mut small, &x, &d, m, k, n);
        let mut faer = vec![T::ZERO; k * n];
        faer_product(false, &mut faer, &x, true, &d, false, (k, m, n));
        let what = format!("xᵀ δ {m} × {k} × {n} ({})", T::NAME);
        if cfg!(target_feature = "fma") {
            assert_eq!(bits::<T>(&small), bits::<T>(&faer), "{what}");
        } else {
            // Unfused, the two round differently; they still agree closely.
            for (a, b) in small.iter().zip(&faer) {
                let (a, b) = (a.to_f64(), b.to_f64());
                assert!((a - b).abs() <= 1e-4 * (1.0 + b.abs()), "{what}: {a} against {b}");
            }
        }
    }
}

/// `δ Wᵀ` on many rows, which `gemm_nt` runs through a transpose on the
/// small kernel where multiply-adds are fused, is faer's product bit for
/// bit (so that the route changed no result), replacing or accumulating.
fn tall_products_match_faer<T: Real>() {
    let mut g = Lcg(29);
    for (m, n, k) in
        [(TALL_NT_ROWS, 40, 40), (500, 40, 40), (80, 64, 64), (100, 17, 33), (300, 100, 16)]
    {
        assert_eq!(is_tall_nt(m, n, k), cfg!(target_feature = "fma"), "{m} × {n} × {k}");
        let (d, w): (Vec<T>, Vec<T>) = (g.vec(m * n), g.vec(k * n));
        for accumulate in [false, true] {
            let old = g.vec(m * k);
            let (mut ours, mut faer) = (old.clone(), old);
            gemm_nt(accumulate, &mut ours, &d, &w, m, n, k);
            faer_product(accumulate, &mut faer, &d, false, &w, true, (m, n, k));
            let what = format!("δ Wᵀ {m} × {n} × {k}, accumulate {accumulate} ({})", T::NAME);
            assert_eq!(bits::<T>(&ours), bits::<T>(&faer), "{what}");
        }
    }
    assert!(!is_tall_nt(TALL_NT_ROWS - 1, 40, 40), "fewer rows stay on faer");
    assert!(!is_tall_nt(500, 128, 64), "larger layers stay on faer");
}

#[test]
fn tall_products_match_faer_f32() {
    tall_products_match_faer::<f32>();
}

#[test]
fn tall_products_match_faer_f64() {
    tall_products_match_faer::<f64>();
}

#[test]
fn long_weight_gradients_match_faer_f32() {
    long_weight_gradients_match_faer::<f32>();
}

#[test]
fn long_weight_gradients_match_faer_f64() {
    long_weight_gradients_match_faer::<f64>();
}

#[test]
fn two_term_sums_are_one_sum_in_order_exactly() {
    // Exact integers again: a₁ b₁ + a₂ b₂ on the small kernel is the sum over
    // [a₁ a₂] · [b₁; b₂] in order, bit for bit, for both layouts.
    let (m, k, n) = (10, 40, 40);
    let ints = |len: usize, mul: usize, off: f32| -> Vec<f32> {
        (0..len).map(|i| ((i * mul) % 11) as f32 - off).collect()
    };
    let (a1, a2, b1, b2) =
        (ints(m * k, 7, 5.0), ints(m * k, 3, 4.0), ints(k * n, 5, 6.0), ints(k * n, 9, 5.0));
    let a: Vec<f32> = (0..m)
        .flat_map(|i| a1[i * k..(i + 1) * k].iter().chain(&a2[i * k..(i + 1) * k]))
        .copied()
        .collect();
    let b: Vec<f32> = b1.iter().chain(&b2).copied().collect();
    let (mut out, mut expected) = (vec![0f32; m * n], vec![0f32; m * n]);
    gemm_sum(false, &mut out, (&a1, &b1), (&a2, &b2), m, k, n);
    gemm_ref(false, &mut expected, (&a, 2 * k, 1), (&b, n, 1), m, 2 * k, n);
    assert_eq!(out, expected);
    // xᵀ-shaped: a of m × k' with k' = 40 outputs rows, b of m × n.
    let (x1, x2, d1, d2) =
        (ints(m * k, 7, 5.0), ints(m * k, 3, 4.0), ints(m * n, 5, 6.0), ints(m * n, 9, 5.0));
    let x: Vec<f32> = x1.iter().chain(&x2).copied().collect();
    let d: Vec<f32> = d1.iter().chain(&d2).copied().collect();
    let (mut out, mut expected) = (vec![0f32; k * n], vec![0f32; k * n]);
    gemm_tn_sum(false, &mut out, (&x1, &d1), (&x2, &d2), m, k, n);
    gemm_ref(false, &mut expected, (&x, 1, k), (&d, n, 1), k, 2 * m, n);
    assert_eq!(out, expected);
}

#[test]
fn the_sinusoid_layer_takes_the_small_kernel() {
    assert!(is_small(10, 40, 40));
    assert!(is_small_tn(10, 40, 40), "xᵀ δ reads x transposed in place");
    assert!(!is_small(10, 40, 1), "one-column outputs are dot products");
    assert!(is_small_tn(500, 40, 40), "the pretrained baseline's 500-row gradient");
    assert!(!is_small_tn(513, 40, 40), "longer reductions stay on faer");
    assert!(!is_small(500, 40, 40), "tall products stay on faer");
    assert!(!is_small(80, 784, 256), "large layers stay on faer");
}

#[test]
fn the_small_kernel_sums_in_order_exactly() {
    // Integers small enough that every partial sum is exact: the result must
    // equal the reference bit for bit, whatever the blocking.
    let (m, k, n) = (7, 33, 45);
    let a: Vec<f32> = (0..m * k).map(|i| ((i * 7) % 11) as f32 - 5.0).collect();
    let b: Vec<f32> = (0..k * n).map(|i| ((i * 5) % 13) as f32 - 6.0).collect();
    let (mut out, mut expected) = (vec![0f32; m * n], vec![0f32; m * n]);
    gemm(false, &mut out, &a, &b, m, k, n);
    gemm_ref(false, &mut expected, (&a, k, 1), (&b, n, 1), m, k, n);
    assert_eq!(out, expected);
}
