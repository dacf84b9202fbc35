//! Who may use the gateway: SIP log-ons (user name, password as HA1 digests, the number they
//! are attached to) and the accounts that own those numbers (seed 003: state, voice channels,
//! allowed networks).
//!
//! Several log-ons may share a number (seed 000: several phones on one line). The directory is
//! read on every authenticated request and written rarely (import, admin API), so it is a set
//! of lock-free maps that readers never wait on. The store (SQLite, in the `mgw` crate) is the
//! durable copy; it pushes every committed change here.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use crate::auth::Algorithm;
use crate::cidr::Cidr;
use crate::registrar::ExpiryBounds;

/// A log-on's id: the store's row id, also its key in the licence pool.
pub type LogOnId = u32;
pub type AccountId = u32;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogOn {
    pub id: LogOnId,
    pub user: Box<str>,
    pub number: Box<str>,
    pub account: AccountId,
    /// `H(user:realm:password)` per algorithm; the password itself is never kept.
    pub ha1_md5: Box<str>,
    pub ha1_sha256: Box<str>,
    /// The keepalive profile assigned to this log-on's device, resolved to its bounds; `None`
    /// means the registrar's defaults (seed 000: "the internal clock for automatic log-out is
    /// determined by the profile assigned").
    pub keepalive: Option<ExpiryBounds>,
}

impl LogOn {
    /// Builds a log-on from a clear password, which is hashed at once and dropped.
    pub fn new(
        id: LogOnId,
        user: &str,
        password: &str,
        number: &str,
        account: AccountId,
        realm: &str,
    ) -> LogOn {
        LogOn {
            id,
            user: user.into(),
            number: number.into(),
            account,
            ha1_md5: Algorithm::Md5.ha1(user, realm, password).into(),
            ha1_sha256: Algorithm::Sha256.ha1(user, realm, password).into(),
            keepalive: None,
        }
    }

    pub fn ha1(&self, alg: Algorithm) -> &str {
        match alg {
            Algorithm::Md5 => &self.ha1_md5,
            Algorithm::Sha256 => &self.ha1_sha256,
        }
    }
}

/// Seed 003: "a new account is not active until activated"; disabled = "registration
/// suspended".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AccountState {
    /// Created, not yet enabled: devices may register, but no call is placed or received.
    Pending,
    Enabled,
    /// Registration suspended: bindings dropped, REGISTER refused with 403.
    Disabled,
}

impl AccountState {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountState::Pending => "pending",
            AccountState::Enabled => "enabled",
            AccountState::Disabled => "disabled",
        }
    }

    pub fn parse(s: &str) -> Option<AccountState> {
        match s {
            "pending" => Some(AccountState::Pending),
            "enabled" => Some(AccountState::Enabled),
            "disabled" => Some(AccountState::Disabled),
            _ => None,
        }
    }
}

/// What the SIP path needs of an account. Replaced whole on every change; the channel gate is
/// carried over so calls in progress stay counted.
#[derive(Debug)]
pub struct Account {
    pub id: AccountId,
    pub name: Box<str>,
    pub main_number: Box<str>,
    pub state: AccountState,
    /// Networks requests must come from; empty = anywhere.
    pub networks: Vec<Cidr>,
    pub channels: Arc<ChannelGate>,
    /// Caller-ID rules: callee prefix -> one of the account's numbers (longest prefix wins).
    pub caller_id_rules: Vec<(Box<str>, Box<str>)>,
}

impl Account {
    pub fn new(
        id: AccountId,
        name: &str,
        main_number: &str,
        state: AccountState,
        channels: Option<u32>,
        networks: Vec<Cidr>,
    ) -> Account {
        Account {
            id,
            name: name.into(),
            main_number: main_number.into(),
            state,
            networks,
            channels: Arc::new(ChannelGate::new(channels)),
            caller_id_rules: Vec::new(),
        }
    }

    /// The number shown to a callee of `dialled`: the longest matching caller-ID rule's,
    /// else `None` (the main number).
    pub fn caller_id_for(&self, dialled: &str) -> Option<&str> {
        self.caller_id_rules
            .iter()
            .filter(|(prefix, _)| dialled.starts_with(&**prefix))
            .max_by_key(|(prefix, _)| prefix.len())
            .map(|(_, n)| &**n)
    }

    /// Whether a request from `ip` may use this account at all.
    pub fn admits(&self, ip: IpAddr) -> bool {
        self.networks.is_empty() || self.networks.iter().any(|n| n.contains(ip))
    }
}

/// Voice channels (seed 003): simultaneous calls of an account, inbound and outbound counted
/// together. Lock-free; a [`ChannelToken`] is one call and frees its channel when dropped.
#[derive(Debug)]
pub struct ChannelGate {
    /// `u32::MAX` = unlimited.
    limit: AtomicU32,
    busy: AtomicU32,
}

