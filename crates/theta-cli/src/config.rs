//! `theta train`'s configuration: every setting, its default (the papers'),
//! and how a TOML file and flags combine. Unknown keys are an error.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// Everything that defines a training run. A TOML file may set any of these
/// keys; flags override the file; what neither sets has the default shown.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct TrainConfig {
    /// maml | fomaml | reptile | imaml | pretrained
    pub(crate) algorithm: String,
    /// sinusoid | curve | linear | blobs | omniglot
    pub(crate) task: String,
    /// Folder holding Omniglot's images_background.zip and images_evaluation.zip.
    pub(crate) data: String,
    /// Folder of the decoded-Omniglot cache ("" = $XDG_CACHE_HOME/theta or ~/.cache/theta).
    pub(crate) cache: String,
    /// Meta-steps in all.
    pub(crate) steps: u64,
    /// Tasks per meta-batch.
    pub(crate) meta_batch: usize,
    /// Seed of θ's initialisation and of the task stream.
    pub(crate) seed: u64,
    /// adam | sgd, the outer optimizer.
    pub(crate) outer_optimizer: String,
    /// β, the outer learning rate.
    pub(crate) outer_lr: f64,
    /// Hidden widths of the MLP (input and output widths come from the task).
    pub(crate) hidden: Vec<usize>,
    /// Batch-normalise each hidden layer before its activation (no scale, the
    /// bias as offset, statistics of the batch at hand: cbfinn/maml's).
    pub(crate) batch_norm: bool,
    /// identity | relu | tanh | sigmoid, the hidden activation.
    pub(crate) activation: String,
    /// uniform | uniform-zero-bias | truncated-normal
    pub(crate) init: String,
    /// K, support points per task (per class for classification).
    pub(crate) support: usize,
    /// Query points per task (per class for classification).
    pub(crate) query: usize,
    /// Input width of linear and blob tasks.
    pub(crate) dim: usize,
    /// N, classes of classification tasks.
    pub(crate) n_way: usize,
    /// α, the inner (and fine-tuning) step size.
    pub(crate) inner_lr: f64,
    /// m (MAML, FOMAML, fine-tuning) or k (Reptile); 0 means the algorithm's default.
    pub(crate) inner_steps: usize,
    /// sgd | adam, Reptile's inner optimizer.
    pub(crate) reptile_inner: String,
    /// iMAML's λ.
    pub(crate) lambda: f64,
    /// gauss-newton | hessian, iMAML's curvature.
    pub(crate) curvature: String,
    /// proximal-gauss-newton | gradient, iMAML's inner solver.
    pub(crate) imaml_inner: String,
    /// iMAML inner solver steps.
    pub(crate) imaml_inner_steps: usize,
    /// CG iterations per proximal Gauss-Newton step.
    pub(crate) imaml_inner_cg: usize,
    /// CG iterations on iMAML's outer system.
    pub(crate) cg_iterations: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            algorithm: "maml".into(),
            task: "sinusoid".into(),
            data: "data/omniglot".into(),
            cache: String::new(),
            steps: 20_000,
            meta_batch: 25,
            seed: 0,
            outer_optimizer: "adam".into(),
            outer_lr: 1e-3,
            hidden: vec![40, 40],
            batch_norm: false,
            activation: "relu".into(),
            init: "uniform".into(),
            support: 10,
            query: 10,
            dim: 16,
            n_way: 5,
            inner_lr: 0.01,
            inner_steps: 0,
            reptile_inner: "sgd".into(),
            lambda: 2.0,
            curvature: "gauss-newton".into(),
            imaml_inner: "proximal-gauss-newton".into(),
            imaml_inner_steps: 3,
            imaml_inner_cg: 5,
            cg_iterations: 5,
        }
    }
}

impl TrainConfig {
    /// Reads a TOML file; names the file and the problem on failure.
    pub(crate) fn from_file(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| {
            let msg = e.message().trim_end().to_string();
            format!("{}: {msg}", path.display())
        })
    }

    /// The resolved configuration as TOML, as saved beside a run.
    pub(crate) fn to_toml(&self) -> String {
        toml::to_string(self).expect("a configuration always serialises")
    }

    /// Inner steps, with 0 meaning the algorithm's default (5 for Reptile, else 1).
    pub(crate) fn inner_steps(&self) -> usize {
        match (self.inner_steps, self.algorithm.as_str()) {
            (0, "reptile") => 5,
            (0, _) => 1,
            (n, _) => n,
        }
    }
}
