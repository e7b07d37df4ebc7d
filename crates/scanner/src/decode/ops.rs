//! Pixel operations the decoder needs before it hands an image to a decoder core:
//! area downscaling, cropping and the mapping of points back to the caller's pixels.

use crate::LumaImage;

/// An axis-aligned window in an image's own pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

impl Rect {
    /// The whole of an image.
    pub fn full(img: &LumaImage) -> Self {
        Rect {
            x: 0,
            y: 0,
            width: img.width,
            height: img.height,
        }
    }

    /// The box around `corners`, grown by `margin` times its larger side on every edge
    /// and clipped to a `width` × `height` image. `None` when nothing is left.
    pub fn around(corners: &[[f32; 2]; 4], margin: f32, width: u32, height: u32) -> Option<Self> {
        let (mut x0, mut y0, mut x1, mut y1) = (f32::MAX, f32::MAX, f32::MIN, f32::MIN);
        for &[x, y] in corners {
            if !x.is_finite() || !y.is_finite() {
                return None;
            }
            x0 = x0.min(x);
            y0 = y0.min(y);
            x1 = x1.max(x);
            y1 = y1.max(y);
        }
        let grow = (x1 - x0).max(y1 - y0) * margin;
        let x0 = (x0 - grow).max(0.0) as u32;
        let y0 = (y0 - grow).max(0.0) as u32;
        let x1 = ((x1 + grow).max(0.0) as u32).min(width);
        let y1 = ((y1 + grow).max(0.0) as u32).min(height);
        (x1 > x0 && y1 > y0).then(|| Rect {
            x: x0,
            y: y0,
            width: x1 - x0,
            height: y1 - y0,
        })
    }

    pub fn area(&self) -> u64 {
        u64::from(self.width) * u64::from(self.height)
    }
}

/// How a derived image's pixels relate to the original: `orig = derived * scale + offset`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Mapping {
    pub scale: f32,
    pub offset: [f32; 2],
}

impl Mapping {
    pub const IDENTITY: Mapping = Mapping {
        scale: 1.0,
        offset: [0.0, 0.0],
    };

    pub fn map(&self, [x, y]: [f32; 2]) -> [f32; 2] {
        [
            x * self.scale + self.offset[0],
            y * self.scale + self.offset[1],
        ]
    }
}

/// Copy a window out of `img`. The window must lie inside the image.
pub fn crop(img: &LumaImage, r: Rect) -> LumaImage {
    debug_assert!(r.x + r.width <= img.width && r.y + r.height <= img.height);
    let (iw, w) = (img.width as usize, r.width as usize);
    let mut data = Vec::with_capacity(w * r.height as usize);
    for y in r.y as usize..(r.y + r.height) as usize {
        let start = y * iw + r.x as usize;
        data.extend_from_slice(&img.data[start..start + w]);
    }
    LumaImage {
        width: r.width,
        height: r.height,
        data,
    }
}

/// Average `k` × `k` blocks (a box filter); edge pixels that do not fill a block are dropped.
pub fn downscale_int(img: &LumaImage, k: u32) -> LumaImage {
    if k <= 1 {
        return img.clone();
    }
    let (w, h) = ((img.width / k).max(1), (img.height / k).max(1));
    let (k, iw) = (k as usize, img.width as usize);
    let kk = (k * k) as u32;
    let mut sums = vec![0u32; w as usize];
    let mut data = Vec::with_capacity(w as usize * h as usize);
    for oy in 0..h as usize {
        sums.fill(0);
        for y in oy * k..((oy + 1) * k).min(img.height as usize) {
            let row = &img.data[y * iw..y * iw + iw];
            for (ox, s) in sums.iter_mut().enumerate() {
                let lo = ox * k;
                let hi = (lo + k).min(iw);
                *s += row[lo..hi].iter().map(|&p| u32::from(p)).sum::<u32>();
            }
        }
        data.extend(sums.iter().map(|&s| ((s + kk / 2) / kk) as u8));
    }
    LumaImage {
        width: w,
        height: h,
        data,
    }
}

/// Area-average resize to exactly `w` × `h` (downscaling only makes sense here), with
/// fractional pixel coverage like Pillow's `BOX` filter.
pub fn resize_area(img: &LumaImage, w: u32, h: u32) -> LumaImage {
    let (w, h) = (w.max(1), h.max(1));
    if (w, h) == (img.width, img.height) {
        return img.clone();
    }
    let horiz = weights(img.width, w);
    let vert = weights(img.height, h);
    let iw = img.width as usize;
    // Horizontal pass into f32 rows, then vertical.
    let mut tmp = vec![0f32; w as usize * img.height as usize];
    for y in 0..img.height as usize {
        let row = &img.data[y * iw..(y + 1) * iw];
        for (ox, ws) in horiz.iter().enumerate() {
            tmp[y * w as usize + ox] = ws.iter().map(|&(i, wt)| f32::from(row[i]) * wt).sum();
        }
    }
    let mut data = vec![0u8; w as usize * h as usize];
    for (oy, ws) in vert.iter().enumerate() {
        for ox in 0..w as usize {
            let v: f32 = ws
                .iter()
                .map(|&(i, wt)| tmp[i * w as usize + ox] * wt)
                .sum();
            data[oy * w as usize + ox] = v.round().clamp(0.0, 255.0) as u8;
        }
    }
    LumaImage {
        width: w,
        height: h,
        data,
    }
}

