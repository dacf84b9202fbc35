//! Whether an authenticated log-on may set up a call, and what it takes to do so: the account
//! rules of seed 003 and the licence rules of seeds 000/002, in one place the call path asks.
//!
//! Outgoing, in order:
//! 1. the request must come from one of the account's allowed networks; otherwise it is refused
//!    exactly like bad credentials, so nothing tells an outsider the user exists;
//! 2. a disabled account places nothing;
//! 3. an emergency number is always allowed (a free licence is taken if there is one, and a
//!    voice channel is counted even beyond the limit): seed 000 forbids emergency calls only on
//!    bad credentials, which never get this far;
//! 4. a pending account places nothing else ("not active until activated");
//! 5. a licence is claimed, or the one held is kept; none free = emergency calls only;
//! 6. a voice channel of the account must be free.
//!
//! Incoming: the called account must be enabled and have a free voice channel.

use std::net::IpAddr;
use std::sync::Arc;

use crate::directory::{
    AccountId, AccountState, ChannelGate, ChannelToken, Directory, LogOn, LogOnId,
};

/// The account of a call with none behind it (a PSTN caller on a trunk).
pub const NO_ACCOUNT: AccountId = AccountId::MAX;
use crate::licence::{Claimed, LicencePool};

/// Numbers callable without a licence (seed 000), as dialled.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EmergencyNumbers(Vec<Box<str>>);

/// Default emergency numbers: EU/DE fire and police, North America, UK.
pub const DEFAULT_EMERGENCY: [&str; 4] = ["110", "112", "911", "999"];

impl EmergencyNumbers {
    pub fn new<S: AsRef<str>>(numbers: &[S]) -> EmergencyNumbers {
        EmergencyNumbers(
            numbers
                .iter()
                .map(|n| digits(n.as_ref()).into_boxed_str())
                .filter(|n| !n.is_empty())
                .collect(),
        )
    }

    /// Whether `dialled` (a number, or the user part of a request URI) is an emergency number.
    /// Visual separators are ignored (`1-1-2` is 112); nothing else is, so `1120` is not.
    pub fn contains(&self, dialled: &str) -> bool {
        let d = digits(dialled);
        self.0.iter().any(|n| **n == *d)
    }

    pub fn list(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|n| &**n)
    }
}

/// `dialled` without visual separators (RFC 3966 section 5.1.1).
fn digits(dialled: &str) -> String {
    dialled
        .chars()
        .filter(|c| !matches!(c, '-' | '.' | ' ' | '(' | ')'))
        .collect()
}

/// Why a call is refused, each with the SIP answer it gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// From outside the account's allowed networks: answered like bad credentials.
    NetworkNotAllowed,
    /// The log-on's account no longer exists (deleted while the phone was registered).
    NoAccount,
    AccountNotActive(AccountState),
    /// Every licence is taken: emergency calls only.
    NoLicence,
    /// Every voice channel of the account is in use.
    ChannelsBusy {
        limit: u32,
    },
}

impl Refusal {
    /// Status code and reason phrase. The reason names the cause for the person at the phone.
    pub fn status(&self) -> (u16, &'static str) {
        match self {
            Refusal::NetworkNotAllowed => (403, "Forbidden"),
            Refusal::NoAccount => (403, "Forbidden: log-on has no account"),
            Refusal::AccountNotActive(AccountState::Pending) => {
                (403, "Forbidden: account not yet enabled")
            }
            Refusal::AccountNotActive(_) => (403, "Forbidden: account disabled"),
            Refusal::NoLicence => (403, "Forbidden: no licence free, emergency calls only"),
            Refusal::ChannelsBusy { .. } => (486, "Busy Here: all voice channels in use"),
        }
    }

    /// The Q.850 cause a `Reason` header gives a gateway behind the caller, where one is
    /// told: not for the refusals that must look exactly like bad credentials.
    pub fn q850(&self) -> Option<u8> {
        match self {
            Refusal::NetworkNotAllowed | Refusal::NoAccount => None,
            Refusal::AccountNotActive(_) | Refusal::NoLicence => Some(21),
            Refusal::ChannelsBusy { .. } => Some(17),
        }
    }
}

/// An admitted call: it holds its voice channel until dropped.
#[derive(Debug)]
pub struct CallPermit {
    pub emergency: bool,
    /// What happened to the caller's licence (`None`: an emergency call with none free).
    pub licence: Option<Claimed>,
    pub channel: ChannelToken,
    /// A slot of the line or trunk the call came from, held for the call's life.
    pub peer_slot: Option<ChannelToken>,
}

