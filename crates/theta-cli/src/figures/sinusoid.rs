//! Sinusoid figures from real training runs: adaptation of the pretrained
//! and MAML models (seed 003, "Returning to Sinusoids"), and the comparison
//! of all five algorithms.

use std::ops::ControlFlow;

use plotters::coord::Shift;
use plotters::prelude::*;
use theta_core::random::rng_from_seed;
use theta_core::vector::axpy;
use theta_core::{Loss, Matrix, Model, Pass, Scratch, Split, TaskDistribution};
use theta_fomaml::{Fomaml, FomamlConfig};
use theta_imaml::{Imaml, ImamlConfig};
use theta_maml::{Maml, MamlConfig};
use theta_meta::{EvalPoint, Evaluation, MetaLearner, StepReport, TrainState, Trainer};
use theta_models::{Init, Mlp, MlpSpec};
use theta_optim::{Adam, AdamState, Optimizer};
use theta_pretrained::{Pretrained, PretrainedConfig};
use theta_reptile::{Reptile, ReptileConfig};
use theta_tasks::{Sinusoid, SinusoidParams};

use super::plot::{Figure, err, legend};

/// The MAML paper's sinusoid network.
pub(crate) fn network() -> Mlp {
    Mlp::new(MlpSpec::relu(&[1, 40, 40, 1], Loss::Mse)).expect("a valid network")
}

/// A trained learner: θ, its meta-loss curve, and the learner (for its own adaptation).
pub(crate) struct Trained {
    pub(crate) name: &'static str,
    pub(crate) theta: Vec<f32>,
    /// (step, mean meta-loss over the last `every` steps).
    pub(crate) curve: Vec<(u64, f64)>,
    pub(crate) learner: Box<dyn MetaLearner<f32>>,
}

/// The five algorithms with the papers' settings, by display name.
pub(crate) fn learners() -> Vec<(&'static str, Box<dyn MetaLearner<f32>>)> {
    vec![
        ("pretrained", Box::new(Pretrained::new(PretrainedConfig::default()).expect("valid"))),
        ("MAML", Box::new(Maml::new(MamlConfig::default()).expect("valid"))),
        ("FOMAML", Box::new(Fomaml::new(FomamlConfig::default()).expect("valid"))),
        ("Reptile", Box::new(Reptile::new(ReptileConfig::default()).expect("valid"))),
        ("iMAML", Box::new(Imaml::new(ImamlConfig::default()).expect("valid"))),
    ]
}

/// Trains one learner on K = 10 sinusoids (25 tasks per meta-batch, Adam
/// 1e-3), recording the meta-loss averaged over blocks of `every` steps.
pub(crate) fn train(
    name: &'static str,
    mut learner: Box<dyn MetaLearner<f32>>,
    steps: u64,
    seed: u64,
) -> Result<Trained, String> {
    let mlp = network();
    let dist = Sinusoid::new(10, 10).expect("valid");
    let adam = Adam::new(1e-3).expect("valid");
    let theta: Vec<f32> = mlp.init(Init::UniformFanIn, &mut rng_from_seed(seed));
    let mut state = TrainState {
        optimizer: Optimizer::<f32>::init_state(&adam, theta.len()),
        theta,
        rng: rng_from_seed(seed + 1000),
        step: 0,
    };
    let every = (steps / 100).max(1);
    let (mut curve, mut sum) = (Vec::new(), 0.0);
    let mut observe = |r: &StepReport<'_, f32, AdamState<f32>>| {
        sum += r.stats.meta_loss;
        if r.state.step.is_multiple_of(every) {
            curve.push((r.state.step, sum / every as f64));
            sum = 0.0;
        }
        ControlFlow::Continue(())
    };
    Trainer::new(&mlp, &dist, 25)
        .and_then(|mut t| t.run(learner.as_mut(), &adam, &mut state, steps, &mut observe))
        .map_err(|e| format!("{name}: {e}"))?;
    Ok(Trained { name, theta: state.theta, curve, learner })
}

/// Adaptation steps taken, and the prediction curve (x, ŷ) after them.
type Prediction = (usize, Vec<(f64, f64)>);

