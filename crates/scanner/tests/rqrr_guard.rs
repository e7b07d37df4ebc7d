//! rqrr cannot be interrupted, so the decoder waits for it only until a deadline and
//! never starts a second job while one is stuck.

use std::time::{Duration, Instant};

use smartpos_scanner::LumaImage;
use smartpos_scanner::decode::synth::{Scene, payment_frame};
use smartpos_scanner::decode::{Decoder, DecoderConfig, quirc};

const PAY: &str = "287654321098765432";

/// A poster of `n` × `n` payment codes: rqrr's grouping step copies the whole image for
/// every candidate, so a big sheet of codes keeps it busy for seconds.
fn poster(n: u32) -> LumaImage {
    let (tile, _) = payment_frame(270, 270, Scene::Qr, PAY, (0, 0), 5).unwrap();
    let side = tile.width * n;
    let mut data = vec![0u8; (side * side) as usize];
    for y in 0..side {
        for x in 0..side {
            data[(y * side + x) as usize] = tile.get(x % tile.width, y % tile.height);
        }
    }
    LumaImage {
        width: side,
        height: side,
        data,
    }
}

#[test]
fn a_poster_that_keeps_rqrr_busy_does_not_hold_up_the_till() {
    let sheet = poster(7);
    let plain = Instant::now();
    let _ = quirc::scan_unguarded(&sheet);
    let plain = plain.elapsed();
    assert!(
        plain > Duration::from_millis(200),
        "rqrr took only {plain:?}; the poster no longer stresses it"
    );

    let cfg = DecoderConfig {
        zxing: false,
        rqrr_max_side: 4096,
        rqrr_budget: Duration::from_millis(50),
        ..DecoderConfig::default()
    };
    let mut decoder = Decoder::new(cfg);
    let t = Instant::now();
    let out = decoder.decode(&sheet);
    assert!(out.timed_out, "rqrr finished within 50 ms after all");
    assert!(
        t.elapsed() < Duration::from_millis(400),
        "the caller waited {:?}",
        t.elapsed()
    );

    // The next customer's frame arrives while rqrr is still on the poster: it is
    // answered at once, and no second rqrr job is piled on.
    let (frame, _) = payment_frame(640, 480, Scene::Qr, PAY, (0, 0), 9).unwrap();
    let t = Instant::now();
    let out = decoder.decode(&frame);
    assert!(out.timed_out && out.codes.is_empty());
    assert!(
        t.elapsed() < Duration::from_millis(50),
        "a busy rqrr was waited for ({:?})",
        t.elapsed()
    );

    // When the stuck job ends, the same decoder reads again.
    let until = Instant::now() + plain * 4 + Duration::from_secs(5);
    loop {
        let out = decoder.decode(&frame);
        if out.codes.iter().any(|c| c.text == PAY) {
            break;
        }
        assert!(Instant::now() < until, "rqrr never came back");
        std::thread::sleep(Duration::from_millis(50));
    }
}
