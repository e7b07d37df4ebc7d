//! The acquirer emulator for integration tests and the demo, and paymentd's configuration
//! pointing at it.

use std::path::{Path, PathBuf};

pub use smartpos_acquirer_sim::terminal::Pace;
use smartpos_acquirer_sim::{Sim, SimConfig};

/// The emulator, in this process, on an ephemeral loopback port, with its PKI under `dir`.
pub async fn start(dir: &Path) -> Sim {
    smartpos_acquirer_sim::start(SimConfig {
        listen: "127.0.0.1:0".parse().expect("loopback address"),
        pki_dir: dir.join("acquirer-pki"),
        ledger_file: None,
    })
    .await
    .expect("the acquirer emulator starts")
}

/// Write a merchant configuration for `sim` and a paymentd configuration using it, with the
/// journal in `dir`. Returns the paymentd config path.
pub fn paymentd_config(sim: &Sim, dir: &Path, pace: Pace, scanner: bool) -> PathBuf {
    paymentd_config_at(sim, &sim.base_url(), dir, pace, scanner, |_| {})
}

/// [`paymentd_config`] with every acquirer path at `base_url` (a fault proxy in front of
/// the emulator), and `edit` applied to the merchant configuration's text.
pub fn paymentd_config_at(
    sim: &Sim,
    base_url: &str,
    dir: &Path,
    pace: Pace,
    scanner: bool,
    edit: impl FnOnce(&mut String),
) -> PathBuf {
    let mut merchant =
        smartpos_acquirer_sim::terminal::merchant_config(base_url, sim.pki(), dir, pace)
            .expect("write merchant secrets");
    edit(&mut merchant);
    let merchant_path = dir.join("merchant.toml");
    std::fs::write(&merchant_path, merchant).expect("write merchant.toml");
    let journal = dir.join("journal.db");
    let text = format!(
        "merchant_config = \"{}\"\njournal = \"{}\"\nscanner = {scanner}\nscan_timeout_ms = 30000\n",
        merchant_path.display(),
        journal.display()
    );
    let path = dir.join("smartpos-paymentd.toml");
    std::fs::write(&path, text).expect("write paymentd config");
    path
}