/// (a) One task, K = 10 samples, and the pretrained and MAML predictions
/// before adapting and after 1 and 10 steps.
pub(crate) struct Adaptation {
    truth: SinusoidParams,
    samples: Vec<(f64, f64)>,
    /// Per model: its name and its predictions after 0, 1 and 10 steps.
    models: Vec<(&'static str, Vec<Prediction>)>,
}

impl Adaptation {
    pub(crate) fn compute(
        models: &[(&'static str, &[f32])],
        task_seed: u64,
    ) -> Result<Self, String> {
        let mlp = network();
        let m: &dyn Model<f32> = &mlp;
        let dist = Sinusoid::new(10, 10).expect("valid");
        let mut task = TaskDistribution::<f32>::empty_task(&dist);
        let truth = dist
            .sample_with_params(&mut rng_from_seed(task_seed), &mut task)
            .map_err(|e| e.to_string())?;
        let xs: Vec<f32> = (0..200).map(|i| -5.0 + 10.0 * i as f32 / 199.0).collect();
        let grid = Matrix::from_vec(xs.len(), 1, xs.clone()).map_err(|e| e.to_string())?;
        let support: &Split<f32> = &task.support;
        let samples =
            support.x().as_slice().iter().map(|&x| (x as f64, truth.eval(x as f64))).collect();
        let mut scratch = Scratch::new();
        let mut out = vec![0f32; xs.len()];
        let mut grad = vec![0f32; m.num_params()];
        let mut result = Vec::new();
        for (name, theta) in models {
            let mut phi = theta.to_vec();
            let mut curves = Vec::new();
            for step in 0..=10 {
                if [0, 1, 10].contains(&step) {
                    m.predict(&phi, &grid, &mut out, scratch.get(m, Pass::Predict, xs.len()))
                        .map_err(|e| e.to_string())?;
                    curves.push((
                        step,
                        xs.iter().zip(&out).map(|(&x, &y)| (x as f64, y as f64)).collect(),
                    ));
                }
                m.loss_grad(
                    &phi,
                    support,
                    &mut grad,
                    scratch.get(m, Pass::Gradient, support.len()),
                )
                .map_err(|e| e.to_string())?;
                axpy(-0.01, &grad, &mut phi);
            }
            result.push((*name, curves));
        }
        Ok(Adaptation { truth, samples, models: result })
    }
}

impl Figure for Adaptation {
    fn size(&self) -> (u32, u32) {
        (1000, 440)
    }
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let (top, rest) = area.split_vertically(36);
        top.draw(&Text::new(
            format!(
                "A new task y = {:.2}·sin(x − {:.2}) and K = 10 samples: predictions before adapting and after 1 and 10 SGD steps (α = 0.01)",
                self.truth.amplitude, self.truth.phase
            ),
            (12, 10),
            ("sans-serif", 15),
        ))
        .map_err(err)?;
        let panels = rest.split_evenly((1, self.models.len()));
        let colors = [RGBColor(150, 150, 150), RGBColor(230, 120, 0), RGBColor(30, 90, 200)];
        for ((name, curves), panel) in self.models.iter().zip(panels) {
            let mut chart = ChartBuilder::on(&panel)
                .caption(*name, ("sans-serif", 18))
                .margin(8)
                .x_label_area_size(30)
                .y_label_area_size(36)
                .build_cartesian_2d(-5.0..5.0, -5.5..5.5)
                .map_err(err)?;
            chart
                .configure_mesh()
                .light_line_style(WHITE.mix(0.0))
                .label_style(("sans-serif", 12))
                .draw()
                .map_err(err)?;
            let truth: Vec<(f64, f64)> = (0..200)
                .map(|i| -5.0 + 10.0 * i as f64 / 199.0)
                .map(|x| (x, self.truth.eval(x)))
                .collect();
            chart
                .draw_series(LineSeries::new(truth, BLACK.stroke_width(2)))
                .map_err(err)?
                .label("true function")
                .legend(|(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], BLACK.stroke_width(2))
                });
            for ((steps, curve), color) in curves.iter().zip(colors) {
                let label = match steps {
                    0 => "before adapting".to_string(),
                    1 => "after 1 step".to_string(),
                    n => format!("after {n} steps"),
                };
                chart
                    .draw_series(LineSeries::new(curve.clone(), color.stroke_width(2)))
                    .map_err(err)?
                    .label(label)
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                    });
            }
            chart
                .draw_series(self.samples.iter().map(|&p| Circle::new(p, 4, RED.filled())))
                .map_err(err)?
                .label("K = 10 samples")
                .legend(|(x, y)| Circle::new((x + 9, y), 4, RED.filled()));
            legend(&mut chart, SeriesLabelPosition::LowerRight)?;
        }
        Ok(())
    }
}

