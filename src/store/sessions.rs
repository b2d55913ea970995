//! Sign-in and sign-out of a desktop session, as chained `security` rows, so the ledger shows who was
//! at the screen between the decisions (failed sign-ins are logged by [`Store::authenticate`]).

use super::chain::Entry;
use super::{Operator, Store, StoreError};

impl Store {
    /// Records that `op` signed in to (`signed_in`) or out of (`signed_out`) the desktop application.
    pub fn log_session(
        &mut self,
        op: &Operator,
        signed_in: bool,
        source: &str,
    ) -> Result<i64, StoreError> {
        let event = if signed_in { "signed_in" } else { "signed_out" };
        self.append_event(Entry::event(
            "security",
            op.name(),
            serde_json::json!({"event": event, "role": op.role().as_str(), "source": source}),
        ))
    }
}
