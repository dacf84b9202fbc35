//! Shared inputs for the benchmarks: the message corpus the parser is measured on.

/// The valid torture messages plus typical PBX traffic (REGISTER with credentials, INVITE with
/// SDP, 200 OK), as (name, bytes).
pub fn sip_corpus() -> Vec<(String, Vec<u8>)> {
    let core = concat!(env!("CARGO_MANIFEST_DIR"), "/../core/tests");
    let table = include_str!("../../core/tests/torture/verdicts.tsv");
    let mut out = Vec::new();
    for name in ["register.sip", "invite.sip", "ok200.sip"] {
        if let Ok(b) = std::fs::read(format!("{core}/messages/{name}")) {
            out.push((name.to_string(), b));
        }
    }
    for line in table.lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        if cols.get(2) != Some(&"valid") {
            continue;
        }
        let file = cols[0];
        let b = std::fs::read(format!("{core}/torture/rfc4475/{file}"))
            .or_else(|_| std::fs::read(format!("{core}/torture/rfc5118/{file}")));
        if let Ok(b) = b {
            out.push((file.to_string(), b));
        }
    }
    out
}
