//! The lab's control endpoints under `/_lab/`: its state (devices, call
//! counts, bodies sent without a checksum), its rules, its userdata.

use std::collections::BTreeMap;
use std::sync::Arc;

use hyper::{Method, StatusCode};
use serde::Serialize;

use crate::devices::Plug;
use crate::replies::text;
use crate::replies::Resp;
use crate::rules::Rules;
use crate::state::Lab;

#[derive(Serialize)]
struct State<'a> {
    instance_id: &'a str,
    zone: &'a str,
    region: &'a str,
    device_root: String,
    plugged: BTreeMap<String, Plug>,
    calls: BTreeMap<String, u32>,
    unprotected_bodies: BTreeMap<String, u32>,
    held: BTreeMap<String, u32>,
}

pub(crate) fn control(lab: &Arc<Lab>, method: &Method, path: &str, body: &[u8]) -> Resp {
    match (method, path) {
        (&Method::GET, "/_lab/state") => {
            let devices = lab.devices.lock().expect("devices lock");
            let state = State {
                instance_id: &lab.instance_id,
                zone: &lab.zone,
                region: &lab.region,
                device_root: devices.root.display().to_string(),
                plugged: devices.plugged.clone(),
                calls: lab.calls.lock().expect("calls lock").clone(),
                unprotected_bodies: lab.unprotected.lock().expect("unprotected lock").clone(),
                held: lab.held.lock().expect("held lock").clone(),
            };
            let json = serde_json::to_string_pretty(&state).unwrap_or_default();
            text(StatusCode::OK, json)
        }
        (&Method::PUT, "/_lab/rules") => match Rules::parse(&String::from_utf8_lossy(body)) {
            Ok(rules) => {
                *lab.rules.lock().expect("rules lock") = rules;
                lab.calls.lock().expect("calls lock").clear();
                lab.held.lock().expect("held lock").clear();
                text(StatusCode::OK, "rules set; call counts reset\n".into())
            }
            Err(e) => text(StatusCode::BAD_REQUEST, format!("bad rules: {e}\n")),
        },
        (&Method::PUT, "/_lab/userdata") => {
            *lab.userdata.lock().expect("userdata lock") =
                Some(String::from_utf8_lossy(body).into_owned());
            text(StatusCode::OK, "userdata set\n".into())
        }
        (&Method::DELETE, "/_lab/userdata") => {
            *lab.userdata.lock().expect("userdata lock") = None;
            text(StatusCode::OK, "userdata removed\n".into())
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "lab control: GET /_lab/state, PUT /_lab/rules, PUT|DELETE /_lab/userdata\n".into(),
        ),
    }
}
