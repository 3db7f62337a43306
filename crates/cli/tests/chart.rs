//! The Helm chart (`deploy/helm/kaas`) never drifts from the code: its `crds/` and the
//! admission-policy templates are exactly what `kaas crds` prints (regenerate both with
//! `hack/gen-chart-crds.sh`), and every plain YAML file of the chart parses. Needs no `helm`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;
use serde_yaml::Value;

const REGENERATE: &str = "the chart drifted from `kaas crds`: run hack/gen-chart-crds.sh";

fn chart() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/helm/kaas")
}

/// Every non-empty document of a YAML stream.
fn docs(text: &str, what: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|d| Value::deserialize(d).unwrap_or_else(|e| panic!("{what}: invalid YAML: {e}")))
        .filter(|v| !v.is_null())
        .collect()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn kaas_crds(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_kaas"))
        .arg("crds")
        .args(args)
        .output()
        .expect("running kaas crds");
    assert!(
        out.status.success(),
        "kaas crds {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("kaas crds prints UTF-8")
}

fn kind(v: &Value) -> &str {
    v["kind"].as_str().unwrap_or_default()
}

fn name(v: &Value) -> String {
    v["metadata"]["name"]
        .as_str()
        .expect("metadata.name")
        .to_string()
}

fn by_name(values: impl IntoIterator<Item = Value>) -> BTreeMap<String, Value> {
    let mut map = BTreeMap::new();
    for v in values {
        let n = name(&v);
        assert!(map.insert(n.clone(), v).is_none(), "{n} appears twice");
    }
    map
}

/// `deploy/helm/kaas/<dir>/*.yaml`, sorted.
fn yaml_files(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(chart().join(dir))
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    files
}

/// The CRDs of the chart's `crds/`, by name; each file holds one CRD and is named after it.
fn chart_crds() -> BTreeMap<String, Value> {
    let mut all = Vec::new();
    for f in yaml_files("crds") {
        let d = docs(&read(&f), &f.display().to_string());
        assert_eq!(d.len(), 1, "{}: one CRD per file", f.display());
        let crd = d.into_iter().next().expect("one document");
        assert_eq!(kind(&crd), "CustomResourceDefinition", "{}", f.display());
        assert_eq!(
            f.file_name().and_then(|n| n.to_str()),
            Some(format!("{}.yaml", name(&crd)).as_str()),
            "a CRD file is named after its CRD"
        );
        all.push(crd);
    }
    by_name(all)
}

#[test]
fn chart_crds_are_what_kaas_crds_prints() {
    let printed = docs(&kaas_crds(&[]), "kaas crds");
    let code = by_name(
        printed
            .into_iter()
            .filter(|d| kind(d) == "CustomResourceDefinition"),
    );
    assert!(!code.is_empty(), "kaas crds printed no CRD");
    let chart = chart_crds();
    assert_eq!(
        chart.keys().collect::<Vec<_>>(),
        code.keys().collect::<Vec<_>>(),
        "{REGENERATE}"
    );
    for (n, crd) in &code {
        assert!(chart[n] == *crd, "{n}: {REGENERATE}");
    }
}

#[test]
fn chart_crds_are_what_kaas_crds_prints_as_json() {
    let json: Vec<serde_json::Value> =
        serde_json::from_str(&kaas_crds(&["-o", "json"])).expect("kaas crds -o json: a list");
    let chart: BTreeMap<String, serde_json::Value> = chart_crds()
        .into_iter()
        .map(|(n, v)| (n, serde_json::to_value(v).expect("YAML to JSON")))
        .collect();
    assert_eq!(json.len(), chart.len(), "{REGENERATE}");
    for crd in json {
        let n = crd["metadata"]["name"].as_str().expect("metadata.name");
        assert!(chart.get(n) == Some(&crd), "{n}: {REGENERATE}");
    }
}

#[test]
fn admission_policy_templates_are_what_kaas_crds_prints() {
    let name = |d: &Value| {
        d["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let code: Vec<Value> = docs(&kaas_crds(&["--finalizer-policy"]), "kaas crds")
        .into_iter()
        .filter(|d| kind(d) != "CustomResourceDefinition")
        .collect();
    let (mutating, code): (Vec<Value>, Vec<Value>) = code
        .into_iter()
        .partition(|d| kind(d).starts_with("MutatingAdmissionPolicy"));
    let (identity, protection): (Vec<Value>, Vec<Value>) = code
        .into_iter()
        .partition(|d| name(d).ends_with("-identity"));
    assert!(
        protection
            .iter()
            .any(|d| kind(d) == "ValidatingAdmissionPolicy"),
        "kaas crds prints the deletion-protection policy"
    );
    assert!(
        identity
            .iter()
            .any(|d| kind(d) == "ValidatingAdmissionPolicy"),
        "kaas crds prints the identity policy of kubeconfig requests"
    );
    // Deletion protection is an option of the chart.
    let path = chart().join("templates/deletion-protection.yaml");
    let text = read(&path);
    let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(
        lines.first().copied(),
        Some("{{- if .Values.deletionProtection.enabled }}")
    );
    assert_eq!(lines.last().copied(), Some("{{- end }}"));
    let body = lines[1..lines.len() - 1].join("\n");
    assert!(!body.contains("{{"), "the policy itself is not templated");
    assert!(
        docs(&body, &path.display().to_string()) == protection,
        "{REGENERATE}"
    );
    // Who a credential is issued to is not an option: always installed, not templated.
    let path = chart().join("templates/identity-policies.yaml");
    let text = read(&path);
    assert!(!text.contains("{{"), "{}: not templated", path.display());
    assert!(
        docs(&text, &path.display().to_string()) == identity,
        "{REGENERATE}"
    );
    // The finalizer at creation: where one instance handles every provider and the API server
    // serves mutating admission policies (the chart's helm test installs and removes it).
    assert!(
        !docs(&kaas_crds(&[]), "kaas crds")
            .iter()
            .any(|d| kind(d).starts_with("Mutating")),
        "kaas crds prints the mutating policy only when asked (Kubernetes 1.36+)"
    );
    assert_eq!(
        mutating.iter().map(kind).collect::<Vec<_>>(),
        ["MutatingAdmissionPolicy", "MutatingAdmissionPolicyBinding"],
        "kaas crds prints the finalizer-at-creation policy and its binding"
    );
    let path = chart().join("templates/finalizer-at-creation.yaml");
    let text = read(&path);
    let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(
        lines.first().copied(),
        Some(
            r#"{{- if and (not .Values.providers) (not .Values.shards) (.Capabilities.APIVersions.Has "admissionregistration.k8s.io/v1/MutatingAdmissionPolicy") }}"#
        )
    );
    assert_eq!(lines.last().copied(), Some("{{- end }}"));
    let body = lines[1..lines.len() - 1].join("\n");
    assert!(!body.contains("{{"), "the policy itself is not templated");
    assert!(
        docs(&body, &path.display().to_string()) == mutating,
        "{REGENERATE}"
    );
}

#[test]
fn chart_metadata_matches_the_workspace() {
    let chart_yaml = docs(&read(&chart().join("Chart.yaml")), "Chart.yaml");
    let c = &chart_yaml[0];
    assert_eq!(c["apiVersion"].as_str(), Some("v2"));
    assert_eq!(c["name"].as_str(), Some("kaas"));
    assert_eq!(
        c["appVersion"].as_str(),
        Some(env!("CARGO_PKG_VERSION")),
        "Chart.yaml appVersion is the workspace version"
    );
    assert!(c["version"].as_str().is_some_and(|v| !v.is_empty()));
}

#[test]
fn default_values_are_hardened_and_highly_available() {
    let values = docs(&read(&chart().join("values.yaml")), "values.yaml")
        .into_iter()
        .next()
        .expect("values.yaml is not empty");
    assert_eq!(values["replicas"].as_u64(), Some(2));
    assert_eq!(values["leaderElection"]["enabled"].as_bool(), Some(true));
    assert_eq!(
        values["metrics"]["serviceMonitor"]["enabled"].as_bool(),
        Some(false)
    );
    let pod = &values["podSecurityContext"];
    assert_eq!(pod["runAsNonRoot"].as_bool(), Some(true));
    assert_eq!(
        pod["seccompProfile"]["type"].as_str(),
        Some("RuntimeDefault")
    );
    let c = &values["securityContext"];
    assert_eq!(c["runAsNonRoot"].as_bool(), Some(true));
    assert_eq!(c["readOnlyRootFilesystem"].as_bool(), Some(true));
    assert_eq!(c["allowPrivilegeEscalation"].as_bool(), Some(false));
    assert_eq!(c["seccompProfile"]["type"].as_str(), Some("RuntimeDefault"));
    let drop: Vec<&str> = c["capabilities"]["drop"]
        .as_sequence()
        .expect("capabilities.drop")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(drop, ["ALL"]);
}

#[test]
fn tenant_roles_equal_the_install_module() {
    use kaas_operator::install;
    let path = chart().join("templates/tenant-rbac.yaml");
    let text = read(&path);
    let mut roles = BTreeMap::new();
    for chunk in text.split("\n---\n") {
        if !chunk.lines().any(|l| l == "kind: ClusterRole") {
            continue;
        }
        // The rules are literal YAML; only metadata holds template expressions.
        let plain: String = chunk
            .lines()
            .filter(|l| !l.contains("{{"))
            .map(|l| format!("{l}\n"))
            .collect();
        let role = docs(&plain, &path.display().to_string()).remove(0);
        let rules = serde_json::to_value(&role["rules"]).expect("YAML to JSON");
        roles.insert(name(&role), rules);
    }
    let code = [
        install::tenant_role(),
        install::offering_reader_role(),
        install::capi_viewer_role(),
    ];
    assert_eq!(roles.len(), code.len(), "ClusterRoles in tenant-rbac.yaml");
    for role in code {
        let n = role.metadata.name.clone().expect("named");
        let rules = serde_json::to_value(&role.rules).expect("serialises");
        assert_eq!(
            roles.get(&n),
            Some(&rules),
            "{n}: the chart and kaas_operator::install grant different rules"
        );
    }
    let values = docs(&read(&chart().join("values.yaml")), "values.yaml").remove(0);
    assert_eq!(
        values["tenants"]["offeringReaderGroup"].as_str(),
        Some(install::TENANTS_GROUP)
    );
}

#[test]
fn operator_role_can_keep_the_tenant_capi_viewer_bindings() {
    use kaas_operator::install;
    let path = chart().join("templates/operator-rbac.yaml");
    let text = read(&path);
    let chunk = text
        .split("\n---\n")
        .find(|c| c.lines().any(|l| l == "kind: ClusterRole"))
        .expect("the operator's ClusterRole");
    let plain: String = chunk
        .lines()
        .filter(|l| !l.contains("{{"))
        .map(|l| format!("{l}\n"))
        .collect();
    let role = docs(&plain, &path.display().to_string()).remove(0);
    let rules: Vec<serde_json::Value> =
        serde_json::from_value(serde_json::to_value(&role["rules"]).expect("YAML to JSON"))
            .expect("a list of rules");
    for rule in install::operator_capi_viewer_rules()
        .into_iter()
        .chain(install::operator_autoscaler_rules())
    {
        let rule = serde_json::to_value(&rule).expect("serialises");
        assert!(
            rules.contains(&rule),
            "{}: the operator's ClusterRole lacks {rule}",
            path.display()
        );
    }
    // The autoscalers' role is the install module's.
    let chunk = text
        .split("\n---\n")
        .find(|c| c.contains("name: kaas-cluster-autoscaler\n"))
        .expect("the autoscalers' ClusterRole");
    let plain: String = chunk
        .lines()
        .filter(|l| !l.contains("{{"))
        .map(|l| format!("{l}\n"))
        .collect();
    let role = docs(&plain, &path.display().to_string()).remove(0);
    assert_eq!(
        serde_json::to_value(&role["rules"]).expect("YAML to JSON"),
        serde_json::to_value(install::autoscaler_role().rules).expect("serialises"),
        "kaas-cluster-autoscaler: the chart and kaas_operator::install grant different rules"
    );
}

#[test]
fn rbac_templates_grant_no_wildcards() {
    for f in yaml_files("templates") {
        let text = read(&f);
        if !text.contains("rbac.authorization.k8s.io") {
            continue;
        }
        for (i, line) in text.lines().enumerate() {
            let code = line.split('#').next().unwrap_or_default();
            assert!(
                !code.contains("\"*\"") && !code.contains("'*'") && !code.contains("- *"),
                "{}:{}: wildcard in RBAC: {line}",
                f.display(),
                i + 1
            );
        }
    }
}

#[test]
fn every_plain_yaml_file_of_the_chart_parses() {
    let mut stack = vec![chart()];
    let mut parsed = 0;
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                // Go templates are not YAML until Helm renders them.
                if path.file_name().is_some_and(|n| n != "templates") {
                    stack.push(path);
                }
            } else if path.extension().is_some_and(|x| x == "yaml" || x == "yml") {
                let d = docs(&read(&path), &path.display().to_string());
                assert!(!d.is_empty(), "{}: no YAML document", path.display());
                parsed += 1;
            }
        }
    }
    // Chart.yaml, values.yaml and at least one CRD.
    assert!(
        parsed >= 3,
        "only {parsed} YAML files found under the chart"
    );
}
