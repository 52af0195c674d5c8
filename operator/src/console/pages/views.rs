//! The pages' bodies.

use std::collections::BTreeMap;

use maud::{Markup, html};
use vigil_store::{ContainerState, Count, Facets, Page, Row, StoredEvent};

use super::FilterForm;
use super::layout::{Section, level, page, short_time};
use crate::console::monitors::MonitorRow;

/// The timeline (all events, or only those with detections).
pub struct Timeline<'a> {
    pub form: &'a FilterForm,
    pub only_detections: bool,
    pub problems: &'a [String],
    pub page: &'a Page,
    pub counts: &'a [Count],
    pub facets: &'a Facets,
    pub elapsed_ms: f64,
}

fn select(name: &str, label: &str, current: &str, options: &[String]) -> Markup {
    html! {
        label { (label)
            select name=(name) id={"f-" (name)} {
                option value="" { "any" }
                @for o in options {
                    option value=(o) selected[o == current] { (o) }
                }
                // A value typed into the URL that no event has (yet) stays selectable.
                @if !current.is_empty() && !options.iter().any(|o| o == current) {
                    option value=(current) selected { (current) }
                }
            }
        }
    }
}

impl Timeline<'_> {
    pub fn render(&self) -> Markup {
        let f = self.form;
        let (title, action, section) = if self.only_detections {
            ("Detections", "/detections", Section::Detections)
        } else {
            ("Events", "/events", Section::Events)
        };
        let body = html! {
            h1 { (title) span.muted { " — newest first, times in UTC" } }
            form.filters method="get" action=(action) id="filters" {
                (select("namespace", "Namespace", &f.namespace, &self.facets.namespaces))
                (select("node", "Node", &f.node, &self.facets.nodes))
                (select("source", "Source", &f.source, &self.facets.sources))
                (select("rule", "Rule", &f.rule, &self.facets.rules))
                label { "Level ≥" input #f-level type="number" name="level" min="0" max="15" value=(f.level) style="min-width:5em;width:5em"; }
                label { "From" input #f-from type="datetime-local" name="from" value=(f.from); }
                label { "To" input #f-to type="datetime-local" name="to" value=(f.to); }
                label { "Text" input #f-q type="search" name="q" value=(f.q) placeholder="user, pod, image, command …"; }
                @if !f.kind.is_empty() { input type="hidden" name="kind" value=(f.kind); }
                @if !f.action.is_empty() { input type="hidden" name="action" value=(f.action); }
                button #apply type="submit" { "Apply" }
                a href=(action) { "Clear" }
            }
            @if !self.problems.is_empty() {
                div.problems id="problems" { @for p in self.problems { div { (p) } } }
            }
            @if !f.kind.is_empty() || !f.action.is_empty() {
                p { "Only " code { (f.kind) " " (f.action) } " · "
                    a href={(action) "?" (f.query_with_kind_action("", ""))} { "all types" } }
            }
            div.cols {
                div {
                    table #events {
                        thead { tr { th { "Time" } th { "Level" } th { "Namespace" } th { "Node" } th { "Source" } th { "What" } } }
                        tbody {
                            @for row in &self.page.rows { (event_row(row)) }
                        }
                    }
                    @if self.page.rows.is_empty() {
                        p.muted #empty { "No event matches these filters." }
                    }
                    div.pager {
                        @if !f.before.is_empty() { a href=(action) { "« Newest" } " · " }
                        @if let Some(next) = &self.page.next {
                            a #older href={(action) "?" (f.query_with_before(&next.to_param()))} { "Older »" }
                        }
                        span.muted { " " (self.page.rows.len()) " shown · " (format!("{:.1}", self.elapsed_ms)) " ms" }
                    }
                }
                div.side {
                    table #counts {
                        thead { tr { th { "Type" } th { "Action" } th { "Events" } th { "Det." } } }
                        tbody {
                            @for c in self.counts {
                                tr {
                                    td { (c.kind) }
                                    td { a href={(action) "?" (f.query_with_kind_action(&c.kind, &c.action))} { (c.action) } }
                                    td { (c.events) }
                                    td { @if c.detections > 0 { b { (c.detections) } } @else { span.muted { "0" } } }
                                }
                            }
                        }
                    }
                }
            }
        };
        page(title, Some(section), body)
    }
}

/// An event id as a path segment: ids are hex, but one from a hostile sender must not turn
/// the link into another path.
fn id_path(id: &str) -> String {
    percent_encoding::utf8_percent_encode(id, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn event_row(row: &Row) -> Markup {
    html! {
        tr.event data-id=(row.id) {
            td.t { a href={"/events/" (id_path(&row.id))} { (short_time(&row.time)) } }
            td { @if let Some(l) = row.level { (level(l)) } }
            td { (row.namespace.as_deref().unwrap_or("")) }
            td { (row.node.as_deref().unwrap_or("")) }
            td { (row.source) }
            td {
                @for (rule, title) in row.rules.iter().zip(row.titles.iter().chain(std::iter::repeat(&String::new()))) {
                    span.tag title=(title) { (rule) }
                }
                (row.summary)
            }
        }
    }
}

/// One event: its facts, its detections and the whole record as received.
pub fn event_page(stored: &StoredEvent) -> Markup {
    let row = &stored.row;
    // Through the event type, its fields print in the schema's order; a record this version
    // cannot read (a newer agent's) is shown exactly as stored.
    let pretty = serde_json::from_str::<vigil_core::event::Event>(&stored.json)
        .and_then(|e| serde_json::to_string_pretty(&e))
        .unwrap_or_else(|_| stored.json.clone());
    let detections: Vec<serde_json::Value> =
        serde_json::from_str::<serde_json::Value>(&stored.json)
            .ok()
            .and_then(|v| v.get("detections").cloned())
            .and_then(|d| d.as_array().cloned())
            .unwrap_or_default();
    let facts: [(&str, Option<&str>); 9] = [
        ("Time (UTC)", Some(row.time.as_str())),
        ("Node", row.node.as_deref()),
        ("Namespace", row.namespace.as_deref()),
        ("Source", Some(row.source.as_str())),
        ("Type / action", None),
        ("Actor", row.actor.as_deref()),
        ("Object", row.object.as_deref()),
        ("Container", row.container.as_deref()),
        ("Image", row.image.as_deref()),
    ];
    let body = html! {
        h1 { (row.summary) }
        table #facts style="max-width:60em" {
            @for (k, v) in facts {
                @if k == "Type / action" {
                    tr { th { (k) } td { (row.kind) " / " (row.action) " (" (row.outcome) ")" } }
                } @else if let Some(v) = v {
                    tr { th { (k) } td { (v) } }
                }
            }
            tr { th { "Event id" } td { code { (row.id) } } }
        }
        @if !detections.is_empty() {
            h2 { "Detections" }
            table #detections {
                thead { tr { th { "Level" } th { "Rule" } th { "Title" } th { "MITRE" } } }
                tbody {
                    @for d in &detections {
                        tr {
                            td { @if let Some(l) = d.get("level").and_then(|l| l.as_u64()) { (level(l.min(15) as u8)) } }
                            td { code { (d.get("rule").and_then(|v| v.as_str()).unwrap_or("")) } }
                            td { (d.get("title").and_then(|v| v.as_str()).unwrap_or("")) }
                            td { @if let Some(m) = d.get("mitre").and_then(|m| m.as_array()) {
                                @for t in m { span.tag { (t.as_str().unwrap_or("")) } } } }
                        }
                    }
                }
            }
        }
        h2 { "The event as received" }
        pre #raw { (pretty) }
    };
    page("Event", Some(Section::Events), body)
}

/// The containers running now, and their images.
pub fn containers_page(list: &[ContainerState]) -> Markup {
    let mut images: BTreeMap<&str, (usize, std::collections::BTreeSet<&str>)> = BTreeMap::new();
    for c in list {
        let e = images
            .entry(c.image.as_deref().unwrap_or("(unknown)"))
            .or_default();
        e.0 += 1;
        if let Some(n) = c.node.as_deref() {
            e.1.insert(n);
        }
    }
    let body = html! {
        h1 { "Containers running now" span.muted { " — as the runtime events reported them" } }
        table #containers {
            thead { tr { th { "Namespace" } th { "Pod" } th { "Container" } th { "Image" } th { "Node" } th { "Runtime" } th { "State" } th { "Since (UTC)" } th { "Last seen" } } }
            tbody {
                @for c in list {
                    tr {
                        td { (c.namespace.as_deref().unwrap_or("")) }
                        td { (c.pod.as_deref().unwrap_or("")) }
                        td { (c.name.as_deref().unwrap_or(&c.id)) }
                        td { code { (c.image.as_deref().unwrap_or("")) } }
                        td { (c.node.as_deref().unwrap_or("")) }
                        td { (c.runtime.as_deref().unwrap_or("")) }
                        td { (c.state) }
                        td.t { (short_time(&c.since)) }
                        td.t { (short_time(&c.last_seen)) }
                    }
                }
            }
        }
        @if list.is_empty() { p.muted { "No running container known: they appear when their runtime events arrive." } }
        h2 { "Images" }
        table #images style="max-width:60em" {
            thead { tr { th { "Image" } th { "Containers" } th { "Nodes" } } }
            tbody {
                @for (image, (n, nodes)) in &images {
                    tr { td { code { (image) } } td { (n) } td { @for node in nodes { span.tag { (node) } } } }
                }
            }
        }
    };
    page("Containers", Some(Section::Containers), body)
}

