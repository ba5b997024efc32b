//! θ₀'s distributions: ranges, zero biases where promised, seeded draws.

use theta_core::Loss;
use theta_core::random::rng_from_seed;
use theta_models::{Init, Mlp, MlpSpec};

fn net() -> Mlp {
    Mlp::new(MlpSpec::relu(&[3, 40, 7, 2], Loss::Mse)).unwrap()
}

#[test]
fn uniform_draws_weights_and_biases_within_one_over_root_fan_in() {
    let mlp = net();
    let theta: Vec<f64> = mlp.init(Init::UniformFanIn, &mut rng_from_seed(5));
    for layer in mlp.layers() {
        let r = 1.0 / (layer.dense.fan_in as f64).sqrt();
        let values = &theta[layer.weights.start..layer.bias.end];
        assert!(values.iter().all(|v| v.abs() <= r));
        // Spread over the range, not stuck at a point (biases included).
        assert!(theta[layer.bias.clone()].iter().any(|&b| b != 0.0));
        let max = values.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        assert!(max > 0.5 * r, "largest |θ| {max} of range {r}");
    }
}

#[test]
fn uniform_zero_bias_has_the_uniform_weights_and_zero_biases() {
    let mlp = net();
    let zero_bias: Vec<f64> = mlp.init(Init::UniformFanInZeroBias, &mut rng_from_seed(5));
    let uniform: Vec<f64> = mlp.init(Init::UniformFanIn, &mut rng_from_seed(5));
    let layers = mlp.layers();
    for layer in layers {
        let r = 1.0 / (layer.dense.fan_in as f64).sqrt();
        assert!(zero_bias[layer.weights.clone()].iter().all(|v| v.abs() <= r));
        assert!(zero_bias[layer.weights.clone()].iter().any(|&w| w.abs() > 0.5 * r));
        assert!(zero_bias[layer.bias.clone()].iter().all(|&b| b == 0.0));
    }
    // The same stream without the bias draws: the first layer's weights are
    // the uniform ones; later layers' are not (those draws went to biases).
    let first = layers[0].weights.clone();
    assert_eq!(zero_bias[first.clone()], uniform[first]);
    let second = layers[1].weights.clone();
    assert_ne!(zero_bias[second.clone()], uniform[second]);
    // Seeded: the same seed gives the same θ₀, bit for bit.
    let again: Vec<f64> = mlp.init(Init::UniformFanInZeroBias, &mut rng_from_seed(5));
    assert_eq!(zero_bias, again);
}

#[test]
fn truncated_normal_stays_within_two_deviations_with_zero_biases() {
    let mlp = net();
    let std = 0.01;
    let theta: Vec<f64> = mlp.init(Init::TruncatedNormal { std }, &mut rng_from_seed(5));
    for layer in mlp.layers() {
        assert!(theta[layer.weights.clone()].iter().all(|v| v.abs() <= 2.0 * std));
        assert!(theta[layer.bias.clone()].iter().all(|&b| b == 0.0));
    }
}
