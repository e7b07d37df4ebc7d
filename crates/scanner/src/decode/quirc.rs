//! The cascade core: rqrr (a Rust port of quirc), run only on what zxing-cpp missed.
//!
//! rqrr cannot be told to stop: it has panicked on a real photo (a degenerate perspective
//! fit in `detect_grids`) and spent over a minute in `detect_grids` on a monitor photo. So
//! it runs on one worker thread of its own, inside `catch_unwind`, and the caller waits
//! only until its deadline. While a stuck job still runs, no new job is started: a hung
//! rqrr costs one thread, never a pile of them.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::thread;
use std::time::Instant;

use rqrr::BitGrid;

use super::ops::Mapping;
use super::{Code, Core, Symbology};
use crate::LumaImage;

/// What one rqrr attempt came to.
#[derive(Debug)]
pub(crate) enum Attempt {
    Codes(Vec<Code>),
    /// The deadline passed; the job goes on in the background and its result is dropped.
    TimedOut,
    /// An earlier job is still running past its deadline, so this one was not started.
    Busy,
    /// rqrr panicked on this image; the worker survives.
    Panicked,
}

/// Which thresholds rqrr reads an image with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Looks {
    /// rqrr's own per-row threshold, then the local-mean one if that finds nothing.
    Both,
    /// rqrr's own threshold only.
    Own,
    /// The 2-D local-mean threshold only.
    LocalMean,
}

impl Looks {
    fn passes(self) -> &'static [bool] {
        match self {
            Looks::Both => &[false, true],
            Looks::Own => &[false],
            Looks::LocalMean => &[true],
        }
    }
}

struct Job {
    id: u64,
    looks: Looks,
    img: LumaImage,
    map: Mapping,
}

struct Done {
    id: u64,
    codes: Option<Vec<Code>>,
}

struct Worker {
    jobs: Sender<Job>,
    done: Receiver<Done>,
    busy: Arc<AtomicBool>,
}

/// Owner of the rqrr worker thread.
#[derive(Default)]
pub(crate) struct QuircStage {
    worker: Option<Worker>,
    next_id: u64,
}

impl std::fmt::Debug for QuircStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuircStage")
            .field("running", &self.worker.is_some())
            .field("busy", &self.is_busy())
            .finish()
    }
}

impl QuircStage {
    /// True while a job (possibly one that overran) is still inside rqrr.
    pub(crate) fn is_busy(&self) -> bool {
        self.worker
            .as_ref()
            .is_some_and(|w| w.busy.load(Ordering::Acquire))
    }

    /// Hand `img` to the worker without waiting, so the caller can do other work
    /// meanwhile; `Err` when no job was started (busy, or no thread to be had).
    pub(crate) fn start(
        &mut self,
        img: LumaImage,
        map: Mapping,
        looks: Looks,
    ) -> Result<u64, Attempt> {
        if self.is_busy() {
            return Err(Attempt::Busy);
        }
        if self.worker.is_none() {
            // No thread to be had: treat it like a job that never finished.
            self.worker = Some(spawn().ok_or(Attempt::TimedOut)?);
        }
        let Some(worker) = self.worker.as_ref() else {
            return Err(Attempt::TimedOut);
        };
        // Drop results of jobs that overran earlier (any still in flight are skipped by id).
        while worker.done.try_recv().is_ok() {}
        self.next_id += 1;
        let id = self.next_id;
        worker.busy.store(true, Ordering::Release);
        if worker
            .jobs
            .send(Job {
                id,
                looks,
                img,
                map,
            })
            .is_err()
        {
            // The thread is gone; a fresh one is spawned next time.
            self.worker = None;
            return Err(Attempt::Panicked);
        }
        Ok(id)
    }

    /// Wait for job `id` until `deadline`.
    pub(crate) fn wait(&mut self, id: u64, deadline: Instant) -> Attempt {
        let Some(worker) = self.worker.as_ref() else {
            return Attempt::Panicked;
        };
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match worker.done.recv_timeout(left) {
                Ok(done) if done.id == id => {
                    return match done.codes {
                        Some(codes) => Attempt::Codes(codes),
                        None => Attempt::Panicked,
                    };
                }
                Ok(_) => continue,
                Err(RecvTimeoutError::Timeout) => {
                    tracing::debug!(
                        job = id,
                        "rqrr overran its deadline; result will be dropped"
                    );
                    return Attempt::TimedOut;
                }
                Err(RecvTimeoutError::Disconnected) => {
                    self.worker = None;
                    return Attempt::Panicked;
                }
            }
        }
    }
}

fn spawn() -> Option<Worker> {
    let (jobs, job_rx) = channel::<Job>();
    let (done_tx, done) = channel::<Done>();
    let busy = Arc::new(AtomicBool::new(false));
    let flag = busy.clone();
    let spawned = thread::Builder::new().name("rqrr".into()).spawn(move || {
        for job in job_rx {
            let codes = catch_unwind(AssertUnwindSafe(|| scan(&job.img, job.map, job.looks))).ok();
            if codes.is_none() {
                tracing::warn!(
                    width = job.img.width,
                    height = job.img.height,
                    "rqrr panicked on a frame; treated as no read"
                );
            }
            // Clear `busy` first: once the caller holds this result the worker must already
            // count as idle. A late result of an overrun job is told apart by its id.
            flag.store(false, Ordering::Release);
            if done_tx.send(Done { id: job.id, codes }).is_err() {
                break;
            }
        }
    });
    match spawned {
        Ok(_) => Some(Worker { jobs, done, busy }),
        Err(e) => {
            tracing::error!(error = %e, "cannot start the rqrr worker thread");
            None
        }
    }
}

