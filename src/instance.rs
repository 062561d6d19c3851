//! Who am I: instance id, availability zone, region and userdata from the
//! EC2 instance metadata service.
//!
//! IMDSv2 first (a session token with a TTL), falling back to IMDSv1 when
//! the token call is refused or times out (old instances, containers with a
//! hop limit of 1). The SDK's own IMDS client speaks only v2, so this is a
//! small HTTP/1.1 client of its own, with short, bounded timeouts: off EC2 the
//! tool must fail in seconds, not retry for 8 minutes as 0.2.12 did.
//! `AWS_EC2_METADATA_SERVICE_ENDPOINT` points it elsewhere, as it does the SDK.

use std::time::Duration;

use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// The SDK's variable for the metadata endpoint (e.g. `http://127.0.0.1:1338`).
pub(crate) const ENDPOINT_ENV: &str = "AWS_EC2_METADATA_SERVICE_ENDPOINT";
/// The SDK's switch to disable metadata lookups.
pub(crate) const DISABLED_ENV: &str = "AWS_EC2_METADATA_DISABLED";
const DEFAULT_ENDPOINT: &str = "http://169.254.169.254";
/// Token lifetime asked for; a run never takes longer.
const TOKEN_TTL_SECONDS: u32 = 21_600;
/// Per-request bound: IMDS answers in milliseconds on EC2.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// Cap on a metadata reply; userdata is at most 16 KiB.
const MAX_REPLY: u64 = 1 << 20;

/// The hint every "no metadata" error carries.
pub(crate) const OFF_EC2_HINT: &str =
    "not on EC2 or metadata unreachable; pass --userdata and set region";

#[derive(Debug, Error)]
pub(crate) enum MetadataError {
    #[error("instance metadata at {endpoint}: {reason} ({OFF_EC2_HINT})")]
    Unreachable { endpoint: String, reason: String },
    #[error("instance metadata at {endpoint}: {path} answered HTTP {status}")]
    Status {
        endpoint: String,
        path: String,
        status: u16,
    },
    #[error("instance metadata at {endpoint}: {path}: {reason}")]
    Malformed {
        endpoint: String,
        path: String,
        reason: String,
    },
    #[error("{ENDPOINT_ENV}='{0}' is not an http://host[:port] address")]
    BadEndpoint(String),
    #[error("instance metadata is disabled ({DISABLED_ENV}=true; {OFF_EC2_HINT})")]
    Disabled,
}

/// What the metadata service says about this instance.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Identity {
    pub instance_id: String,
    pub availability_zone: String,
    pub region: String,
}

/// A metadata client bound to one endpoint, holding the v2 token once it
/// has one (or knowing it must use v1).
pub(crate) struct Metadata {
    endpoint: String,
    /// `host:port` to connect to.
    addr: String,
    /// `None` until asked; `Some(None)` means IMDSv1.
    token: Option<Option<String>>,
}

