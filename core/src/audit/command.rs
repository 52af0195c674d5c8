//! The command of `kubectl exec` / `attach`, decoded from the request URI.
//!
//! kube-apiserver records the exec command only as repeated `command=` query parameters of
//! the `pods/<name>/exec` URI (URL-encoded, `+` for space in form encoding), whether the
//! client used SPDY (`create`) or WebSockets (`get`, kubectl ≥ 1.30).

use percent_encoding::percent_decode_str;

/// What the query of an exec/attach URI says.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ExecRequest {
    /// The command and its arguments, in order.
    pub args: Vec<String>,
    /// The container named by `container=`.
    pub container: Option<String>,
    /// Whether `tty=true` was asked.
    pub tty: Option<bool>,
    /// Whether `stdin=true` was asked.
    pub stdin: Option<bool>,
}

/// Most exec commands have a handful of arguments; a URI with more parameters than this is
/// hostile or broken, and the rest is ignored rather than stored.
const MAX_ARGS: usize = 256;

/// Decodes the query of `uri`. Invalid percent-encoding is kept as the lossy UTF-8 text of
/// the bytes, so nothing an attacker sends can hide the command.
pub fn decode_command(uri: &str) -> ExecRequest {
    let mut req = ExecRequest::default();
    let Some((_, query)) = uri.split_once('?') else {
        return req;
    };
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "command" if req.args.len() < MAX_ARGS => req.args.push(decode(value)),
            "container" => req.container = Some(decode(value)),
            "tty" => req.tty = Some(value == "true" || value == "1"),
            "stdin" => req.stdin = Some(value == "true" || value == "1"),
            _ => {}
        }
    }
    req
}

fn decode(value: &str) -> String {
    let spaced;
    let value = if value.contains('+') {
        spaced = value.replace('+', " ");
        spaced.as_str()
    } else {
        value
    };
    percent_decode_str(value).decode_utf8_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_repeated_command_parameters() {
        let r = decode_command(
            "/api/v1/namespaces/shop/pods/web/exec?command=%2Fbin%2Fsh&command=-c&command=cat+%2Fetc%2Fshadow&container=web&stdin=true&stdout=true&tty=true",
        );
        assert_eq!(r.args, ["/bin/sh", "-c", "cat /etc/shadow"]);
        assert_eq!(r.container.as_deref(), Some("web"));
        assert_eq!(r.tty, Some(true));
        assert_eq!(r.stdin, Some(true));
    }

    #[test]
    fn tolerates_hostile_queries() {
        assert_eq!(
            decode_command("/api/v1/pods/x/exec").args,
            Vec::<String>::new()
        );
        let r = decode_command("/x?command=%ZZ%&command=%C3%28&command&&=&tty=maybe");
        assert_eq!(r.args, ["%ZZ%", "\u{fffd}(", ""]);
        assert_eq!(r.tty, Some(false));
        let many = format!("/x?{}", "command=a&".repeat(10_000));
        assert_eq!(decode_command(&many).args.len(), MAX_ARGS);
    }
}
