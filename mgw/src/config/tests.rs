use super::*;
use std::net::SocketAddr;

/// The config of the project's interface page, as acceptance tests use it.
const ACCEPTANCE: &str = r#"
[sip]
listen = ["udp:127.0.0.1:15060", "tcp:127.0.0.1:15060", "udp:[::1]:15060"]
domain = "mgw.test"
[admin]
listen = "127.0.0.1:18080"
token = "admin-secret"
[store]
dir = "/tmp/mgw-test"
[licences]
total = 2
[accounts]
import_csv = "/tmp/users.csv"
[emergency]
numbers = ["110", "112"]
route = "sip:112@127.0.0.1:25999"
[media]
rtp_ports = "30000-39999"
ng_listen = "127.0.0.1:22222"
[[isdn]]
name = "pri1"
kind = "e1-pri"
simulated = true
prefix = "0"
[[dect]]
name = "base1"
simulated = true
handsets = [{ ipui = "00077A1B2C", number = "300" }, { ipui = "00077A1B2D", number = "301" }]
[[trunk]]
name = "up1"
server = "127.0.0.1:25070"
transport = "udp"
register = true
address = "sip:gw@upstream.test"
user = "gw"
password = "secret"
expires = 1200
prefix = "2#"
[[trunk]]
name = "up6"
server = "[::1]:25070"
transport = "tcp"
[phonebook]
prefix = "9#"
entries = { "30" = "sip:usera@upstream.test" }
"#;

fn err(text: &str) -> ConfigError {
    match Config::from_toml_str(text) {
        Ok(c) => panic!("expected an error for {text:?}, got {c:?}"),
        Err(e) => e,
    }
}

/// Every error must be one line and name its key.
fn assert_one_line(e: &ConfigError) {
    let s = e.to_string();
    assert!(!s.contains('\n'), "multi-line error: {s:?}");
    if let Some(key) = e.key() {
        assert!(s.contains(key), "{s:?} does not name {key:?}");
    }
}

fn invalid(text: &str, key: &str, needle: &str) {
    let e = err(text);
    assert_one_line(&e);
    match &e {
        ConfigError::Invalid { key: k, .. } => assert_eq!(k, key, "{e}"),
        other => panic!("expected Invalid for {key}, got {other:?}"),
    }
    let s = e.to_string();
    assert!(s.contains(needle), "{s:?} lacks {needle:?}");
}

