//! The ambient lineage of the current request or task, carried on the OpenTelemetry
//! [`Context`].

use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use kest_passport::{Passport, PassportError};
use kest_trust::TrustScore;
use opentelemetry::Context;
use opentelemetry::context::{ContextGuard, FutureExt as _, WithContext};

/// Who a flow acts for: the `kest.user`, `kest.agent`, `kest.task` and `kest.jwt` values
/// that travel in baggage and that the identity layer sets from a bearer token.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Caller {
    /// The end user (`kest.user`).
    pub user: Option<String>,
    /// The agent acting for the user (`kest.agent`).
    pub agent: Option<String>,
    /// The task (`kest.task`).
    pub task: Option<String>,
    /// The bearer token the caller presented (`kest.jwt`). Redacted in `Debug`.
    pub jwt: Option<String>,
}

impl fmt::Debug for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Caller")
            .field("user", &self.user)
            .field("agent", &self.agent)
            .field("task", &self.task)
            .field("jwt", &self.jwt.as_ref().map(|_| "[token elided]"))
            .finish()
    }
}

impl Caller {
    /// Takes each value `other` has, keeping this one's where `other` has none.
    #[must_use]
    pub fn overridden_by(&self, other: &Self) -> Self {
        Self {
            user: other.user.clone().or_else(|| self.user.clone()),
            agent: other.agent.clone().or_else(|| self.agent.clone()),
            task: other.task.clone().or_else(|| self.task.clone()),
            jwt: other.jwt.clone().or_else(|| self.jwt.clone()),
        }
    }
}

struct State {
    passport: Passport,
    caller: Caller,
    /// The trust a chain started in this flow begins under (an edge request's origin).
    start_trust: Option<TrustScore>,
}

/// The lineage of one flow of work: a request, a task, a pipeline run.
///
/// Protected calls made one after another in a flow chain onto each other: each new entry's
/// parents are the flow's heads, and the new entry becomes the head. Calls made inside a
/// protected call are in the same flow, so they chain too, and the outer call's entry
/// follows theirs.
///
/// A flow is shared by clones of its handle. To run work concurrently, [`Flow::fork`] gives
/// each branch its own flow starting at the last shared entry (the passport is a persistent
/// structure, so a fork costs O(1)), and [`Flow::join`] merges the branches back so the next
/// entry records every branch tip as a parent. Two branches never write one passport.
///
/// The flow of the current code is found on the OpenTelemetry [`Context`]: attach it with
/// [`Flow::scope`] for a future or [`Flow::enter`] for synchronous code. The lineage layer
/// does this for every request.
#[derive(Clone)]
pub struct Flow {
    state: Arc<Mutex<State>>,
}

impl fmt::Debug for Flow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("Flow")
            .field("passport", &state.passport)
            .field("caller", &state.caller)
            .finish()
    }
}

impl Default for Flow {
    fn default() -> Self {
        Self::new()
    }
}

impl Flow {
    /// A flow with an empty passport: its first protected call makes a root entry.
    #[must_use]
    pub fn new() -> Self {
        Self::with_passport(Passport::new(), Caller::default())
    }

    /// A flow continuing `passport`, acting for `caller`.
    #[must_use]
    pub fn with_passport(passport: Passport, caller: Caller) -> Self {
        Self::from_state(State {
            passport,
            caller,
            start_trust: None,
        })
    }

    /// A flow for a request that arrived at an edge service without lineage: it starts a
    /// new chain, and the first entry's trust is at most `start_trust` (the trust of the
    /// edge's configured origin), so that input from outside never starts at full trust.
    #[must_use]
    pub fn at_edge(start_trust: TrustScore, caller: Caller) -> Self {
        Self::from_state(State {
            passport: Passport::new(),
            caller,
            start_trust: Some(start_trust),
        })
    }

    fn from_state(state: State) -> Self {
        Self {
            state: Arc::new(Mutex::new(state)),
        }
    }

