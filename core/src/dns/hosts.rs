//! Static host tables in the `/etc/hosts` format. RFC 3263 knows only DNS, but phones and
//! servers are configured with names like `localhost` or a lab name that only the hosts file
//! knows, and every other program on the machine resolves those; so the resolver asks here
//! first.

use std::net::IpAddr;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Hosts {
    entries: Vec<(String, IpAddr)>,
}

impl Hosts {
    /// Reads `ADDRESS NAME [ALIAS...]` lines; `#` starts a comment. Lines whose address does
    /// not parse are skipped, as the C library does: among them are link-local addresses with
    /// a named zone (`fe80::1%eth0`), which cannot be used without the interface index.
    pub fn parse(text: &str) -> Hosts {
        let mut entries = Vec::new();
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("");
            let mut fields = line.split_whitespace();
            let Some(Ok(ip)) = fields.next().map(str::parse::<IpAddr>) else {
                continue;
            };
            for name in fields {
                entries.push((normalise(name), ip));
            }
        }
        Hosts { entries }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Addresses for `name` in file order, without repeats; empty when the table does not
    /// know the name.
    pub fn lookup(&self, name: &str) -> Vec<IpAddr> {
        let name = normalise(name);
        let mut out: Vec<IpAddr> = Vec::new();
        for (n, ip) in &self.entries {
            if *n == name && !out.contains(ip) {
                out.push(*ip);
            }
        }
        out
    }
}

fn normalise(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_names_and_aliases() {
        let h = Hosts::parse(
            "# comment\n127.0.0.1\tlocalhost loopback\n::1 localhost ip6-localhost # v6\n\
             192.0.2.7 PBX.lab.example pbx\nnot-an-ip foo\nfe80::1%eth0 linklocal\n127.0.0.1 localhost\n",
        );
        assert_eq!(
            h.lookup("localhost"),
            vec![
                "127.0.0.1".parse::<IpAddr>().unwrap(),
                "::1".parse().unwrap()
            ]
        );
        assert_eq!(
            h.lookup("pbx.LAB.example."),
            vec!["192.0.2.7".parse::<IpAddr>().unwrap()]
        );
        assert!(h.lookup("foo").is_empty());
        assert!(h.lookup("linklocal").is_empty());
        assert!(Hosts::parse("").is_empty());
    }
}