impl Metadata {
    /// The endpoint from `AWS_EC2_METADATA_SERVICE_ENDPOINT`, else the
    /// link-local default.
    pub(crate) fn from_env() -> Result<Self, MetadataError> {
        if std::env::var(DISABLED_ENV).is_ok_and(|v| v.eq_ignore_ascii_case("true")) {
            return Err(MetadataError::Disabled);
        }
        let endpoint = std::env::var(ENDPOINT_ENV)
            .ok()
            .filter(|e| !e.is_empty())
            .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string());
        Self::new(&endpoint)
    }

    pub(crate) fn new(endpoint: &str) -> Result<Self, MetadataError> {
        let bad = || MetadataError::BadEndpoint(endpoint.to_string());
        let rest = endpoint.strip_prefix("http://").ok_or_else(bad)?;
        let host = rest.split('/').next().unwrap_or_default();
        if host.is_empty() {
            return Err(bad());
        }
        let addr = if host
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        {
            host.to_string()
        } else {
            format!("{host}:80")
        };
        Ok(Self {
            endpoint: endpoint.trim_end_matches('/').to_string(),
            addr,
            token: None,
        })
    }

    /// Instance id, AZ and region (from `placement/region`, or derived from
    /// the AZ on older metadata versions).
    pub(crate) async fn identity(&mut self) -> Result<Identity, MetadataError> {
        let instance_id = self.required("meta-data/instance-id").await?;
        let availability_zone = self
            .required("meta-data/placement/availability-zone")
            .await?;
        let region = match self.get("meta-data/placement/region").await? {
            Some(r) if !r.trim().is_empty() => r.trim().to_string(),
            _ => region_of_zone(&availability_zone).ok_or_else(|| MetadataError::Malformed {
                endpoint: self.endpoint.clone(),
                path: "meta-data/placement/availability-zone".into(),
                reason: format!("cannot derive a region from '{availability_zone}'"),
            })?,
        };
        Ok(Identity {
            instance_id,
            availability_zone,
            region,
        })
    }

    /// The userdata text; empty when the instance has none (404).
    pub(crate) async fn userdata(&mut self) -> Result<String, MetadataError> {
        Ok(self.get("user-data").await?.unwrap_or_default())
    }

    async fn required(&mut self, path: &str) -> Result<String, MetadataError> {
        match self.get(path).await? {
            Some(v) if !v.trim().is_empty() => Ok(v.trim().to_string()),
            _ => Err(MetadataError::Malformed {
                endpoint: self.endpoint.clone(),
                path: path.to_string(),
                reason: "missing or empty".into(),
            }),
        }
    }

    /// GET `/latest/<path>`; `Ok(None)` on 404.
    async fn get(&mut self, path: &str) -> Result<Option<String>, MetadataError> {
        let token = self.token().await?;
        let mut headers = Vec::new();
        if let Some(t) = &token {
            headers.push(("X-aws-ec2-metadata-token", t.clone()));
        }
        let full = format!("/latest/{path}");
        let reply = self
            .request("GET", &full, &headers)
            .await
            .map_err(|e| e.into_error(&self.endpoint))?;
        match reply.status {
            200 => String::from_utf8(reply.body)
                .map(Some)
                .map_err(|_| MetadataError::Malformed {
                    endpoint: self.endpoint.clone(),
                    path: path.to_string(),
                    reason: "reply is not UTF-8".into(),
                }),
            404 => Ok(None),
            status => Err(MetadataError::Status {
                endpoint: self.endpoint.clone(),
                path: path.to_string(),
                status,
            }),
        }
    }

    /// The v2 token, fetched once. A refusal (4xx other than 400) or a
    /// timeout of the token call means the service speaks only v1.
    async fn token(&mut self) -> Result<Option<String>, MetadataError> {
        if let Some(t) = &self.token {
            return Ok(t.clone());
        }
        let ttl = TOKEN_TTL_SECONDS.to_string();
        let result = self
            .request(
                "PUT",
                "/latest/api/token",
                &[("X-aws-ec2-metadata-token-ttl-seconds", ttl)],
            )
            .await;
        let token = match result {
            Ok(r) if r.status == 200 => {
                let t = String::from_utf8_lossy(&r.body).trim().to_string();
                (!t.is_empty()).then_some(t)
            }
            Ok(r) if r.status == 400 => {
                return Err(MetadataError::Status {
                    endpoint: self.endpoint.clone(),
                    path: "api/token".into(),
                    status: 400,
                })
            }
            Ok(r) => {
                tracing::debug!(status = r.status, "IMDSv2 token refused; using IMDSv1");
                None
            }
            Err(Timeout) => {
                tracing::debug!("IMDSv2 token request timed out; trying IMDSv1");
                None
            }
            Err(other) => return Err(other.into_error(&self.endpoint)),
        };
        self.token = Some(token.clone());
        Ok(token)
    }

    async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, String)],
    ) -> Result<Reply, RequestError> {
        let work = async {
            let mut stream = TcpStream::connect(&self.addr)
                .await
                .map_err(|e| RequestError::Io(format!("cannot connect: {e}")))?;
            let mut req = format!(
                "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: 0\r\n",
                self.addr
            );
            for (k, v) in headers {
                req.push_str(&format!("{k}: {v}\r\n"));
            }
            req.push_str("\r\n");
            stream
                .write_all(req.as_bytes())
                .await
                .map_err(|e| RequestError::Io(e.to_string()))?;
            let mut raw = Vec::new();
            stream
                .take(MAX_REPLY)
                .read_to_end(&mut raw)
                .await
                .map_err(|e| RequestError::Io(e.to_string()))?;
            parse_reply(&raw).map_err(|e| RequestError::Io(e.to_string()))
        };
        timeout(REQUEST_TIMEOUT, work)
            .await
            .unwrap_or(Err(RequestError::Timeout))
    }
}

