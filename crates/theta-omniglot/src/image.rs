//! One drawing: PNG bytes to a 28×28 ink image.
//!
//! The official images are 105×105, 1 bit per pixel, black strokes on white.
//! theta stores ink (1 − brightness, so strokes are 1 and paper 0, as in
//! cbfinn/maml) and shrinks by **area averaging**: each of the 28×28 output
//! pixels is the mean of the 3.75×3.75 source square it covers, partially
//! covered source pixels weighted by the covered fraction. That is the exact
//! box filter for a non-integer factor: no aliasing of the thin strokes, no
//! ringing (cbfinn resizes with PIL's Lanczos filter instead; the two differ
//! by a slight blur). The result is stored as a byte, round(255·ink).

/// Side of the official images.
pub const SOURCE_SIDE: usize = 105;
/// Side of theta's images. Each output pixel is the mean ink of the
/// 3.75×3.75 source square it covers (area averaging, the exact box filter),
/// stored as round(255·ink); strokes are 1, paper 0.
pub const SIDE: usize = 28;
/// Pixels per image, the network's input width.
pub const PIXELS: usize = SIDE * SIDE;

/// Decodes a PNG into its brightness in [0, 1], row-major; any bit depth
/// and colour type (colour is averaged, alpha composited on white).
pub(crate) fn decode_png(bytes: &[u8]) -> Result<(usize, usize, Vec<f32>), String> {
    let mut decoder = png::Decoder::new(bytes);
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().map_err(|e| format!("not a readable PNG ({e})"))?;
    let mut buf = vec![0u8; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).map_err(|e| format!("not a readable PNG ({e})"))?;
    let (w, h) = (info.width as usize, info.height as usize);
    let channels = info.color_type.samples();
    let row = info.line_size;
    let mut out = Vec::with_capacity(w * h);
    for y in 0..h {
        for x in 0..w {
            let px = &buf[y * row + x * channels..][..channels];
            let (colour, alpha) = match px.len() {
                1 => (f32::from(px[0]), 255.0),
                2 => (f32::from(px[0]), f32::from(px[1])),
                3 => ((f32::from(px[0]) + f32::from(px[1]) + f32::from(px[2])) / 3.0, 255.0),
                _ => (
                    (f32::from(px[0]) + f32::from(px[1]) + f32::from(px[2])) / 3.0,
                    f32::from(px[3]),
                ),
            };
            let a = alpha / 255.0;
            out.push((colour / 255.0) * a + (1.0 - a));
        }
    }
    Ok((w, h, out))
}

/// The weight of source pixel `s` in output pixel `t` when `from` pixels
/// shrink to `to`: the length of their overlap, in source pixels.
fn overlap(t: usize, s: usize, from: usize, to: usize) -> f64 {
    let scale = from as f64 / to as f64;
    let (lo, hi) = (t as f64 * scale, (t + 1) as f64 * scale);
    (hi.min((s + 1) as f64) - lo.max(s as f64)).max(0.0)
}

/// Shrinks a 105×105 brightness image to 28×28 ink bytes by area averaging.
pub(crate) fn shrink(brightness: &[f32], out: &mut [u8]) {
    debug_assert_eq!(brightness.len(), SOURCE_SIDE * SOURCE_SIDE);
    debug_assert_eq!(out.len(), PIXELS);
    let scale = SOURCE_SIDE as f64 / SIDE as f64;
    // Separable: rows first, into 28×105, then columns.
    let mut rows = vec![0.0f64; SIDE * SOURCE_SIDE];
    for t in 0..SIDE {
        let lo = (t as f64 * scale) as usize;
        let hi = (((t + 1) as f64 * scale).ceil() as usize).min(SOURCE_SIDE);
        for s in lo..hi {
            let w = overlap(t, s, SOURCE_SIDE, SIDE);
            for x in 0..SOURCE_SIDE {
                rows[t * SOURCE_SIDE + x] += w * f64::from(1.0 - brightness[s * SOURCE_SIDE + x]);
            }
        }
    }
    for y in 0..SIDE {
        for t in 0..SIDE {
            let lo = (t as f64 * scale) as usize;
            let hi = (((t + 1) as f64 * scale).ceil() as usize).min(SOURCE_SIDE);
            let ink: f64 = (lo..hi)
                .map(|s| overlap(t, s, SOURCE_SIDE, SIDE) * rows[y * SOURCE_SIDE + s])
                .sum::<f64>()
                / (scale * scale);
            out[y * SIDE + t] = (ink.clamp(0.0, 1.0) * 255.0).round() as u8;
        }
    }
}

/// The source index of output pixel (`y`, `x`) of an image turned by
/// `quarter_turns` × 90° counter-clockwise.
#[inline]
pub(crate) fn rotated_index(y: usize, x: usize, quarter_turns: usize) -> usize {
    let last = SIDE - 1;
    match quarter_turns & 3 {
        0 => y * SIDE + x,
        1 => x * SIDE + (last - y),
        2 => (last - y) * SIDE + (last - x),
        _ => (last - x) * SIDE + y,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn area_averaging_preserves_total_ink() {
        // A block of ink from (10, 20) to (60, 90): the mean ink is kept.
        let mut b = vec![1.0f32; SOURCE_SIDE * SOURCE_SIDE];
        for y in 10..60 {
            for x in 20..90 {
                b[y * SOURCE_SIDE + x] = 0.0;
            }
        }
        let mut out = vec![0u8; PIXELS];
        shrink(&b, &mut out);
        let src: f64 = 50.0 * 70.0 / (SOURCE_SIDE * SOURCE_SIDE) as f64;
        let dst: f64 = out.iter().map(|&v| f64::from(v) / 255.0).sum::<f64>() / PIXELS as f64;
        assert!((src - dst).abs() < 1e-3, "{src} vs {dst}");
        // Blank paper stays blank; full ink stays full.
        shrink(&vec![1.0; SOURCE_SIDE * SOURCE_SIDE], &mut out);
        assert!(out.iter().all(|&v| v == 0));
        shrink(&vec![0.0; SOURCE_SIDE * SOURCE_SIDE], &mut out);
        assert!(out.iter().all(|&v| v == 255));
    }

    #[test]
    fn four_quarter_turns_are_the_identity_and_one_is_a_rotation() {
        for y in 0..SIDE {
            for x in 0..SIDE {
                // Turning by 1 then reading as 3 more turns returns the pixel.
                let mut i = y * SIDE + x;
                for _ in 0..4 {
                    i = rotated_index(i / SIDE, i % SIDE, 1);
                }
                assert_eq!(i, y * SIDE + x);
            }
        }
        // Counter-clockwise: the top-right source corner becomes the top-left.
        assert_eq!(rotated_index(0, 0, 1), SIDE - 1);
    }
}
