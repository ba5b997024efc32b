//! The article's curve-fitting figures: loss landscapes over θ = (a, b) for
//! the two tasks g(x) = tanh(a·x + b) of seed 003, with what MAML, Reptile
//! and iMAML do on them. The model is the 1-1 MLP with tanh output, so its
//! two parameters are exactly (a, b).

use plotters::coord::Shift;
use plotters::prelude::*;
use theta_core::{Activation, Loss, Model, Pass, Scratch, Task};
use theta_imaml::{Curvature, Imaml, ImamlConfig, InnerSolver};
use theta_meta::{InnerSgd, MetaLearner};
use theta_models::{Mlp, MlpSpec};
use theta_tasks::{ARTICLE_TASKS, CurveFitting};

use super::plot::{Figure, Grid, arrow, err, heatmap, marker};

/// Points in the (a, b) plane.
type Path2 = Vec<(f64, f64)>;

const A: (f64, f64) = (-0.6, 1.6);
const B: (f64, f64) = (-0.8, 1.4);
const CELLS: usize = 48;
/// α of the inner steps drawn (large enough to see, as the article's slider).
const ALPHA: f64 = 0.5;

/// The two article tasks and their model.
pub(crate) struct CurveTasks {
    mlp: Mlp,
    tasks: Vec<Task<f64>>,
    scratch: Scratch<f64>,
}

impl CurveTasks {
    pub(crate) fn new() -> Result<Self, String> {
        let family = CurveFitting::new(20, 20).map_err(|e| e.to_string())?;
        let tasks = ARTICLE_TASKS
            .iter()
            .map(|&p| family.grid_task::<f64>(p, 20).map_err(|e| e.to_string()))
            .collect::<Result<_, _>>()?;
        let spec = MlpSpec {
            layer_sizes: vec![1, 1],
            hidden: Activation::Identity,
            output: Activation::Tanh,
            loss: Loss::Mse,
        };
        Ok(CurveTasks {
            mlp: Mlp::new(spec).map_err(|e| e.to_string())?,
            tasks,
            scratch: Scratch::new(),
        })
    }

    fn loss(&mut self, task: usize, theta: (f64, f64)) -> f64 {
        let m: &dyn Model<f64> = &self.mlp;
        let split = &self.tasks[task].support;
        m.loss(&[theta.0, theta.1], split, self.scratch.get(m, Pass::Loss, split.len()))
            .unwrap_or(f64::INFINITY)
    }

    /// U^m(θ) on a task: m SGD steps of size α (the shared inner loop).
    fn adapt(&mut self, task: usize, theta: (f64, f64), alpha: f64, m: usize) -> (f64, f64) {
        let inner = InnerSgd::new(alpha, m).expect("α > 0");
        let (mut phi, mut work) = ([0.0; 2], [0.0; 2]);
        let _ = inner.run(
            &self.mlp,
            &[theta.0, theta.1],
            &self.tasks[task].support,
            &mut phi,
            &mut work,
            &mut self.scratch,
            None,
        );
        (phi[0], phi[1])
    }

    /// The path φ₀ = θ, φ₁, …, φ_k of k SGD steps.
    fn path(&mut self, task: usize, theta: (f64, f64), alpha: f64, k: usize) -> Vec<(f64, f64)> {
        if k == 0 {
            return vec![theta];
        }
        // The shared inner loop records φ₁ … φ_{k−1}; φ₀ is θ, φ_k its result.
        let inner = InnerSgd::new(alpha, k).expect("α > 0");
        let (mut phi, mut work) = ([0.0; 2], [0.0; 2]);
        let mut trajectory = vec![0.0; 2 * k.saturating_sub(1)];
        let support = &self.tasks[task].support;
        let _ = inner.run(
            &self.mlp,
            &[theta.0, theta.1],
            support,
            &mut phi,
            &mut work,
            &mut self.scratch,
            Some(&mut trajectory),
        );
        let inner_points = trajectory.chunks_exact(2).map(|p| (p[0], p[1]));
        [theta].into_iter().chain(inner_points).chain([(phi[0], phi[1])]).collect()
    }

