//! `--net tap=NAME[,mac=MAC]`: parsing the option and building the virtio-net device it names.
//!
//! Parsing is pure (clap calls `FromStr`, so a typo fails before anything is opened); building
//! opens or creates the TAP, which a VM then owns: a TAP created here disappears when accelvm
//! exits, an existing persistent one is only detached.

use std::collections::HashSet;
use std::str::FromStr;

use accelvm_devices::virtio::net::{MacAddr, MacAddrError, Net, NetError, TapError};

/// One `--net` option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetSpec {
    /// TAP interface to open, or create if it does not exist.
    pub tap: String,
    /// Guest MAC address; random locally administered when absent.
    pub mac: Option<MacAddr>,
}

/// Why a `--net` value is not valid.
#[derive(Debug, thiserror::Error)]
pub enum NetSpecError {
    /// The value has no `tap=`.
    #[error("missing tap=NAME (expected tap=NAME[,mac=MAC])")]
    MissingTap,
    /// A `key=value` item with an unknown key, or without `=`.
    #[error("unknown item {0:?} (expected tap=NAME[,mac=MAC])")]
    UnknownItem(String),
    /// The same key twice.
    #[error("{0}= given twice")]
    Duplicate(&'static str),
    /// The TAP name cannot name an interface.
    #[error(transparent)]
    TapName(TapError),
    /// The MAC is malformed or multicast.
    #[error(transparent)]
    Mac(MacAddrError),
}

impl NetSpec {
    /// Checks a TAP name and optional MAC text: the one validation behind `--net` and a
    /// configuration file's `[[vm.net]]`.
    pub fn new(tap: &str, mac: Option<&str>) -> Result<Self, NetSpecError> {
        accelvm_devices::virtio::net::validate_tap_name(tap).map_err(NetSpecError::TapName)?;
        let mac = mac
            .map(|m| m.parse().map_err(NetSpecError::Mac))
            .transpose()?;
        Ok(NetSpec {
            tap: tap.to_string(),
            mac,
        })
    }
}

impl FromStr for NetSpec {
    type Err = NetSpecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut tap = None;
        let mut mac = None;
        for item in s.split(',') {
            match item.split_once('=') {
                Some(("tap", name)) => {
                    if tap.replace(name).is_some() {
                        return Err(NetSpecError::Duplicate("tap"));
                    }
                }
                Some(("mac", value)) => {
                    if mac.replace(value).is_some() {
                        return Err(NetSpecError::Duplicate("mac"));
                    }
                }
                _ => return Err(NetSpecError::UnknownItem(item.to_string())),
            }
        }
        NetSpec::new(tap.ok_or(NetSpecError::MissingTap)?, mac)
    }
}

/// Why the network devices could not be built.
#[derive(Debug, thiserror::Error)]
pub enum NetBuildError {
    /// Two `--net` options name the same TAP.
    #[error("--net tap={0} given twice")]
    DuplicateTap(String),
    /// Opening or configuring a TAP failed.
    #[error("--net tap={tap}")]
    Device {
        /// The TAP name.
        tap: String,
        /// What failed.
        #[source]
        source: NetError,
    },
}

/// Opens every TAP and builds one virtio-net device per spec, in order.
pub fn build_net_devices(specs: &[NetSpec]) -> Result<Vec<Net>, NetBuildError> {
    let mut seen = HashSet::new();
    for spec in specs {
        if !seen.insert(spec.tap.as_str()) {
            return Err(NetBuildError::DuplicateTap(spec.tap.clone()));
        }
    }
    specs
        .iter()
        .map(|spec| {
            Net::new(&spec.tap, spec.mac).map_err(|source| NetBuildError::Device {
                tap: spec.tap.clone(),
                source,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tap_and_mac() {
        assert_eq!(
            "tap=tap0".parse::<NetSpec>().unwrap(),
            NetSpec {
                tap: "tap0".into(),
                mac: None
            }
        );
        let spec: NetSpec = "mac=02:00:00:00:00:07,tap=vm-1".parse().unwrap();
        assert_eq!(spec.tap, "vm-1");
        assert_eq!(spec.mac.unwrap().to_string(), "02:00:00:00:00:07");
    }

    #[test]
    fn rejects_bad_values_with_the_reason() {
        let err = |s: &str| s.parse::<NetSpec>().unwrap_err();
        assert!(matches!(err(""), NetSpecError::UnknownItem(i) if i.is_empty()));
        assert!(matches!(
            err("mac=02:00:00:00:00:01"),
            NetSpecError::MissingTap
        ));
        assert!(matches!(err("tap0"), NetSpecError::UnknownItem(i) if i == "tap0"));
        assert!(matches!(err("tap=a,tap=b"), NetSpecError::Duplicate("tap")));
        assert!(matches!(err("tap=a,speed=10"), NetSpecError::UnknownItem(i) if i == "speed=10"));
        assert!(matches!(err("tap="), NetSpecError::TapName(_)));
        assert!(matches!(
            err("tap=much-too-long-name"),
            NetSpecError::TapName(_)
        ));
        assert!(matches!(err("tap=tap%d"), NetSpecError::TapName(_)));
        assert!(matches!(
            err("tap=a,mac=01:00:00:00:00:01"),
            NetSpecError::Mac(MacAddrError::Multicast(_))
        ));
        assert!(matches!(
            err("tap=a,mac=02:00:00:00:00"),
            NetSpecError::Mac(MacAddrError::Syntax(_))
        ));
        // Messages name the problem (they become the one-line CLI error).
        assert!(
            err("tap=a,mac=zz")
                .to_string()
                .contains("invalid MAC address \"zz\"")
        );
        assert!(
            err("tap=a b")
                .to_string()
                .contains("invalid TAP name \"a b\"")
        );
    }

    #[test]
    fn duplicate_taps_are_refused_before_opening() {
        let specs: Vec<NetSpec> = ["tap=x0", "tap=x0,mac=02:00:00:00:00:02"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert!(matches!(
            build_net_devices(&specs),
            Err(NetBuildError::DuplicateTap(t)) if t == "x0"
        ));
    }
}
