//! A desk unit over MQTT, as docs/PROTOCOL.md describes it, with every payload made by
//! `domain::protocol`.

use domain::DeskClock;
use domain::consultation::Action;
use domain::protocol::{DeskInfo, Kind, Payload, QueueSnapshot, queue_topic, topic};
use rumqttc::{AsyncClient, Event, LastWill, Packet, QoS};
use server::mqtt::BrokerAddr;
use std::time::Duration;
use tokio::task::JoinHandle;

pub struct Desk {
    pub client: AsyncClient,
    pub prefix: String,
    pub id: String,
    pub boot: u32,
    /// The seq of the last message sent.
    pub seq: u64,
    task: JoinHandle<()>,
    /// What the broker delivered to this desk (its queue snapshots).
    received: tokio::sync::mpsc::UnboundedReceiver<rumqttc::Publish>,
}

impl Desk {
    /// Connects as desk `id` with its last will reserved at `(boot, will_seq)`, then announces itself
    /// at `will_seq + 1`.
    pub async fn connect(broker: &BrokerAddr, prefix: &str, id: &str, boot: u32, will_seq: u64) -> Desk {
        Desk::connect_as(broker, prefix, &format!("desk-{id}-{}", crate::unique()), id, boot, will_seq).await
    }

    /// [`Desk::connect`] with the given MQTT client id.
    pub async fn connect_as(
        broker: &BrokerAddr,
        prefix: &str,
        client_id: &str,
        id: &str,
        boot: u32,
        will_seq: u64,
    ) -> Desk {
        // Address, credentials and TLS as the broker address says.
        let mut opts = broker.mqtt_options(client_id);
        // Large enough to send the oversized payloads tests need (rumqttc refuses over 10 KiB by default).
        opts.set_keep_alive(Duration::from_secs(5)).set_max_packet_size(1 << 20, 1 << 20);
        let will = Payload::Online { clock: DeskClock::new(boot, will_seq), online: false };
        opts.set_last_will(LastWill::new(topic(prefix, id, Kind::Online), will.encode(), QoS::AtLeastOnce, true));
        let (client, mut eventloop) = AsyncClient::new(opts, 100);
        eventloop.network_options.set_tcp_nodelay(true);
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let mut ready_tx = Some(ready_tx);
        let (pub_tx, received) = tokio::sync::mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        if let Some(tx) = ready_tx.take() {
                            let _ = tx.send(());
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let _ = pub_tx.send(p);
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), ready_rx)
            .await
            .expect("the desk connects within 10 s")
            .expect("the desk's event loop runs");
        let mut desk = Desk { client, prefix: prefix.into(), id: id.into(), boot, seq: will_seq, task, received };
        let clock = desk.next_clock();
        desk.send(&Payload::Online { clock, online: true }, true).await;
        desk
    }

    /// The clock of the next message.
    pub fn next_clock(&mut self) -> DeskClock {
        self.seq += 1;
        DeskClock::new(self.boot, self.seq)
    }

    /// Publishes a state change (retained, as firmware does); returns its seq.
    pub async fn state(&mut self, present: bool, busy: bool) -> u64 {
        let clock = self.next_clock();
        self.send(&Payload::State { clock, present, busy }, true).await;
        self.seq
    }

    pub async fn heartbeat(&mut self) -> u64 {
        let clock = self.next_clock();
        let info = DeskInfo { uptime_s: Some(12), rssi: Some(-61), ..DeskInfo::default() };
        self.send(&Payload::Heartbeat { clock, info }, false).await;
        self.seq
    }

    /// Publishes `payload` on its topic (QoS 1).
    pub async fn send(&self, payload: &Payload, retain: bool) {
        self.raw(payload.kind().as_str(), payload.encode(), retain).await;
    }

    /// Publishes exactly `payload` on `P/desk/{id}/{kind}` (for replays and malformed input).
    pub async fn raw(&self, kind: &str, payload: Vec<u8>, retain: bool) {
        let topic = format!("{}/desk/{}/{kind}", self.prefix, self.id);
        self.client.publish(topic, QoS::AtLeastOnce, retain, payload).await.expect("the publish is queued");
    }

    /// Publishes exactly `payload` on any topic (QoS 1): what a broken or hostile client sends.
    pub async fn publish_raw(&self, topic: &str, payload: Vec<u8>) {
        self.client.publish(topic, QoS::AtLeastOnce, false, payload).await.expect("the publish is queued");
    }

    /// A state payload at `seq` of this desk's boot.
    pub fn state_payload(&self, seq: u64, present: bool, busy: bool) -> Vec<u8> {
        Payload::State { clock: DeskClock::new(self.boot, seq), present, busy }.encode()
    }

    /// Subscribes to this desk's queue (the retained snapshot arrives at once).
    pub async fn subscribe_queue(&self) {
        self.client
            .subscribe(queue_topic(&self.prefix, &self.id), QoS::AtLeastOnce)
            .await
            .expect("the subscription is queued");
    }

    /// The next queue snapshot with a version above `above` (older ones are skipped, as firmware
    /// must); panics after 10 s.
    pub async fn snapshot_above(&mut self, above: i64) -> QueueSnapshot {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let p = tokio::time::timeout_at(deadline, self.received.recv())
                .await
                .expect("a queue snapshot within 10 s")
                .expect("the desk's connection is alive");
            if let Ok(s) = QueueSnapshot::parse(&p.payload)
                && s.version > above
            {
                return s;
            }
        }
    }

    /// Acknowledges showing queue `version`.
    pub async fn ack(&mut self, version: i64) -> u64 {
        let clock = self.next_clock();
        self.send(&Payload::QueueAck { clock, version }, false).await;
        self.seq
    }

    /// Answers request `request` with a button.
    pub async fn reply(&mut self, request: i64, action: Action, note: Option<&str>) -> u64 {
        let clock = self.next_clock();
        self.send(&Payload::Reply { clock, request, action, note: note.map(str::to_owned) }, false).await;
        self.seq
    }

    /// Drops the connection without a DISCONNECT, as a desk losing power does: the broker then
    /// publishes the will.
    pub fn kill(self) {
        self.task.abort();
    }
}
