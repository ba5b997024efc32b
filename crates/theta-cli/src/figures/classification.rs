//! A few-shot classification task as a picture: each class's support
//! drawings, then its query drawings framed green where the adapted network
//! labels them right and red where it does not. Drawn by `theta eval
//! --figure` for image tasks (Omniglot).

use plotters::coord::Shift;
use plotters::prelude::*;

use theta_core::{Model, Split, Targets, Task};
use theta_meta::Adaptation;

use super::plot::{Figure, err};

/// Pixels per image pixel.
const ZOOM: i32 = 2;
/// Space around each tile.
const PAD: i32 = 6;
const HEADER: i32 = 56;

/// One task, its drawings and the adapted network's answers.
pub(crate) struct FewShotTask {
    title: String,
    side: usize,
    /// Per class: its support images.
    support: Vec<Vec<Vec<f32>>>,
    /// Per class: its query images and whether each was labelled right.
    query: Vec<Vec<(Vec<f32>, bool)>>,
}

fn labels(split: &Split<f32>) -> Result<&[u32], String> {
    match split.y() {
        Targets::Labels(l) => Ok(l),
        Targets::Values(_) => Err("the task picture needs a classification task".into()),
    }
}

impl FewShotTask {
    /// Adapts by `adapt` on the task's support set and labels its query set.
    pub(crate) fn compute(
        model: &dyn Model<f32>,
        theta: &[f32],
        task: &Task<f32>,
        side: usize,
        what: &str,
        adapt: &mut Adaptation<'_, f32>,
    ) -> Result<Self, String> {
        let classes = model.output_dim();
        if side * side != model.input_dim() {
            return Err("the task picture needs square images".into());
        }
        let mut phi = vec![0.0f32; theta.len()];
        adapt(theta, &task.support, &mut phi).map_err(|e| e.to_string())?;
        let q = &task.query;
        let mut logits = vec![0.0f32; q.len() * classes];
        let mut scratch = vec![0.0f32; model.scratch_len(theta_core::Pass::Loss, q.len())];
        model.predict(&phi, q.x(), &mut logits, &mut scratch).map_err(|e| e.to_string())?;
        let mut support = vec![Vec::new(); classes];
        for (r, &c) in labels(&task.support)?.iter().enumerate() {
            support[c as usize].push(task.support.x().row(r).to_vec());
        }
        let mut query = vec![Vec::new(); classes];
        let mut right = 0;
        for (r, &c) in labels(q)?.iter().enumerate() {
            let row = &logits[r * classes..(r + 1) * classes];
            let guess = (0..classes).fold(0, |b, k| if row[k] > row[b] { k } else { b });
            right += usize::from(guess == c as usize);
            query[c as usize].push((q.x().row(r).to_vec(), guess == c as usize));
        }
        let k = task.support.len() / classes;
        Ok(FewShotTask {
            title: format!(
                "{what}, a {classes}-way {k}-shot test task: {right} of {} query drawings labelled right",
                q.len()
            ),
            side,
            support,
            query,
        })
    }

    fn tile(&self) -> i32 {
        self.side as i32 * ZOOM + PAD
    }

    fn columns(&self) -> (i32, i32) {
        let k = self.support.iter().map(Vec::len).max().unwrap_or(0) as i32;
        let q = self.query.iter().map(Vec::len).max().unwrap_or(0) as i32;
        (k, q)
    }
}

fn draw_image<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    pixels: &[f32],
    side: usize,
    (x0, y0): (i32, i32),
) -> Result<(), String> {
    for (i, &v) in pixels.iter().enumerate() {
        if v <= 0.0 {
            continue;
        }
        let shade = (255.0 * (1.0 - v.clamp(0.0, 1.0))) as u8;
        let (x, y) = (x0 + (i % side) as i32 * ZOOM, y0 + (i / side) as i32 * ZOOM);
        area.draw(&Rectangle::new(
            [(x, y), (x + ZOOM, y + ZOOM)],
            RGBColor(shade, shade, shade).filled(),
        ))
        .map_err(err)?;
    }
    Ok(())
}

impl Figure for FewShotTask {
    fn size(&self) -> (u32, u32) {
        let (k, q) = self.columns();
        let t = self.tile();
        (
            (PAD * 2 + (k + q) * t + 3 * PAD) as u32,
            (HEADER + self.support.len() as i32 * t + PAD) as u32,
        )
    }

    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let font = ("sans-serif", 15).into_font();
        area.draw_text(&self.title, &font.color(&BLACK), (PAD, 8)).map_err(err)?;
        let (k, _) = self.columns();
        let t = self.tile();
        let query_x = PAD + k * t + 3 * PAD;
        let small = ("sans-serif", 13).into_font().color(&RGBColor(90, 90, 90));
        area.draw_text("support", &small, (PAD, 32)).map_err(err)?;
        area.draw_text(
            "query (green: labelled right after adapting; red: wrong)",
            &small,
            (query_x, 32),
        )
        .map_err(err)?;
        let side_px = self.side as i32 * ZOOM;
        for (c, (support, query)) in self.support.iter().zip(&self.query).enumerate() {
            let y = HEADER + c as i32 * t;
            for (j, img) in support.iter().enumerate() {
                let x = PAD + j as i32 * t;
                area.draw(&Rectangle::new(
                    [(x - 1, y - 1), (x + side_px, y + side_px)],
                    BLACK.stroke_width(1),
                ))
                .map_err(err)?;
                draw_image(area, img, self.side, (x, y))?;
            }
            for (j, (img, right)) in query.iter().enumerate() {
                let x = query_x + j as i32 * t;
                let colour = if *right { RGBColor(0, 150, 60) } else { RGBColor(210, 30, 30) };
                area.draw(&Rectangle::new(
                    [(x - 2, y - 2), (x + side_px + 1, y + side_px + 1)],
                    colour.stroke_width(2),
                ))
                .map_err(err)?;
                draw_image(area, img, self.side, (x, y))?;
            }
        }
        Ok(())
    }
}
