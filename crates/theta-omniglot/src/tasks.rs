//! N-way K-shot tasks on Omniglot, with the protocol of cbfinn/maml.
//!
//! * **Split.** All characters of both archives (1,623 in the official
//!   release), in the canonical order of [`Omniglot`], are shuffled with a
//!   fixed seed ([`Protocol::seed`]); the first [`Protocol::train_characters`]
//!   (1,200) are for meta-training, the rest (423) for testing. cbfinn/maml
//!   also holds 100 of the 1,200 out for validation; theta does not
//!   validate, so it trains on all 1,200 (as the paper's text describes).
//! * **Classes.** A class is a character turned by 0°, 90°, 180° or 270°
//!   (Santoro et al.'s augmentation, used by every MAML paper): each class of
//!   a task takes a random character of the split, distinct within the task,
//!   and a random rotation, applied to all its drawings. Test tasks are
//!   rotated too, as in cbfinn/maml ([`OmniglotTasks::without_rotations`]
//!   turns it off, as some later papers do).
//! * **Points.** Each class contributes K support and Q query drawings,
//!   distinct, of its 20; so K + Q ≤ 20. The papers differ on Q: cbfinn/maml
//!   uses Q = K, Reptile and most later work Q = 15 in training or testing;
//!   theta leaves Q to the caller (`theta train` defaults to 15).
//! * Rows are class by class, support then query, labels 0..N in class order;
//!   pixels are ink in [0, 1].

use std::sync::Arc;

use theta_core::random::{Rng, below, rng_from_seed, shuffle};
use theta_core::{Loss, Real, Split, Task, TaskDistribution};

use crate::dataset::Omniglot;
use crate::error::{OmniglotError, Result};
use crate::image::{PIXELS, SIDE, rotated_index};

/// Most classes per task and drawings per character that sampling supports
/// (it keeps its choices on the stack, so that sampling allocates nothing).
pub const MAX_WAY: usize = 64;
/// Most drawings per character that sampling supports.
pub const MAX_DRAWINGS: usize = 64;

/// How the characters are divided between meta-training and testing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Protocol {
    /// Seed of the shuffle of all characters (cbfinn/maml: Python's
    /// `random.seed(1)`; theta's generator differs, so the split does too).
    pub seed: u64,
    /// Characters for meta-training; the rest are for testing.
    pub train_characters: usize,
}

impl Default for Protocol {
    fn default() -> Self {
        Protocol { seed: 1, train_characters: 1200 }
    }
}

/// Which side of the split tasks come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The meta-training characters.
    Train,
    /// The test characters.
    Test,
}

/// The characters of one side of the split, as indices into
/// [`Omniglot::characters`].
pub fn split_characters(data: &Omniglot, protocol: Protocol, side: Side) -> Result<Vec<usize>> {
    let n = data.characters().len();
    if protocol.train_characters == 0 || protocol.train_characters >= n {
        return Err(OmniglotError::Protocol(format!(
            "train_characters = {} must be between 1 and {} (the data holds {n} characters)",
            protocol.train_characters,
            n.saturating_sub(1)
        )));
    }
    let mut order: Vec<usize> = (0..n).collect();
    shuffle(&mut rng_from_seed(protocol.seed), &mut order);
    let (train, test) = order.split_at(protocol.train_characters);
    Ok(match side {
        Side::Train => train.to_vec(),
        Side::Test => test.to_vec(),
    })
}

/// N-way K-shot classification tasks from one side of the split.
#[derive(Clone, Debug)]
pub struct OmniglotTasks {
    data: Arc<Omniglot>,
    characters: Vec<usize>,
    n_way: usize,
    k_shot: usize,
    query_per_class: usize,
    rotate: bool,
}

impl OmniglotTasks {
    /// `n_way` classes, `k_shot` support and `query_per_class` query drawings
    /// per class, from the `side` of the `protocol`'s split.
    pub fn new(
        data: Arc<Omniglot>,
        protocol: Protocol,
        side: Side,
        n_way: usize,
        k_shot: usize,
        query_per_class: usize,
    ) -> Result<Self> {
        let characters = split_characters(&data, protocol, side)?;
        let side_name = if side == Side::Train { "meta-training" } else { "test" };
        if !(2..=MAX_WAY).contains(&n_way) {
            return Err(OmniglotError::Protocol(format!(
                "n_way = {n_way}: tasks need between 2 and {MAX_WAY} classes"
            )));
        }
        if n_way > characters.len() {
            return Err(OmniglotError::Protocol(format!(
                "n_way = {n_way} classes, but the {side_name} split holds only {} characters",
                characters.len()
            )));
        }
        if k_shot == 0 || query_per_class == 0 {
            return Err(OmniglotError::Protocol(format!(
                "k_shot = {k_shot}, query = {query_per_class}: each must be at least 1"
            )));
        }
        let fewest = characters.iter().map(|&c| data.characters()[c].drawings).min().unwrap_or(0);
        if k_shot + query_per_class > fewest.min(MAX_DRAWINGS) {
            return Err(OmniglotError::Protocol(format!(
                "k_shot + query = {k_shot} + {query_per_class} drawings per class, but the \
                 {side_name} characters have {fewest} drawings (at most {MAX_DRAWINGS} are used)"
            )));
        }
        Ok(OmniglotTasks { data, characters, n_way, k_shot, query_per_class, rotate: true })
    }