    /// φ*(θ) = argmin L(φ) + λ/2‖φ − θ‖², by iMAML's gradient-step proximal
    /// solver run to convergence.
    fn proximal(&mut self, task: usize, theta: (f64, f64), lambda: f64) -> (f64, f64) {
        let config = ImamlConfig {
            lambda,
            curvature: Curvature::GaussNewton,
            inner: InnerSolver::GradientSteps { steps: 4000, lr: 0.5 / (1.0 + lambda) },
            cg_iterations: 1,
        };
        let mut solver = Imaml::<f64>::new(config).expect("λ > 0");
        let mut phi = [0.0; 2];
        let _ = solver.adapt(&self.mlp, &[theta.0, theta.1], &self.tasks[task].support, &mut phi);
        (phi[0], phi[1])
    }

    fn landscape(&mut self, task: usize) -> Grid {
        Grid::eval(A, B, CELLS, |a, b| self.loss(task, (a, b)))
    }
}

fn task_title(i: usize) -> String {
    format!("task {} (a = {}, b = {})", i + 1, ARTICLE_TASKS[i].a, ARTICLE_TASKS[i].b)
}

/// (b) The accumulated meta-loss Σ_i L_τi(U^m(θ)) for m = 0, 1, 2, 5.
pub(crate) struct AccumulatedLoss {
    panels: Vec<(usize, Grid)>,
}

impl AccumulatedLoss {
    pub(crate) fn compute(c: &mut CurveTasks) -> Self {
        let panels = [0, 1, 2, 5]
            .into_iter()
            .map(|m| {
                let grid = Grid::eval(A, B, CELLS, |a, b| {
                    (0..2)
                        .map(|t| {
                            let phi = c.adapt(t, (a, b), ALPHA, m);
                            c.loss(t, phi)
                        })
                        .sum()
                });
                (m, grid)
            })
            .collect();
        AccumulatedLoss { panels }
    }

    /// The minimum of each panel, for tests and captions.
    pub(crate) fn minima(&self) -> Vec<(usize, (f64, f64))> {
        self.panels.iter().map(|(m, g)| (*m, g.argmin())).collect()
    }
}

impl Figure for AccumulatedLoss {
    fn size(&self) -> (u32, u32) {
        (1000, 880)
    }
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let (top, rest) = area.split_vertically(40);
        top.draw(&Text::new(
            format!("Accumulated meta-loss Σᵢ L_τi(U^m(θ)) of the two article tasks (α = {ALPHA}); ● its minimum, ▲ the tasks' optima"),
            (12, 12),
            ("sans-serif", 16),
        ))
        .map_err(err)?;
        for ((m, grid), panel) in self.panels.iter().zip(rest.split_evenly((2, 2))) {
            let mut chart = heatmap(&panel, grid, &format!("m = {m} inner steps"), "a", "b")?;
            for t in ARTICLE_TASKS {
                chart
                    .draw_series(std::iter::once(TriangleMarker::new(
                        (t.a, t.b),
                        7,
                        WHITE.filled(),
                    )))
                    .map_err(err)?;
            }
            marker(&mut chart, grid.argmin(), " minimum", RED)?;
        }
        Ok(())
    }
}

/// (c) The two task landscapes with θ and the adapted φ₀, φ₁ as arrows.
pub(crate) struct TaskArrows {
    theta: (f64, f64),
    panels: Vec<(Grid, (f64, f64))>,
}

impl TaskArrows {
    /// θ is MAML's optimum for one inner step (the minimum of (b)'s m = 1 panel).
    pub(crate) fn compute(c: &mut CurveTasks, theta: (f64, f64)) -> Self {
        let panels = (0..2).map(|t| (c.landscape(t), c.adapt(t, theta, ALPHA, 1))).collect();
        TaskArrows { theta, panels }
    }
}

impl Figure for TaskArrows {
    fn size(&self) -> (u32, u32) {
        (1000, 480)
    }
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let (top, rest) = area.split_vertically(40);
        top.draw(&Text::new(
            format!("θ at MAML's one-step optimum and φᵢ = θ − α∇L_τi(θ) (α = {ALPHA}) on each task's loss (darker is lower)"),
            (12, 12),
            ("sans-serif", 16),
        ))
        .map_err(err)?;
        for (t, ((grid, phi), panel)) in
            self.panels.iter().zip(rest.split_evenly((1, 2))).enumerate()
        {
            let mut chart = heatmap(&panel, grid, &task_title(t), "a", "b")?;
            arrow(&mut chart, self.theta, *phi, WHITE)?;
            marker(&mut chart, self.theta, " θ", RED)?;
            marker(&mut chart, *phi, &format!(" φ{t}"), WHITE)?;
        }
        Ok(())
    }
}