/// `photo` as a `fw`x`fh` camera frame: scaled to fit, centred on mid-grey and moved by
/// `shift` pixels (a hand that shakes). Returns the frame, and the scale and offset that take
/// photo pixels to frame pixels (`frame = photo * scale + offset`) so labels can follow.
/// Used to build camera replays from still photos.
pub fn letterbox(
    photo: &LumaImage,
    fw: u32,
    fh: u32,
    shift: (i32, i32),
) -> (LumaImage, f32, [f32; 2]) {
    let s = (fw as f32 / photo.width as f32).min(fh as f32 / photo.height as f32);
    let long = ((photo.width.max(photo.height)) as f32 * s).round() as u32;
    let small = fit_long_side(photo, long);
    let ox = (fw - small.width.min(fw)) as i32 / 2 + shift.0;
    let oy = (fh - small.height.min(fh)) as i32 / 2 + shift.1;
    let mut data = vec![128u8; (fw * fh) as usize];
    for y in 0..small.height as i32 {
        for x in 0..small.width as i32 {
            let (tx, ty) = (x + ox, y + oy);
            if tx >= 0 && ty >= 0 && (tx as u32) < fw && (ty as u32) < fh {
                data[(ty as u32 * fw + tx as u32) as usize] =
                    small.data[(y as u32 * small.width + x as u32) as usize];
            }
        }
    }
    let scale = small.width as f32 / photo.width as f32;
    (
        LumaImage {
            width: fw,
            height: fh,
            data,
        },
        scale,
        [ox as f32, oy as f32],
    )
}

/// For each output index, the source indices it covers and their normalised weights.
fn weights(src: u32, dst: u32) -> Vec<Vec<(usize, f32)>> {
    let scale = src as f64 / dst as f64;
    (0..dst)
        .map(|o| {
            let lo = o as f64 * scale;
            let hi = ((o + 1) as f64 * scale).min(src as f64);
            let mut ws = Vec::new();
            let mut i = lo.floor() as usize;
            while (i as f64) < hi {
                let cover = (hi.min(i as f64 + 1.0) - lo.max(i as f64)) as f32;
                if cover > 0.0 {
                    ws.push((i, cover));
                }
                i += 1;
            }
            let total: f32 = ws.iter().map(|w| w.1).sum();
            ws.iter_mut().for_each(|w| w.1 /= total);
            ws
        })
        .collect()
}

/// Scale so the long side is at most `max_side`, keeping the aspect ratio.
pub fn fit_long_side(img: &LumaImage, max_side: u32) -> LumaImage {
    let long = img.width.max(img.height);
    if long <= max_side {
        return img.clone();
    }
    let s = f64::from(max_side) / f64::from(long);
    let w = (f64::from(img.width) * s).round() as u32;
    let h = (f64::from(img.height) * s).round() as u32;
    resize_area(img, w, h)
}

/// Point-in-convex-or-not quadrilateral test (ray casting), for matching labelled corners.
pub fn point_in_quad(p: [f32; 2], quad: &[[f32; 2]; 4]) -> bool {
    let mut inside = false;
    let mut j = 3;
    for i in 0..4 {
        let (a, b) = (quad[i], quad[j]);
        if (a[1] > p[1]) != (b[1] > p[1]) {
            let x = (b[0] - a[0]) * (p[1] - a[1]) / (b[1] - a[1]) + a[0];
            if p[0] < x {
                inside = !inside;
            }
        }
        j = i;
    }
    inside
}

/// Mean of the four corners.
pub fn centre(quad: &[[f32; 2]; 4]) -> [f32; 2] {
    let (sx, sy) = quad
        .iter()
        .fold((0.0, 0.0), |(sx, sy), p| (sx + p[0], sy + p[1]));
    [sx / 4.0, sy / 4.0]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(w: u32, h: u32) -> LumaImage {
        let data = (0..h)
            .flat_map(|y| (0..w).map(move |x| ((x + y) % 256) as u8))
            .collect();
        LumaImage {
            width: w,
            height: h,
            data,
        }
    }

    #[test]
    fn a_2x_box_downscale_averages_each_block() {
        let img = LumaImage {
            width: 4,
            height: 2,
            data: vec![0, 10, 100, 200, 20, 30, 100, 200],
        };
        let small = downscale_int(&img, 2);
        assert_eq!((small.width, small.height), (2, 1));
        assert_eq!(small.data, vec![15, 150]);
    }

    #[test]
    fn area_resize_by_an_integer_factor_matches_the_box_downscale() {
        let img = ramp(64, 48);
        assert_eq!(resize_area(&img, 32, 24), downscale_int(&img, 2));
    }

    #[test]
    fn fitting_a_phone_photo_keeps_its_aspect_ratio() {
        let img = ramp(300, 400);
        let fit = fit_long_side(&img, 128);
        assert_eq!((fit.width, fit.height), (96, 128));
    }

    #[test]
    fn crop_takes_the_window_asked_for() {
        let img = ramp(10, 10);
        let c = crop(
            &img,
            Rect {
                x: 2,
                y: 3,
                width: 4,
                height: 2,
            },
        );
        assert_eq!(c.data, vec![5, 6, 7, 8, 6, 7, 8, 9]);
    }

    #[test]
    fn the_window_around_a_code_is_grown_and_clipped() {
        let q = [[10.0, 10.0], [30.0, 10.0], [30.0, 30.0], [10.0, 30.0]];
        let r = Rect::around(&q, 0.5, 35, 100).unwrap();
        assert_eq!(
            r,
            Rect {
                x: 0,
                y: 0,
                width: 35,
                height: 40
            }
        );
        assert!(Rect::around(&[[f32::NAN, 0.0]; 4], 0.5, 35, 100).is_none());
    }

    #[test]
    fn points_inside_and_outside_a_tilted_quad() {
        let q = [[50.0, 0.0], [100.0, 50.0], [50.0, 100.0], [0.0, 50.0]];
        assert!(point_in_quad([50.0, 50.0], &q));
        assert!(!point_in_quad([5.0, 5.0], &q));
        assert_eq!(centre(&q), [50.0, 50.0]);
    }
}
