// kafkajs (npm) against Sluice: an idempotent producer, a transactional
// producer that commits one transaction (records plus the offsets of a
// consumer group, sendOffsets) and aborts another, and a read-committed
// consumer. Prints one JSON line: what the consumer saw.
//
// usage: node kafkajs_txn.mjs BOOTSTRAP IN_TOPIC OUT_TOPIC GROUP
import kafkajs from 'kafkajs';

const { Kafka, logLevel } = kafkajs;
const [bootstrap, inTopic, outTopic, group] = process.argv.slice(2);
const kafka = new Kafka({ clientId: 'sluice-kafkajs-test', brokers: [bootstrap], logLevel: logLevel.ERROR,
                          retry: { retries: 10 } });

const idem = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
await idem.connect();
await idem.send({ topic: inTopic, messages: Array.from({ length: 10 }, (_, i) => ({ value: `in-${i}` })) });
await idem.disconnect();

const tp = kafka.producer({ transactionalId: 'kafkajs-txn', idempotent: true, maxInFlightRequests: 1 });
await tp.connect();
const t1 = await tp.transaction();
await t1.send({ topic: outTopic, messages: [{ value: 'kept-1' }, { value: 'kept-2' }] });
await t1.sendOffsets({ consumerGroupId: group, topics: [{ topic: inTopic, partitions: [{ partition: 0, offset: '5' }] }] });
await t1.commit();
const t2 = await tp.transaction();
await t2.send({ topic: outTopic, messages: [{ value: 'dropped' }] });
await t2.sendOffsets({ consumerGroupId: group, topics: [{ topic: inTopic, partitions: [{ partition: 0, offset: '9' }] }] });
await t2.abort();
const t3 = await tp.transaction();
await t3.send({ topic: outTopic, messages: [{ value: 'kept-3' }] });
await t3.commit();
await tp.disconnect();

const seen = [];
const consumer = kafka.consumer({ groupId: `reader-${Date.now()}`, readUncommitted: false });
await consumer.connect();
await consumer.subscribe({ topic: outTopic, fromBeginning: true });
let timer;
const done = new Promise((resolve) => {
  consumer.run({
    eachMessage: async ({ message }) => {
      seen.push(message.value.toString());
      if (seen.length >= 3) resolve();
    },
  });
  timer = setTimeout(resolve, 20000);
});
await done;
clearTimeout(timer);
// A moment for anything that should not be there to arrive.
await new Promise((r) => setTimeout(r, 1000));
await consumer.disconnect();
console.log(JSON.stringify({ seen }));
