//! `instance`: replies of the instance metadata service (or of whatever
//! answers on its address, or on `AWS_EC2_METADATA_SERVICE_ENDPOINT`),
//! read by our own small HTTP/1.1 client, and the zone names in them.

use proptest::prelude::*;

use super::*;
use crate::proptests::{bytes, check, hostile_text};

/// Header values that break length and chunk arithmetic.
const NUMBERS: &[&str] = &[
    "0",
    "1",
    "3",
    "-1",
    "+3",
    " 3 ",
    "3, 3",
    "0x10",
    "ffffffffffffffff",
    "fffffffffffffffe",
    "10000000000000000",
    "18446744073709551615",
    "18446744073709551616",
    "99999999999999999999999",
    "",
];

fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => proptest::sample::select(NUMBERS).prop_map(str::to_string),
        1 => any::<u64>().prop_map(|n| n.to_string()),
        1 => hostile_text(),
    ]
}

/// A chunked body: chunks whose stated sizes are right, off by a little,
/// huge or not numbers, with or without extensions and the last chunk.
fn chunked_body() -> impl Strategy<Value = Vec<u8>> {
    let chunk = (
        proptest::collection::vec(any::<u8>(), 0..40),
        prop_oneof![
            3 => Just(None),
            1 => number().prop_map(Some),
            1 => (-2i64..=2).prop_map(|d| Some(d.to_string())),
        ],
        prop_oneof![Just(""), Just(";ext=1"), Just(";")],
        prop_oneof![Just("\r\n"), Just("\n"), Just("")],
    );
    (proptest::collection::vec(chunk, 0..5), any::<bool>()).prop_map(|(chunks, last)| {
        let mut out = Vec::new();
        for (data, size, ext, end) in chunks {
            let size = match size {
                None => format!("{:x}", data.len()),
                // A small offset from the right size, in hex.
                Some(d) if d.parse::<i64>().is_ok_and(|d| (-2..=2).contains(&d)) => {
                    format!(
                        "{:x}",
                        (data.len() as i64 + d.parse::<i64>().unwrap_or(0)).max(0)
                    )
                }
                Some(other) => other,
            };
            out.extend(format!("{size}{ext}\r\n").into_bytes());
            out.extend(&data);
            out.extend(end.as_bytes());
        }
        if last {
            out.extend(b"0\r\n\r\n");
        }
        out
    })
}

/// A reply: any status line, headers from the ones the parser reads with
/// hostile values, any body.
fn reply() -> impl Strategy<Value = Vec<u8>> {
    let status = prop_oneof![
        proptest::sample::select(vec![
            "HTTP/1.1 200 OK",
            "HTTP/1.0 404 Not Found",
            "HTTP/1.1 401 ",
            "HTTP/1.1 999",
            "HTTP/2 200",
            "HTTP/1.1 20 OK",
            "ICY 200 OK"
        ])
        .prop_map(str::to_string),
        hostile_text(),
    ];
    let header = prop_oneof![
        number().prop_map(|n| format!("Content-Length: {n}")),
        proptest::sample::select(vec!["chunked", "gzip, chunked", "CHUNKED", "identity"])
            .prop_map(|t| format!("Transfer-Encoding: {t}")),
        (hostile_text(), hostile_text()).prop_map(|(k, v)| format!("{k}: {v}")),
        "X-[a-z]{1,6}: [ -~]{0,20}",
    ];
    let body = prop_oneof![bytes(), chunked_body()];
    (status, proptest::collection::vec(header, 0..40), body).prop_map(|(s, h, b)| {
        let mut out = format!("{s}\r\n");
        for line in h {
            out.push_str(&line);
            out.push_str("\r\n");
        }
        out.push_str("\r\n");
        let mut out = out.into_bytes();
        out.extend(b);
        out
    })
}

#[test]
fn any_reply_parses_or_is_an_error() {
    check("imds_any_bytes", bytes(), |b| {
        let _ = parse_reply(&b);
        let _ = dechunk(&b);
        Ok(())
    });
    check("imds_hostile_replies", reply(), |r| {
        if let Ok(reply) = parse_reply(&r) {
            prop_assert!(reply.body.len() <= r.len());
        }
        Ok(())
    });
    check("imds_chunked_bodies", chunked_body(), |b| {
        let _ = dechunk(&b);
        Ok(())
    });
}

#[test]
fn bodies_read_back() {
    let input = (
        proptest::collection::vec(any::<u8>(), 0..300),
        proptest::collection::vec(1usize..64, 0..8),
        any::<bool>(),
    );
    check("imds_bodies_read_back", input, |(body, cuts, chunked)| {
        let mut raw = b"HTTP/1.1 200 OK\r\n".to_vec();
        if chunked {
            raw.extend(b"Transfer-Encoding: chunked\r\n\r\n");
            let mut rest = body.as_slice();
            for c in cuts {
                let (chunk, tail) = rest.split_at(c.min(rest.len()));
                raw.extend(format!("{:X};x=y\r\n", chunk.len()).into_bytes());
                raw.extend(chunk);
                raw.extend(b"\r\n");
                rest = tail;
            }
            if !rest.is_empty() {
                raw.extend(format!("{:x}\r\n", rest.len()).into_bytes());
                raw.extend(rest);
                raw.extend(b"\r\n");
            }
            raw.extend(b"0\r\n\r\n");
        } else {
            raw.extend(format!("Content-Length: {}\r\n\r\n", body.len()).into_bytes());
            raw.extend(&body);
            raw.extend(b"trailing bytes are not the body");
        }
        let reply = parse_reply(&raw).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(reply.status, 200);
        prop_assert_eq!(reply.body, body);
        Ok(())
    });
}

#[test]
fn zones_and_endpoints_parse_or_are_errors() {
    let zone = prop_oneof![hostile_text(), "[a-z]{0,3}(-[a-z0-9]{0,6}){0,5}",];
    check("imds_zone_names", zone, |az| {
        if let Some(region) = region_of_zone(&az) {
            prop_assert!(region.starts_with(az.split('-').next().unwrap_or_default()));
        }
        Ok(())
    });
    let endpoint = prop_oneof![
        hostile_text().prop_map(|t| format!("http://{t}")),
        hostile_text(),
    ];
    check("imds_endpoints", endpoint, |e| {
        if let Ok(m) = Metadata::new(&e) {
            prop_assert!(!m.addr.is_empty());
        }
        Ok(())
    });
}
