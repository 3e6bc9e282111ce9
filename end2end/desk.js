// A desk unit for the browser tests, speaking docs/PROTOCOL.md with a plain MQTT client.
import mqtt from 'mqtt';

export async function connectDesk(brokerUrl, prefix, id, boot, password) {
  const topic = (kind) => `${prefix}/desk/${id}/${kind}`;
  // With its credential (from `consultease desk add`) a desk is its id: client id = username.
  const login = password ? { clientId: id, username: id, password } : { clientId: `e2e-desk-${id}-${Date.now()}` };
  const client = await mqtt.connectAsync(brokerUrl, {
    ...login,
    clean: true,
    reconnectPeriod: 0,
    will: { topic: topic('online'), payload: JSON.stringify({ boot, seq: 0, online: false }), qos: 1, retain: true },
  });
  let seq = 0;
  // The queue the server publishes to this desk (retained): the newest snapshot by version.
  let queue = null;
  const queueWaiters = [];
  client.on('message', (t, payload) => {
    if (t !== topic('queue')) return;
    const snap = JSON.parse(payload.toString());
    if (queue && snap.version <= queue.version) return;
    queue = snap;
    for (const w of queueWaiters.splice(0)) w();
  });
  await client.subscribeAsync(topic('queue'), { qos: 1 });
  const publish = (kind, body, { retain = true, qos = 1 } = {}) =>
    client.publishAsync(topic(kind), JSON.stringify(body), { qos, retain });
  const desk = {
    id,
    get seq() {
      return seq;
    },
    async state(present, busy = false) {
      seq += 1;
      await publish('state', { boot, seq, present, busy });
      return seq;
    },
    /** Publishes a state message with an explicit (old) seq. */
    async stateAt(at, present, busy = false) {
      await publish('state', { boot, seq: at, present, busy }, { retain: false });
    },
    /** The newest queue snapshot received (or null). */
    get queue() {
      return queue;
    },
    /** Resolves with the first queue snapshot (current or later) for which `pred` holds. */
    async waitQueue(pred, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      while (!(queue && pred(queue))) {
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`desk ${id}: queue never matched; last ${JSON.stringify(queue)}`);
        await new Promise((r) => {
          const t = setTimeout(r, left);
          queueWaiters.push(() => {
            clearTimeout(t);
            r();
          });
        });
      }
      return queue;
    },
    /** Acknowledges the queue snapshot `version` (it is on the screen). */
    async ack(version) {
      seq += 1;
      await publish('queue_ack', { boot, seq, version }, { retain: false });
    },
    /** Answers a request with a button: accept, busy, decline, done or no_show. */
    async reply(request, action, note) {
      seq += 1;
      await publish('reply', { boot, seq, request, action, ...(note ? { note } : {}) }, { retain: false });
    },
    async close() {
      await client.endAsync();
    },
  };
  seq = 1;
  await publish('online', { boot, seq, online: true });
  return desk;
}