    /// The trust a new chain in this flow starts under: `Some` for a flow opened at an
    /// edge service ([`Flow::at_edge`]).
    #[must_use]
    pub fn start_trust(&self) -> Option<TrustScore> {
        self.lock().start_trust
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the passport half-written: every
        // mutation replaces it whole. So a poisoned lock is still consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The flow attached to the current context, if any.
    #[must_use]
    pub fn current() -> Option<Self> {
        Context::map_current(|cx| cx.get::<Self>().cloned())
    }

    /// The passport so far (a cheap, immutable snapshot).
    #[must_use]
    pub fn passport(&self) -> Passport {
        self.lock().passport.clone()
    }

    /// Who the flow acts for.
    #[must_use]
    pub fn caller(&self) -> Caller {
        self.lock().caller.clone()
    }

    /// Replaces who the flow acts for (the identity layer does this from a verified token).
    pub fn set_caller(&self, caller: Caller) {
        self.lock().caller = caller;
    }

    /// Runs `update` on the passport, keeping its result only if it succeeds. The lock is
    /// held only for `update`: build and sign entries before, and push them here.
    ///
    /// # Errors
    /// Whatever `update` returns; the passport is then unchanged.
    pub fn update<T>(
        &self,
        update: impl FnOnce(&mut Passport) -> Result<T, PassportError>,
    ) -> Result<T, PassportError> {
        let mut state = self.lock();
        let mut next = state.passport.clone();
        let value = update(&mut next)?;
        state.passport = next;
        Ok(value)
    }

    /// A new flow that starts where this one is now and then goes its own way.
    #[must_use]
    pub fn fork(&self) -> Self {
        let state = self.lock();
        Self::from_state(State {
            passport: state.passport.clone(),
            caller: state.caller.clone(),
            start_trust: state.start_trust,
        })
    }

    /// Merges `branches` (forks of this flow) into it: afterwards its heads are the branch
    /// tips, so the next entry records them all as parents.
    ///
    /// # Errors
    /// [`PassportError::Entry`] when a branch does not share this flow's root.
    pub fn join(&self, branches: &[Self]) -> Result<(), PassportError> {
        let snapshots: Vec<Passport> = branches.iter().map(Self::passport).collect();
        self.update(|passport| {
            let mut all: Vec<&Passport> = Vec::with_capacity(snapshots.len() + 1);
            all.push(passport);
            all.extend(snapshots.iter());
            *passport = Passport::join(&all)?;
            Ok(())
        })
    }

    /// `future`, run with this flow as the current one.
    pub fn scope<F: Future>(&self, future: F) -> WithContext<F> {
        future.with_context(Context::current_with_value(self.clone()))
    }

    /// Makes this flow the current one on this thread until the guard drops, for
    /// synchronous code.
    #[must_use = "the flow is current only while the guard lives"]
    pub fn enter(&self) -> ContextGuard {
        Context::current_with_value(self.clone()).attach()
    }
}

/// `future` in a fork of the current flow (or a new flow when there is none), for work
/// spawned onto another task. Returns the fork, to [`Flow::join`] later, and the future.
pub fn fork_current<F: Future>(future: F) -> (Flow, WithContext<F>) {
    let fork = Flow::current().map_or_else(Flow::new, |flow| flow.fork());
    let scoped = fork.scope(future);
    (fork, scoped)
}

/// The passport of the current flow.
#[must_use]
pub fn current_passport() -> Option<Passport> {
    Flow::current().map(|flow| flow.passport())
}

/// The end user of the current flow (`kest.user`).
#[must_use]
pub fn current_user() -> Option<String> {
    Flow::current().and_then(|flow| flow.caller().user)
}

/// The agent of the current flow (`kest.agent`).
#[must_use]
pub fn current_agent() -> Option<String> {
    Flow::current().and_then(|flow| flow.caller().agent)
}

/// The task of the current flow (`kest.task`).
#[must_use]
pub fn current_task() -> Option<String> {
    Flow::current().and_then(|flow| flow.caller().task)
}

/// The bearer token of the current flow (`kest.jwt`).
#[must_use]
pub fn current_jwt() -> Option<String> {
    Flow::current().and_then(|flow| flow.caller().jwt)
}
