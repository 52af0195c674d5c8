//! The manager-side files in `manager/` are what the agent generates from its rules.

use std::path::Path;
use std::process::Command;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

#[test]
fn the_committed_wazuh_rules_file_matches_the_built_in_rules() {
    let committed = repo().join("manager/wazuh/vigil_rules.xml");
    let out = Command::new(env!("CARGO_BIN_EXE_vigil-agent"))
        .args(["rules", "wazuh-xml", "--previous"])
        .arg(&committed)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let generated = String::from_utf8(out.stdout).unwrap();
    let on_disk = std::fs::read_to_string(&committed).unwrap();
    assert!(
        generated == on_disk,
        "manager/wazuh/vigil_rules.xml is stale: run `vigil-agent rules wazuh-xml --previous \
         manager/wazuh/vigil_rules.xml > new && mv new manager/wazuh/vigil_rules.xml`"
    );

    // Well-formed XML (Wazuh's files hold several top-level elements, so wrap them), one
    // Wazuh rule per built-in rule, each with a level in 0..=15 and a unique id.
    let wrapped = format!("<root>{on_disk}</root>");
    let doc = roxmltree::Document::parse(&wrapped).unwrap();
    let rules: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("rule"))
        .collect();
    let mut ids: Vec<u32> = rules
        .iter()
        .map(|r| r.attribute("id").unwrap().parse().unwrap())
        .collect();
    assert!(
        rules
            .iter()
            .all(|r| r.attribute("level").unwrap().parse::<u8>().unwrap() <= 15)
    );
    let count = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), count, "rule ids are unique");
    assert!(
        ids.iter().all(|id| (100_000..=120_000).contains(id)),
        "custom id range"
    );

    let listed = Command::new(env!("CARGO_BIN_EXE_vigil-agent"))
        .args(["rules", "list"])
        .output()
        .unwrap();
    let listed = String::from_utf8(listed.stdout).unwrap();
    let builtin: Vec<&str> = listed
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.contains('.'))
        .collect();
    assert!(!builtin.is_empty());
    for name in builtin {
        let pattern = format!("^{}$", name.replace('.', "\\."));
        assert!(
            rules.iter().any(|r| r
                .children()
                .any(|c| c.has_tag_name("field") && c.text() == Some(pattern.as_str()))),
            "no Wazuh rule for {name}"
        );
    }
}

#[test]
fn every_example_configuration_is_accepted() {
    let mut checked = 0;
    for entry in std::fs::read_dir(repo().join("examples")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let out = Command::new(env!("CARGO_BIN_EXE_vigil-agent"))
            .arg("check-config")
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        checked += 1;
    }
    assert!(checked >= 2, "examples/ holds the configurations");
}