impl ChannelGate {
    pub fn new(limit: Option<u32>) -> ChannelGate {
        ChannelGate {
            limit: AtomicU32::new(limit.unwrap_or(u32::MAX)),
            busy: AtomicU32::new(0),
        }
    }

    pub fn limit(&self) -> Option<u32> {
        match self.limit.load(Ordering::Acquire) {
            u32::MAX => None,
            l => Some(l),
        }
    }

    /// A lowered limit ends no call; it only refuses new ones until enough have ended.
    pub fn set_limit(&self, limit: Option<u32>) {
        self.limit
            .store(limit.unwrap_or(u32::MAX), Ordering::Release);
    }

    pub fn busy(&self) -> u32 {
        self.busy.load(Ordering::Acquire)
    }

    /// Takes a channel if one is free.
    pub fn try_acquire(self: &Arc<Self>) -> Option<ChannelToken> {
        let limit = self.limit.load(Ordering::Acquire);
        self.busy
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |b| {
                (b < limit).then_some(b + 1)
            })
            .ok()
            .map(|_| ChannelToken(self.clone()))
    }

    /// Takes a channel even when none is free (emergency calls): counted, never refused.
    pub fn force_acquire(self: &Arc<Self>) -> ChannelToken {
        self.busy.fetch_add(1, Ordering::AcqRel);
        ChannelToken(self.clone())
    }
}

/// One call's voice channel, freed on drop.
#[derive(Debug)]
pub struct ChannelToken(Arc<ChannelGate>);

impl Drop for ChannelToken {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

#[derive(Default)]
pub struct Directory {
    log_ons: papaya::HashMap<Box<str>, Arc<LogOn>>,
    users: papaya::HashMap<LogOnId, Box<str>>,
    accounts: papaya::HashMap<AccountId, Arc<Account>>,
}

impl Directory {
    pub fn new() -> Directory {
        Directory::default()
    }

    pub fn get(&self, user: &str) -> Option<Arc<LogOn>> {
        self.log_ons.pin().get(user).cloned()
    }

    /// The user name of log-on `id`.
    pub fn user_of(&self, id: LogOnId) -> Option<Box<str>> {
        self.users.pin().get(&id).cloned()
    }

    /// Adds or replaces a log-on (by user name).
    pub fn insert(&self, log_on: LogOn) {
        let users = self.users.pin();
        let (id, user) = (log_on.id, log_on.user.clone());
        if let Some(old) = self.log_ons.pin().insert(user.clone(), Arc::new(log_on)) {
            if old.id != id {
                users.remove(&old.id);
            }
        }
        users.insert(id, user);
    }

    pub fn remove(&self, user: &str) -> Option<Arc<LogOn>> {
        let old = self.log_ons.pin().remove(user).cloned();
        if let Some(o) = &old {
            self.users.pin().remove(&o.id);
        }
        old
    }

    pub fn len(&self) -> usize {
        self.log_ons.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn all(&self) -> Vec<Arc<LogOn>> {
        self.log_ons.pin().values().cloned().collect()
    }

    /// Log-ons of an account.
    pub fn log_ons_of(&self, account: AccountId) -> Vec<Arc<LogOn>> {
        self.log_ons
            .pin()
            .values()
            .filter(|l| l.account == account)
            .cloned()
            .collect()
    }

    pub fn account(&self, id: AccountId) -> Option<Arc<Account>> {
        self.accounts.pin().get(&id).cloned()
    }

    /// Adds or replaces an account, keeping the calls it has in progress counted.
    pub fn put_account(&self, mut account: Account) {
        let accounts = self.accounts.pin();
        if let Some(old) = accounts.get(&account.id) {
            old.channels.set_limit(account.channels.limit());
            account.channels = old.channels.clone();
        }
        accounts.insert(account.id, Arc::new(account));
    }

    pub fn remove_account(&self, id: AccountId) -> Option<Arc<Account>> {
        self.accounts.pin().remove(&id).cloned()
    }

    pub fn accounts(&self) -> Vec<Arc<Account>> {
        self.accounts.pin().values().cloned().collect()
    }
}

/// One line of an accounts CSV.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CsvRow {
    pub user: String,
    pub password: String,
    pub number: String,
    /// Voice channels of the number's account; `None` = unlimited.
    pub channels: Option<u32>,
}

/// Whether `user` may be a SIP log-on name: the URI user characters of RFC 3261 section 25.1
/// that need no escaping.
pub fn valid_user(user: &str) -> bool {
    !user.is_empty()
        && user.len() <= 64
        && user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.!~*'()&=+$;?/".contains(&b))
}

/// Whether `number` is a dialable number: digits, optionally with `+`, `*` and `#`.
pub fn valid_number(number: &str) -> bool {
    !number.is_empty()
        && number.len() <= 32
        && number
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'+' || b == b'*' || b == b'#')
}

/// Why a line of an accounts CSV was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CsvError {
    pub line: usize,
    pub reason: String,
}