/// The ContainerMonitors and whether their policy and agent configuration are in force.
pub fn monitors_page(list: &Result<Vec<MonitorRow>, String>) -> Markup {
    let body = html! {
        h1 { "ContainerMonitors" }
        @match list {
            Err(e) => { p.err #monitors-error { (e) } }
            Ok(rows) => {
                table #monitors {
                    thead { tr { th { "Namespace" } th { "Name" } th { "Ready" } th { "Policy" } th { "Control-plane nodes applied" } th { "Problems" } } }
                    tbody {
                        @for m in rows {
                            tr {
                                td { (m.namespace) }
                                td { (m.name) }
                                td { (m.ready.as_deref().unwrap_or("not reported"))
                                     @if !m.current { span.muted { " (status of an older generation)" } } }
                                td { code { (m.policy_hash.as_deref().unwrap_or("").chars().take(12).collect::<String>()) } }
                                td { @if let Some((a, t)) = m.nodes { (a) " / " (t) } }
                                td { @for p in &m.problems { div { (p) } } }
                            }
                        }
                    }
                }
                @if rows.is_empty() { p.muted { "No ContainerMonitor yet: " code { "kubectl apply -f" } " one (see docs/install.md)." } }
            }
        }
    };
    page("Monitors", Some(Section::Monitors), body)
}