    /// The same tasks without the rotations.
    pub fn without_rotations(mut self) -> Self {
        self.rotate = false;
        self
    }

    /// How many characters this side of the split holds.
    pub fn num_characters(&self) -> usize {
        self.characters.len()
    }
}

/// Picks `k` distinct indices below `n` into `out[..k]` (Floyd's algorithm,
/// k ≤ out.len()): allocation-free, uniform over k-subsets, in draw order.
fn distinct(rng: &mut Rng, n: usize, k: usize, out: &mut [usize]) {
    for (filled, j) in (n - k..n).enumerate() {
        let t = below(rng, j + 1);
        out[filled] = if out[..filled].contains(&t) { j } else { t };
    }
}

impl<T: Real> TaskDistribution<T> for OmniglotTasks {
    fn name(&self) -> &'static str {
        "omniglot"
    }
    fn input_dim(&self) -> usize {
        PIXELS
    }
    fn output_dim(&self) -> usize {
        self.n_way
    }
    fn loss(&self) -> Loss {
        Loss::SoftmaxCrossEntropy
    }
    fn support_size(&self) -> usize {
        self.n_way * self.k_shot
    }
    fn query_size(&self) -> usize {
        self.n_way * self.query_per_class
    }
    fn empty_task(&self) -> Task<T> {
        Task {
            support: Split::zeros(self.n_way * self.k_shot, PIXELS, None),
            query: Split::zeros(self.n_way * self.query_per_class, PIXELS, None),
        }
    }
    /// Draw order: the N characters; then per class its rotation (if
    /// rotating) and its K + Q drawings.
    fn sample_into(&self, rng: &mut Rng, task: &mut Task<T>) -> theta_core::Result<()> {
        let shapes = [
            (&task.support, self.n_way * self.k_shot, "support"),
            (&task.query, self.n_way * self.query_per_class, "query"),
        ];
        for (split, rows, what) in shapes {
            theta_core::check_len(what, rows, split.len())?;
            theta_core::check_len("input width", PIXELS, split.x().cols())?;
        }
        let mut classes = [0usize; MAX_WAY];
        distinct(rng, self.characters.len(), self.n_way, &mut classes);
        let scale = T::from_f64(1.0 / 255.0);
        let per_class = self.k_shot + self.query_per_class;
        let mut drawings = [0usize; MAX_DRAWINGS];
        for (c, &pick) in classes[..self.n_way].iter().enumerate() {
            let character = self.characters[pick];
            let turns = if self.rotate { below(rng, 4) } else { 0 };
            let count = self.data.characters()[character].drawings;
            distinct(rng, count, per_class, &mut drawings);
            for (i, &d) in drawings[..per_class].iter().enumerate() {
                let (split, row) = if i < self.k_shot {
                    (&mut task.support, c * self.k_shot + i)
                } else {
                    (&mut task.query, c * self.query_per_class + i - self.k_shot)
                };
                let (x, _, labels) = split.parts_mut();
                labels.expect("classification splits hold labels")[row] = c as u32;
                let image = self.data.image(character, d);
                let out = &mut x[row * PIXELS..][..PIXELS];
                for y in 0..SIDE {
                    for xx in 0..SIDE {
                        let v = image[rotated_index(y, xx, turns)];
                        out[y * SIDE + xx] = T::from_f64(f64::from(v)) * scale;
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floyd_picks_distinct_indices_uniformly() {
        let mut rng = rng_from_seed(3);
        let mut out = [0usize; 8];
        let mut counts = [0usize; 10];
        for _ in 0..20_000 {
            distinct(&mut rng, 10, 4, &mut out);
            let picked = &out[..4];
            for (i, a) in picked.iter().enumerate() {
                assert!(*a < 10 && !picked[i + 1..].contains(a));
                counts[*a] += 1;
            }
        }
        // Each index is picked 8,000 times in expectation (sd ≈ 69).
        assert!(counts.iter().all(|&c| (7_600..8_400).contains(&c)), "{counts:?}");
    }
}
