//! Streaming downloads (update artifacts): `GET` with `Range: bytes=N-` to resume, each chunk
//! written to the caller's sink as it arrives — the body is never held in memory — with an
//! optional bandwidth cap so that a download does not starve a sale on a thin link.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::header::{HeaderName, HeaderValue};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use crate::client::{PostError, Steps, Transport, date_of};
use crate::config::Endpoint;
use crate::error::{ErrorClass, TransportError};

/// What a finished download got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownloadReport {
    /// 200 (whole body from the start) or 206 (the rest from `range_start`).
    pub status: u16,
    /// Where the body written to the sink starts in the file.
    pub range_start: u64,
    /// Bytes written to the sink by this call.
    pub bytes: u64,
    /// The whole file's length, when the server said (`Content-Range` or `Content-Length`).
    pub total: Option<u64>,
    pub elapsed: Duration,
    /// The server's `Date:`.
    pub date: Option<SystemTime>,
    /// Whether a kept-alive connection was used.
    pub reused: bool,
}

/// Why a download stopped.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// The transport failed, or the server answered with a status other than 200/206 (class
    /// [`ErrorClass::HttpStatus`]; a 200 to a resumed request is one too: the server does
    /// not do ranges, download again from byte 0).
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The sink refused a write (disk full, …); `written` bytes had been written to it.
    #[error("writing the download after {written} bytes: {source}")]
    Sink {
        written: u64,
        source: std::io::Error,
    },
    /// A full URL that is not on this transport's endpoint (another host, port or scheme).
    #[error("{0}")]
    OtherEndpoint(String),
}

impl Transport {
    /// `GET path_or_url` (a path on this endpoint, or a full `https://` URL on the same host
    /// and port) and write the body to `sink` as it arrives. With `range_start > 0` the
    /// request carries `Range: bytes=<range_start>-` and only a `206` whose `Content-Range`
    /// starts there is accepted. `cap` limits the average rate in bytes per second. The read
    /// timeout applies to the answer's head and then to each pause between chunks, not to the
    /// whole download.
    pub async fn download<W: AsyncWrite + Unpin>(
        &self,
        path_or_url: &str,
        headers: &[(HeaderName, HeaderValue)],
        range_start: u64,
        sink: &mut W,
        cap: Option<u64>,
    ) -> Result<DownloadReport, DownloadError> {
        let path = self.same_endpoint_path(path_or_url)?;
        let host = self.endpoint().host.clone();
        let read = self.timeouts().read;
        let started = Instant::now();
        let mut all: Vec<(HeaderName, HeaderValue)> = headers.to_vec();
        if range_start > 0 {
            let range = HeaderValue::from_str(&format!("bytes={range_start}-"))
                .map_err(|e| DownloadError::OtherEndpoint(e.to_string()))?;
            all.push((hyper::header::RANGE, range));
        }
        let request = self.build(hyper::Method::GET, &path, &all, Bytes::new())?;
        let (conn, response, _) = self
            .send::<std::convert::Infallible>(false, &mut Steps::default(), |_| Ok(request))
            .await
            .map_err(|e| match e {
                PostError::Transport(t) => t,
                PostError::Build(never) => match never {},
            })?;
        let status = response.status().as_u16();
        let total = match (status, range_start) {
            (200, 0) => response
                .headers()
                .get(hyper::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok()),
            (206, _) => {
                let range = response
                    .headers()
                    .get(hyper::header::CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                match parse_content_range(range) {
                    Some((first, total)) if first == range_start => total,
                    _ => {
                        return Err(TransportError::new(
                            ErrorClass::HttpStatus(206),
                            format!("{host} answered bytes {range:?}, not from byte {range_start}"),
                        )
                        .into());
                    }
                }
            }
            (200, _) => {
                return Err(TransportError::new(
                    ErrorClass::HttpStatus(200),
                    format!("{host} does not resume downloads; start again from byte 0"),
                )
                .into());
            }
            (s, _) => {
                return Err(TransportError::new(
                    ErrorClass::HttpStatus(s),
                    format!("{host} answered HTTP {s} to GET {path}"),
                )
                .into());
            }
        };
        let date = date_of(response.headers());
        let mut body = response.into_body();
        let mut written: u64 = 0;
        let flowing = Instant::now();
        loop {
            let frame = match tokio::time::timeout(read, body.frame()).await {
                Err(_) => {
                    return Err(TransportError::new(
                        ErrorClass::ReadTimeout,
                        format!("{host} sent nothing for {read:?} after {written} bytes"),
                    )
                    .into());
                }
                Ok(None) => break,
                Ok(Some(Err(e))) => {
                    return Err(TransportError::new(
                        ErrorClass::ResetMidResponse,
                        format!("download from {host} broke after {written} bytes: {e}"),
                    )
                    .into());
                }
                Ok(Some(Ok(frame))) => frame,
            };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            sink.write_all(&data)
                .await
                .map_err(|source| DownloadError::Sink { written, source })?;
            written += data.len() as u64;
            if let Some(cap) = cap.filter(|c| *c > 0) {
                // Sleep until the average since the first byte is back under the cap.
                let due = flowing + Duration::from_secs_f64(written as f64 / cap as f64);
                tokio::time::sleep_until(due).await;
            }
        }
        sink.flush()
            .await
            .map_err(|source| DownloadError::Sink { written, source })?;
        let reused = conn.reused;
        self.checkin(false, conn);
        Ok(DownloadReport {
            status,
            range_start,
            bytes: written,
            total,
            elapsed: started.elapsed(),
            date,
            reused,
        })
    }

    /// The path and query of `path_or_url` when it is on this endpoint.
    fn same_endpoint_path(&self, path_or_url: &str) -> Result<String, DownloadError> {
        if path_or_url.starts_with('/') {
            return Ok(path_or_url.to_owned());
        }
        let other = Endpoint::parse(path_or_url)
            .map_err(|e| DownloadError::OtherEndpoint(e.to_string()))?;
        let mine = self.endpoint();
        if other.host != mine.host || other.port != mine.port {
            return Err(DownloadError::OtherEndpoint(format!(
                "{path_or_url:?} is not on {}: build a transport for its host",
                mine.url()
            )));
        }
        Ok(other.path)
    }
}

/// `bytes <first>-<last>/<total or *>` → (first, total).
fn parse_content_range(s: &str) -> Option<(u64, Option<u64>)> {
    let rest = s.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (first, _last) = range.split_once('-')?;
    let total = match total {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    Some((first.parse().ok()?, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_ranges_give_their_start_and_total() {
        assert_eq!(
            parse_content_range("bytes 100-999/1000"),
            Some((100, Some(1000)))
        );
        assert_eq!(parse_content_range("bytes 0-9/*"), Some((0, None)));
        assert_eq!(parse_content_range("items 0-9/10"), None);
    }
}
