use theta_core::random::rng_from_seed;
use theta_core::{Error, Targets, Task, TaskDistribution};
use theta_tasks::*;

fn values(t: &Targets<f64>) -> &[f64] {
    match t {
        Targets::Values(m) => m.as_slice(),
        Targets::Labels(_) => panic!("expected values"),
    }
}

#[test]
fn sinusoid_matches_the_maml_paper() {
    let dist = Sinusoid::new(10, 15).unwrap();
    let mut rng = rng_from_seed(3);
    let mut task: Task<f64> = TaskDistribution::<f64>::empty_task(&dist);
    let (mut amps, mut xs) = (Vec::new(), Vec::new());
    for _ in 0..2000 {
        let p = dist.sample_with_params(&mut rng, &mut task).unwrap();
        assert!(
            (0.1..5.0).contains(&p.amplitude) && (0.0..std::f64::consts::PI).contains(&p.phase)
        );
        for split in [&task.support, &task.query] {
            for (x, y) in split.x().as_slice().iter().zip(values(split.y())) {
                assert!((-5.0..5.0).contains(x));
                // The vectorised sine is within 2 ulp of the library's.
                let expected = p.amplitude * (x - p.phase).sin();
                assert!(
                    (y - expected).abs() <= 4.0 * f64::EPSILON * p.amplitude,
                    "{y} vs {expected}"
                );
                xs.push(*x);
            }
        }
        amps.push(p.amplitude);
    }
    assert_eq!((task.support.len(), task.query.len()), (10, 15));
    // Uniform draws: means near the interval centres.
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    assert!((mean(&amps) - 2.55).abs() < 0.1, "amplitude mean {}", mean(&amps));
    assert!(mean(&xs).abs() < 0.05, "x mean {}", mean(&xs));
}

#[test]
fn sinusoid_f32_values_are_the_library_sines_rounded() {
    // In f32 the vectorised sine's last-bit differences vanish: the tasks are
    // those of `f64::sin`, bit for bit. The same seed in f64 gives the xs.
    let dist = Sinusoid::new(10, 10).unwrap();
    let (mut rng32, mut rng64) = (rng_from_seed(11), rng_from_seed(11));
    let mut t32: Task<f32> = TaskDistribution::<f32>::empty_task(&dist);
    let mut t64: Task<f64> = TaskDistribution::<f64>::empty_task(&dist);
    for _ in 0..5000 {
        let p = dist.sample_with_params(&mut rng32, &mut t32).unwrap();
        assert_eq!(dist.sample_with_params(&mut rng64, &mut t64).unwrap(), p);
        for (s32, s64) in [(&t32.support, &t64.support), (&t32.query, &t64.query)] {
            let Targets::Values(y32) = s32.y() else { panic!("expected values") };
            for (&x, &y) in s64.x().as_slice().iter().zip(y32.as_slice()) {
                assert_eq!(y, p.eval(x) as f32, "x = {x}");
            }
        }
    }
}

#[test]
fn same_seed_same_tasks_bit_for_bit() {
    let dists: Vec<Box<dyn TaskDistribution<f32>>> = vec![
        Box::new(Sinusoid::new(5, 5).unwrap()),
        Box::new(CurveFitting::new(5, 5).unwrap()),
        Box::new(LinearRegression::new(3, 0.1, 5, 5).unwrap()),
        Box::new(GaussianBlobs::new(4, 2, 3, 6, 2.0).unwrap()),
    ];
    for dist in &dists {
        let draw = |seed| {
            let mut rng = rng_from_seed(seed);
            (0..5).map(|_| dist.sample(&mut rng).unwrap()).collect::<Vec<_>>()
        };
        assert_eq!(draw(42), draw(42), "{}", dist.name());
        assert_ne!(draw(42), draw(43), "{}", dist.name());
    }
}