/// (d) Reptile: θ, the k-step path to U(θ) on each task, and θ + β(φ − θ).
pub(crate) struct ReptileStep {
    theta: (f64, f64),
    beta: f64,
    panels: Vec<(Grid, Vec<(f64, f64)>)>,
}

impl ReptileStep {
    pub(crate) fn compute(c: &mut CurveTasks, theta: (f64, f64), k: usize, beta: f64) -> Self {
        let panels = (0..2).map(|t| (c.landscape(t), c.path(t, theta, ALPHA, k))).collect();
        ReptileStep { theta, beta, panels }
    }
}

impl Figure for ReptileStep {
    fn size(&self) -> (u32, u32) {
        (1000, 480)
    }
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let (top, rest) = area.split_vertically(40);
        let k = self.panels[0].1.len() - 1;
        top.draw(&Text::new(
            format!("Reptile: {k} SGD steps from θ to φ = U(θ) (α = {ALPHA}), then θ + β(φ − θ) with β = {}", self.beta),
            (12, 12),
            ("sans-serif", 16),
        ))
        .map_err(err)?;
        for (t, ((grid, path), panel)) in
            self.panels.iter().zip(rest.split_evenly((1, 2))).enumerate()
        {
            let mut chart = heatmap(&panel, grid, &task_title(t), "a", "b")?;
            let style = ShapeStyle { color: WHITE.to_rgba(), filled: false, stroke_width: 2 };
            chart
                .draw_series(std::iter::once(PathElement::new(path.clone(), style)))
                .map_err(err)?;
            chart
                .draw_series(path.iter().map(|&p| Circle::new(p, 3, WHITE.filled())))
                .map_err(err)?;
            let phi = *path.last().expect("non-empty");
            let next = (
                self.theta.0 + self.beta * (phi.0 - self.theta.0),
                self.theta.1 + self.beta * (phi.1 - self.theta.1),
            );
            arrow(&mut chart, self.theta, next, RED)?;
            marker(&mut chart, self.theta, " θ", RED)?;
            marker(&mut chart, phi, " φ = U(θ)", WHITE)?;
            marker(&mut chart, next, " θ + β(φ − θ)", YELLOW)?;
        }
        Ok(())
    }
}

/// (e) iMAML: the proximal solutions φ*(θ) = argmin L(φ) + λ/2‖φ − θ‖² for
/// several λ, on each task's landscape.
pub(crate) struct ProximalSolutions {
    theta: (f64, f64),
    lambdas: Vec<f64>,
    /// Per task: its landscape, the path of φ*(θ) over λ, and the marked φ*.
    panels: Vec<(Grid, Path2, Path2)>,
}

impl ProximalSolutions {
    pub(crate) fn compute(c: &mut CurveTasks, theta: (f64, f64), lambdas: &[f64]) -> Self {
        let panels = (0..2)
            .map(|t| {
                let curve = (0..=40)
                    .map(|i| c.proximal(t, theta, 10f64.powf(2.0 - i as f64 * 0.1)))
                    .collect();
                let marked = lambdas.iter().map(|&l| c.proximal(t, theta, l)).collect();
                (c.landscape(t), curve, marked)
            })
            .collect();
        ProximalSolutions { theta, lambdas: lambdas.to_vec(), panels }
    }
}

impl Figure for ProximalSolutions {
    fn size(&self) -> (u32, u32) {
        (1000, 480)
    }
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let (top, rest) = area.split_vertically(40);
        top.draw(&Text::new(
            "iMAML: proximal solutions φ*(θ) = argmin L(φ) + λ/2‖φ − θ‖²; the line follows λ from 100 down to 0.01",
            (12, 12),
            ("sans-serif", 16),
        ))
        .map_err(err)?;
        for (t, ((grid, curve, marked), panel)) in
            self.panels.iter().zip(rest.split_evenly((1, 2))).enumerate()
        {
            let mut chart = heatmap(&panel, grid, &task_title(t), "a", "b")?;
            let style = ShapeStyle { color: WHITE.to_rgba(), filled: false, stroke_width: 2 };
            chart
                .draw_series(std::iter::once(PathElement::new(curve.clone(), style)))
                .map_err(err)?;
            marker(&mut chart, self.theta, " θ", RED)?;
            for (phi, l) in marked.iter().zip(&self.lambdas) {
                marker(&mut chart, *phi, &format!(" λ = {l}"), YELLOW)?;
            }
        }
        Ok(())
    }
}
