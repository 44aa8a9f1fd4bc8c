//! The envelope of `kubectl get … -o json` lists, shared by the readers of
//! nodes ([`super::cluster_nodes`]) and of pods (`crate::verify::kube::pods`):
//! `items`, each with `metadata`, `spec` and `status`, and the conditions
//! both kinds report. Each reader declares only the spec and status fields
//! it reads.

use serde::de::DeserializeOwned;
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(bound = "Spec: DeserializeOwned + Default, Status: DeserializeOwned + Default")]
struct List<Spec, Status> {
    #[serde(default)]
    items: Vec<Item<Spec, Status>>,
}

/// One object of a list.
#[derive(Deserialize)]
#[serde(bound = "Spec: DeserializeOwned + Default, Status: DeserializeOwned + Default")]
pub struct Item<Spec, Status> {
    pub metadata: Metadata,
    #[serde(default)]
    pub spec: Spec,
    #[serde(default)]
    pub status: Status,
}

/// An object's name, and its namespace (empty for nodes).
#[derive(Deserialize)]
pub struct Metadata {
    pub name: String,
    #[serde(default)]
    pub namespace: String,
}

/// One of `status.conditions` (`Ready`, `PodScheduled`, …).
#[derive(Deserialize)]
pub struct Condition {
    #[serde(rename = "type")]
    pub kind: String,
    pub status: String,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
}

/// The items of a `kubectl get … -o json` list; the error is serde's, for
/// the caller to name the command with.
pub fn items<Spec, Status>(json: &str) -> Result<Vec<Item<Spec, Status>>, serde_json::Error>
where
    Spec: DeserializeOwned + Default,
    Status: DeserializeOwned + Default,
{
    let list: List<Spec, Status> = serde_json::from_str(json)?;
    Ok(list.items)
}
