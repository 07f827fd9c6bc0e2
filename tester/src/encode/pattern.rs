//! The synthetic test picture: a moving YUV 4:2:0 pattern with the frame number on it.
//!
//! Every frame differs from the previous one everywhere (a sweeping diagonal gradient, a box
//! moving across, drifting chroma), so an encoder cannot skip frames and a frozen output is
//! visible. The frame number is drawn twice: as large digits for humans and as a strip of
//! black/white blocks (one per bit, most significant first) that software can read back from
//! a decoded frame even after moderate filtering. A big square in the top-right corner, the
//! luminance step marker, is white through the clip's even segments and black through its odd
//! ones ([`lvt_gateway::session::beacon_bright`]): a step at known frames that survives
//! restyling where digits do not. Three smaller squares under it carry the segment's index
//! further ([`lvt_gateway::session::segment_marker`], four bits with the big square), so that
//! the step a picture shows can be told from the steps before and after it.

/// 5x7 bitmaps of the digits 0-9; bit 4 of each row is the leftmost pixel.
const DIGITS: [[u8; 7]; 10] = [
    [0x0e, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0e],
    [0x04, 0x0c, 0x04, 0x04, 0x04, 0x04, 0x0e],
    [0x0e, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1f],
    [0x1f, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0e],
    [0x02, 0x06, 0x0a, 0x12, 0x1f, 0x02, 0x02],
    [0x1f, 0x10, 0x1e, 0x01, 0x01, 0x11, 0x0e],
    [0x06, 0x08, 0x10, 0x1e, 0x11, 0x11, 0x0e],
    [0x1f, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
    [0x0e, 0x11, 0x11, 0x0e, 0x11, 0x11, 0x0e],
    [0x0e, 0x11, 0x11, 0x0f, 0x01, 0x02, 0x0c],
];
const GLYPH_WIDTH: usize = 5;
const GLYPH_HEIGHT: usize = 7;
/// Digits drawn: frame numbers are zero-padded to this width.
const DIGIT_COUNT: usize = 5;
/// Bits in the block code at the bottom of the picture.
pub const CODE_BITS: usize = 16;

/// Luma values (video range).
const Y_BLACK: u8 = 16;
const Y_WHITE: u8 = 235;

/// One plane of a picture: its bytes, row stride, and the size of the *luma* plane (chroma
/// planes of 4:2:0 are half that in each direction).
pub struct Plane<'a> {
    pub data: &'a mut [u8],
    pub stride: usize,
    pub width: usize,
    pub height: usize,
}

/// Which chroma plane to draw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chroma {
    U,
    V,
}

/// Draws the luma plane of frame `index` of a clip with `run` frames per segment (the
/// luminance marker steps every `run` frames).
pub fn draw_luma(plane: &mut Plane<'_>, index: u32, run: u32) {
    let (w, h) = (plane.width, plane.height);
    let n = index as usize;

    // Diagonal gradient sweeping 4 pixels per frame.
    for y in 0..h {
        let row = &mut plane.data[y * plane.stride..y * plane.stride + w];
        for (x, px) in row.iter_mut().enumerate() {
            *px = 16 + ((x + y + 4 * n) % 220) as u8;
        }
    }

    // A white box crossing the picture horizontally, 1/8 of the width, at mid height.
    let size = (w / 8).max(2);
    let travel = w.saturating_sub(size).max(1);
    let step = (w / 64).max(1);
    let bx = (n * step) % travel;
    let by = h.saturating_sub(size) / 2;
    fill(plane, bx, by, size, size, Y_WHITE);

    let scale = (w.min(h) / 64).max(1);
    draw_number(plane, index, scale);
    draw_code(plane, index, scale);
    let marker = lvt_gateway::session::segment_marker(index, run);
    for (bit, (x, y, side)) in marker_squares(w, h).into_iter().enumerate() {
        let bright = marker >> bit & 1 == 0;
        fill(
            plane,
            x,
            y,
            side,
            side,
            if bright { Y_WHITE } else { Y_BLACK },
        );
    }
}

/// The squares of the segment marker, bit 0 first: the luminance step marker
/// ([`beacon_square`]), then squares of half its side in a row under it, from the right edge
/// leftwards (clear of the digits, which end a quarter of the way across, and of the moving box
/// below them), as `(x, y, side)`.
fn marker_squares(width: usize, height: usize) -> [(usize, usize, usize); 4] {
    let (x0, y0, side) = beacon_square(width, height);
    let small = side / 2;
    let row = y0 + side;
    [
        (x0, y0, side),
        (width - small, row, small),
        (width - 2 * small, row, small),
        (width - 3 * small, row, small),
    ]
}

