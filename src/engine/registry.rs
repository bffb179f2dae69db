//! The journeys the engine runs: the current version of each (from `workflows/`), and every
//! older version a run may still be on, compiled on demand from the stored source.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::journey::{self, Journey};
use crate::project::Project;
use crate::source::SourceFile;
use crate::store::versions::StoredVersion;
use crate::store::{Store, StoreError};
use crate::template::TemplateCatalog;

/// Journeys by id and version, plus the templates they render with.
pub struct Registry {
    current: HashMap<String, Arc<Journey>>,
    versions: HashMap<(String, String), Option<Arc<Journey>>>,
    pub templates: Arc<TemplateCatalog>,
    default_timezone: Tz,
}

impl Registry {
    /// The valid journeys of a loaded project (journeys with errors are not run), after
    /// storing their sources so runs can stay on them after the files change.
    pub async fn load(
        project: Project,
        store: &Store,
        default_timezone: Tz,
        now: DateTime<Utc>,
    ) -> Result<Registry, StoreError> {
        let stored: Vec<StoredVersion> = project
            .journeys
            .iter()
            .filter_map(|j| {
                let file = project.sources.get(&j.id)?;
                Some(StoredVersion {
                    journey_id: j.id.clone(),
                    version: j.version.clone(),
                    path: file.path().display().to_string(),
                    source: file.text().to_string(),
                    outline: serde_json::to_string(&crate::report::Plan::of(j)).ok(),
                })
            })
            .collect();
        store.save_versions(&stored, now).await?;
        let mut registry = Registry {
            current: HashMap::new(),
            versions: HashMap::new(),
            templates: Arc::new(project.templates),
            default_timezone,
        };
        for journey in project.journeys {
            let journey = Arc::new(journey);
            registry.versions.insert((journey.id.clone(), journey.version.clone()), Some(Arc::clone(&journey)));
            registry.current.insert(journey.id.clone(), journey);
        }
        Ok(registry)
    }

    /// The current journeys.
    pub fn current(&self) -> impl Iterator<Item = &Arc<Journey>> {
        self.current.values()
    }

    pub fn current_of(&self, id: &str) -> Option<&Arc<Journey>> {
        self.current.get(id)
    }

    /// A version runs are on: loaded, or compiled from the stored source. None when it is
    /// gone or no longer compiles (its templates were removed, say).
    pub async fn version(
        &mut self,
        store: &Store,
        id: &str,
        version: &str,
    ) -> Result<Option<Arc<Journey>>, StoreError> {
        let key = (id.to_string(), version.to_string());
        if let Some(found) = self.versions.get(&key) {
            return Ok(found.clone());
        }
        let compiled = match store.version(id, version).await? {
            Some(stored) => {
                let file = SourceFile::new(&stored.path, stored.source.clone());
                let context = journey::Context { templates: &self.templates, default_timezone: self.default_timezone };
                let (journey, diagnostics) = journey::compile(&file, &context);
                if journey.is_none() {
                    tracing::warn!(
                        journey = id,
                        version,
                        problems = diagnostics.len(),
                        "a stored journey version no longer compiles"
                    );
                }
                journey.map(Arc::new)
            }
            None => None,
        };
        self.versions.insert(key, compiled.clone());
        Ok(compiled)
    }
}
