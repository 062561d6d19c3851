//! Integration tests: the real binary, against the moto emulator where AWS
//! is involved (run them through `scripts/test.sh`, which starts it).

mod cli;
mod emulator;
mod freeze_safety;
mod lab;
mod layout;
mod mount;
mod retention;
mod slow_freeze;
mod snapshot;
mod snapshot_set;
mod snapshotters;
mod support;
mod tablesnap;
