//! Imports that run while the server serves (`POST /v1/imports`): each on its own thread,
//! polled by id. A job's state lives in memory; after a restart its file can be imported
//! again, which records only what the first run had not.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{ImportCounts, ImportMode, ImportOptions, Mapping, Reject};
use crate::{Service, ServiceError};
use domain::ControllerId;

/// Rejects a job keeps to show (the counts go on beyond).
pub const MAX_JOB_REJECTS: usize = 10_000;
/// Finished jobs kept to be polled, per server (the oldest are forgotten first).
const KEEP_FINISHED: usize = 100;
/// Imports running at once, per server.
pub const MAX_RUNNING: usize = 2;

/// Where an import job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Running,
    /// Every row was read; the counts say what went in and what was refused.
    Done,
    /// It stopped (the ledger unavailable, the disk full): what was recorded stays, and
    /// importing the file again records the rest.
    Failed,
}

/// An import job as `GET /v1/imports/{id}` shows it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct ImportJob {
    pub id: Uuid,
    pub state: JobState,
    pub mode: ImportMode,
    pub dry_run: bool,
    pub started_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    pub counts: ImportCounts,
    /// The refused rows (the first 10 000), each with the column and the reason.
    pub rejects: Vec<Reject>,
    /// Why the job failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip)]
    controller: Option<ControllerId>,
}

/// The jobs of this server.
#[derive(Default)]
pub struct Jobs {
    jobs: Mutex<HashMap<Uuid, ImportJob>>,
}

impl Jobs {
    fn update(&self, id: Uuid, f: impl FnOnce(&mut ImportJob)) {
        if let Some(job) = self.jobs.lock().unwrap_or_else(|p| p.into_inner()).get_mut(&id) {
            f(job);
        }
    }
}

impl Service {
    /// Starts importing `file` (a spooled upload) on its own thread; answers with the job.
    pub fn start_import(
        self: &Arc<Self>,
        controller: &ControllerId,
        file: std::fs::File,
        mapping: Mapping,
        options: ImportOptions,
    ) -> Result<ImportJob, ServiceError> {
        // A mapping that does not fit the file is refused now, not in the job.
        let mut file = file;
        self.check_import(controller, &mut file, &mapping, options.mode)?;
        std::io::Seek::rewind(&mut file)?;
        let id = self.new_id();
        let job = ImportJob {
            id,
            state: JobState::Running,
            mode: options.mode,
            dry_run: options.dry_run,
            started_at: crate::now(),
            finished_at: None,
            counts: ImportCounts::default(),
            rejects: Vec::new(),
            error: None,
            controller: Some(controller.clone()),
        };
        {
            let mut jobs = self.imports.jobs.lock().unwrap_or_else(|p| p.into_inner());
            if jobs.values().filter(|j| j.state == JobState::Running).count() >= MAX_RUNNING {
                return Err(ServiceError::NotYet("imports are running: wait for one to finish"));
            }
            let mut finished: Vec<(DateTime<Utc>, Uuid)> =
                jobs.values().filter(|j| j.state != JobState::Running).map(|j| (j.started_at, j.id)).collect();
            finished.sort();
            for (_, old) in finished.iter().take(finished.len().saturating_sub(KEEP_FINISHED - 1)) {
                jobs.remove(old);
            }
            jobs.insert(id, job.clone());
        }
        let service = self.clone();
        let controller = controller.clone();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        std::thread::Builder::new().name("import".into()).spawn(move || {
            let jobs = &service.imports;
            let mut on_progress = |c: &ImportCounts| jobs.update(id, |j| j.counts = c.clone());
            let mut on_reject = |r: Reject| {
                jobs.update(id, |j| {
                    if j.rejects.len() < MAX_JOB_REJECTS {
                        j.rejects.push(r)
                    }
                })
            };
            let input = std::io::BufReader::with_capacity(1 << 20, file);
            let result = runtime.block_on(service.import(
                &controller,
                input,
                &mapping,
                &options,
                crate::now(),
                &mut on_progress,
                &mut on_reject,
            ));
            jobs.update(id, |j| {
                j.finished_at = Some(crate::now());
                match result {
                    Ok(counts) => {
                        j.counts = counts;
                        j.state = JobState::Done;
                    }
                    Err(e) => {
                        tracing::warn!(job = %id, error = %e, "an import stopped");
                        j.state = JobState::Failed;
                        j.error = Some(e.to_string());
                    }
                }
            });
        })?;
        Ok(job)
    }

    /// An import job of the controller (another controller's jobs are not found).
    pub fn import_job(&self, controller: &ControllerId, id: Uuid) -> Option<ImportJob> {
        let jobs = self.imports.jobs.lock().unwrap_or_else(|p| p.into_inner());
        jobs.get(&id).filter(|j| j.controller.as_ref() == Some(controller)).cloned()
    }
}