/// rqrr on one image: first with its own threshold (a per-row running mean), and when that
/// finds nothing, again on a 2-D local-mean threshold, which keeps finder patterns whole
/// under glare and uneven light where the row average drifts. Measured on the BoofCV
/// photos, the second look adds a few codes that neither zxing-cpp nor plain rqrr read.
fn scan(img: &LumaImage, map: Mapping, looks: Looks) -> Vec<Code> {
    let (w, h) = (img.width as usize, img.height as usize);
    if w == 0 || h == 0 {
        return Vec::new();
    }
    for &second_look in looks.passes() {
        let mut prepared = if second_look {
            let dark = local_mean_threshold(img, (w.max(h) / 16).max(8), 5);
            rqrr::PreparedImage::prepare_from_bitmap(w, h, |x, y| dark[y * w + x])
        } else {
            rqrr::PreparedImage::prepare_from_greyscale(w, h, |x, y| img.data[y * w + x])
        };
        let found: Vec<Code> = prepared
            .detect_grids()
            .iter()
            .filter_map(|grid| {
                let (_meta, text) = grid.decode().ok()?;
                let corners = outer_corners(grid.bounds, grid.grid.size()).map(|p| map.map(p));
                Some(Code {
                    text,
                    symbology: Symbology::Qr,
                    corners,
                    core: Core::Rqrr,
                })
            })
            .collect();
        if !found.is_empty() {
            return found;
        }
    }
    Vec::new()
}

/// Dark pixels: those more than `offset` below the mean of the (2r+1)² box around them
/// (an integral image makes that O(1) per pixel).
fn local_mean_threshold(img: &LumaImage, r: usize, offset: u32) -> Vec<bool> {
    let (w, h) = (img.width as usize, img.height as usize);
    let stride = w + 1;
    let mut integral = vec![0u32; stride * (h + 1)];
    for y in 0..h {
        let mut row = 0u32;
        for x in 0..w {
            row += u32::from(img.data[y * w + x]);
            integral[(y + 1) * stride + x + 1] = integral[y * stride + x + 1] + row;
        }
    }
    let mut dark = vec![false; w * h];
    for y in 0..h {
        let (y0, y1) = (y.saturating_sub(r), (y + r + 1).min(h));
        for x in 0..w {
            let (x0, x1) = (x.saturating_sub(r), (x + r + 1).min(w));
            let sum = integral[y1 * stride + x1] + integral[y0 * stride + x0]
                - integral[y0 * stride + x1]
                - integral[y1 * stride + x0];
            let n = ((y1 - y0) * (x1 - x0)) as u32;
            dark[y * w + x] = (u32::from(img.data[y * w + x]) + offset) * n < sum;
        }
    }
    dark
}

/// rqrr reports the corners of a (size + 1)-module square, one module past the far
/// edges; pull them back along the edges from the top-left so they sit on the symbol.
fn outer_corners(b: [rqrr::Point; 4], size: usize) -> [[f32; 2]; 4] {
    let f = size as f32 / (size as f32 + 1.0);
    let o = [b[0].x as f32, b[0].y as f32];
    let toward = |p: rqrr::Point| {
        [
            o[0] + (p.x as f32 - o[0]) * f,
            o[1] + (p.y as f32 - o[1]) * f,
        ]
    };
    [o, toward(b[1]), toward(b[2]), toward(b[3])]
}

/// rqrr alone, in the calling thread and without any guard: for the benchmark's
/// "rqrr alone" column and for tests that compare against it.
pub fn scan_unguarded(img: &LumaImage) -> Vec<Code> {
    scan(img, Mapping::IDENTITY, Looks::Both)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_local_mean_threshold_marks_dark_print_on_a_light_ramp() {
        // A dark square on a left-to-right brightness ramp: a global cut would lose it
        // at one end or swallow the background at the other.
        let (w, h) = (64u32, 32u32);
        let data = (0..h)
            .flat_map(|y| {
                (0..w).map(move |x| {
                    let bg = 60 + x as i32;
                    let ink = (20..28).contains(&y) && (x % 16) < 6;
                    (if ink { bg - 50 } else { bg }).clamp(0, 255) as u8
                })
            })
            .collect();
        let img = LumaImage {
            width: w,
            height: h,
            data,
        };
        let dark = local_mean_threshold(&img, 8, 5);
        for y in 0..h as usize {
            for x in 0..w as usize {
                let ink = (20..28).contains(&y) && (x % 16) < 6;
                assert_eq!(dark[y * w as usize + x], ink, "pixel {x},{y}");
            }
        }
    }
}
