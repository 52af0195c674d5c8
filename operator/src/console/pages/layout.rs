//! The frame every page shares: navigation, stylesheet, login and error pages.

use axum::http::StatusCode;
use maud::{DOCTYPE, Markup, PreEscaped, html};

/// The one stylesheet, inlined in every page (a few kilobytes; nothing to fetch).
const STYLE: &str = r#"
:root{--fg:#1d2430;--muted:#5b6577;--line:#dde2ea;--bg:#f6f8fb;--accent:#1f5fbf;--crit:#b3261e;--high:#c2590a;--med:#8a6d00;--low:#4a6b3a}
*{box-sizing:border-box}body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:var(--fg);background:var(--bg)}
header{display:flex;gap:1.5em;align-items:center;padding:.6em 1.2em;background:#14213d;color:#fff}
header b{font-size:1.1em;letter-spacing:.04em}header a{color:#cfe0ff;text-decoration:none}header a.on{color:#fff;font-weight:600;border-bottom:2px solid #fff}
header form{margin-left:auto}header button{background:none;border:1px solid #6f86b5;color:#cfe0ff;border-radius:4px;padding:.2em .7em;cursor:pointer}
main{padding:1em 1.2em}h1{font-size:1.25em;margin:.2em 0 .8em}h2{font-size:1.05em;margin:1.2em 0 .5em}
table{border-collapse:collapse;width:100%;background:#fff;border:1px solid var(--line)}th,td{padding:.35em .6em;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
th{background:#eef2f7;font-weight:600;font-size:.92em}tr:hover td{background:#f9fbff}td.t{white-space:nowrap;font-variant-numeric:tabular-nums;color:var(--muted)}
a{color:var(--accent)}code,pre{font:12.5px/1.4 ui-monospace,SFMono-Regular,Menlo,monospace}pre{background:#fff;border:1px solid var(--line);padding:.8em;overflow:auto;max-height:70vh}
form.filters{display:flex;flex-wrap:wrap;gap:.5em .8em;align-items:end;background:#fff;border:1px solid var(--line);padding:.7em;margin-bottom:1em}
form.filters label{display:flex;flex-direction:column;font-size:.82em;color:var(--muted)}form.filters input,form.filters select{font:inherit;padding:.25em .35em;min-width:9em}
form.filters button{padding:.35em 1em;background:var(--accent);color:#fff;border:0;border-radius:4px;cursor:pointer}
.cols{display:grid;grid-template-columns:minmax(0,1fr) 19em;gap:1em}.side table{font-size:.9em}
.lvl{display:inline-block;min-width:2.2em;text-align:center;border-radius:3px;color:#fff;font-weight:600;font-size:.85em;padding:0 .3em}
.l-crit{background:var(--crit)}.l-high{background:var(--high)}.l-med{background:var(--med)}.l-low{background:var(--low)}
.muted{color:var(--muted)}.problems{background:#fff4e5;border:1px solid #f0c48a;padding:.5em .8em;margin-bottom:1em}
.pager{margin:.8em 0}.tag{display:inline-block;background:#eef2f7;border-radius:3px;padding:0 .35em;margin:0 .2em .1em 0;font-size:.85em}
.login{max-width:28em;margin:10vh auto;background:#fff;border:1px solid var(--line);padding:1.5em}.login input{width:100%;font:inherit;padding:.4em;margin:.4em 0 .8em}
.login button{padding:.45em 1.2em;background:var(--accent);color:#fff;border:0;border-radius:4px}.err{color:var(--crit)}
"#;

/// Which section of the navigation is current.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Events,
    Detections,
    Containers,
    Monitors,
}

/// A whole page: `title`, navigation with `current` marked, and `body`.
pub fn page(title: &str, current: Option<Section>, body: Markup) -> Markup {
    let link = |s: Section, href: &str, label: &str| {
        html! { a href=(href) class=[(current == Some(s)).then_some("on")] { (label) } }
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Vigil" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    b { "VIGIL" }
                    @if current.is_some() {
                        nav style="display:flex;gap:1.2em" {
                            (link(Section::Events, "/events", "Events"))
                            (link(Section::Detections, "/detections", "Detections"))
                            (link(Section::Containers, "/containers", "Containers"))
                            (link(Section::Monitors, "/monitors", "Monitors"))
                        }
                        form method="post" action="/logout" { button type="submit" { "Log out" } }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// The login page, with the reason of a failed attempt.
pub fn login_page(problem: Option<&str>) -> Markup {
    page(
        "Log in",
        None,
        html! {
            form.login method="post" action="/login" {
                h1 { "Vigil console" }
                p.muted { "Paste a console token, or a Kubernetes service-account token allowed to view: "
                    code { "kubectl -n vigil-system create token vigil-console-viewer" } }
                @if let Some(p) = problem { p.err id="login-error" { (p) } }
                label for="token" { "Token" }
                input #token type="password" name="token" autocomplete="off" required autofocus;
                button #login type="submit" { "Log in" }
            }
        },
    )
}

/// An error page.
pub fn error_page(code: StatusCode, message: &str) -> Markup {
    page(
        code.canonical_reason().unwrap_or("Error"),
        Some(Section::Events),
        html! {
            h1 { (code.as_u16()) " " (code.canonical_reason().unwrap_or("")) }
            p.err { (message) }
            @if code == StatusCode::FORBIDDEN || code == StatusCode::UNAUTHORIZED {
                p { a href="/login" { "Log in with another token" } }
            }
        },
    )
}

/// A level as a coloured badge.
pub fn level(level: u8) -> Markup {
    let class = match level {
        12.. => "l-crit",
        9..=11 => "l-high",
        5..=8 => "l-med",
        _ => "l-low",
    };
    html! { span class={"lvl " (class)} title="level (0–15)" { (level) } }
}

/// An RFC 3339 time as `2026-11-23 10:00:00` (UTC; the page says so).
pub fn short_time(t: &str) -> String {
    let t = t.trim_end_matches('Z');
    let (date_time, _) = t.split_once('.').unwrap_or((t, ""));
    date_time.replacen('T', " ", 1)
}