enum RequestError {
    Timeout,
    Io(String),
}
use RequestError::Timeout;

impl RequestError {
    fn into_error(self, endpoint: &str) -> MetadataError {
        let reason = match self {
            Timeout => format!("no answer within {}s", REQUEST_TIMEOUT.as_secs()),
            RequestError::Io(e) => e,
        };
        MetadataError::Unreachable {
            endpoint: endpoint.to_string(),
            reason,
        }
    }
}

struct Reply {
    status: u16,
    body: Vec<u8>,
}

/// Parse a whole HTTP/1.1 reply read until the server closed.
/// Why a metadata reply could not be read.
#[derive(Debug, Error)]
enum ReplyError {
    #[error("reply ended early")]
    Early,
    #[error("not an HTTP reply: {0}")]
    NotHttp(httparse::Error),
    #[error("{0}")]
    Body(&'static str),
}

fn parse_reply(raw: &[u8]) -> Result<Reply, ReplyError> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    let body_at = match resp.parse(raw) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Err(ReplyError::Early),
        Err(e) => return Err(ReplyError::NotHttp(e)),
    };
    let status = resp.code.unwrap_or(0);
    let header = |name: &str| {
        resp.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).trim().to_ascii_lowercase())
    };
    let rest = &raw[body_at..];
    let body = if header("transfer-encoding").is_some_and(|t| t.contains("chunked")) {
        dechunk(rest)?
    } else if let Some(len) = header("content-length").and_then(|l| l.parse::<usize>().ok()) {
        rest.get(..len)
            .ok_or(ReplyError::Body("reply body shorter than Content-Length"))?
            .to_vec()
    } else {
        rest.to_vec()
    };
    Ok(Reply { status, body })
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>, ReplyError> {
    let mut out = Vec::new();
    loop {
        let line_end = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or(ReplyError::Body("bad chunked body"))?;
        let size_text = String::from_utf8_lossy(&data[..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| ReplyError::Body("bad chunk size"))?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        out.extend_from_slice(
            data.get(..size)
                .ok_or(ReplyError::Body("chunk shorter than its size"))?,
        );
        data = data
            .get(size + 2..)
            .ok_or(ReplyError::Body("chunk not terminated"))?;
    }
}

/// The region of an availability zone: `eu-west-1b` -> `eu-west-1`,
/// `us-gov-west-1a` -> `us-gov-west-1`, local zone `us-west-2-lax-1a` ->
/// `us-west-2`.
pub(crate) fn region_of_zone(az: &str) -> Option<String> {
    let parts: Vec<&str> = az.split('-').collect();
    let idx = parts
        .iter()
        .position(|p| p.starts_with(|c: char| c.is_ascii_digit()))?;
    if idx == 0 {
        return None;
    }
    let digits: String = parts[idx]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    Some(format!("{}-{digits}", parts[..idx].join("-")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_of_zones() {
        assert_eq!(region_of_zone("eu-west-1b").as_deref(), Some("eu-west-1"));
        assert_eq!(
            region_of_zone("us-gov-west-1a").as_deref(),
            Some("us-gov-west-1")
        );
        assert_eq!(
            region_of_zone("us-west-2-lax-1a").as_deref(),
            Some("us-west-2")
        );
        assert_eq!(
            region_of_zone("ap-southeast-10c").as_deref(),
            Some("ap-southeast-10")
        );
        assert_eq!(region_of_zone("nonsense"), None);
    }

    #[test]
    fn replies() {
        let r = parse_reply(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcdef").unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"abc"[..]));
        let r = parse_reply(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n").unwrap();
        assert_eq!(r.body, b"abcde");
        let r = parse_reply(b"HTTP/1.0 404 Not Found\r\n\r\n").unwrap();
        assert_eq!(r.status, 404);
        assert!(parse_reply(b"garbage").is_err());
    }

    #[test]
    fn endpoints() {
        assert_eq!(
            Metadata::new("http://127.0.0.1:1338/").unwrap().addr,
            "127.0.0.1:1338"
        );
        assert_eq!(
            Metadata::new("http://169.254.169.254").unwrap().addr,
            "169.254.169.254:80"
        );
        assert!(Metadata::new("https://x").is_err());
        assert!(Metadata::new("http://").is_err());
    }
}

#[cfg(test)]
#[path = "proptests/instance.rs"]
mod proptests;