#[test]
fn curve_fitting_follows_tanh_of_a_line() {
    let dist = CurveFitting::new(8, 8).unwrap();
    let mut rng = rng_from_seed(1);
    let mut task: Task<f64> = TaskDistribution::<f64>::empty_task(&dist);
    let p = dist.sample_with_params(&mut rng, &mut task).unwrap();
    for (x, y) in task.support.x().as_slice().iter().zip(values(task.support.y())) {
        assert!((-3.0..3.0).contains(x));
        assert_eq!(*y, (p.a * x + p.b).tanh());
    }
    let grid: Task<f64> = dist.grid_task(ARTICLE_TASKS[1], 5).unwrap();
    assert_eq!(grid.support.x().as_slice(), &[-3.0, -1.5, 0.0, 1.5, 3.0]);
    assert_eq!(values(grid.query.y())[2], 0.75f64.tanh());
}

#[test]
fn linear_tasks_lie_on_a_line_without_noise() {
    let dist = LinearRegression::new(1, 0.0, 6, 6).unwrap();
    let task: Task<f64> = dist.sample(&mut rng_from_seed(9)).unwrap();
    let (x, y) = (task.support.x().as_slice(), values(task.support.y()));
    let slope = (y[1] - y[0]) / (x[1] - x[0]);
    for i in 2..6 {
        assert!(((y[i] - y[0]) - slope * (x[i] - x[0])).abs() < 1e-12);
    }
    // Query points share the support's line.
    let (qx, qy) = (task.query.x().as_slice(), values(task.query.y()));
    assert!(((qy[0] - y[0]) - slope * (qx[0] - x[0])).abs() < 1e-12);
}

#[test]
fn blobs_are_labelled_by_class() {
    let dist = GaussianBlobs::new(3, 4, 5, 2, 10.0).unwrap();
    let task: Task<f64> = dist.sample(&mut rng_from_seed(2)).unwrap();
    let Targets::Labels(labels) = task.support.y() else { panic!() };
    assert_eq!(labels, &[0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2]);
    let Targets::Labels(q) = task.query.y() else { panic!() };
    assert_eq!(q.iter().filter(|&&l| l == 2).count(), 5);
    // With centres far apart (std 10) and unit noise, each query point is
    // nearest its own class's support mean.
    let x = task.support.x();
    let mean = |c: usize| -> [f64; 2] {
        let mut m = [0.0; 2];
        for r in c * 4..(c + 1) * 4 {
            m[0] += x.row(r)[0] / 4.0;
            m[1] += x.row(r)[1] / 4.0;
        }
        m
    };
    let means: Vec<[f64; 2]> = (0..3).map(mean).collect();
    for r in 0..15 {
        let p = task.query.x().row(r);
        let nearest = (0..3)
            .min_by(|&a, &b| {
                let d = |c: usize| (p[0] - means[c][0]).powi(2) + (p[1] - means[c][1]).powi(2);
                d(a).total_cmp(&d(b))
            })
            .unwrap();
        assert_eq!(nearest as u32, q[r]);
    }
}

#[test]
fn invalid_configurations_are_named() {
    let msg = |e: Error| e.to_string();
    assert!(msg(Sinusoid::new(0, 10).unwrap_err()).contains("support size"));
    assert!(
        msg(Sinusoid::with_ranges((5.0, 0.1), (0.0, 1.0), (-1.0, 1.0), 5, 5).unwrap_err())
            .contains("amplitude")
    );
    assert!(
        msg(CurveFitting::with_ranges((0.0, f64::NAN), (0.0, 1.0), (-1.0, 1.0), 5, 5).unwrap_err())
            .contains("a =")
    );
    assert!(msg(LinearRegression::new(2, -1.0, 5, 5).unwrap_err()).contains("noise_std"));
    assert!(msg(GaussianBlobs::new(1, 1, 1, 2, 1.0).unwrap_err()).contains("n_way"));
    // A task of the wrong shape is refused, not overrun.
    let small: Task<f64> = TaskDistribution::<f64>::empty_task(&Sinusoid::new(3, 3).unwrap());
    let mut small = small;
    let err =
        Sinusoid::new(10, 10).unwrap().sample_into(&mut rng_from_seed(0), &mut small).unwrap_err();
    assert!(msg(err).contains("support set size: expected 10, got 3"));
}
