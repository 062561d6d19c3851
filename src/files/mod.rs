//! The file commands (tablesnap's job): `keys.rs` is the S3 layout (pure),
//! `upload.rs` one file, `snap.rs` the watching daemon.

pub mod keys;
pub mod snap;
pub mod upload;
