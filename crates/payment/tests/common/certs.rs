//! The Alipay path pointed at a TLS server with a chosen certificate, pinning that server's CA.

use smartpos_faultproxy::certs::{CertKind, CertServer, TestPki};

use super::Harness;

pub struct BadServer {
    pub harness: Harness,
    _server: CertServer,
    _ca_dir: tempfile::TempDir,
}

/// The emulator's configuration, but the Alipay path goes to a server presenting a `kind`
/// certificate, and pins the CA of that server's throwaway PKI.
pub async fn alipay_behind(kind: CertKind) -> BadServer {
    let pki = TestPki::new().expect("pki");
    let server = CertServer::start(&pki, kind).await.expect("server");
    let ca_dir = tempfile::tempdir().expect("tempdir");
    let ca = ca_dir.path().join("alipay-ca.pem");
    std::fs::write(&ca, pki.ca_pem()).expect("write CA");
    let url = server.url();
    let harness = Harness::start_with(|t| {
        let head = "name = \"alipay\"\nkind = \"alipay\"\n";
        let at = t.find(head).expect("an alipay path") + head.len();
        // The two lines after the head are its url and ca_file.
        let rest = &t[at..];
        let end = rest
            .match_indices('\n')
            .nth(1)
            .map(|(i, _)| at + i + 1)
            .expect("url and ca_file lines");
        t.replace_range(
            at..end,
            &format!("url = \"{url}\"\nca_file = \"{}\"\n", ca.display()),
        );
    })
    .await;
    BadServer {
        harness,
        _server: server,
        _ca_dir: ca_dir,
    }
}
