//! HTTP Digest authentication for SIP (RFC 3261 section 22, RFC 7616, RFC 8760).

pub mod credentials;
pub mod digest;
pub mod nonce;

pub use credentials::{Credentials, CredentialsError};
pub use digest::{Algorithm, Challenge, ChallengeKind};
pub use nonce::{NonceCheck, NonceKey};
