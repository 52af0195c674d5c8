//! Wazuh `client.keys` entries and the AES key derived from them.
//!
//! The agent's identity towards the manager is one `client.keys` line issued at enrollment;
//! everything it sends is encrypted with a key derived from it, so a line that parses wrongly
//! means frames the manager silently drops. Parsing is therefore strict, and the secret never
//! reaches a log through `Debug`.

use std::fmt;
use std::net::IpAddr;

use md5::{Digest, Md5};

/// Why a `client.keys` line was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The line does not have exactly four space-separated fields.
    #[error("expected 4 fields `<id> <name> <ip> <key>`, found {0}")]
    FieldCount(usize),
    /// The id is not 3 to 8 ASCII digits.
    #[error("agent id must be 3 to 8 digits, got {0:?}")]
    BadId(String),
    /// The name is empty, longer than 128 bytes, or has a character outside `[A-Za-z0-9._-]`.
    #[error("agent name must be 1 to 128 characters of [A-Za-z0-9._-], got {0:?}")]
    BadName(String),
    /// The address is neither `any`, an IP address nor a CIDR block.
    #[error("agent address must be `any`, an IP address or a CIDR block, got {0:?}")]
    BadIp(String),
    /// The key is not 64 hexadecimal characters (its value is not echoed).
    #[error("agent key must be 64 hexadecimal characters (got {0} characters)")]
    BadKey(usize),
    /// A line of a file was refused; `line` counts from 1.
    #[error("client.keys line {line}: {source}")]
    Line {
        /// 1-based line number in the file.
        line: usize,
        /// What was wrong with it.
        source: Box<KeyError>,
    },
}

/// Longest agent name Wazuh accepts, in bytes.
pub const MAX_NAME_BYTES: usize = 128;

/// Length of an issued key, in hexadecimal characters.
pub const KEY_HEX_LEN: usize = 64;

/// Which peer addresses a key is bound to; decides whether frames carry the `!<id>!` prefix,
/// because the manager can only find the key of a non-host-bound agent by its id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAddress {
    /// `any`: the agent may connect from anywhere.
    Any,
    /// One host (a bare address, or a CIDR with a full-length prefix).
    Host(IpAddr),
    /// A network (a CIDR with a shorter prefix).
    Network(IpAddr, u8),
}

impl KeyAddress {
    /// Parses `any`, an address, or `address/prefix`.
    fn parse(s: &str) -> Result<Self, KeyError> {
        let bad = || KeyError::BadIp(s.to_owned());
        if s.eq_ignore_ascii_case("any") {
            return Ok(KeyAddress::Any);
        }
        match s.split_once('/') {
            None => s.parse::<IpAddr>().map(KeyAddress::Host).map_err(|_| bad()),
            Some((addr, prefix)) => {
                let addr: IpAddr = addr.parse().map_err(|_| bad())?;
                let prefix: u8 = prefix.parse().map_err(|_| bad())?;
                let full = if addr.is_ipv4() { 32 } else { 128 };
                if prefix > full {
                    Err(bad())
                } else if prefix == full {
                    Ok(KeyAddress::Host(addr))
                } else {
                    Ok(KeyAddress::Network(addr, prefix))
                }
            }
        }
    }

    /// Whether the manager needs the `!<id>!` prefix to find this key (anything but one host).
    pub fn needs_id_prefix(&self) -> bool {
        !matches!(self, KeyAddress::Host(_))
    }
}

/// One agent's entry in `client.keys`: the identity and secret used for every frame.
#[derive(Clone, PartialEq, Eq)]
pub struct AgentKey {
    id: String,
    name: String,
    ip: String,
    address: KeyAddress,
    key: String,
}

impl fmt::Debug for AgentKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentKey")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("ip", &self.ip)
            .field("key", &"<redacted>")
            .finish()
    }
}

