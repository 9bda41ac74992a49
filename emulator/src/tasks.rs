//! Task ownership: every spawned task belongs to something that aborts it.

use std::{
    future::Future,
    sync::{Arc, Mutex},
};

use tokio::task::JoinSet;

/// Aborts its task when dropped: how every spawned task gets an owner.
#[derive(Debug)]
pub(crate) struct AbortOnDrop(pub tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A set of tasks that can be spawned into from anywhere and aborted at once.
#[derive(Debug, Default, Clone)]
pub(crate) struct Tasks(Arc<Mutex<JoinSet<()>>>);

impl Tasks {
    pub fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        let mut set = self.0.lock().unwrap_or_else(|p| p.into_inner());
        // Reap finished tasks so the set does not grow without bound.
        while set.try_join_next().is_some() {}
        set.spawn(task);
    }

    pub fn abort_all(&self) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).abort_all();
    }
}
