//! Reassembled messages as normalized events.

use crate::event::{Container, Event, Kind, Log, Outcome, SchemaTag, Source, event_id};

use super::{LogParseError, Message};

/// What every event of one log file shares.
#[derive(Debug, Clone, Default)]
pub struct LogContext {
    /// Cluster name stamped on the events.
    pub cluster: Option<String>,
    /// Node name stamped on the events.
    pub node: Option<String>,
    /// The container, as far as the path and the runtime tell.
    pub container: Option<Container>,
    /// The file's path, as `log.file`.
    pub file: String,
    /// What names the file's content across renames (the tail engine's fingerprint, in
    /// hex): with the offset it makes the stable event id.
    pub origin: String,
}

/// Normalizes a log timestamp to UTC with nine fraction digits.
pub fn normalize_time(time: &str) -> Result<String, LogParseError> {
    crate::timestamp::normalize(time).ok_or_else(|| LogParseError::bad_timestamp(time.as_bytes()))
}

/// The event of one message. Fails only on a timestamp that is not RFC 3339.
pub fn message_event(
    msg: &Message<'_>,
    ctx: &LogContext,
    ingest_time: &str,
) -> Result<Event, LogParseError> {
    let time = normalize_time(msg.time)?;
    let message = match simdutf8::basic::from_utf8(msg.text) {
        Ok(s) => s.to_owned(),
        Err(_) => String::from_utf8_lossy(msg.text).into_owned(),
    };
    Ok(Event {
        schema: SchemaTag::default(),
        id: event_id(Source::ContainerLog, &ctx.origin, msg.offset, 0),
        time,
        ingest_time: ingest_time.to_owned(),
        cluster: ctx.cluster.clone(),
        node: ctx.node.clone(),
        source: Source::ContainerLog,
        kind: Kind::Log,
        action: "log".to_owned(),
        outcome: Outcome::Unknown,
        container: ctx.container.clone(),
        log: Some(Log {
            stream: Some(msg.stream.as_str().to_owned()),
            message: Some(message),
            partial: msg.cut,
            file: Some(ctx.file.clone()),
            offset: Some(msg.offset),
        }),
        ..Event::default()
    })
}
