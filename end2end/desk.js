// A desk unit for the browser tests, speaking docs/PROTOCOL.md with a plain MQTT client.
import mqtt from 'mqtt';

export async function connectDesk(brokerUrl, prefix, id, boot) {
  const topic = (kind) => `${prefix}/desk/${id}/${kind}`;
  const client = await mqtt.connectAsync(brokerUrl, {
    clientId: `e2e-desk-${id}-${Date.now()}`,
    clean: true,
    reconnectPeriod: 0,
    will: { topic: topic('online'), payload: JSON.stringify({ boot, seq: 0, online: false }), qos: 1, retain: true },
  });
  let seq = 0;
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
    async close() {
      await client.endAsync();
    },
  };
  seq = 1;
  await publish('online', { boot, seq, online: true });
  return desk;
}
