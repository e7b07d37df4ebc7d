//! `posctl scan`, `posctl scanner …`, `posctl decode`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::StreamExt;
use smartpos_bus::scanner::ScannerProxy;
use smartpos_runtime::exit::Exit;
use smartpos_scanner::decode::Decoder;
use smartpos_scanner::imagefile::decode_file;

use crate::Error;

async fn proxy() -> Result<ScannerProxy<'static>, Error> {
    let conn = smartpos_runtime::bus::connect_system().await?;
    let dbus = zbus::fdo::DBusProxy::new(&conn).await?;
    let name = zbus::names::BusName::try_from(smartpos_bus::scanner::INTERFACE)
        .map_err(|e| Error::Failed(e.to_string()))?;
    if !dbus.name_has_owner(name).await? {
        return Err(Error::NotRunning(format!(
            "the scanner ({})",
            smartpos_bus::scanner::INTERFACE
        )));
    }
    Ok(ScannerProxy::new(&conn).await?)
}

/// Arm the scanner, wait for one code, disarm, print it.
pub async fn scan(timeout: u32, sources: &[String], json: bool) -> Result<(), Error> {
    let scanner = proxy().await?;
    // Subscribe before arming so that a code read at once is not missed.
    let mut codes = scanner.receive_code_scanned().await?;
    let refs: Vec<&str> = sources.iter().map(String::as_str).collect();
    let ms = timeout.saturating_mul(1000);
    let session = scanner.start_scan(ms, &refs).await?;
    if !json {
        eprintln!("posctl: waiting up to {timeout} s for a code (session {session})…");
    }
    let wait = async {
        while let Some(sig) = codes.next().await {
            let args = sig.args()?;
            if args.session == session {
                return Ok::<_, zbus::Error>(Some((
                    args.text,
                    args.symbology,
                    args.source,
                    args.wall_us,
                )));
            }
        }
        Ok(None)
    };
    let got = tokio::time::timeout(Duration::from_millis(u64::from(ms)), wait).await;
    let _ = scanner.stop_scan(session).await;
    match got {
        Ok(Ok(Some((text, symbology, source, wall_us)))) => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({"text": text, "symbology": symbology, "source": source, "wall_us": wall_us, "session": session})
                );
            } else {
                println!("{text}");
                eprintln!("posctl: {symbology} from {source}");
            }
            Ok(())
        }
        Ok(Ok(None)) => Err(Error::Failed(
            "the scanner left the bus while waiting".into(),
        )),
        Ok(Err(e)) => Err(e.into()),
        Err(_) => Err(Error::Timeout(format!("no code within {timeout} s"))),
    }
}

#[derive(Debug, serde::Serialize)]
struct Health {
    version: String,
    state: String,
    sources: Vec<Source>,
    verdict: String,
    advice: String,
    frames_per_second: f64,
    decode_attempts: u64,
    decode_successes: u64,
    brightness: f64,
    contrast: f64,
    sharpness: f64,
    duplicate_window_ms: u32,
}

#[derive(Debug, serde::Serialize)]
struct Source {
    kind: String,
    name: String,
    state: String,
}

pub async fn status(json: bool) -> Result<(), Error> {
    let s = proxy().await?;
    let h = Health {
        version: s.version().await?,
        state: s.state().await?,
        sources: s
            .sources()
            .await?
            .into_iter()
            .map(|(kind, name, state)| Source { kind, name, state })
            .collect(),
        verdict: s.verdict().await?,
        advice: s.advice().await?,
        frames_per_second: s.frames_per_second().await?,
        decode_attempts: s.decode_attempts().await?,
        decode_successes: s.decode_successes().await?,
        brightness: s.brightness().await?,
        contrast: s.contrast().await?,
        sharpness: s.sharpness().await?,
        duplicate_window_ms: s.duplicate_window_ms().await?,
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&h).map_err(|e| Error::Failed(e.to_string()))?
        );
        return Ok(());
    }
    println!("scanner {} — {}", h.version, h.state);
    println!("camera verdict: {}", h.verdict);
    println!("  {}", h.advice);
    println!(
        "frames/s {:.1}   decoded {}/{} frames   brightness {:.0}   contrast {:.1}   sharpness {:.0}",
        h.frames_per_second,
        h.decode_successes,
        h.decode_attempts,
        h.brightness,
        h.contrast,
        h.sharpness
    );
    if h.sources.is_empty() {
        println!("sources: none configured");
    }
    for src in &h.sources {
        println!("source {:<7} {:<40} {}", src.kind, src.name, src.state);
    }
    Ok(())
}

pub async fn snapshot(file: &Path, json: bool) -> Result<(), Error> {
    let png = proxy().await?.snapshot().await?;
    std::fs::write(file, &png)
        .map_err(|e| Error::Input(format!("cannot write {}: {e}", file.display())))?;
    if json {
        println!(
            "{}",
            serde_json::json!({"file": file.display().to_string(), "bytes": png.len()})
        );
    } else {
        println!("saved {} ({} bytes)", file.display(), png.len());
    }
    Ok(())
}

/// Decode files; one line per file. Unreadable files are reported and the run goes on;
/// the exit code is 65 if any file could not be read.
pub fn decode(images: &[PathBuf], json: bool) -> Exit {
    let mut decoder = Decoder::default();
    let mut failed = false;
    for path in images {
        let report = decode_file(&mut decoder, path);
        failed |= report.error.is_some();
        if json {
            println!("{}", report.to_json());
        } else if let Some(e) = &report.error {
            println!("{}: error: {e}", report.file);
        } else {
            let codes = report.codes.as_deref().unwrap_or_default();
            if codes.is_empty() {
                println!(
                    "{}: no code ({:.1} ms)",
                    report.file,
                    report.ms.unwrap_or(0.0)
                );
            }
            for c in codes {
                println!(
                    "{}: {} {:?} ({:.1} ms)",
                    report.file,
                    c.symbology.as_str(),
                    c.text,
                    report.ms.unwrap_or(0.0)
                );
            }
        }
    }
    if failed { Exit::DataErr } else { Exit::Ok }
}