/// (f) Meta-training curves of the five algorithms, and query MSE against
/// adaptation steps with 95% bands (iMAML: its own proximal solve too).
pub(crate) struct Comparison {
    training: Vec<(&'static str, Vec<(u64, f64)>)>,
    evaluation: Vec<(&'static str, Vec<EvalPoint>)>,
    own: Vec<(&'static str, EvalPoint)>,
    eval_tasks: usize,
}

impl Comparison {
    pub(crate) fn compute(trained: &mut [Trained], eval_tasks: usize) -> Result<Self, String> {
        let mlp = network();
        let test = Sinusoid::new(10, 100).expect("valid");
        let eval = Evaluation::new(eval_tasks, 7, 0.01, 10).map_err(|e| e.to_string())?;
        let mut evaluation = Vec::new();
        let mut own = Vec::new();
        for t in trained.iter_mut() {
            evaluation
                .push((t.name, eval.sgd_curve(&mlp, &t.theta, &test).map_err(|e| e.to_string())?));
            if t.name == "iMAML" {
                let learner = &mut t.learner;
                let mut adapt =
                    |th: &[f32], s: &Split<f32>, phi: &mut [f32]| learner.adapt(&mlp, th, s, phi);
                own.push((
                    t.name,
                    eval.with_adaptation(&mlp, &t.theta, &test, &mut adapt)
                        .map_err(|e| e.to_string())?,
                ));
            }
        }
        let training = trained.iter().map(|t| (t.name, t.curve.clone())).collect();
        Ok(Comparison { training, evaluation, own, eval_tasks })
    }
}

impl Comparison {
    /// Query MSE after 0, 1 and 10 SGD steps, per algorithm (infinite where
    /// adaptation diverged), for the printed summary.
    pub(crate) fn summary(&self) -> Vec<(&'static str, [f64; 3])> {
        self.evaluation
            .iter()
            .map(|(n, c)| (*n, [c[0].loss.mean, c[1].loss.mean, c[10].loss.mean]))
            .collect()
    }
}

const PALETTE: [RGBColor; 5] = [
    RGBColor(120, 120, 120),
    RGBColor(30, 90, 200),
    RGBColor(0, 160, 150),
    RGBColor(230, 120, 0),
    RGBColor(200, 40, 120),
];

impl Figure for Comparison {
    fn size(&self) -> (u32, u32) {
        (1100, 480)
    }
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let (left, right) = area.split_horizontally(550);
        let steps =
            self.training.iter().flat_map(|(_, c)| c.last().map(|p| p.0)).max().unwrap_or(1) as f64;
        let mut chart = ChartBuilder::on(&left)
            .caption("Meta-training on sinusoids (K = 10, 25 tasks per step)", ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(34)
            .y_label_area_size(50)
            .build_cartesian_2d(0.0..steps, (0.003..10.0).log_scale())
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("meta-step")
            .y_desc("meta-loss (block mean)")
            .x_label_formatter(&|x| format!("{x:.0}"))
            .label_style(("sans-serif", 12))
            .draw()
            .map_err(err)?;
        for ((name, curve), color) in self.training.iter().zip(PALETTE) {
            let pts: Vec<(f64, f64)> = curve
                .iter()
                .filter(|p| p.1.is_finite() && p.1 > 0.0)
                .map(|&(s, l)| (s as f64, l))
                .collect();
            chart
                .draw_series(LineSeries::new(pts, color.stroke_width(2)))
                .map_err(err)?
                .label(*name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                });
        }
        legend(&mut chart, SeriesLabelPosition::UpperRight)?;

        let mut chart = ChartBuilder::on(&right)
            .caption(
                format!("Adapting to {} test tasks (K = 10, SGD α = 0.01)", self.eval_tasks),
                ("sans-serif", 16),
            )
            .margin(10)
            .x_label_area_size(34)
            .y_label_area_size(50)
            .build_cartesian_2d(0.0..10.0, (0.01..10.0).log_scale())
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("adaptation steps")
            .y_desc("query MSE (mean, 95% band)")
            .x_label_formatter(&|x| format!("{x:.0}"))
            .label_style(("sans-serif", 12))
            .draw()
            .map_err(err)?;
        for ((name, curve), color) in self.evaluation.iter().zip(PALETTE) {
            let ok: Vec<&EvalPoint> =
                curve.iter().filter(|p| p.diverged == 0 && p.loss.mean.is_finite()).collect();
            if ok.is_empty() {
                continue;
            }
            // A band only where every task adapted: one that diverges has none worth drawing.
            if ok.len() == curve.len() {
                let mut band: Vec<(f64, f64)> = ok
                    .iter()
                    .map(|p| (p.steps as f64, (p.loss.mean + p.loss.ci95).min(10.0)))
                    .collect();
                band.extend(
                    ok.iter()
                        .rev()
                        .map(|p| (p.steps as f64, (p.loss.mean - p.loss.ci95).max(0.011))),
                );
                chart
                    .draw_series(std::iter::once(Polygon::new(band, color.mix(0.18))))
                    .map_err(err)?;
            }
            let line: Vec<(f64, f64)> = ok.iter().map(|p| (p.steps as f64, p.loss.mean)).collect();
            let label = if ok.len() < curve.len() {
                format!("{name} (SGD diverges)")
            } else {
                name.to_string()
            };
            chart
                .draw_series(LineSeries::new(line, color.stroke_width(2)))
                .map_err(err)?
                .label(label)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                });
        }
        for (name, p) in &self.own {
            let color = PALETTE[self.evaluation.iter().position(|e| e.0 == *name).unwrap_or(4)];
            let y = p.loss.mean.clamp(0.011, 10.0);
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(0.0, y), (10.0, y)],
                    color.stroke_width(2),
                )))
                .map_err(err)?
                .label(format!("{name}, own proximal solve: {:.3}", p.loss.mean))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(1))
                });
        }
        legend(&mut chart, SeriesLabelPosition::UpperRight)?;
        Ok(())
    }
}
