//! S3 requests named as the SDK names their operations, so a fault rule
//! or a call count can say `UploadPart` rather than `PUT ?partNumber`.

use std::collections::BTreeMap;

use hyper::Method;

/// The S3 operation a request is, by method, path and query (enough for
/// fault rules: PutObject, UploadPart, HeadObject, GetObject, ...), named
/// as the SDK names it: a fault on ListObjectsV2 leaves
/// ListMultipartUploads (the same GET of the bucket, with `?uploads`)
/// alone, one on UploadPart leaves UploadPartCopy alone.
pub(crate) fn s3_operation(
    method: &Method,
    path: &str,
    query: Option<&str>,
    headers: &hyper::HeaderMap,
) -> Option<String> {
    let q: BTreeMap<String, String> = form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .into_owned()
        .collect();
    // `/bucket/?list-type=2` (a path-style listing) names no key.
    let has_key = path.trim_matches('/').contains('/');
    let op = match *method {
        Method::PUT
            if q.contains_key("partNumber") && headers.contains_key("x-amz-copy-source") =>
        {
            "UploadPartCopy"
        }
        Method::PUT if q.contains_key("partNumber") => "UploadPart",
        Method::PUT if headers.contains_key("x-amz-copy-source") => "CopyObject",
        Method::PUT if has_key => "PutObject",
        Method::PUT => "CreateBucket",
        Method::POST if q.contains_key("uploads") => "CreateMultipartUpload",
        Method::POST if q.contains_key("uploadId") => "CompleteMultipartUpload",
        Method::POST if q.contains_key("delete") => "DeleteObjects",
        Method::DELETE if q.contains_key("uploadId") => "AbortMultipartUpload",
        Method::DELETE => "DeleteObject",
        Method::HEAD if has_key => "HeadObject",
        Method::HEAD => "HeadBucket",
        Method::GET if has_key => "GetObject",
        Method::GET if q.contains_key("uploads") => "ListMultipartUploads",
        Method::GET if q.get("list-type").map(String::as_str) == Some("2") => "ListObjectsV2",
        Method::GET => "ListObjects",
        _ => return None,
    };
    Some(op.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_operations_are_named_as_the_sdk_names_them() {
        let none = hyper::HeaderMap::new();
        let mut copy = hyper::HeaderMap::new();
        copy.insert("x-amz-copy-source", "b/k".parse().unwrap());
        let op = |m: Method, path: &str, q: &str, h: &hyper::HeaderMap| {
            s3_operation(&m, path, Some(q), h).unwrap()
        };
        assert_eq!(
            op(Method::GET, "/b/", "list-type=2&prefix=x", &none),
            "ListObjectsV2"
        );
        assert_eq!(op(Method::GET, "/b", "prefix=x", &none), "ListObjects");
        assert_eq!(
            op(Method::GET, "/b/", "uploads&prefix=x", &none),
            "ListMultipartUploads"
        );
        assert_eq!(op(Method::GET, "/b/k", "", &none), "GetObject");
        assert_eq!(
            op(Method::PUT, "/b/k", "partNumber=1&uploadId=u", &none),
            "UploadPart"
        );
        assert_eq!(
            op(Method::PUT, "/b/k", "partNumber=1&uploadId=u", &copy),
            "UploadPartCopy"
        );
        assert_eq!(op(Method::PUT, "/b/k", "", &copy), "CopyObject");
        assert_eq!(op(Method::POST, "/b/", "delete", &none), "DeleteObjects");
        assert_eq!(op(Method::HEAD, "/b", "", &none), "HeadBucket");
    }
}