#[test]
fn acceptance_config_parses() {
    let c = Config::from_toml_str(ACCEPTANCE).expect("acceptance config");
    assert_eq!(
        c.sip.listen,
        vec![
            Listener {
                transport: Transport::Udp,
                addr: "127.0.0.1:15060".parse::<SocketAddr>().expect("addr"),
            },
            Listener {
                transport: Transport::Tcp,
                addr: "127.0.0.1:15060".parse::<SocketAddr>().expect("addr"),
            },
            Listener {
                transport: Transport::Udp,
                addr: "[::1]:15060".parse::<SocketAddr>().expect("addr"),
            },
        ]
    );
    assert_eq!(c.sip.domain, "mgw.test");
    assert_eq!(c.admin.listen, SocketAddr::from(([127, 0, 0, 1], 18080)));
    assert_eq!(c.admin.token, "admin-secret");
    assert!(!c.admin.uses_default_token());
    assert_eq!(c.store.dir, PathBuf::from("/tmp/mgw-test"));
    assert_eq!(c.licences.total, 2);
    assert_eq!(c.accounts.import_csv, Some(PathBuf::from("/tmp/users.csv")));
    assert_eq!(c.emergency.numbers, ["110", "112"]);
    assert_eq!(
        c.emergency.route.as_deref(),
        Some("sip:112@127.0.0.1:25999")
    );
    assert_eq!(
        c.media.rtp_ports,
        PortRange {
            first: 30000,
            last: 39999
        }
    );
    assert_eq!(c.media.rtp_ports.len(), 10000);
    assert_eq!(c.media.rtp_ports.pairs(), 5000);
    assert_eq!(
        c.media.ng_listen,
        Some(SocketAddr::from(([127, 0, 0, 1], 22222)))
    );

    assert_eq!(c.isdn.len(), 1);
    assert_eq!(c.isdn[0].name, "pri1");
    assert_eq!(c.isdn[0].kind, IsdnKind::E1Pri);
    assert_eq!(c.isdn[0].kind.b_channels(), 30);
    assert!(c.isdn[0].simulated);
    assert_eq!(c.isdn[0].prefix.as_deref(), Some("0"));

    assert_eq!(c.dect[0].name, "base1");
    assert_eq!(c.dect[0].handsets.len(), 2);
    assert_eq!(c.dect[0].handsets[1].ipui, "00077A1B2D");
    assert_eq!(c.dect[0].handsets[1].number, "301");

    let t = &c.trunks[0];
    assert_eq!(t.name, "up1");
    assert_eq!(
        t.server,
        HostPort {
            host: "127.0.0.1".into(),
            port: 25070,
            port_given: true,
        }
    );
    assert_eq!(
        t.server.socket_addr(),
        Some(SocketAddr::from(([127, 0, 0, 1], 25070)))
    );
    assert_eq!(t.transport, Transport::Udp);
    assert!(t.register);
    assert_eq!(t.aor().as_deref(), Some("sip:gw@upstream.test"));
    assert_eq!(t.user.as_deref(), Some("gw"));
    assert_eq!(t.password.as_deref(), Some("secret"));
    assert_eq!(t.expires, 1200);
    assert_eq!(t.prefix.as_deref(), Some("2#"));

    let t6 = &c.trunks[1];
    assert_eq!(t6.server.host, "::1");
    assert_eq!(t6.server.to_string(), "[::1]:25070");
    assert_eq!(t6.transport, Transport::Tcp);
    assert!(!t6.register);
    assert_eq!(t6.expires, 1200, "seed 004's default");

    assert_eq!(c.phonebook.prefix.as_deref(), Some("9#"));
    assert_eq!(
        c.phonebook.entries.get("30").map(String::as_str),
        Some("sip:usera@upstream.test")
    );
}

#[test]
fn embedded_default_equals_builtin_defaults() {
    let mut c = Config::embedded_default().expect("embedded default must be valid");
    // The embedded default brings a simulated line and base station; a config file without
    // [[isdn]] or [[dect]] sections has none.
    assert_eq!((c.isdn.len(), c.dect.len()), (1, 1));
    assert_eq!(c.isdn[0].prefix.as_deref(), Some("0"));
    assert_eq!(c.dect[0].handsets.len(), 2);
    c.isdn.clear();
    c.dect.clear();
    assert_eq!(c, Config::default());
}

