//! HTTP Digest authentication for SIP (RFC 3261 section 22, RFC 7616, RFC 8760).

pub mod credentials;
pub mod digest;
pub mod nonce;
pub mod nonce_count;
pub mod verifier;

pub use credentials::{Credentials, CredentialsError};
pub use digest::{Algorithm, Challenge, ChallengeKind};
pub use nonce::{NonceCheck, NonceKey};
pub use nonce_count::NonceCounts;
pub use verifier::{Verdict, Verifier};