/// Where the luminance marker lies: a square of a quarter of the shorter side, in the top-right
/// corner (clear of the digits top left, the moving box at mid height and the code at the
/// bottom), as `(x, y, side)`.
fn beacon_square(width: usize, height: usize) -> (usize, usize, usize) {
    let side = width.min(height) / 4;
    (width - side, 0, side)
}

/// Farther than this from mid gray (128), on average, the marker reads as white or black.
const BEACON_MARGIN: u8 = 48;

/// Reads the luminance marker back from a luma plane: `Some(true)` when the square is bright
/// on average, `Some(false)` when dark, `None` when neither clearly (a gray overlay, a picture
/// too small, or not lvt's). The mean over the square's inner half, sampled every fourth pixel
/// each way, so that restyled edges and texture do not decide.
pub fn read_beacon(luma: &[u8], stride: usize, width: usize, height: usize) -> Option<bool> {
    let (x, y, side) = beacon_square(width, height);
    read_square(luma, stride, x, y, side)
}

/// Reads the whole segment marker back: `None` unless every square reads clearly (white for a
/// 0 bit, black for a 1).
pub fn read_marker(luma: &[u8], stride: usize, width: usize, height: usize) -> Option<u8> {
    let mut marker = 0u8;
    for (bit, (x, y, side)) in marker_squares(width, height).into_iter().enumerate() {
        if !read_square(luma, stride, x, y, side)? {
            marker |= 1 << bit;
        }
    }
    Some(marker)
}

/// Whether the square at `(x, y)` of `side` is bright or dark on average over its inner half
/// (every fourth pixel each way), or neither clearly.
fn read_square(luma: &[u8], stride: usize, x: usize, y: usize, side: usize) -> Option<bool> {
    if side < 8 {
        return None;
    }
    let inset = side / 4;
    let (mut sum, mut count) = (0u64, 0u64);
    for row in (y + inset..y + side - inset).step_by(4) {
        let line = luma.get(row * stride + x + inset..row * stride + x + side - inset)?;
        for &sample in line.iter().step_by(4) {
            sum += u64::from(sample);
            count += 1;
        }
    }
    let mean = sum / count.max(1);
    if mean >= 128 + u64::from(BEACON_MARGIN) {
        Some(true)
    } else if mean + u64::from(BEACON_MARGIN) <= 128 {
        Some(false)
    } else {
        None
    }
}

/// Draws one chroma plane (half the luma size) of frame `index`: U drifts horizontally, V
/// vertically, at different speeds.
pub fn draw_chroma(plane: &mut Plane<'_>, index: u32, chroma: Chroma) {
    let n = index as usize;
    for cy in 0..plane.height / 2 {
        let at = cy * plane.stride;
        let row = &mut plane.data[at..at + plane.width / 2];
        for (cx, px) in row.iter_mut().enumerate() {
            *px = match chroma {
                Chroma::U => 96 + ((cx + n) % 64) as u8,
                Chroma::V => 96 + ((cy + 2 * n) % 64) as u8,
            };
        }
    }
}

/// Sets a rectangle of a luma plane, clipped to the picture, to `value`.
fn fill(plane: &mut Plane<'_>, x0: usize, y0: usize, w: usize, h: usize, value: u8) {
    let x1 = (x0 + w).min(plane.width);
    let y1 = (y0 + h).min(plane.height);
    if x0 >= x1 {
        return;
    }
    for y in y0..y1 {
        let at = y * plane.stride;
        plane.data[at + x0..at + x1].fill(value);
    }
}

/// Draws the zero-padded frame number in the top-left corner on a black backdrop.
fn draw_number(plane: &mut Plane<'_>, index: u32, scale: usize) {
    let cell = (GLYPH_WIDTH + 1) * scale;
    let margin = scale;
    fill(
        plane,
        0,
        0,
        DIGIT_COUNT * cell + 2 * margin,
        GLYPH_HEIGHT * scale + 2 * margin,
        Y_BLACK,
    );
    let mut value = index;
    for pos in (0..DIGIT_COUNT).rev() {
        let digit = (value % 10) as usize;
        value /= 10;
        let left = margin + pos * cell;
        for (row, bits) in DIGITS[digit].iter().enumerate() {
            for col in 0..GLYPH_WIDTH {
                if bits >> (GLYPH_WIDTH - 1 - col) & 1 == 1 {
                    fill(
                        plane,
                        left + col * scale,
                        margin + row * scale,
                        scale,
                        scale,
                        Y_WHITE,
                    );
                }
            }
        }
    }
}

/// Size in pixels of one block of the bit code for a picture drawn at `scale`.
pub fn code_block_size(scale: usize) -> usize {
    4 * scale
}

