//! One set of error classes for every HTTPS call the stack makes, and where the line between
//! "provably never sent" and "may have been sent" runs.
//!
//! The line: nothing leaves the terminal before the TLS handshake completed (rustls sends no
//! early data), so a failure up to and including the handshake means the server never saw a
//! request byte. Everything after it — a request written, an answer late, cut off or refused
//! with an HTTP status — may have reached the server, and for a payment that means "query
//! before doing anything else".

use std::io;

/// What went wrong, in words a technician (and, through its catalogue row, a cashier) can act
/// on. [`ErrorClass::code`] is the stable string shown on the bus and in the catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// The host name did not resolve (no answer from the resolver, no such name, no address).
    Dns,
    /// The TCP connection could not be opened: refused, no route to the host, network down.
    Refused,
    /// No secure connection within the connect or handshake timeout (a black hole, a
    /// saturated link).
    ConnectTimeout,
    /// The TLS handshake failed for a reason other than the certificate checks below: the
    /// server refused our protocol versions or our client certificate, or hung up mid-way.
    Handshake,
    /// The server's certificate is past its end date by this terminal's clock.
    CertExpired,
    /// The server's certificate is not valid yet by this terminal's clock — almost always a
    /// terminal clock that is behind.
    CertNotYetValid,
    /// The server's certificate was not issued by the pinned CA (or its signature is bad).
    CertUntrusted,
    /// The server's certificate is for another host name.
    CertNameMismatch,
    /// The request was sent and the whole answer did not arrive within the read timeout.
    ReadTimeout,
    /// The request was sent and the connection broke before the whole answer arrived.
    ResetMidResponse,
    /// The server answered with this HTTP status instead of an answer of the protocol.
    HttpStatus(u16),
}

impl ErrorClass {
    /// Every class, for tables and tests (`HttpStatus` with a representative status).
    pub const ALL: [ErrorClass; 11] = [
        ErrorClass::Dns,
        ErrorClass::Refused,
        ErrorClass::ConnectTimeout,
        ErrorClass::Handshake,
        ErrorClass::CertExpired,
        ErrorClass::CertNotYetValid,
        ErrorClass::CertUntrusted,
        ErrorClass::CertNameMismatch,
        ErrorClass::ReadTimeout,
        ErrorClass::ResetMidResponse,
        ErrorClass::HttpStatus(502),
    ];

    /// Whether the request may have reached the server. `false` is a proof that it did not:
    /// the failure came before the TLS handshake completed, so not one request byte was
    /// written. `true` means its effect is unknown.
    pub fn sent(&self) -> bool {
        matches!(
            self,
            ErrorClass::ReadTimeout | ErrorClass::ResetMidResponse | ErrorClass::HttpStatus(_)
        )
    }

