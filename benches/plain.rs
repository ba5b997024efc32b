//! The same MLP passes built from plain faer calls, without fusion: each
//! matrix product, bias addition, activation, derivative and product is its
//! own operation on freshly allocated faer matrices, as a tensor library
//! without a fusing compiler runs them. ReLU hidden layers, identity output,
//! MSE, f32. The benchmarks compare theta's fused kernels with this.

use faer::Mat;

/// An MLP's weights as faer matrices.
pub struct PlainMlp {
    w: Vec<Mat<f32>>,
    b: Vec<Mat<f32>>,
}

fn relu(z: &Mat<f32>) -> Mat<f32> {
    Mat::from_fn(z.nrows(), z.ncols(), |i, j| z[(i, j)].max(0.0))
}

fn relu_mask(h: &Mat<f32>) -> Mat<f32> {
    Mat::from_fn(h.nrows(), h.ncols(), |i, j| if h[(i, j)] > 0.0 { 1.0 } else { 0.0 })
}

fn hadamard(a: &Mat<f32>, b: &Mat<f32>) -> Mat<f32> {
    Mat::from_fn(a.nrows(), a.ncols(), |i, j| a[(i, j)] * b[(i, j)])
}

fn add_bias(z: &Mat<f32>, b: &Mat<f32>) -> Mat<f32> {
    Mat::from_fn(z.nrows(), z.ncols(), |i, j| z[(i, j)] + b[(0, j)])
}

fn sum_of_squares(m: &Mat<f32>) -> f32 {
    (0..m.ncols())
        .flat_map(|j| (0..m.nrows()).map(move |i| (i, j)))
        .map(|(i, j)| m[(i, j)] * m[(i, j)])
        .sum()
}

fn column_sums(m: &Mat<f32>) -> Mat<f32> {
    Mat::from_fn(1, m.ncols(), |_, j| (0..m.nrows()).map(|i| m[(i, j)]).sum())
}

impl PlainMlp {
    /// Copies θ (theta's flat layout) into per-layer matrices.
    pub fn new(sizes: &[usize], theta: &[f32]) -> Self {
        let (mut w, mut b, mut o) = (Vec::new(), Vec::new(), 0);
        for l in 0..sizes.len() - 1 {
            let (i, n) = (sizes[l], sizes[l + 1]);
            w.push(Mat::from_fn(i, n, |r, c| theta[o + r * n + c]));
            o += i * n;
            b.push(Mat::from_fn(1, n, |_, c| theta[o + c]));
            o += n;
        }
        PlainMlp { w, b }
    }

    fn forward(&self, x: &Mat<f32>) -> Vec<Mat<f32>> {
        let last = self.w.len() - 1;
        let mut hs = vec![x.clone()];
        for l in 0..=last {
            let z = add_bias(&(&hs[l] * &self.w[l]), &self.b[l]);
            hs.push(if l == last { z } else { relu(&z) });
        }
        hs
    }

    /// Loss and gradient (per layer ∂W, ∂b, from the last layer back).
    pub fn loss_grad(&self, x: &Mat<f32>, y: &Mat<f32>) -> (f32, Vec<Mat<f32>>) {
        let hs = self.forward(x);
        let n = x.nrows() as f32;
        let out = hs.last().unwrap();
        let diff = out - y;
        let loss = sum_of_squares(&diff) / n;
        let mut delta = Mat::from_fn(diff.nrows(), diff.ncols(), |i, j| 2.0 / n * diff[(i, j)]);
        let mut grads = Vec::new();
        for l in (0..self.w.len()).rev() {
            if l != self.w.len() - 1 {
                delta = hadamard(&delta, &relu_mask(&hs[l + 1]));
            }
            grads.push(hs[l].transpose() * &delta);
            grads.push(column_sums(&delta));
            if l > 0 {
                delta = &delta * self.w[l].transpose();
            }
        }
        (loss, grads)
    }

    /// Loss, gradient and Hessian-vector product along `v` (per layer
    /// (V, c) in the same matrices' shapes), by the same R-operator passes.
    pub fn loss_grad_hvp(&self, x: &Mat<f32>, y: &Mat<f32>, v: &PlainMlp) -> (f32, Vec<Mat<f32>>) {
        let hs = self.forward(x);
        let last = self.w.len() - 1;
        let n = x.nrows() as f32;
        // Tangent forward.
        let mut rhs: Vec<Mat<f32>> = vec![Mat::zeros(x.nrows(), x.ncols())];
        for l in 0..=last {
            let rz = add_bias(&(&(&rhs[l] * &self.w[l]) + &(&hs[l] * &v.w[l])), &v.b[l]);
            rhs.push(if l == last { rz } else { hadamard(&rz, &relu_mask(&hs[l + 1])) });
        }
        let out = hs.last().unwrap();
        let diff = out - y;
        let loss = sum_of_squares(&diff) / n;
        let mut delta = Mat::from_fn(diff.nrows(), diff.ncols(), |i, j| 2.0 / n * diff[(i, j)]);
        let mut rdelta =
            Mat::from_fn(diff.nrows(), diff.ncols(), |i, j| 2.0 / n * rhs[last + 1][(i, j)]);
        let mut out_grads = Vec::new();
        for l in (0..=last).rev() {
            if l != last {
                let mask = relu_mask(&hs[l + 1]);
                delta = hadamard(&delta, &mask);
                rdelta = hadamard(&rdelta, &mask);
            }
            out_grads.push(hs[l].transpose() * &delta);
            out_grads.push(column_sums(&delta));
            out_grads.push(&(rhs[l].transpose() * &delta) + &(hs[l].transpose() * &rdelta));
            out_grads.push(column_sums(&rdelta));
            if l > 0 {
                let next = &delta * self.w[l].transpose();
                rdelta = &(&rdelta * self.w[l].transpose()) + &(&delta * v.w[l].transpose());
                delta = next;
            }
        }
        (loss, out_grads)
    }
}
