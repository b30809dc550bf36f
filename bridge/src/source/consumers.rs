//! The consumers one bridge runs in its group, shared between the polling tasks and the committer.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use super::SharedConsumer;

/// One slot per polling task (`None` while that task reconnects), and which task last received each
/// vgroup's messages: a commit goes through that vgroup's owner first (real TDengine commits a vgroup
/// only through the consumer it is assigned to), then through the others (after a rebalance moved it).
#[derive(Default)]
pub struct Consumers {
    slots: Mutex<Vec<Option<SharedConsumer>>>,
    owners: Mutex<HashMap<(Arc<str>, i32), usize>>,
}

impl Consumers {
    /// Task `index` now polls with `consumer` (`None`: it lost its connection).
    pub fn set(&self, index: usize, consumer: Option<SharedConsumer>) {
        let mut slots = self.slots.lock().expect("not poisoned");
        if slots.len() <= index {
            slots.resize(index + 1, None);
        }
        slots[index] = consumer;
    }

    /// Task `index` received a message of `vgroup_id`.
    pub fn saw(&self, index: usize, topic: &Arc<str>, vgroup_id: i32) {
        let mut owners = self.owners.lock().expect("not poisoned");
        match owners.get_mut(&(topic.clone(), vgroup_id)) {
            Some(i) => *i = index,
            None => {
                owners.insert((topic.clone(), vgroup_id), index);
            }
        }
    }

    /// The live consumers to commit `vgroup_id` through, its owner first.
    pub fn for_vgroup(&self, topic: &Arc<str>, vgroup_id: i32) -> Vec<SharedConsumer> {
        let owner = self
            .owners
            .lock()
            .expect("not poisoned")
            .get(&(topic.clone(), vgroup_id))
            .copied();
        let slots = self.slots.lock().expect("not poisoned");
        let mut order: Vec<usize> = (0..slots.len()).collect();
        if let Some(o) = owner.filter(|&o| o < slots.len()) {
            order.retain(|&i| i != o);
            order.insert(0, o);
        }
        order.into_iter().filter_map(|i| slots[i].clone()).collect()
    }

    /// How many polling tasks are connected now.
    pub fn live(&self) -> usize {
        self.slots.lock().expect("not poisoned").iter().flatten().count()
    }
}
