//! The connection facts a UCSPI server (tcpserver, s6-tcpserver, ...) puts in the
//! environment: `PROTO=TCP` gives `TCPREMOTEIP`, `TCPLOCALHOST` and so on (SPEC 2).
//! Read with the same `envy` parser as the settings, under the `${PROTO}` prefix.
//! It also owns how an address is written where SMTP and the trace headers show one
//! ([`address_literal`]).

use serde::Deserialize;

/// What is known about the two ends of the connection. Empty values count as unknown.
#[derive(Deserialize, Default, Clone, Debug, PartialEq, Eq)]
pub struct Conn {
    pub localip: Option<String>,
    pub localhost: Option<String>,
    pub localport: Option<String>,
    pub remoteip: Option<String>,
    pub remotehost: Option<String>,
    pub remoteinfo: Option<String>,
    pub remoteport: Option<String>,
    /// The `PROTO` value itself (`TCP`, `TCP6`, `SSL`), for `via` in the Received header.
    #[serde(skip)]
    pub proto: Option<String>,
}

impl Conn {
    /// Reads `${PROTO}*` from the process environment. No PROTO: nothing is known.
    /// Only names that start with PROTO are copied out of it (it may hold dozens of
    /// others, and names or values that are not UTF-8, on which `std::env::vars` panics).
    pub fn from_env(proto: Option<&str>) -> Conn {
        let Some(prefix) = proto.filter(|p| !p.is_empty()) else {
            return Conn::default();
        };
        let vars = crate::sys::environment()
            .filter(|(name, _)| name.starts_with(prefix.as_bytes()))
            .map(|(name, value)| {
                let name = String::from_utf8_lossy(name).into_owned();
                (name, String::from_utf8_lossy(value).into_owned())
            });
        Conn::from_vars(proto, vars)
    }

    pub fn from_vars<I: IntoIterator<Item = (String, String)>>(
        proto: Option<&str>,
        vars: I,
    ) -> Conn {
        let Some(proto) = proto.filter(|p| !p.is_empty()) else {
            return Conn::default();
        };
        // Only exact upper-case names: envy folds case.
        let wanted: Vec<(String, String)> = vars
            .into_iter()
            .filter_map(|(k, v)| {
                let rest = k.strip_prefix(proto)?;
                let known = [
                    "LOCALIP",
                    "LOCALHOST",
                    "LOCALPORT",
                    "REMOTEIP",
                    "REMOTEHOST",
                    "REMOTEINFO",
                    "REMOTEPORT",
                ];
                known.contains(&rest).then(|| (rest.to_string(), v))
            })
            .filter(|(_, v)| !v.is_empty())
            .collect();
        // All fields are strings, so deserialising cannot fail on a value.
        let mut conn: Conn = envy::from_iter(wanted).unwrap_or_default();
        conn.proto = Some(proto.to_string());
        conn
    }

    /// LOCAL of SPEC 2: `${PROTO}LOCALHOST`, else `${PROTO}LOCALIP`, else the host name.
    /// An IPv6 LOCALIP is written as an address literal: `::1` is no name for a greeting or
    /// a `by` clause (RFC 5321 4.1.3); an IPv4 one stays bare, as SPEC 2 has it.
    pub fn local_name(&self) -> String {
        self.localhost
            .clone()
            .or_else(|| {
                let ip = self.localip.as_deref()?;
                Some(match ip.contains(':') {
                    true => address_literal(ip),
                    false => ip.to_string(),
                })
            })
            .unwrap_or_else(crate::sys::hostname)
    }
}

/// RFC 5321 4.1.3: an address as an address literal, `[192.0.2.1]` or
/// `[IPv6:2001:db8::1]`. An address with a colon is IPv6 whatever `PROTO` says: s6-tcpserver
/// on `::` sets `PROTO=TCP` with `TCPREMOTEIP=::1`, ucspi-tcp6 sets `PROTO=TCP6`.
pub fn address_literal(ip: &str) -> String {
    if ip.contains(':') {
        format!("[IPv6:{ip}]")
    } else {
        format!("[{ip}]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_literals() {
        assert_eq!(address_literal("192.0.2.1"), "[192.0.2.1]");
        assert_eq!(address_literal("2001:db8::1"), "[IPv6:2001:db8::1]");
        assert_eq!(address_literal("::1"), "[IPv6:::1]");
        assert_eq!(
            address_literal("::ffff:192.0.2.1"),
            "[IPv6:::ffff:192.0.2.1]"
        );
    }

    /// ucspi-tcp6's tcpserver: PROTO=TCP6 and the TCP6 variables.
    #[test]
    fn reads_tcp6_variables() {
        let c = Conn::from_vars(
            Some("TCP6"),
            env(&[
                ("TCP6REMOTEIP", "2001:db8::1"),
                ("TCPREMOTEIP", "192.0.2.1"),
            ]),
        );
        assert_eq!(c.remoteip.as_deref(), Some("2001:db8::1"));
        assert_eq!(c.proto.as_deref(), Some("TCP6"));
    }

    fn env(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn reads_prefixed_variables() {
        let c = Conn::from_vars(
            Some("TCP"),
            env(&[
                ("TCPREMOTEIP", "192.0.2.1"),
                ("TCPLOCALHOST", "mx.example"),
                ("TCP6REMOTEIP", "::1"),
            ]),
        );
        assert_eq!(c.remoteip.as_deref(), Some("192.0.2.1"));
        assert_eq!(c.local_name(), "mx.example");
        assert_eq!(c.proto.as_deref(), Some("TCP"));
    }

    #[test]
    fn an_ipv6_local_ip_is_named_as_an_address_literal() {
        let c = Conn::from_vars(Some("TCP"), env(&[("TCPLOCALIP", "2001:db8::25")]));
        assert_eq!(c.local_name(), "[IPv6:2001:db8::25]");
    }

    #[test]
    fn empty_values_are_unknown() {
        let c = Conn::from_vars(
            Some("TCP"),
            env(&[("TCPREMOTEHOST", ""), ("TCPLOCALIP", "10.0.0.1")]),
        );
        assert_eq!(c.remotehost, None);
        assert_eq!(c.local_name(), "10.0.0.1");
    }

    #[test]
    fn no_proto_no_facts() {
        let c = Conn::from_vars(None, env(&[("TCPREMOTEIP", "192.0.2.1")]));
        assert_eq!(c, Conn::default());
    }
}
