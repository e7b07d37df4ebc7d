//! The D-Bus XML in `crates/bus/xml` is the contract; this checks a daemon against it.

use std::collections::BTreeSet;

/// Every method (with argument names, types and directions), signal and property (with type
/// and access) of `interface`, as one sorted set of lines.
fn members(xml: &str, interface: &str) -> BTreeSet<String> {
    let node = zbus_xml::Node::from_reader(xml.as_bytes()).expect("introspection XML parses");
    let iface = node
        .interfaces()
        .iter()
        .find(|i| i.name().as_str() == interface)
        .unwrap_or_else(|| panic!("{interface} is not in the XML"));
    let mut out = BTreeSet::new();
    for m in iface.methods() {
        let args: Vec<String> = m
            .args()
            .iter()
            .map(|a| {
                format!(
                    "{:?} {} {:?}",
                    a.direction(),
                    a.name().unwrap_or_default(),
                    a.ty()
                )
            })
            .collect();
        out.insert(format!("method {}({})", m.name(), args.join(", ")));
    }
    for s in iface.signals() {
        let args: Vec<String> = s
            .args()
            .iter()
            .map(|a| format!("{} {:?}", a.name().unwrap_or_default(), a.ty()))
            .collect();
        out.insert(format!("signal {}({})", s.name(), args.join(", ")));
    }
    for p in iface.properties() {
        out.insert(format!(
            "property {} {:?} {:?}",
            p.name(),
            p.ty(),
            p.access()
        ));
    }
    out
}

/// Panic with the differences if `served` (introspected from the daemon) does not match the
/// committed XML of `interface`.
pub fn assert_matches(served: &str, interface: &str) {
    let committed = smartpos_bus::interface_xml(interface).expect("committed XML");
    let want = members(committed, interface);
    let got = members(served, interface);
    let missing: Vec<_> = want.difference(&got).collect();
    let extra: Vec<_> = got.difference(&want).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{interface} differs from its XML\n  in the XML but not served: {missing:#?}\n  served but not in the XML: {extra:#?}"
    );
}
