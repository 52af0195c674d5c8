//! The Wazuh agent protocol's offline half: `client.keys` parsing and the secure-message codec.
//!
//! Vigil ships its events to a Wazuh manager as if it were a Wazuh agent, so that the
//! manager's stock decoders and rules apply. This module holds only what can be checked
//! byte for byte against Wazuh's own encoder, and no sockets: enrollment, the connection
//! and its control messages are to be built on it, apart from it.

pub mod codec;
pub mod keys;

#[cfg(test)]
mod tests;

pub use codec::{
    AES_IV, BlockHeader, CodecError, Counters, Decoded, FrameEncoder, LOCAL_ROLLOVER,
    MAX_EVENT_BYTES, MAX_FRAME_PAYLOAD_BYTES, OS_MAXSTR, RandSource, SecureCodec, WAZUH_ZLIB_LEVEL,
    build_block, build_plain, check_event_size, default_rand_source, frame_len, open_plain,
};
pub use keys::{AesKey, AesKeyFull, AgentKey, KeyAddress, KeyError};
