//! What S3 checks of an upload's body and moto does not. S3 refuses a
//! PutObject or UploadPart whose `x-amz-checksum-crc32` does not match the
//! bytes (400 BadDigest); moto stores whatever it is given. The lab does
//! as S3 does, and counts the bodies that came with no checksum at all
//! (neither Content-MD5 nor any `x-amz-checksum-*`), which S3 accepts and
//! a test can then hold at zero for a tool that promises to protect
//! every byte it sends.

use hyper::HeaderMap;

/// What the headers say of a body.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Body {
    /// Content-MD5 or a checksum other than CRC32 (moto checks
    /// Content-MD5; the lab checks only CRC32), or a matching CRC32.
    Checked,
    /// No checksum of any kind.
    Unprotected,
    /// A CRC32 that is not the body's: (stated, computed), base64.
    Mismatch(String, String),
}

pub(crate) fn check(headers: &HeaderMap, body: &[u8]) -> Body {
    let crc = headers
        .get("x-amz-checksum-crc32")
        .and_then(|v| v.to_str().ok());
    if let Some(stated) = crc {
        let computed = base64(&crc32fast::hash(body).to_be_bytes());
        return if stated == computed {
            Body::Checked
        } else {
            Body::Mismatch(stated.to_string(), computed)
        };
    }
    let any = headers.contains_key("content-md5")
        || headers
            .keys()
            .any(|k| k.as_str().starts_with("x-amz-checksum-"));
    if any {
        Body::Checked
    } else {
        Body::Unprotected
    }
}

fn base64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn a_crc32_is_checked_against_the_body() {
        // CRC32 of "hello" is 0x3610a686.
        assert_eq!(base64(&0x3610_a686u32.to_be_bytes()), "NhCmhg==");
        let good = headers(&[("x-amz-checksum-crc32", "NhCmhg==")]);
        assert_eq!(check(&good, b"hello"), Body::Checked);
        assert!(matches!(check(&good, b"hellp"), Body::Mismatch(..)));
        let md5 = headers(&[("content-md5", "XUFAKrxLKna5cZ2REBfFkg==")]);
        assert_eq!(check(&md5, b"hello"), Body::Checked);
        assert_eq!(check(&HeaderMap::new(), b"hello"), Body::Unprotected);
    }
}
