//! EC2 device names as profiles give them (`/dev/sdf`, `/dev/xvdg`) and
//! the names the Xen kernel gives the same devices: the config checks the
//! first, the host side looks for the second.

/// EC2 device names: `/dev/sd[a-z]`, `/dev/xvd[a-z]` with an optional
/// second letter and an optional partition number (old paravirtual AMIs
/// used `/dev/sdf1`).
pub(super) fn check_device(d: &str) -> Result<(), String> {
    let bad = || format!("device '{d}' is not an EC2 device name like /dev/sdf or /dev/xvdg");
    let rest = d.strip_prefix("/dev/").ok_or_else(bad)?;
    let rest = rest
        .strip_prefix("xvd")
        .or_else(|| rest.strip_prefix("sd"))
        .ok_or_else(bad)?;
    let letters = rest.chars().take_while(|c| c.is_ascii_lowercase()).count();
    let digits = &rest[letters..];
    if !(1..=2).contains(&letters) || !digits.chars().all(|c| c.is_ascii_digit()) {
        return Err(bad());
    }
    if !digits.is_empty() && !matches!(digits.parse::<u32>(), Ok(1..=15)) {
        return Err(bad());
    }
    if rest.starts_with('a') && letters == 1 {
        return Err(format!(
            "device '{d}' is the root device name; use /dev/sdf to /dev/sdp"
        ));
    }
    Ok(())
}

/// The letter of a device name moved by `offset` (the CentOS 6 shift),
/// leaving any partition digits alone (0.2.12 shifted the digit instead).
pub(super) fn shift_letter(device: &str, offset: u8) -> Option<String> {
    let digits_at = device.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    let (name, digits) = device.split_at(digits_at);
    let last = name.chars().last()?;
    let shifted = char::from_u32(last as u32 + u32::from(offset))?;
    if !shifted.is_ascii_lowercase() {
        return None;
    }
    Some(format!("{}{shifted}{digits}", &name[..name.len() - 1]))
}

/// The name the Xen kernel gives the device (`sd` -> `xvd`, plus offset).
pub(crate) fn kernel_device_name(device: &str, offset: u8) -> String {
    let name = match device.strip_prefix("/dev/sd") {
        Some(rest) => format!("/dev/xvd{rest}"),
        None => device.to_string(),
    };
    shift_letter(&name, offset).unwrap_or(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names() {
        for ok in [
            "/dev/sdf",
            "/dev/xvdg",
            "/dev/sdf1",
            "/dev/xvdba",
            "/dev/sdp15",
        ] {
            assert_eq!(check_device(ok), Ok(()), "{ok}");
        }
        for bad in [
            "sdf",
            "/dev/nvme1n1",
            "/dev/sdf0",
            "/dev/sdf16",
            "/dev/sd",
            "/dev/sdabc",
            "/dev/sda",
            "/dev/hdf",
        ] {
            assert!(check_device(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn kernel_names_shift_the_letter_not_the_partition() {
        assert_eq!(kernel_device_name("/dev/sdf", 0), "/dev/xvdf");
        assert_eq!(kernel_device_name("/dev/sdf", 4), "/dev/xvdj");
        assert_eq!(kernel_device_name("/dev/sdf1", 4), "/dev/xvdj1");
        assert_eq!(kernel_device_name("/dev/xvdg", 0), "/dev/xvdg");
        assert_eq!(shift_letter("/dev/sdz", 1), None);
    }
}
