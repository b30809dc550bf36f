//! Recording subscribers: rumqttc clients (MQTT 3.1.1 or 5.0) that keep every delivered message with its
//! receive time, and the quiescence wait that ends a run when nothing more is coming (or at a deadline).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::scenario::{MqttVersion, SubscriberDef};

/// One message as a subscriber received it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Delivered {
    pub subscriber: String,
    pub topic: String,
    #[serde(skip)]
    pub payload: Bytes,
    pub qos: u8,
    pub dup: bool,
    pub retain: bool,
    /// Receive time, microseconds since the Unix epoch.
    pub at_us: u64,
    /// The MQTT 5 properties the verdict judges (`None` under 3.1.1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub v5: Option<V5Props>,
}

/// MQTT 5 publish properties as a subscriber received them.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct V5Props {
    pub user_properties: Vec<(String, String)>,
    /// The Message Expiry Interval as delivered (the broker counts it down), seconds.
    pub message_expiry: Option<u32>,
}

#[derive(Debug, thiserror::Error)]
pub enum RecorderError {
    #[error("subscriber {name}: no SUBACK from {broker} within {timeout:?} (last error: {last})")]
    NotReady {
        name: String,
        broker: SocketAddr,
        timeout: Duration,
        last: String,
    },
}

/// Microseconds since the Unix epoch.
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Shared activity counter: bumped on every delivery by every recorder of a run.
#[derive(Clone)]
pub struct Activity(watch::Sender<u64>);

impl Default for Activity {
    fn default() -> Self {
        Activity(watch::channel(0).0)
    }
}

impl Activity {
    fn bump(&self) {
        self.0.send_modify(|n| *n += 1);
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.0.subscribe()
    }
}

/// What a recorder received: every message in order, and the distinct rows among them.
#[derive(Default)]
struct Log {
    messages: Vec<Delivered>,
    /// Row identities (a row's data; a message that is no row: its payload), duplicates counted once.
    distinct: HashSet<String>,
}

impl Log {
    fn push(&mut self, d: Delivered) {
        let key = match crate::verdict::payload::parse(&d.payload) {
            Ok(crate::verdict::payload::Payload::Row { data, .. }) => crate::verdict::payload::row_key(&data),
            _ => String::from_utf8_lossy(&d.payload).into_owned(),
        };
        self.distinct.insert(key);
        self.messages.push(d);
    }
}

/// A running recording subscriber.
pub struct Recorder {
    pub name: String,
    messages: Arc<Mutex<Log>>,
    task: JoinHandle<()>,
}

/// Credentials for the broker, if it wants them.
#[derive(Debug, Clone)]
pub struct Login {
    pub user: String,
    pub password: String,
}

impl Recorder {
    /// Connects, subscribes, and returns once the broker granted the subscription.
    pub async fn start(
        broker: SocketAddr,
        def: &SubscriberDef,
        client_id: &str,
        login: Option<&Login>,
        activity: Activity,
    ) -> Result<Recorder, RecorderError> {
        let messages = Arc::new(Mutex::new(Log::default()));
        let (ready_tx, mut ready_rx) = watch::channel(Err::<(), String>("not connected".into()));
        let task = tokio::spawn(run(
            broker,
            def.clone(),
            client_id.to_string(),
            login.cloned(),
            messages.clone(),
            activity,
            ready_tx,
        ));
        let timeout = Duration::from_secs(10);
        let ready = tokio::time::timeout(timeout, ready_rx.wait_for(|r| r.is_ok()))
            .await
            .map(|r| r.is_ok())
            .unwrap_or(false);
        if !ready {
            let last = ready_rx.borrow().clone().err().unwrap_or_default();
            task.abort();
            return Err(RecorderError::NotReady {
                name: def.name.clone(),
                broker,
                timeout,
                last,
            });
        }
        Ok(Recorder {
            name: def.name.clone(),
            messages,
            task,
        })
    }

    /// Messages received, duplicates included.
    pub fn count(&self) -> usize {
        self.messages.lock().expect("messages lock").messages.len()
    }

    /// Distinct rows received (what a run waits for: duplicates after a re-send must not end it early).
    pub fn distinct(&self) -> usize {
        self.messages.lock().expect("messages lock").distinct.len()
    }

    pub fn messages(&self) -> Vec<Delivered> {
        self.messages.lock().expect("messages lock").messages.clone()
    }

