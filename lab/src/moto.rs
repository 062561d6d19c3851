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
    client: Client<HttpConnector, Full<Bytes>>,
}

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
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// Send a request on to moto unchanged (but for the host).
    pub(crate) async fn forward(
        &self,
        method: Method,
        path_and_query: &str,
        headers: &hyper::HeaderMap,
        body: Bytes,
    ) -> Result<Reply> {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{path_and_query}", self.url));
        for (k, v) in headers {
            if k != hyper::header::HOST && k != hyper::header::CONTENT_LENGTH {
                req = req.header(k, v);
            }
        }
        let resp = self
            .client
            .request(req.body(Full::new(body))?)
            .await
            .context("forwarding to moto")?;
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