impl AgentKey {
    /// Parses one line. `Ok(None)` is a blank line or a removed entry (a line starting with
    /// `#` or a space, or a name starting with `#` or `!`), which Wazuh skips rather than
    /// refusing the file.
    pub fn parse_line(line: &str) -> Result<Option<Self>, KeyError> {
        let line = line.strip_suffix('\n').unwrap_or(line);
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() || line.starts_with('#') || line.starts_with(' ') {
            return Ok(None);
        }
        let fields: Vec<&str> = line.split(' ').collect();
        if let Some(name) = fields.get(1)
            && (name.starts_with('#') || name.starts_with('!'))
        {
            return Ok(None);
        }
        let [id, name, ip, key] = fields.as_slice() else {
            return Err(KeyError::FieldCount(fields.len()));
        };
        if !(3..=8).contains(&id.len()) || !id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(KeyError::BadId((*id).to_owned()));
        }
        if name.is_empty()
            || name.len() > MAX_NAME_BYTES
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return Err(KeyError::BadName((*name).to_owned()));
        }
        let address = KeyAddress::parse(ip)?;
        if key.len() != KEY_HEX_LEN || !key.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(KeyError::BadKey(key.len()));
        }
        Ok(Some(AgentKey {
            id: (*id).to_owned(),
            name: (*name).to_owned(),
            ip: (*ip).to_owned(),
            address,
            key: (*key).to_owned(),
        }))
    }

    /// Parses a whole `client.keys` file, skipping removed entries; the first bad line fails
    /// the file, since guessing which entry is ours would be worse than stopping.
    pub fn parse_file(text: &str) -> Result<Vec<Self>, KeyError> {
        let mut out = Vec::new();
        for (i, line) in text.lines().enumerate() {
            match Self::parse_line(line) {
                Ok(Some(k)) => out.push(k),
                Ok(None) => {}
                Err(e) => {
                    return Err(KeyError::Line {
                        line: i + 1,
                        source: Box::new(e),
                    });
                }
            }
        }
        Ok(out)
    }

    /// The `client.keys` line of this key, secret included: for writing the keys file only.
    pub fn to_line(&self) -> String {
        format!("{} {} {} {}", self.id, self.name, self.ip, self.key)
    }

    /// The agent id, as written (leading zeros matter: it goes verbatim into `!<id>!`).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The agent name the manager knows this agent by.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The address field as written (`any`, an address or a CIDR block).
    pub fn ip(&self) -> &str {
        &self.ip
    }

    /// The parsed address field; decides the `!<id>!` prefix.
    pub fn address(&self) -> KeyAddress {
        self.address
    }

    /// The AES-256 key: the 32 ASCII characters of md5hex(key), as Wazuh derives it.
    pub fn aes_key(&self) -> AesKey {
        AesKey(md5_hex(self.key.as_bytes()))
    }

    /// Wazuh's full `encryption_key` string (47 ASCII characters): md5hex(key) followed by
    /// the first 15 characters of md5hex(md5hex(name) ‖ md5hex(id)). Only its first 32 bytes
    /// reach AES-256; it exists to check a derivation against Wazuh's own key store.
    pub fn encryption_key_full(&self) -> AesKeyFull {
        let inner = [md5_hex(self.name.as_bytes()), md5_hex(self.id.as_bytes())].concat();
        let tail = md5_hex(&inner);
        let mut full = md5_hex(self.key.as_bytes()).to_vec();
        full.extend_from_slice(&tail[..15]);
        AesKeyFull(full)
    }
}

/// The 32-byte AES-256 key; kept in its own type so it cannot be logged by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct AesKey([u8; 32]);

impl AesKey {
    /// The raw key bytes for the cipher.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for AesKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AesKey(<redacted>)")
    }
}

/// Wazuh's 47-character `encryption_key` (see [`AgentKey::encryption_key_full`]); redacted in
/// `Debug` like every secret.
#[derive(Clone, PartialEq, Eq)]
pub struct AesKeyFull(Vec<u8>);

impl AesKeyFull {
    /// The ASCII bytes, for comparing with Wazuh's own derivation.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for AesKeyFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AesKeyFull(<redacted>)")
    }
}

/// Lowercase hexadecimal MD5, the form Wazuh uses everywhere (`OS_MD5_Str`).
pub(crate) fn md5_hex(data: &[u8]) -> [u8; 32] {
    let digest = Md5::digest(data);
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 32];
    for (pair, byte) in out.chunks_exact_mut(2).zip(digest.iter()) {
        pair[0] = HEX[usize::from(byte >> 4)];
        pair[1] = HEX[usize::from(byte & 0x0f)];
    }
    out
}