impl std::fmt::Display for CsvError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

/// Parses `user,password,number[,channels]` with a header line (the interface's import
/// format). Every faulty line is reported; nothing is half-imported by the caller on error.
pub fn parse_csv(text: &str) -> Result<Vec<CsvRow>, Vec<CsvError>> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut lines = text.lines().enumerate();
    match lines.next() {
        Some((_, h))
            if h.trim()
                .to_ascii_lowercase()
                .starts_with("user,password,number") => {}
        _ => {
            return Err(vec![CsvError {
                line: 1,
                reason: "expected the header \"user,password,number[,channels]\"".into(),
            }])
        }
    }
    for (i, line) in lines {
        let n = i + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let cols: Vec<&str> = line.split(',').map(str::trim).collect();
        let err = |reason: String| CsvError { line: n, reason };
        if cols.len() < 3 || cols.len() > 4 {
            errors.push(err(format!(
                "expected 3 or 4 columns, found {}",
                cols.len()
            )));
            continue;
        }
        let (user, password, number) = (cols[0], cols[1], cols[2]);
        if !valid_user(user) {
            errors.push(err(format!(
                "user {user:?} is empty or has characters not allowed in a SIP user part"
            )));
            continue;
        }
        if password.is_empty() {
            errors.push(err(format!("user {user:?} has an empty password")));
            continue;
        }
        if !valid_number(number) {
            errors.push(err(format!(
                "number {number:?} must be digits (optionally with +, *, #)"
            )));
            continue;
        }
        let channels = match cols.get(3).filter(|c| !c.is_empty()) {
            None => None,
            Some(c) => match c.parse::<u32>() {
                Ok(v) => Some(v),
                Err(_) => {
                    errors.push(err(format!("channels {c:?} is not a whole number")));
                    continue;
                }
            },
        };
        if !seen.insert(user.to_string()) {
            errors.push(err(format!("user {user:?} appears twice")));
            continue;
        }
        out.push(CsvRow {
            user: user.into(),
            password: password.into(),
            number: number.into(),
            channels,
        });
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_import() {
        let l = parse_csv("user,password,number,channels\nalice,pw,100,2\nbob,pw2,100\n").unwrap();
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].channels, Some(2));
        assert_eq!(l[1].number, "100");
        let e = parse_csv("user,password,number\nalice,,100\nbad user,x,1\nc,x,12a\nd,x,1,x\n")
            .unwrap_err();
        assert_eq!(e.iter().map(|e| e.line).collect::<Vec<_>>(), [2, 3, 4, 5]);
        assert!(parse_csv("name,pw\n").is_err());
    }

    #[test]
    fn directory_is_shared_without_locks() {
        let d = Arc::new(Directory::new());
        let d2 = d.clone();
        std::thread::spawn(move || d2.insert(LogOn::new(7, "u", "p", "1", 1, "r")))
            .join()
            .unwrap();
        assert_eq!(d.get("u").unwrap().number.as_ref(), "1");
        assert_eq!(d.user_of(7).as_deref(), Some("u"));
        d.insert(LogOn::new(7, "u", "p2", "2", 1, "r"));
        assert_eq!(d.user_of(7).as_deref(), Some("u"));
        assert!(d.remove("u").is_some());
        assert!(d.is_empty());
        assert!(d.user_of(7).is_none());
    }

    #[test]
    fn channel_gate_counts_calls_across_account_updates() {
        let d = Directory::new();
        d.put_account(Account::new(
            1,
            "a",
            "100",
            AccountState::Enabled,
            Some(2),
            vec![],
        ));
        let gate = d.account(1).unwrap().channels.clone();
        let c1 = gate.try_acquire().unwrap();
        let c2 = gate.try_acquire().unwrap();
        assert!(gate.try_acquire().is_none());
        let e = gate.force_acquire();
        assert_eq!(gate.busy(), 3);
        d.put_account(Account::new(
            1,
            "a",
            "100",
            AccountState::Enabled,
            Some(3),
            vec![],
        ));
        let gate2 = d.account(1).unwrap().channels.clone();
        assert_eq!(gate2.busy(), 3, "calls in progress survive an update");
        assert!(gate2.try_acquire().is_none());
        drop((c1, c2, e));
        assert_eq!(gate2.busy(), 0);
        assert_eq!(gate2.limit(), Some(3));
    }

    #[test]
    fn networks_restrict_an_account() {
        let open = Account::new(1, "a", "1", AccountState::Enabled, None, vec![]);
        assert!(open.admits("203.0.113.9".parse().unwrap()));
        let lan = Account::new(
            2,
            "b",
            "2",
            AccountState::Enabled,
            None,
            vec!["10.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()],
        );
        assert!(lan.admits("10.1.2.3".parse().unwrap()));
        assert!(lan.admits("::1".parse().unwrap()));
        assert!(!lan.admits("127.0.0.1".parse().unwrap()));
    }
}
