//! The `wazuh` output: Vigil ships its events to a Wazuh manager as if it were a Wazuh agent,
//! so that the manager's stock decoders and rules apply.
//!
//! - [`keys`] and [`codec`]: `client.keys` and the secure-message codec, checked byte for
//!   byte against Wazuh's own encoder; no sockets.
//! - [`enroll`]: the request to wazuh-authd; [`state`]: the key and counters on disk.
//! - `connection`: the TCP session with remoted (startup, keepalives, ACKs, events).
//! - `message`: events as `1:<location>:<JSON>` messages.
//! - `output`: the configuration, assembled into a spooled [`RemoteOutput`].
//!
//! [`RemoteOutput`]: crate::outputs::remote::RemoteOutput

pub mod codec;
mod connection;
pub mod enroll;
pub mod keys;
pub mod manager_rules;
mod message;
mod output;
pub mod state;

#[cfg(test)]
mod tests;

pub use codec::{
    AES_IV, BlockHeader, CodecError, Counters, Decoded, FrameEncoder, LOCAL_ROLLOVER,
    MAX_EVENT_BYTES, MAX_FRAME_PAYLOAD_BYTES, OS_MAXSTR, RandSource, SecureCodec, WAZUH_ZLIB_LEVEL,
    build_block, build_plain, check_event_size, default_rand_source, frame_len, open_plain,
};
pub use connection::{ConnectionSettings, Identity, WazuhTransport};
pub use keys::{AesKey, AesKeyFull, AgentKey, KeyAddress, KeyError};
pub use message::{DOCKER_LOCATION, Locations, WazuhEncoder, vigil_value};
pub use output::{EnrollmentConfig, WazuhOutputConfig, build};