#[test]
fn empty_file_gets_documented_defaults() {
    let c = Config::from_toml_str("").expect("empty config");
    assert_eq!(c, Config::default());
    assert!(c.engine.workers >= 1);
    assert_eq!(c.engine.backend, Backend::Auto);
    assert_eq!(
        c.sip
            .listen
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        ["udp:0.0.0.0:5060", "tcp:0.0.0.0:5060"]
    );
    assert_eq!(c.sip.domain, "mgw.local");
    assert_eq!((c.sip.t1_ms, c.sip.t2_ms, c.sip.t4_ms), (500, 4000, 5000));
    assert_eq!(c.sip.t1(), Duration::from_millis(500));
    assert_eq!(c.sip.tcp_idle_timeout_s, 600);
    assert_eq!(c.sip.tcp_max_connections, 4096);
    assert_eq!(
        c.sip.user_agent,
        format!("mgw/{}", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(c.admin.listen, SocketAddr::from(([127, 0, 0, 1], 8080)));
    assert!(c.admin.uses_default_token());
    assert_eq!(c.store.dir, PathBuf::from("./mgw-data"));
    assert_eq!(c.licences.total, 10);
    assert_eq!(c.accounts.import_csv, None);
    assert_eq!(c.emergency.numbers, ["110", "112", "911", "999"]);
    assert_eq!(c.emergency.route, None);
    assert_eq!(c.media.rtp_ports.to_string(), "30000-39999");
    assert_eq!(c.media.ng_listen, None);
    assert!(c.isdn.is_empty() && c.dect.is_empty() && c.trunks.is_empty());
    assert_eq!(c.phonebook, PhonebookConfig::default());
    assert_eq!(c.log.level, LogLevel::Info);
    assert_eq!(c.log.level.to_filter(), log::LevelFilter::Info);
}

#[test]
fn project_sections_parse() {
    let c = Config::from_toml_str(
        r#"
[engine]
workers = 3
backend = "io_uring"
[sip]
t1_ms = 100
t2_ms = 100
t4_ms = 1
tcp_idle_timeout_s = 5
tcp_max_connections = 10
user_agent = "pbx"
[log]
level = "debug"
"#,
    )
    .expect("config");
    assert_eq!(c.engine.workers, 3);
    assert_eq!(c.engine.backend, Backend::IoUring);
    assert_eq!(c.sip.t2(), Duration::from_millis(100));
    assert_eq!(c.sip.t4(), Duration::from_millis(1));
    assert_eq!(c.sip.tcp_idle_timeout(), Duration::from_secs(5));
    assert_eq!(c.sip.tcp_max_connections, 10);
    assert_eq!(c.sip.user_agent, "pbx");
    assert_eq!(c.log.level, LogLevel::Debug);
    for (s, b) in [("auto", Backend::Auto), ("epoll", Backend::Epoll)] {
        let c = Config::from_toml_str(&format!("[engine]\nbackend = {s:?}")).expect("backend");
        assert_eq!(c.engine.backend, b);
        assert_eq!(b.to_string(), s);
    }
}

#[test]
fn isdn_kinds() {
    for (s, k, ch) in [
        ("e1-pri", IsdnKind::E1Pri, 30),
        ("t1-pri", IsdnKind::T1Pri, 23),
        ("bri", IsdnKind::Bri, 2),
    ] {
        let c = Config::from_toml_str(&format!(
            "[[isdn]]\nname = \"l\"\nkind = {s:?}\nsimulated = true"
        ))
        .expect("isdn");
        assert_eq!(c.isdn[0].kind, k);
        assert_eq!(k.as_str(), s);
        assert_eq!(k.b_channels(), ch);
        assert!(c.isdn[0].simulated);
        assert_eq!(c.isdn[0].t309_s, 90);
        assert_eq!(c.isdn[0].prefix, None);
    }
    invalid(
        "[[isdn]]\nname = \"l\"\nkind = \"e3\"",
        "isdn[0].kind",
        "e1-pri",
    );
    invalid(
        "[[isdn]]\nname = \"l\"\nkind = \"bri\"",
        "isdn[0].simulated",
        "simulated = true",
    );
}

#[test]
fn listener_forms() {
    let l: Listener = "TCP:[::]:5061".parse().expect("listener");
    assert_eq!(l.transport, Transport::Tcp);
    assert_eq!(l.addr, "[::]:5061".parse::<SocketAddr>().expect("addr"));
    assert_eq!(l.to_string(), "tcp:[::]:5061");
    let l: Listener = "udp:127.0.0.1:0".parse().expect("port 0 means any port");
    assert_eq!(l.addr.port(), 0);
    for bad in [
        "",
        "udp",
        "udp:",
        "udp:1.2.3.4",
        "udp:::1:5060",
        "udp:host:5060",
        "udp:1.2.3.4:99999",
        "1.2.3.4:5060",
    ] {
        assert!(bad.parse::<Listener>().is_err(), "{bad:?} accepted");
    }
}

#[test]
fn host_port_forms() {
    let hp: HostPort = "sip.example.org".parse().expect("bare host");
    assert_eq!((hp.host.as_str(), hp.port), ("sip.example.org", 5060));
    assert_eq!(hp.ip(), None);
    let hp: HostPort = "[2001:db8::1]".parse().expect("bare v6");
    assert_eq!((hp.host.as_str(), hp.port), ("2001:db8::1", 5060));
    let hp: HostPort = "10.0.0.1:5080".parse().expect("v4");
    assert_eq!(hp.to_string(), "10.0.0.1:5080");
    for bad in [
        "",
        ":5060",
        "::1:5060",
        "[::1",
        "[zz]:5060",
        "[::1]x",
        "host:0",
        "host:x",
        "host:70000",
        "bad host",
        "-x",
    ] {
        assert!(bad.parse::<HostPort>().is_err(), "{bad:?} accepted");
    }
}

#[test]
fn port_range_forms() {
    let r: PortRange = "10000-10001".parse().expect("range");
    assert_eq!((r.len(), r.pairs()), (2, 1));
    assert!(r.contains(10001) && !r.contains(10002));
    assert!(!r.is_empty());
}

// ---- one test per error class -------------------------------------------

#[test]
fn error_unreadable_file_names_path_and_os_error() {
    let e = Config::load(Some(Path::new("/nonexistent/mgw.toml"))).expect_err("missing file");
    assert!(matches!(e, ConfigError::Read { .. }));
    let s = e.to_string();
    assert!(
        s.contains("/nonexistent/mgw.toml") && s.contains("os error 2"),
        "{s}"
    );
    assert_one_line(&e);
}

#[test]
fn error_syntax_has_line_and_column() {
    let e = err("[sip]\ndomain = \"a\"\nlisten = [\n");
    assert!(
        matches!(
            e,
            ConfigError::Syntax { line: 3, .. } | ConfigError::Syntax { line: 4, .. }
        ),
        "{e:?}"
    );
    assert_one_line(&e);
    let e = err("[sip]\ndomain = \"a\"\ndomain = \"b\"");
    assert!(
        matches!(
            e,
            ConfigError::Syntax {
                line: 3,
                column: 1,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(
        e.to_string().starts_with("line 3, column 1: invalid TOML"),
        "{e}"
    );
}

#[test]
fn error_unknown_keys_name_the_key() {
    for (text, key) in [
        ("bogus = 1", "bogus"),
        ("[sip]\nlisten_on = []", "sip.listen_on"),
        ("[engine]\nthreads = 2", "engine.threads"),
        ("[admin]\nport = 1", "admin.port"),
        ("[store]\npath = \"x\"", "store.path"),
        ("[licences]\ncount = 1", "licences.count"),
        ("[licenses]\ntotal = 1", "licenses"),
        ("[accounts]\ncsv = \"x\"", "accounts.csv"),
        ("[emergency]\nnumber = \"112\"", "emergency.number"),
        ("[media]\nports = \"1-2\"", "media.ports"),
        ("[[isdn]]\nname = \"a\"\nkind = \"bri\"\ntype = 1", "isdn[0].type"),
        ("[[dect]]\nname = \"a\"\nport = 1", "dect[0].port"),
        ("[[dect]]\nname = \"a\"\nhandsets = [{ ipui = \"00077A1B2C\", number = \"1\", pin = \"0\" }]", "dect[0].handsets[0].pin"),
        ("[[trunk]]\nname = \"a\"\nserver = \"h\"\nproxy = \"x\"", "trunk[0].proxy"),
        ("[phonebook]\nlist = {}", "phonebook.list"),
        ("[log]\nfile = \"x\"", "log.file"),
    ] {
        let e = err(text);
        assert_one_line(&e);
        match &e {
            ConfigError::UnknownKey { key: k, .. } => assert_eq!(k, key),
            other => panic!("{text:?}: expected UnknownKey, got {other:?}"),
        }
    }
    let s = err("[sip]\nlisten_on = []").to_string();
    assert!(s.contains("listen, domain"), "lists valid keys: {s}");
}

#[test]
fn error_missing_required_keys() {
    for (text, key) in [
        ("[[isdn]]\nkind = \"bri\"", "isdn[0].name"),
        ("[[isdn]]\nname = \"a\"", "isdn[0].kind"),
        ("[[dect]]\nsimulated = true", "dect[0].name"),
        (
            "[[dect]]\nname = \"a\"\nhandsets = [{ ipui = \"00077A1B2C\" }]",
            "dect[0].handsets[0].number",
        ),
        ("[[trunk]]\nserver = \"h\"", "trunk[0].name"),
        ("[[trunk]]\nname = \"a\"", "trunk[0].server"),
        (
            "[[trunk]]\nname = \"a\"\nserver = \"h\"\npassword = \"p\"",
            "trunk[0].user",
        ),
    ] {
        let e = err(text);
        assert_one_line(&e);
        match &e {
            ConfigError::Missing { key: k } => assert_eq!(k, key),
            other => panic!("{text:?}: expected Missing, got {other:?}"),
        }
    }
}

#[test]
fn error_wrong_types() {
    invalid("[sip]\nt1_ms = \"500\"", "sip.t1_ms", "expected u64");
    invalid(
        "[sip]\nlisten = \"udp:0.0.0.0:5060\"",
        "sip.listen",
        "expected a sequence",
    );
    invalid("[licences]\ntotal = -1", "licences.total", "-1");
    invalid(
        "[[isdn]]\nname = \"a\"\nkind = \"bri\"\nsimulated = \"yes\"",
        "isdn[0].simulated",
        "bool",
    );
    invalid(
        "[engine]\nbackend = \"uring\"",
        "engine.backend",
        "io_uring",
    );
    invalid("[log]\nlevel = \"verbose\"", "log.level", "trace");
    invalid(
        "[[trunk]]\nname = \"a\"\nserver = \"h\"\ntransport = \"tls\"",
        "trunk[0].transport",
        "udp",
    );
}

#[test]
fn error_bad_listen_addresses() {
    let e = err("[sip]\nlisten = [\"udp:0.0.0.0:5060\", \"tcp:1.2.3\"]");
    assert_eq!(
        e.to_string(),
        "sip.listen[1] \"tcp:1.2.3\": expected \"udp:HOST:PORT\" or \"tcp:[IPV6]:PORT\" with HOST an IP address such as 0.0.0.0"
    );
    invalid(
        "[sip]\nlisten = [\"tls:0.0.0.0:5061\"]",
        "sip.listen[0]",
        "transport \"tls\" is not supported",
    );
    invalid(
        "[sip]\nlisten = [\"udp:::1:5060\"]",
        "sip.listen[0]",
        "[IPV6]",
    );
    invalid("[sip]\nlisten = []", "sip.listen", "at least one");
    invalid(
        "[sip]\nlisten = [\"udp:0.0.0.0:5060\", \"udp:0.0.0.0:5060\"]",
        "sip.listen[1]",
        "twice",
    );
    invalid(
        "[admin]\nlisten = \"localhost:8080\"",
        "admin.listen",
        "IP:PORT",
    );
    invalid(
        "[admin]\nlisten = \"127.0.0.1\"",
        "admin.listen",
        "127.0.0.1:8080",
    );
    invalid(
        "[media]\nng_listen = \"22222\"",
        "media.ng_listen",
        "IP:PORT",
    );
    invalid(
        "[media]\nng_listen = \"127.0.0.1:0\"",
        "media.ng_listen",
        "fixed port",
    );
    invalid(
        "[[trunk]]\nname = \"a\"\nserver = \"::1:5060\"",
        "trunk[0].server",
        "brackets",
    );
    invalid(
        "[[trunk]]\nname = \"a\"\nserver = \"h:0\"",
        "trunk[0].server",
        "1-65535",
    );
}

#[test]
fn error_bad_rtp_ports() {
    invalid(
        "[media]\nrtp_ports = \"30000\"",
        "media.rtp_ports",
        "FIRST-LAST",
    );
    invalid(
        "[media]\nrtp_ports = \"40000-30000\"",
        "media.rtp_ports",
        "below",
    );
    invalid(
        "[media]\nrtp_ports = \"30000-30000\"",
        "media.rtp_ports",
        "below",
    );
    invalid(
        "[media]\nrtp_ports = \"30001-39999\"",
        "media.rtp_ports",
        "use 30000",
    );
    invalid(
        "[media]\nrtp_ports = \"0-100\"",
        "media.rtp_ports",
        "port 0",
    );
    invalid(
        "[media]\nrtp_ports = \"30000-70000\"",
        "media.rtp_ports",
        "\"70000\" is not a port",
    );
    let e = err("[media]\nrtp_ports = \"30001-39999\"");
    assert!(
        e.to_string()
            .starts_with("media.rtp_ports \"30001-39999\": "),
        "{e}"
    );
}

#[test]
fn error_bad_values() {
    invalid("[engine]\nworkers = 0", "engine.workers", "1-1024");
    invalid("[sip]\ndomain = \"\"", "sip.domain", "domain name");
    invalid("[sip]\ndomain = \"a b\"", "sip.domain", "domain name");
    invalid("[sip]\nt1_ms = 0", "sip.t1_ms", "above 0");
    invalid(
        "[sip]\nt1_ms = 500\nt2_ms = 100",
        "sip.t2_ms",
        "at least sip.t1_ms",
    );
    invalid("[sip]\nt4_ms = 0", "sip.t4_ms", "above 0");
    invalid(
        "[sip]\ntcp_idle_timeout_s = 0",
        "sip.tcp_idle_timeout_s",
        "above 0",
    );
    invalid(
        "[sip]\ntcp_max_connections = 0",
        "sip.tcp_max_connections",
        "above 0",
    );
    invalid("[sip]\nuser_agent = \"\"", "sip.user_agent", "non-empty");
    invalid("[admin]\ntoken = \"\"", "admin.token", "non-empty");
    let e = err("[admin]\ntoken = \"has space\"");
    assert!(!e.to_string().contains("has space"), "token echoed: {e}");
    invalid("[store]\ndir = \"\"", "store.dir", "not be empty");
    invalid(
        "[accounts]\nimport_csv = \"\"",
        "accounts.import_csv",
        "not be empty",
    );
    invalid(
        "[emergency]\nnumbers = [\"11a\"]",
        "emergency.numbers[0]",
        "dialable",
    );
    invalid(
        "[emergency]\nroute = \"112@127.0.0.1\"",
        "emergency.route",
        "start",
    );
    invalid(
        "[emergency]\nroute = \"tel:112\"",
        "emergency.route",
        "sip:",
    );
    invalid(
        "[emergency]\ntrunk = \"pri9\"",
        "emergency.trunk",
        "names no [[isdn]] line or [[trunk]]",
    );
    invalid(
        "[emergency]\ntrunk = \"pri9\"\n[[isdn]]\nname = \"pri1\"\nkind = \"e1-pri\"\nsimulated = true\n",
        "emergency.trunk",
        "pri1",
    );
    invalid(
        "[emergency]\ntrunk = \"pri1\"\nroute = \"sip:112@192.0.2.1\"\n[[isdn]]\nname = \"pri1\"\nkind = \"e1-pri\"\nsimulated = true\n",
        "emergency.trunk",
        "not both",
    );
}

#[test]
fn error_bad_repeatable_sections() {
    invalid(
        "[[isdn]]\nname = \"\"\nkind = \"bri\"",
        "isdn[0].name",
        "non-empty",
    );
    invalid(
        "[[isdn]]\nname = \"a\"\nkind = \"bri\"\n[[isdn]]\nname = \"a\"\nkind = \"bri\"",
        "isdn[1].name",
        "unique",
    );
    invalid(
        "[[isdn]]\nname = \"a\"\nkind = \"bri\"\nprefix = \"x\"",
        "isdn[0].prefix",
        "dialable",
    );
    invalid(
        "[[dect]]\nname = \"b\"\nhandsets = [{ ipui = \"123\", number = \"1\" }]",
        "dect[0].handsets[0].ipui",
        "10 hex",
    );
    invalid(
        "[[dect]]\nname = \"b\"\nhandsets = [{ ipui = \"00077A1B2C\", number = \"1\" }, { ipui = \"00077a1b2c\", number = \"2\" }]",
        "dect[0].handsets[1].ipui",
        "dect[0].handsets[0]",
    );
    invalid(
        "[[dect]]\nname = \"b\"\nhandsets = [{ ipui = \"00077A1B2C\", number = \"x\" }]",
        "dect[0].handsets[0].number",
        "dialable",
    );
    invalid(
        "[[trunk]]\nname = \"a\"\nserver = \"h\"\naddress = \"gw@h\"",
        "trunk[0].address",
        "sip:",
    );
    invalid(
        "[[trunk]]\nname = \"a\"\nserver = \"h\"\nregister = true",
        "trunk[0].register",
        "address",
    );
    invalid(
        "[[trunk]]\nname = \"a\"\nserver = \"h\"\nexpires = 10",
        "trunk[0].expires",
        "60",
    );
    invalid(
        "[[trunk]]\nname = \"a\"\nserver = \"h\"\nprefix = \"0\"\n[[isdn]]\nname = \"p\"\nkind = \"bri\"\nprefix = \"0\"",
        "trunk[0].prefix",
        "prefix of isdn[0]",
    );
    invalid(
        "[phonebook]\nprefix = \"2#\"\n[[trunk]]\nname = \"a\"\nserver = \"h\"\nprefix = \"2#\"",
        "phonebook.prefix",
        "trunk[0]",
    );
    invalid(
        "[phonebook]\nentries = { \"3x\" = \"sip:a@b\" }",
        "phonebook.entries.\"3x\"",
        "dialable",
    );
    invalid(
        "[phonebook]\nentries = { \"30\" = \"a@b\" }",
        "phonebook.entries.\"30\"",
        "sip:",
    );
}

#[test]
fn trunk_aor_defaults_to_user_at_server() {
    let c = Config::from_toml_str(
        "[[trunk]]\nname = \"a\"\nserver = \"[::1]:5070\"\nuser = \"u\"\nregister = true",
    )
    .expect("config");
    assert_eq!(c.trunks[0].aor().as_deref(), Some("sip:u@[::1]"));
}

#[test]
fn env_override_of_backend() {
    let mut c = Config::default();
    c.apply_env(|_| None).expect("no env");
    assert_eq!(c.engine.backend, Backend::Auto);
    c.apply_env(|k| (k == ENV_IO_BACKEND).then(|| "epoll".to_string()))
        .expect("epoll");
    assert_eq!(c.engine.backend, Backend::Epoll);
    c.apply_env(|_| Some(String::new()))
        .expect("empty is unset");
    assert_eq!(c.engine.backend, Backend::Epoll);
    let e = c
        .apply_env(|_| Some("kqueue".to_string()))
        .expect_err("bad backend");
    assert_one_line(&e);
    assert!(e.to_string().contains("MGW_IO_BACKEND \"kqueue\""), "{e}");
}

#[test]
fn files_named_by_the_config_are_checked() {
    let dir = std::env::temp_dir().join(format!("mgw-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let csv = dir.join("users.csv");
    let mut c = Config::default();
    c.accounts.import_csv = Some(csv.clone());
    let e = c.check_files().expect_err("missing csv");
    assert!(matches!(e, ConfigError::File { .. }));
    let s = e.to_string();
    assert!(
        s.starts_with("accounts.import_csv \"") && s.contains("os error 2"),
        "{s}"
    );
    std::fs::write(&csv, "user,password,number\n").expect("write csv");
    c.check_files().expect("readable csv");
    c.accounts.import_csv = Some(dir.clone());
    assert!(c.check_files().is_err(), "a directory is not a CSV");

    // store.dir: created when missing, rejected when it cannot be.
    c.store.dir = dir.join("store/nested");
    c.prepare_store_dir().expect("creates store dir");
    assert!(c.store.dir.is_dir());
    c.store.dir = csv.join("sub");
    let e = c.prepare_store_dir().expect_err("a file is in the way");
    assert!(e.to_string().starts_with("store.dir "), "{e}");
    assert_one_line(&e);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bind_errors_say_what_to_do() {
    let e = ConfigError::Bind {
        key: "admin.listen".into(),
        value: "127.0.0.1:8080".into(),
        error: std::io::Error::from(std::io::ErrorKind::AddrInUse),
    };
    let s = e.to_string();
    assert!(
        s.starts_with("admin.listen \"127.0.0.1:8080\": cannot listen:"),
        "{s}"
    );
    assert!(s.contains("another process"), "{s}");
    assert_one_line(&e);
}

#[test]
fn every_example_in_the_configuration_doc_is_valid() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/configuration.md");
    let doc = std::fs::read_to_string(path).expect("docs/configuration.md");
    let mut blocks = 0;
    for block in doc.split("```toml\n").skip(1) {
        let text = block.split("```").next().expect("closed block");
        if let Err(e) = Config::from_toml_str(text) {
            panic!("example in docs/configuration.md is invalid: {e}\n{text}");
        }
        blocks += 1;
    }
    assert!(blocks > 20, "found only {blocks} examples");
}