pub struct Admission {
    pub directory: Arc<Directory>,
    pub licences: Arc<LicencePool>,
    pub emergency: EmergencyNumbers,
}

impl Admission {
    pub fn new(
        directory: Arc<Directory>,
        licences: Arc<LicencePool>,
        emergency: EmergencyNumbers,
    ) -> Arc<Admission> {
        Arc::new(Admission {
            directory,
            licences,
            emergency,
        })
    }

    /// May `caller`, whose request came from `source`, call `dialled`?
    pub fn outgoing(
        &self,
        caller: &LogOn,
        dialled: &str,
        source: IpAddr,
        now_unix_s: u32,
    ) -> Result<CallPermit, Refusal> {
        let account = self
            .directory
            .account(caller.account)
            .ok_or(Refusal::NoAccount)?;
        if !account.admits(source) {
            return Err(Refusal::NetworkNotAllowed);
        }
        if account.state == AccountState::Disabled {
            return Err(Refusal::AccountNotActive(account.state));
        }
        if self.emergency.contains(dialled) {
            let licence = match self.licences.claim(caller.id, now_unix_s) {
                Claimed::Exhausted => None,
                c => Some(c),
            };
            return Ok(CallPermit {
                emergency: true,
                licence,
                channel: account.channels.force_acquire(),
                peer_slot: None,
            });
        }
        if account.state != AccountState::Enabled {
            return Err(Refusal::AccountNotActive(account.state));
        }
        let licence = match self.licences.claim(caller.id, now_unix_s) {
            Claimed::Exhausted => return Err(Refusal::NoLicence),
            c => c,
        };
        let channel = account
            .channels
            .try_acquire()
            .ok_or(Refusal::ChannelsBusy {
                limit: account.channels.limit().unwrap_or(u32::MAX),
            })?;
        Ok(CallPermit {
            emergency: false,
            licence: Some(licence),
            channel,
            peer_slot: None,
        })
    }

    /// A call from a peer (a line driver, a trunk): no log-on and no licence behind it. When
    /// `calling` is a number the peer serves itself (`calling_is_own`: a DECT handset) and an
    /// account has it as its main number, the call takes one of that account's voice channels
    /// and obeys its state; a trunk's caller ID never stands for an account.
    /// Returns the log-on the call is placed under: the peer's name, the calling number.
    pub fn from_peer(
        &self,
        peer: &str,
        calling: &str,
        dialled: &str,
        calling_is_own: bool,
    ) -> Result<(LogOn, CallPermit), Refusal> {
        let emergency = self.emergency.contains(dialled);
        let account = (calling_is_own && !calling.is_empty())
            .then(|| {
                self.directory
                    .accounts()
                    .into_iter()
                    .find(|a| &*a.main_number == calling)
            })
            .flatten();
        let log_on = LogOn {
            id: LogOnId::MAX,
            user: peer.into(),
            number: calling.into(),
            account: account.as_ref().map_or(NO_ACCOUNT, |a| a.id),
            ha1_md5: "".into(),
            ha1_sha256: "".into(),
            keepalive: None,
        };
        let channel = match &account {
            None => Arc::new(ChannelGate::new(None)).force_acquire(),
            Some(a) if emergency => a.channels.force_acquire(),
            Some(a) if a.state != AccountState::Enabled => {
                return Err(Refusal::AccountNotActive(a.state))
            }
            Some(a) => a.channels.try_acquire().ok_or(Refusal::ChannelsBusy {
                limit: a.channels.limit().unwrap_or(u32::MAX),
            })?,
        };
        let permit = CallPermit {
            emergency,
            licence: None,
            channel,
            peer_slot: None,
        };
        Ok((log_on, permit))
    }

