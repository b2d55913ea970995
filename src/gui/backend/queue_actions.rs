//! The Queue screen's jobs: listing the referral queue and the settings changes that wait for a second
//! supervisor, resolving a referral, approving or declining a change. The rules live in the store
//! ([`crate::store::Store::resolve_referral`], [`crate::store::Store::approve_settings_change`]); these
//! only call them in the signed-in supervisor's name.

use super::Backend;
use super::advice::{UserError, store_error};
use super::view::DecisionRow;
use crate::gui::queue::{QueueEvent, QueueJob, RequestView};
use crate::scoring::Decision;

/// How many referrals the screen lists at once (oldest first).
const QUEUE_LIMIT: u64 = 500;

impl Backend {
    /// Runs one of the Queue screen's jobs.
    pub fn queue_job(&mut self, job: QueueJob) -> QueueEvent {
        let done = match job {
            QueueJob::Refresh => None,
            QueueJob::Resolve { id, to, reason } => Some(self.resolve(id, to, &reason)),
            QueueJob::Approve { id, note } => Some(self.approve(id, &note)),
            QueueJob::Decline { id, reason } => Some(self.decline(id, &reason)),
        };
        let listed = self.queue_lists();
        match (done, listed) {
            (Some(Err(e)), _) | (_, Err(e)) => QueueEvent::Failed(e),
            (None, Ok((referrals, requests))) => QueueEvent::Listed {
                referrals,
                requests,
            },
            (Some(Ok(message)), Ok((referrals, requests))) => QueueEvent::Done {
                message,
                referrals,
                requests,
            },
        }
    }

    fn queue_lists(&mut self) -> Result<(Vec<DecisionRow>, Vec<RequestView>), UserError> {
        let op = self.require_operator()?;
        op.require(crate::store::Permission::ResolveReferral)
            .map_err(|e| store_error("The queue is for supervisors", e))?;
        let store = self.store()?;
        let referrals = store
            .referral_queue(QUEUE_LIMIT)
            .map_err(|e| store_error("Could not read the referral queue", e))?;
        let requests = store
            .pending_settings_requests()
            .map_err(|e| store_error("Could not read the pending settings changes", e))?
            .into_iter()
            .map(|r| RequestView {
                id: r.id,
                time: r.time.replace('T', " ").trim_end_matches('Z').to_string(),
                operator: r.operator.clone(),
                reason: r.reason.clone(),
                what: r.describe_change(),
            })
            .collect();
        Ok((referrals, requests))
    }

    fn resolve(&mut self, id: i64, to: Decision, reason: &str) -> Result<String, UserError> {
        let op = self.require_operator()?;
        let row = self
            .store()?
            .resolve_referral(&op, id, to, reason)
            .map_err(|e| store_error("The referral was not resolved", e))?;
        Ok(format!(
            "Referral #{id} resolved to {} (logged as row {row}).",
            to.as_str()
        ))
    }

    fn approve(&mut self, id: i64, note: &str) -> Result<String, UserError> {
        let op = self.require_operator()?;
        let before = self
            .store()?
            .current_settings()
            .ok()
            .and_then(|s| s.model_id);
        let s = self
            .store()?
            .approve_settings_change(&op, id, note)
            .map_err(|e| store_error("The change was not approved", e))?;
        if s.model_id != before {
            // An approved model change is in force in this window too: a --model given at start
            // gives way to it, as it does for every command.
            self.config.model_path = None;
        }
        // The next verification uses what is in force now (a new model is loaded again).
        self.forget_model();
        Ok(format!(
            "Change #{id} approved and in force now (settings row {}): ACCEPT at {:.3} or more, REJECT below {:.3}.",
            s.version, s.thresholds.accept, s.thresholds.reject
        ))
    }

    fn decline(&mut self, id: i64, reason: &str) -> Result<String, UserError> {
        let op = self.require_operator()?;
        let row = self
            .store()?
            .decline_settings_change(&op, id, reason)
            .map_err(|e| store_error("The change was not declined", e))?;
        Ok(format!(
            "Change #{id} declined (row {row}); nothing changed."
        ))
    }
}