/// Draws the frame number as `CODE_BITS` blocks along the bottom edge, most significant bit
/// first, white for 1.
fn draw_code(plane: &mut Plane<'_>, index: u32, scale: usize) {
    let block = code_block_size(scale);
    let top = plane.height.saturating_sub(block);
    for bit in 0..CODE_BITS {
        let set = (index >> (CODE_BITS - 1 - bit)) & 1 == 1;
        let value = if set { Y_WHITE } else { Y_BLACK };
        fill(plane, bit * block, top, block, block, value);
    }
}

/// Reads the bit code back from a luma plane drawn by [`draw_luma`] (or a decoded copy of it).
///
/// Each block is sampled at its centre; returns `None` if the picture is too small to hold
/// the code.
pub fn read_code(luma: &[u8], stride: usize, width: usize, height: usize) -> Option<u32> {
    read_code_clear(luma, stride, width, height, 0)
}

/// [`read_code`] that also refuses a code any of whose blocks lies within `margin` of mid gray
/// (128): a flat gray picture then has no number instead of reading as 0.
pub fn read_code_clear(
    luma: &[u8],
    stride: usize,
    width: usize,
    height: usize,
    margin: u8,
) -> Option<u32> {
    let scale = (width.min(height) / 64).max(1);
    let block = code_block_size(scale);
    if block * CODE_BITS > width || block > height {
        return None;
    }
    let y = height - block / 2 - 1;
    let mut value = 0;
    for bit in 0..CODE_BITS {
        let x = bit * block + block / 2;
        let sample = *luma.get(y * stride + x)?;
        if margin > 0 && sample.abs_diff(128) <= margin {
            return None;
        }
        value = value << 1 | u32::from(sample > 128);
    }
    Some(value)
}

/// Chroma farther than this from its midpoint is colour.
const COLOUR_DISTANCE: u8 = 6;

