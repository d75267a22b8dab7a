//! The connection facts a UCSPI server (tcpserver, s6-tcpserver, ...) puts in the
//! environment: `PROTO=TCP` gives `TCPREMOTEIP`, `TCPLOCALHOST` and so on (SPEC 2).
//! Read with the same `envy` parser as the settings, under the `${PROTO}` prefix.

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
    pub fn from_env(proto: Option<&str>) -> Conn {
        Conn::from_vars(proto, std::env::vars())
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
    pub fn local_name(&self) -> String {
        self.localhost
            .clone()
            .or_else(|| self.localip.clone())
            .unwrap_or_else(crate::sys::hostname)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
