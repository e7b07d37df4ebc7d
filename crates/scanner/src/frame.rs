//! Camera frames and their conversion to 8-bit luma, the one format the decoder reads.

use std::time::{Instant, SystemTime};

/// Pixel formats that capture negotiates (V4L2 fourcc in brackets).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum PixelFormat {
    /// 8-bit greyscale (`GREY`).
    Grey,
    /// Packed 4:2:2, Y0 U Y1 V (`YUYV`).
    Yuyv,
    /// Planar Y then interleaved UV at half resolution (`NV12`).
    Nv12,
    /// A JPEG per frame (`MJPG`).
    Mjpeg,
    /// Packed 8-bit RGB (`RGB3`), as replay files decode to.
    Rgb24,
}

impl PixelFormat {
    /// The V4L2 fourcc for this format.
    pub fn fourcc(self) -> [u8; 4] {
        match self {
            PixelFormat::Grey => *b"GREY",
            PixelFormat::Yuyv => *b"YUYV",
            PixelFormat::Nv12 => *b"NV12",
            PixelFormat::Mjpeg => *b"MJPG",
            PixelFormat::Rgb24 => *b"RGB3",
        }
    }

    /// The format for a V4L2 fourcc, if we can use it.
    pub fn from_fourcc(cc: [u8; 4]) -> Option<Self> {
        match &cc {
            b"GREY" => Some(PixelFormat::Grey),
            b"YUYV" => Some(PixelFormat::Yuyv),
            b"NV12" => Some(PixelFormat::Nv12),
            b"MJPG" => Some(PixelFormat::Mjpeg),
            b"RGB3" => Some(PixelFormat::Rgb24),
            _ => None,
        }
    }
}

/// Why a frame could not be turned into luma.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The buffer is smaller than width × height needs for its format.
    #[error("{format:?} frame {width}x{height} needs {needed} bytes, got {got}")]
    ShortBuffer {
        format: PixelFormat,
        width: u32,
        height: u32,
        needed: usize,
        got: usize,
    },
    /// An MJPEG frame that does not decode.
    #[error("MJPEG frame does not decode: {0}")]
    BadJpeg(String),
}

/// One captured frame, as the device delivered it.
#[derive(Debug, Clone)]
pub struct Frame {
    pub width: u32,
    pub height: u32,
    pub format: PixelFormat,
    pub data: Vec<u8>,
    /// Frame counter of its source.
    pub seq: u64,
    /// Monotonic capture time.
    pub captured: Instant,
    /// Wall-clock capture time.
    pub wall: SystemTime,
}

/// An 8-bit greyscale image, row-major, no padding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LumaImage {
    pub width: u32,
    pub height: u32,
    pub data: Vec<u8>,
}

impl LumaImage {
    /// Pixel at (x, y); panics when out of range, like slice indexing.
    pub fn get(&self, x: u32, y: u32) -> u8 {
        self.data[(y as usize) * (self.width as usize) + x as usize]
    }
}

impl Frame {
    /// A greyscale frame stamped now, for tests and replay.
    pub fn from_luma(img: LumaImage, seq: u64) -> Self {
        Frame {
            width: img.width,
            height: img.height,
            format: PixelFormat::Grey,
            data: img.data,
            seq,
            captured: Instant::now(),
            wall: SystemTime::now(),
        }
    }

    /// Extract the luma plane. Raw formats only copy bytes; MJPEG is decoded.
    pub fn to_luma(&self) -> Result<LumaImage, FrameError> {
        let (w, h) = (self.width as usize, self.height as usize);
        let pixels = w * h;
        let need = |needed: usize| -> Result<(), FrameError> {
            if self.data.len() < needed {
                Err(FrameError::ShortBuffer {
                    format: self.format,
                    width: self.width,
                    height: self.height,
                    needed,
                    got: self.data.len(),
                })
            } else {
                Ok(())
            }
        };
        let data = match self.format {
            PixelFormat::Grey => {
                need(pixels)?;
                self.data[..pixels].to_vec()
            }
            // NV12's first plane is exactly the luma.
            PixelFormat::Nv12 => {
                need(pixels + pixels / 2)?;
                self.data[..pixels].to_vec()
            }
            PixelFormat::Yuyv => {
                need(pixels * 2)?;
                self.data[..pixels * 2].iter().step_by(2).copied().collect()
            }
            PixelFormat::Rgb24 => {
                need(pixels * 3)?;
                self.data[..pixels * 3]
                    .chunks_exact(3)
                    .map(|p| luma_of(p[0], p[1], p[2]))
                    .collect()
            }
            PixelFormat::Mjpeg => {
                let img = image::load_from_memory_with_format(&self.data, image::ImageFormat::Jpeg)
                    .map_err(|e| FrameError::BadJpeg(e.to_string()))?
                    .into_luma8();
                return Ok(LumaImage {
                    width: img.width(),
                    height: img.height(),
                    data: img.into_raw(),
                });
            }
        };
        Ok(LumaImage {
            width: self.width,
            height: self.height,
            data,
        })
    }
}

/// ITU-R BT.601 luma, in integer arithmetic.
fn luma_of(r: u8, g: u8, b: u8) -> u8 {
    ((u32::from(r) * 299 + u32::from(g) * 587 + u32::from(b) * 114 + 500) / 1000) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(format: PixelFormat, w: u32, h: u32, data: Vec<u8>) -> Frame {
        Frame {
            width: w,
            height: h,
            format,
            data,
            seq: 0,
            captured: Instant::now(),
            wall: SystemTime::now(),
        }
    }

    #[test]
    fn yuyv_keeps_every_other_byte() {
        let f = frame(PixelFormat::Yuyv, 2, 1, vec![10, 128, 20, 128]);
        assert_eq!(f.to_luma().unwrap().data, vec![10, 20]);
    }

    #[test]
    fn nv12_takes_the_first_plane() {
        let f = frame(PixelFormat::Nv12, 2, 2, vec![1, 2, 3, 4, 128, 128]);
        assert_eq!(f.to_luma().unwrap().data, vec![1, 2, 3, 4]);
    }

    #[test]
    fn a_short_buffer_is_an_error_not_a_panic() {
        let f = frame(PixelFormat::Yuyv, 640, 480, vec![0; 100]);
        assert!(matches!(f.to_luma(), Err(FrameError::ShortBuffer { .. })));
    }

    #[test]
    fn rgb_white_is_white() {
        let f = frame(PixelFormat::Rgb24, 1, 1, vec![255, 255, 255]);
        assert_eq!(f.to_luma().unwrap().data, vec![255]);
    }
}
