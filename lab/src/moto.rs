//! Talking to moto: forwarding requests as they came, and the lab's own EC2
//! query calls (creating its instance, asking a volume's size).

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, Response};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;

use crate::xml;

#[derive(Clone)]
pub(crate) struct Moto {
    pub url: String,
    region: String,
    /// Where S3 requests go instead, when not moto (`--s3-url`).
    s3_url: Option<String>,
    client: Client<HttpConnector, Full<Bytes>>,
}

/// The root device of the lab's instance: moto gives every instance
/// launched from its default image a root volume there.
pub(crate) const ROOT_DEVICE: &str = "/dev/sda1";

/// A reply read whole (EC2 replies are small).
pub(crate) struct Reply {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
}

impl Moto {
    pub(crate) fn new(url: &str, region: &str) -> Self {
        Self {
            url: url.trim_end_matches('/').to_string(),
            region: region.to_string(),
            s3_url: None,
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// The same moto, for the lab's own calls in another Region (moto
    /// keeps one backend per Region, chosen by the credential scope).
    pub(crate) fn in_region(&self, region: &str) -> Self {
        Self {
            region: region.to_string(),
            ..self.clone()
        }
    }

    /// S3 requests go to this S3 server (s3s-fs, MinIO) instead of moto,
    /// EC2 calls still to moto.
    pub(crate) fn with_s3(self, s3_url: &str) -> Self {
        Self {
            s3_url: Some(s3_url.trim_end_matches('/').to_string()),
            ..self
        }
    }

    /// Send a request on to moto unchanged (but for the host); an S3
    /// request to the `--s3-url` server instead if there is one, with its
    /// Host header as sent: a server that checks SigV4 signatures (moto
    /// does not) finds the Host the client signed.
    pub(crate) async fn forward(
        &self,
        method: Method,
        path_and_query: &str,
        headers: &hyper::HeaderMap,
        body: Bytes,
        is_s3: bool,
    ) -> Result<Reply> {
        let (base, keep_host) = match &self.s3_url {
            Some(s3) if is_s3 => (s3, true),
            _ => (&self.url, false),
        };
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{base}{path_and_query}"));
        for (k, v) in headers {
            if (keep_host || k != hyper::header::HOST) && k != hyper::header::CONTENT_LENGTH {
                req = req.header(k, v);
            }
        }
        let resp = self
            .client
            .request(req.body(Full::new(body))?)
            .await
            .with_context(|| format!("forwarding to {base}"))?;
        read(resp).await
    }

    /// An EC2 query call of the lab's own.
    pub(crate) async fn ec2(&self, action: &str, params: &[(&str, &str)]) -> Result<String> {
        let body = {
            let mut form = form_urlencoded::Serializer::new(String::new());
            form.append_pair("Action", action)
                .append_pair("Version", "2016-11-15");
            for (k, v) in params {
                form.append_pair(k, v);
            }
            form.finish()
        };
        // moto picks the service and region from the credential scope.
        let auth = format!(
            "AWS4-HMAC-SHA256 Credential=testing/20260101/{}/ec2/aws4_request, SignedHeaders=host, Signature=0",
            self.region
        );
        let req = Request::builder()
            .method(Method::POST)
            .uri(format!("{}/", self.url))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("authorization", auth)
            .body(Full::new(Bytes::from(body)))?;
        let reply = read(self.client.request(req).await.context("calling moto")?).await?;
        let text = String::from_utf8_lossy(&reply.body).into_owned();
        if reply.status != 200 {
            bail!("moto {action}: HTTP {}: {text}", reply.status);
        }
        Ok(text)
    }

    /// Create the lab's instance: (instance id, availability zone).
    pub(crate) async fn run_instance(&self, zone: &str) -> Result<String> {
        let xml_text = self
            .ec2(
                "RunInstances",
                &[
                    ("ImageId", "ami-12345678"),
                    ("MinCount", "1"),
                    ("MaxCount", "1"),
                    ("InstanceType", "m5.large"),
                    ("Placement.AvailabilityZone", zone),
                ],
            )
            .await?;
        xml::first(&xml_text, &["instancesSet", "item", "instanceId"])
            .context("RunInstances reply has no instanceId")
    }

    /// The `(volume id, device)` of each volume attached to `instance`
    /// (its root volume included), from DescribeVolumes, sorted by device.
    pub(crate) async fn attachments(&self, instance: &str) -> Result<Vec<(String, String)>> {
        let text = self
            .ec2(
                "DescribeVolumes",
                &[
                    ("Filter.1.Name", "attachment.instance-id"),
                    ("Filter.1.Value.1", instance),
                ],
            )
            .await?;
        let mut out: Vec<(String, String)> = attachment_items(&text)
            .into_iter()
            .filter(|a| a.instance.as_deref() == Some(instance))
            .filter_map(|a| Some((a.volume?, a.device?)))
            .collect();
        out.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
        out.dedup();
        Ok(out)
    }

    /// The instance a volume is attached to: `Ok(None)` if it is not
    /// attached, an error if moto does not know the volume.
    pub(crate) async fn attached_instance(&self, volume_id: &str) -> Result<Option<String>> {
        let text = self
            .ec2("DescribeVolumes", &[("VolumeId.1", volume_id)])
            .await?;
        Ok(attachment_items(&text)
            .into_iter()
            .filter(|a| a.volume.as_deref() == Some(volume_id))
            .find_map(|a| a.instance))
    }

    /// An instance's `<blockDeviceMapping>` element as DescribeInstances
    /// gives it (device, volume, status, deleteOnTermination per item):
    /// EC2's DescribeInstanceAttribute has the same shape.
    pub(crate) async fn block_device_mapping(&self, instance: &str) -> Result<String> {
        let text = self
            .ec2("DescribeInstances", &[("InstanceId.1", instance)])
            .await?;
        let (open, close) = ("<blockDeviceMapping>", "</blockDeviceMapping>");
        if let (Some(a), Some(b)) = (text.find(open), text.find(close)) {
            if a < b {
                return Ok(text[a..b + close.len()].to_string());
            }
        }
        // No element, or an empty one (`<blockDeviceMapping/>`).
        Ok(format!("{open}{close}"))
    }

    /// A snapshot's size in GiB and storage tier; `None` if moto does not
    /// know it. An archived snapshot under a temporary restore
    /// (RestoreSnapshotTier, until its `restoreExpiryTime`) is usable as
    /// a standard one: its tier reads `standard` here.
    pub(crate) async fn snapshot_facts(&self, snapshot_id: &str) -> Option<(u64, String)> {
        let text = self
            .ec2("DescribeSnapshots", &[("SnapshotId.1", snapshot_id)])
            .await
            .ok()?;
        let size = xml::first(&text, &["snapshotSet", "item", "volumeSize"])?
            .parse()
            .ok()?;
        let mut tier =
            xml::first(&text, &["snapshotSet", "item", "storageTier"]).unwrap_or_default();
        let restored_until = xml::first(&text, &["snapshotSet", "item", "restoreExpiryTime"])
            .and_then(|t| humantime::parse_rfc3339_weak(t.trim_end_matches('Z')).ok());
        if restored_until.is_some_and(|t| t > std::time::SystemTime::now()) {
            tier = "standard".into();
        }
        Some((size, tier))
    }

    /// A volume's size in GiB.
    pub(crate) async fn volume_size(&self, volume_id: &str) -> Result<u64> {
        let text = self
            .ec2("DescribeVolumes", &[("VolumeId.1", volume_id)])
            .await?;
        xml::first(&text, &["volumeSet", "item", "size"])
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("no size for {volume_id}"))
    }
}

async fn read(resp: Response<hyper::body::Incoming>) -> Result<Reply> {
    let (parts, body) = resp.into_parts();
    let body = body
        .collect()
        .await
        .context("reading moto's reply")?
        .to_bytes();
    Ok(Reply {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body,
    })
}

/// One `attachmentSet` item of a DescribeVolumes reply.
#[derive(Default)]
struct AttachmentItem {
    volume: Option<String>,
    instance: Option<String>,
    device: Option<String>,
}

/// Every `attachmentSet` item of a DescribeVolumes reply (leaves grouped
/// by the item they are in).
fn attachment_items(reply: &str) -> Vec<AttachmentItem> {
    let mut items: BTreeMap<usize, AttachmentItem> = BTreeMap::new();
    for l in xml::leaves(reply) {
        let n = l.path.len();
        if n >= 3 && l.path[n - 3] == "attachmentSet" && l.path[n - 2] == "item" {
            let item = items.entry(l.starts[n - 2]).or_default();
            let text = Some(xml::unescape(&reply[l.text.clone()]));
            match l.path[n - 1].as_str() {
                "volumeId" => item.volume = text,
                "instanceId" => item.instance = text,
                "device" => item.device = text,
                _ => {}
            }
        }
    }
    items.into_values().collect()
}

/// Query parameters of an EC2 request (form body or URL query).
pub(crate) fn params(query: Option<&str>, body: &[u8]) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .into_owned()
        .collect();
    if body.windows(7).any(|w| w == b"Action=") {
        out.extend(form_urlencoded::parse(body).into_owned());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A one-connection HTTP server: answers each request 200 and sends
    /// the request heads it read.
    async fn echo_server() -> (String, tokio::sync::mpsc::UnboundedReceiver<String>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let tx = tx.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        let n = sock.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head: Vec<u8> = buf.drain(..end + 4).collect();
                            let _ = tx.send(String::from_utf8_lossy(&head).to_lowercase());
                            let reply = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
                            if sock.write_all(reply).await.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        (url, rx)
    }

    #[tokio::test]
    async fn s3_requests_go_to_the_s3_server_with_their_host() {
        let (moto_url, mut to_moto) = echo_server().await;
        let (s3_url, mut to_s3) = echo_server().await;
        let moto = Moto::new(&moto_url, "us-east-1").with_s3(&s3_url);
        let mut headers = hyper::HeaderMap::new();
        headers.insert(hyper::header::HOST, "127.0.0.1:9".parse().unwrap());
        let get = |is_s3| moto.forward(Method::GET, "/bucket/key", &headers, Bytes::new(), is_s3);

        assert_eq!(get(true).await.unwrap().status, 200);
        let head = to_s3.recv().await.unwrap();
        assert!(head.starts_with("get /bucket/key http/1.1"), "{head}");
        assert!(head.contains("host: 127.0.0.1:9\r\n"), "{head}");

        // EC2 calls (and S3 without --s3-url) go to moto, Host its own.
        assert_eq!(get(false).await.unwrap().status, 200);
        let head = to_moto.recv().await.unwrap();
        let moto_host = moto_url.trim_start_matches("http://");
        assert!(head.contains(&format!("host: {moto_host}\r\n")), "{head}");
        let plain = Moto::new(&moto_url, "us-east-1");
        plain
            .forward(Method::GET, "/bucket/key", &headers, Bytes::new(), true)
            .await
            .unwrap();
        let head = to_moto.recv().await.unwrap();
        assert!(head.contains(&format!("host: {moto_host}\r\n")), "{head}");
        assert!(to_s3.try_recv().is_err());
    }
}