    /// The stable code (`net.dns`, `net.cert_expired`, …): the key of the class's row in the
    /// cause catalogue (`smartpos_acquirer::catalogue::NETWORK_CODES`).
    pub fn code(&self) -> &'static str {
        match self {
            ErrorClass::Dns => "net.dns",
            ErrorClass::Refused => "net.refused",
            ErrorClass::ConnectTimeout => "net.connect_timeout",
            ErrorClass::Handshake => "net.handshake",
            ErrorClass::CertExpired => "net.cert_expired",
            ErrorClass::CertNotYetValid => "net.cert_not_yet_valid",
            ErrorClass::CertUntrusted => "net.cert_untrusted",
            ErrorClass::CertNameMismatch => "net.cert_name_mismatch",
            ErrorClass::ReadTimeout => "net.read_timeout",
            ErrorClass::ResetMidResponse => "net.reset_mid_response",
            ErrorClass::HttpStatus(_) => "net.http_status",
        }
    }

    /// The class a certificate or handshake failure reported by rustls belongs to.
    pub fn of_tls(error: &rustls::Error) -> ErrorClass {
        use rustls::CertificateError as C;
        match error {
            rustls::Error::InvalidCertificate(c) => match c {
                C::Expired | C::ExpiredContext { .. } => ErrorClass::CertExpired,
                C::NotValidYet | C::NotValidYetContext { .. } => ErrorClass::CertNotYetValid,
                C::NotValidForName | C::NotValidForNameContext { .. } => {
                    ErrorClass::CertNameMismatch
                }
                C::UnknownIssuer | C::BadSignature | C::Revoked | C::InvalidPurpose => {
                    ErrorClass::CertUntrusted
                }
                _ => ErrorClass::CertUntrusted,
            },
            _ => ErrorClass::Handshake,
        }
    }

    /// The class of an I/O error from the TLS handshake: rustls' own error when it carries
    /// one, else a broken connection during the handshake.
    pub fn of_handshake_io(error: &io::Error) -> ErrorClass {
        match error
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            Some(tls) => ErrorClass::of_tls(tls),
            None if error.kind() == io::ErrorKind::TimedOut => ErrorClass::ConnectTimeout,
            None => ErrorClass::Handshake,
        }
    }

    /// The class of a failed TCP connect.
    pub fn of_connect_io(error: &io::Error) -> ErrorClass {
        match error.kind() {
            io::ErrorKind::TimedOut => ErrorClass::ConnectTimeout,
            _ => ErrorClass::Refused,
        }
    }
}

impl std::fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ErrorClass::HttpStatus(s) => write!(f, "{} {s}", self.code()),
            _ => f.write_str(self.code()),
        }
    }
}

/// A failed HTTPS call: its class, and what exactly happened (host, address, the library's
/// words) for logs and the sale's raw detail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{class}: {detail}")]
pub struct TransportError {
    pub class: ErrorClass,
    pub detail: String,
}

impl TransportError {
    pub fn new(class: ErrorClass, detail: impl Into<String>) -> TransportError {
        TransportError {
            class,
            detail: detail.into(),
        }
    }

    /// See [`ErrorClass::sent`].
    pub fn sent(&self) -> bool {
        self.class.sent()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_failures_after_the_handshake_count_as_maybe_sent() {
        let sent: Vec<_> = ErrorClass::ALL.iter().filter(|c| c.sent()).collect();
        assert_eq!(
            sent,
            [
                &ErrorClass::ReadTimeout,
                &ErrorClass::ResetMidResponse,
                &ErrorClass::HttpStatus(502)
            ]
        );
    }

    #[test]
    fn codes_are_distinct_and_namespaced() {
        for (i, c) in ErrorClass::ALL.iter().enumerate() {
            assert!(c.code().starts_with("net."), "{c:?}");
            assert!(
                ErrorClass::ALL[i + 1..]
                    .iter()
                    .all(|o| o.code() != c.code()),
                "{c:?}"
            );
        }
    }

    #[test]
    fn rustls_certificate_errors_are_named_for_what_they_are() {
        use rustls::CertificateError as C;
        let of = |c: C| ErrorClass::of_tls(&rustls::Error::InvalidCertificate(c));
        assert_eq!(of(C::Expired), ErrorClass::CertExpired);
        assert_eq!(of(C::NotValidYet), ErrorClass::CertNotYetValid);
        assert_eq!(of(C::UnknownIssuer), ErrorClass::CertUntrusted);
        assert_eq!(of(C::NotValidForName), ErrorClass::CertNameMismatch);
        let io = io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(C::Expired),
        );
        assert_eq!(ErrorClass::of_handshake_io(&io), ErrorClass::CertExpired);
        let reset = io::Error::from(io::ErrorKind::ConnectionReset);
        assert_eq!(ErrorClass::of_handshake_io(&reset), ErrorClass::Handshake);
        assert_eq!(
            ErrorClass::of_connect_io(&io::Error::from(io::ErrorKind::ConnectionRefused)),
            ErrorClass::Refused
        );
    }
}