    /// May a call be delivered to the account that owns `number`'s log-on `callee`?
    pub fn incoming(&self, callee: &LogOn) -> Result<ChannelToken, Refusal> {
        let account = self
            .directory
            .account(callee.account)
            .ok_or(Refusal::NoAccount)?;
        if account.state != AccountState::Enabled {
            return Err(Refusal::AccountNotActive(account.state));
        }
        account.channels.try_acquire().ok_or(Refusal::ChannelsBusy {
            limit: account.channels.limit().unwrap_or(u32::MAX),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::Account;

    fn setup(total: u32) -> Admission {
        let d = Arc::new(Directory::new());
        d.put_account(Account::new(
            1,
            "a",
            "100",
            AccountState::Enabled,
            Some(1),
            vec![],
        ));
        d.put_account(Account::new(
            2,
            "b",
            "200",
            AccountState::Pending,
            None,
            vec![],
        ));
        d.put_account(Account::new(
            3,
            "c",
            "300",
            AccountState::Enabled,
            None,
            vec!["10.0.0.0/8".parse().unwrap()],
        ));
        d.put_account(Account::new(
            4,
            "d",
            "400",
            AccountState::Disabled,
            None,
            vec![],
        ));
        for (id, user, acc) in [
            (1, "alice", 1),
            (2, "bob", 1),
            (3, "pat", 2),
            (4, "lan", 3),
            (5, "off", 4),
        ] {
            d.insert(LogOn::new(id, user, "pw", "x", acc, "r"));
        }
        Admission {
            directory: d,
            licences: Arc::new(LicencePool::new(total)),
            emergency: EmergencyNumbers::new(&DEFAULT_EMERGENCY),
        }
    }

    fn lo(a: &Admission, user: &str) -> Arc<LogOn> {
        a.directory.get(user).unwrap()
    }

    const HOME: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 1, 1, 1));
    const AWAY: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));

    #[test]
    fn licence_then_emergency_only() {
        let a = setup(1);
        let p = a.outgoing(&lo(&a, "alice"), "200", HOME, 1).unwrap();
        assert_eq!(p.licence, Some(Claimed::Granted));
        drop(p);
        assert_eq!(
            a.outgoing(&lo(&a, "alice"), "200", HOME, 2)
                .unwrap()
                .licence,
            Some(Claimed::Held)
        );
        assert_eq!(
            a.outgoing(&lo(&a, "bob"), "200", HOME, 3).unwrap_err(),
            Refusal::NoLicence
        );
        let e = a.outgoing(&lo(&a, "bob"), "112", HOME, 3).unwrap();
        assert!(e.emergency);
        assert_eq!(e.licence, None);
        drop(e);
        a.licences.release(1);
        assert_eq!(
            a.outgoing(&lo(&a, "bob"), "200", HOME, 4).unwrap().licence,
            Some(Claimed::Granted)
        );
    }

    #[test]
    fn channels_count_in_and_out_together() {
        let a = setup(10);
        let out = a.outgoing(&lo(&a, "alice"), "300", HOME, 1).unwrap();
        assert_eq!(
            a.incoming(&lo(&a, "bob")).unwrap_err(),
            Refusal::ChannelsBusy { limit: 1 }
        );
        let emergency = a.outgoing(&lo(&a, "bob"), "911", HOME, 1).unwrap();
        drop((out, emergency));
        let inbound = a.incoming(&lo(&a, "bob")).unwrap();
        assert_eq!(
            a.outgoing(&lo(&a, "alice"), "300", HOME, 1).unwrap_err(),
            Refusal::ChannelsBusy { limit: 1 }
        );
        drop(inbound);
    }

    #[test]
    fn account_states_and_networks() {
        let a = setup(10);
        assert_eq!(
            a.outgoing(&lo(&a, "pat"), "100", HOME, 1).unwrap_err(),
            Refusal::AccountNotActive(AccountState::Pending)
        );
        assert!(
            a.outgoing(&lo(&a, "pat"), "112", HOME, 1)
                .unwrap()
                .emergency
        );
        assert!(a.incoming(&lo(&a, "pat")).is_err());
        assert_eq!(
            a.outgoing(&lo(&a, "off"), "112", HOME, 1).unwrap_err(),
            Refusal::AccountNotActive(AccountState::Disabled)
        );
        assert!(a.outgoing(&lo(&a, "lan"), "100", HOME, 1).is_ok());
        assert_eq!(
            a.outgoing(&lo(&a, "lan"), "112", AWAY, 1).unwrap_err(),
            Refusal::NetworkNotAllowed
        );
        assert_eq!(Refusal::NetworkNotAllowed.status(), (403, "Forbidden"));
    }

    #[test]
    fn emergency_numbers_match_exactly() {
        let e = EmergencyNumbers::new(&["112", " 9-1-1 "]);
        assert!(e.contains("112"));
        assert!(e.contains("1-1-2"));
        assert!(e.contains("911"));
        assert!(!e.contains("1120"));
        assert!(!e.contains("11"));
        assert!(!e.contains(""));
    }
}