/// Whether a 4:2:0 picture has no colour: at most one chroma sample in a hundred (of every
/// fourth in each direction) farther than [`COLOUR_DISTANCE`] from 128 in either plane.
/// ai-runner's loading overlay is grayscale; lvt's clip has chroma ramps over the whole
/// picture, 96 to 160, and a restyled one keeps colour too.
pub fn colourless(u: (&[u8], usize), v: (&[u8], usize), width: usize, height: usize) -> bool {
    let mut samples = 0usize;
    let mut coloured = 0usize;
    for (data, stride) in [u, v] {
        for y in (0..height).step_by(4) {
            let Some(row) = data.get(y * stride..y * stride + width) else {
                return false;
            };
            for &c in row.iter().step_by(4) {
                samples += 1;
                coloured += usize::from(c.abs_diff(128) > COLOUR_DISTANCE);
            }
        }
    }
    samples > 0 && coloured * 100 <= samples
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(width: usize, height: usize, index: u32) -> Vec<u8> {
        let mut y = vec![0; width * height];
        draw_luma(
            &mut Plane {
                data: &mut y,
                stride: width,
                width,
                height,
            },
            index,
            30,
        );
        let mut u = vec![0; width * height / 4];
        draw_chroma(
            &mut Plane {
                data: &mut u,
                stride: width / 2,
                width,
                height,
            },
            index,
            Chroma::U,
        );
        assert!(u.iter().all(|&c| (96..160).contains(&c)));
        y
    }

    #[test]
    fn code_reads_back_and_consecutive_frames_differ() {
        for (w, h) in [(512, 512), (64, 64), (320, 180)] {
            let a = render(w, h, 1234);
            let b = render(w, h, 1235);
            assert_eq!(read_code(&a, w, w, h), Some(1234));
            assert_eq!(read_code(&b, w, w, h), Some(1235));
            let changed = a.iter().zip(&b).filter(|(x, y)| x != y).count();
            assert!(changed > w * h / 2, "{changed} of {} pixels changed", w * h);
        }
    }

    #[test]
    fn the_luminance_marker_steps_every_run_and_reads_back() {
        for (w, h) in [(512, 512), (64, 64), (320, 180)] {
            let states: Vec<_> = [0, 29, 30, 59, 60, 1234]
                .into_iter()
                .map(|index| read_beacon(&render(w, h, index), w, w, h))
                .collect();
            // 1234 / 30 = 41, odd: dark.
            assert_eq!(
                states,
                [true, true, false, false, true, false].map(Some),
                "{w}x{h}"
            );
            // The marker leaves the number readable.
            assert_eq!(read_code(&render(w, h, 31), w, w, h), Some(31));
        }
        // Gray (the overlay), and restyled: darker and noisy, still clearly bright or dark.
        assert_eq!(read_beacon(&vec![128; 512 * 512], 512, 512, 512), None);
        for (index, bright) in [(0, true), (30, false)] {
            let mut styled = render(512, 512, index);
            for (i, p) in styled.iter_mut().enumerate() {
                let noise = (i * 7919 % 61) as i32 - 30;
                *p = (i32::from(*p) * 4 / 5 + 20 + noise).clamp(0, 255) as u8;
            }
            assert_eq!(read_beacon(&styled, 512, 512, 512), Some(bright));
        }
        assert_eq!(read_beacon(&[0; 16], 4, 4, 4), None, "too small");
    }

    #[test]
    fn the_segment_marker_carries_the_segment_index_modulo_16() {
        for (w, h) in [(512, 512), (64, 64), (320, 180), (1280, 720)] {
            for segment in 0..20u32 {
                for offset in [0, 29] {
                    let index = segment * 30 + offset;
                    let y = render(w, h, index);
                    assert_eq!(
                        read_marker(&y, w, w, h),
                        Some((segment % 16) as u8),
                        "{w}x{h} frame {index}"
                    );
                    // Bit 0 is the luminance step marker, and the number stays readable.
                    assert_eq!(read_beacon(&y, w, w, h), Some(segment % 2 == 0));
                    assert_eq!(read_code(&y, w, w, h), Some(index));
                }
            }
        }
        // Restyled (darker and noisy): still read; gray (the overlay) or a picture that is not
        // lvt's: not read.
        for segment in [5u32, 10] {
            let mut styled = render(512, 512, segment * 30 + 7);
            for (i, p) in styled.iter_mut().enumerate() {
                let noise = (i * 7919 % 61) as i32 - 30;
                *p = (i32::from(*p) * 4 / 5 + 20 + noise).clamp(0, 255) as u8;
            }
            assert_eq!(read_marker(&styled, 512, 512, 512), Some(segment as u8));
        }
        assert_eq!(read_marker(&vec![128; 512 * 512], 512, 512, 512), None);
        let mut half = render(512, 512, 0);
        let (x, y, side) = marker_squares(512, 512)[2];
        for row in y..y + side {
            half[row * 512 + x..row * 512 + x + side].fill(128);
        }
        assert_eq!(
            read_marker(&half, 512, 512, 512),
            None,
            "one square unclear"
        );
    }

    #[test]
    fn digits_are_drawn_in_the_corner() {
        let y = render(512, 512, 8);
        // Digit 8 at the last position: its top row 0x0e lights columns 1-3. Scale 8, margin 8,
        // cell 48: the last digit starts at x = 8 + 4 * 48 = 200.
        let top_row = 8 + 4;
        assert_eq!(y[top_row * 512 + 200 + 8 + 4], Y_WHITE);
        assert_eq!(y[top_row * 512 + 200 + 4], Y_BLACK);
        // A leading zero's top row 0x0e too, its centre column 2 lit, column 0 dark.
        assert_eq!(y[top_row * 512 + 8 + 2 * 8 + 4], Y_WHITE);
        assert_eq!(y[top_row * 512 + 8 + 4], Y_BLACK);
    }

    #[test]
    fn a_gray_picture_has_no_clear_code_and_no_colour() {
        let gray = vec![128u8; 512 * 512];
        assert_eq!(
            read_code(&gray, 512, 512, 512),
            Some(0),
            "plain reading: all dark"
        );
        assert_eq!(read_code_clear(&gray, 512, 512, 512, 40), None);
        // Dimmed like ai-runner's overlay (x 0.647): white blocks at 152 are not clear either.
        let mut dimmed = render(512, 512, 1234);
        dimmed
            .iter_mut()
            .for_each(|p| *p = (f32::from(*p) * 0.647) as u8);
        assert_eq!(read_code_clear(&dimmed, 512, 512, 512, 40), None);
        let clip = render(512, 512, 1234);
        assert_eq!(read_code_clear(&clip, 512, 512, 512, 40), Some(1234));

        let flat = vec![128u8; 256 * 256];
        assert!(colourless((&flat, 256), (&flat, 256), 256, 256));
        let mut u = vec![0; 256 * 256];
        draw_chroma(
            &mut Plane {
                data: &mut u,
                stride: 256,
                width: 512,
                height: 512,
            },
            7,
            Chroma::U,
        );
        assert!(!colourless((&u, 256), (&flat, 256), 256, 256));
        // A short stride is no picture, not a panic.
        assert!(!colourless((&flat[..100], 256), (&flat, 256), 256, 256));
    }

    #[test]
    fn tiny_pictures_do_not_panic() {
        for (w, h) in [(2, 2), (16, 8), (8, 16)] {
            let y = render(w, h, 99_999);
            assert_eq!(read_code(&y, w, w, h), None);
        }
    }
}