    /// Stops the client and returns everything it received.
    pub fn stop(self) -> Vec<Delivered> {
        self.task.abort();
        self.messages()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Pause between reconnect attempts (rumqttc reconnects at once otherwise).
const RETRY: Duration = Duration::from_millis(100);

/// What the recording loop needs from either client's events.
enum Seen {
    ConnAck { session_present: bool },
    SubAck,
    Publish(Box<Delivered>),
    Other,
}

/// The 3.1.1 or 5.0 client behind one recording loop.
#[allow(clippy::large_enum_variant)] // one per subscriber; boxing buys nothing
enum Client {
    V4(rumqttc::AsyncClient, rumqttc::EventLoop),
    V5(rumqttc::v5::AsyncClient, rumqttc::v5::EventLoop),
}

impl Client {
    fn new(broker: SocketAddr, def: &SubscriberDef, client_id: String, login: Option<&Login>) -> Client {
        let (host, port) = (broker.ip().to_string(), broker.port());
        match def.version {
            MqttVersion::V311 => {
                let mut o = rumqttc::MqttOptions::new(client_id, host, port);
                o.set_clean_session(def.clean_session)
                    .set_manual_acks(def.withhold_acks)
                    .set_keep_alive(Duration::from_secs(30))
                    .set_max_packet_size(16 * 1024 * 1024, 16 * 1024 * 1024);
                if let Some(l) = login {
                    o.set_credentials(&l.user, &l.password);
                }
                let (c, el) = rumqttc::AsyncClient::new(o, 1000);
                Client::V4(c, el)
            }
            MqttVersion::V5 => {
                let mut o = rumqttc::v5::MqttOptions::new(client_id, host, port);
                o.set_clean_start(def.clean_session)
                    .set_manual_acks(def.withhold_acks)
                    .set_keep_alive(Duration::from_secs(30))
                    .set_max_packet_size(Some(16 * 1024 * 1024));
                if !def.clean_session {
                    // MQTT 5 ends a session at disconnect unless an expiry interval says otherwise.
                    o.set_session_expiry_interval(Some(3600));
                }
                if let Some(l) = login {
                    o.set_credentials(&l.user, &l.password);
                }
                let (c, el) = rumqttc::v5::AsyncClient::new(o, 1000);
                Client::V5(c, el)
            }
        }
    }

    fn subscribe(&self, filter: &str, qos: u8) {
        match self {
            Client::V4(c, _) => {
                use rumqttc::QoS as Q;
                let qos = [Q::AtMostOnce, Q::AtLeastOnce, Q::ExactlyOnce][usize::from(qos.min(2))];
                let _ = c.try_subscribe(filter, qos);
            }
            Client::V5(c, _) => {
                use rumqttc::v5::mqttbytes::QoS as Q;
                let qos = [Q::AtMostOnce, Q::AtLeastOnce, Q::ExactlyOnce][usize::from(qos.min(2))];
                let _ = c.try_subscribe(filter, qos);
            }
        }
    }

    async fn poll(&mut self, subscriber: &str) -> Result<Seen, String> {
        let delivered = |topic: String, payload: &Bytes, qos: u8, dup: bool, retain: bool, v5| {
            Seen::Publish(Box::new(Delivered {
                subscriber: subscriber.to_string(),
                topic,
                payload: payload.clone(),
                qos,
                dup,
                retain,
                at_us: now_us(),
                v5,
            }))
        };
        match self {
            Client::V4(_, el) => {
                use rumqttc::{Event, Packet};
                Ok(match el.poll().await.map_err(|e| e.to_string())? {
                    Event::Incoming(Packet::ConnAck(a)) => Seen::ConnAck {
                        session_present: a.session_present,
                    },
                    Event::Incoming(Packet::SubAck(_)) => Seen::SubAck,
                    Event::Incoming(Packet::Publish(p)) => {
                        delivered(p.topic.clone(), &p.payload, p.qos as u8, p.dup, p.retain, None)
                    }
                    _ => Seen::Other,
                })
            }
            Client::V5(_, el) => {
                use rumqttc::v5::{mqttbytes::v5::Packet, Event};
                Ok(match el.poll().await.map_err(|e| e.to_string())? {
                    Event::Incoming(Packet::ConnAck(a)) => Seen::ConnAck {
                        session_present: a.session_present,
                    },
                    Event::Incoming(Packet::SubAck(_)) => Seen::SubAck,
                    Event::Incoming(Packet::Publish(p)) => delivered(
                        String::from_utf8_lossy(&p.topic).into_owned(),
                        &p.payload,
                        p.qos as u8,
                        p.dup,
                        p.retain,
                        Some(V5Props {
                            user_properties: p
                                .properties
                                .as_ref()
                                .map(|pr| pr.user_properties.clone())
                                .unwrap_or_default(),
                            message_expiry: p.properties.as_ref().and_then(|pr| pr.message_expiry_interval),
                        }),
                    ),
                    _ => Seen::Other,
                })
            }
        }
    }
}

async fn run(
    broker: SocketAddr,
    def: SubscriberDef,
    client_id: String,
    login: Option<Login>,
    messages: Arc<Mutex<Log>>,
    activity: Activity,
    ready: watch::Sender<Result<(), String>>,
) {
    let mut client = Client::new(broker, &def, client_id, login.as_ref());
    loop {
        match client.poll(&def.name).await {
            // A clean session (or a lost one) has no subscription: make it again.
            Ok(Seen::ConnAck {
                session_present: false,
            }) => client.subscribe(&def.filter, def.qos),
            Ok(Seen::ConnAck {
                session_present: true,
            })
            | Ok(Seen::SubAck) => {
                let _ = ready.send(Ok(()));
            }
            Ok(Seen::Publish(d)) => {
                messages.lock().expect("messages lock").push(*d);
                activity.bump();
            }
            Ok(Seen::Other) => {}
            Err(e) => {
                ready.send_if_modified(|r| {
                    if r.is_err() {
                        *r = Err(e);
                        true
                    } else {
                        false
                    }
                });
                tokio::time::sleep(RETRY).await;
            }
        }
    }
}

/// Why a wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Ending {
    /// Everything expected arrived and nothing new came for the quiet period.
    Quiescent,
    /// Every row still missing was acknowledged by the broker (its loss, which the scenario allows) and
    /// nothing moved for the quiet period: waiting longer could not bring those rows.
    Accounted,
    /// The deadline passed first.
    Deadline,
}

/// Waits until `done()` holds and no delivery happened for `quiet`, or until `deadline` passed.
pub async fn wait_quiescent(
    activity: &Activity,
    mut done: impl FnMut() -> bool,
    quiet: Duration,
    deadline: Duration,
) -> Ending {
    let mut rx = activity.subscribe();
    let until = tokio::time::Instant::now() + deadline;
    loop {
        let left = until.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            return Ending::Deadline;
        }
        match tokio::time::timeout(quiet.min(left), rx.changed()).await {
            // Something arrived: the quiet period starts again.
            Ok(Ok(())) => continue,
            // Every sender gone: nothing more can arrive.
            Ok(Err(_)) => {
                return if done() {
                    Ending::Quiescent
                } else {
                    Ending::Deadline
                }
            }
            Err(_) if done() && left >= quiet => return Ending::Quiescent,
            Err(_) => continue,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn quiescence_waits_for_the_quiet_period_after_the_last_delivery() {
        let activity = Activity::default();
        let a = activity.clone();
        let count = Arc::new(Mutex::new(0));
        let c = count.clone();
        tokio::spawn(async move {
            for _ in 0..3 {
                tokio::time::sleep(Duration::from_millis(200)).await;
                *c.lock().unwrap() += 1;
                a.bump();
            }
        });
        let start = tokio::time::Instant::now();
        let ending = wait_quiescent(
            &activity,
            || *count.lock().unwrap() == 3,
            Duration::from_millis(500),
            Duration::from_secs(10),
        )
        .await;
        assert_eq!(ending, Ending::Quiescent);
        // Last delivery at 600 ms, then 500 ms of quiet.
        assert_eq!(start.elapsed(), Duration::from_millis(1100));
    }

    #[tokio::test(start_paused = true)]
    async fn the_deadline_ends_a_wait_for_rows_that_never_come() {
        let activity = Activity::default();
        let start = tokio::time::Instant::now();
        let ending = wait_quiescent(
            &activity,
            || false,
            Duration::from_millis(500),
            Duration::from_secs(3),
        )
        .await;
        assert_eq!(ending, Ending::Deadline);
        assert_eq!(start.elapsed(), Duration::from_secs(3));
    }
}
